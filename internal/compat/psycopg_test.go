package compat

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
)

// systemPython is Debian's interpreter, where python3-psycopg installs
// psycopg 3 (not whatever python3 comes first on PATH).
const systemPython = "/usr/bin/python3"

// TestPsycopg runs testdata/psycopg/scenario.py with psycopg 3:
// prepare_threshold=0 and prepare=True for server-side prepared statements,
// a notify handler for LISTEN/NOTIFY, cursor.copy() both ways.
func TestPsycopg(t *testing.T) {
	err := exec.Command(systemPython, "-c", "import psycopg").Run()
	need(t, err == nil, "psycopg 3 is not importable by %s (Debian package python3-psycopg): %v", systemPython, err)
	script := testdata(t, "psycopg", "scenario.py")
	compareThroughBelay(t, "psycopg", func(ctx context.Context, ep endpoint, id int) (string, error) {
		return runProgram(ctx, "", []string{"PYTHONDONTWRITEBYTECODE=1"}, false, systemPython, script, ep.connString(), strconv.Itoa(id))
	}, nil)
}
