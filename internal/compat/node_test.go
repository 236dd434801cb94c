package compat

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestNodePostgres runs testdata/node/scenario.js with node-postgres (pg,
// pinned in package-lock.json, installed by `npm ci`): named prepared
// queries and unnamed parameterized ones, client.on('notification'),
// pg-copy-streams both ways.
func TestNodePostgres(t *testing.T) {
	node, err := exec.LookPath("node")
	need(t, err == nil, "node is not on PATH (Debian packages nodejs and npm)")
	dir := testdata(t, "node")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "pg", "package.json"))
	need(t, err == nil, "node-postgres is not installed under %s (run: npm ci --no-audit --no-fund there)", dir)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "pg-copy-streams", "package.json"))
	need(t, err == nil, "pg-copy-streams is not installed under %s (run: npm ci --no-audit --no-fund there)", dir)
	compareThroughBelay(t, "node-postgres", func(ctx context.Context, ep endpoint, id int) (string, error) {
		return runProgram(ctx, dir, nil, false, node, "scenario.js", ep.url(), strconv.Itoa(id))
	}, nil)
}
