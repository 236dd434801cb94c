package compat

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pgbenchArgs: 20 clients on 2 threads for 5 s, select-only, with named
// prepared statements (pgbench prepares each per connection on first use).
var pgbenchArgs = []string{"-n", "-M", "prepared", "-c", "20", "-j", "2", "-T", "5", "-S"}

// TestPgbench runs pgbench -M prepared with 20 clients directly and then
// through belay with 2 server connections: under transaction pooling each
// client's prepared statements follow it from server to server. No run may
// fail a transaction or report an error.
func TestPgbench(t *testing.T) {
	pgbench := pgBinary(t, "pgbench")
	pg := compatPG(t)
	direct := endpoint{Host: pg.Host, Port: pg.Port}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	if out, err := runProgram(ctx, "", nil, true, pgbench, "-i", "-s", "1", "-q", direct.connString()); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	runPgbench(t, pgbench, pgbenchArgs, "direct", direct)
	p, ep := startBelay(t, pg)
	runPgbench(t, pgbench, pgbenchArgs, "through belay", ep)
	checkIdle(t, pg, p)
}

var (
	pgbenchProcessed = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
	pgbenchFailed    = regexp.MustCompile(`number of failed transactions: ([0-9]+)`)
	pgbenchTPS       = regexp.MustCompile(`tps = ([0-9.]+)`)
)

func runPgbench(t *testing.T, pgbench string, args []string, where string, ep endpoint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	argv := append(append([]string{pgbench}, args...), ep.connString())
	out, err := runProgram(ctx, "", nil, true, argv...)
	name := "pgbench " + strings.Join(args, " ") + " " + where
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	m, f := pgbenchProcessed.FindStringSubmatch(out), pgbenchFailed.FindStringSubmatch(out)
	if m == nil || f == nil {
		t.Fatalf("%s: no summary:\n%s", name, out)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 || f[1] != "0" || strings.Contains(out, "aborted") || strings.Contains(out, "error") {
		t.Fatalf("%s: failed transactions or errors:\n%s", name, out)
	}
	tps := pgbenchTPS.FindStringSubmatch(out)
	t.Logf("%s: %s transactions, 0 failed, tps %s, in %v", name, m[1], tps[1], time.Since(start).Round(time.Millisecond))
}
