package compat

import (
	"context"
	"regexp"
	"strconv"
	"testing"
)

// TestPsql runs testdata/psql/scenario.sql with psql: psql's own output
// (stdout and stderr, with VERBOSITY sqlstate) is the transcript. The
// notification line names the server's PID, which is normalized away.
func TestPsql(t *testing.T) {
	psql := pgBinary(t, "psql")
	script := testdata(t, "psql", "scenario.sql")
	pidRe := regexp.MustCompile(`server process with PID [0-9]+`)
	compareThroughBelay(t, "psql", func(ctx context.Context, ep endpoint, id int) (string, error) {
		return runProgram(ctx, "", []string{"PGAPPNAME=", "PGOPTIONS="}, true,
			psql, "-X", "-v", "ON_ERROR_STOP=0", "-v", "id="+strconv.Itoa(id), "-f", script, ep.connString())
	}, func(s string) string { return pidRe.ReplaceAllString(s, "server process with PID <pid>") })
}
