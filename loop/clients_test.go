package loop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/belaydb/belay/internal/pgtest"
)

// clientEnv points libpq clients at the proxy.
func clientEnv(p *Proxy) []string {
	host, port, _ := net.SplitHostPort(p.Addr())
	return append(os.Environ(), "PGHOST="+host, "PGPORT="+port, "PGUSER=postgres", "PGDATABASE=postgres",
		"PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
}

func run(t *testing.T, env []string, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestPsql: the interactive client through belay: \d, \copy both ways, an
// error inside a transaction then ROLLBACK, and a 100 MB result.
func TestPsql(t *testing.T) {
	pg := pgtest.Shared(t)
	psql := pgtest.RequireBinary(t, "psql")
	p := startProxy(t, pg, nil)
	env := clientEnv(p)
	dir := t.TempDir()

	script := `
DROP TABLE IF EXISTS psql_t;
CREATE TABLE psql_t (id int PRIMARY KEY, name text);
\d psql_t
\copy psql_t FROM '` + filepath.Join(dir, "in.csv") + `' WITH (FORMAT csv)
\copy (SELECT * FROM psql_t ORDER BY id) TO '` + filepath.Join(dir, "out.csv") + `' WITH (FORMAT csv)
BEGIN;
INSERT INTO psql_t VALUES (1000, 'in tx');
SELECT 1/0;
SELECT 'after error';
ROLLBACK;
SELECT count(*) AS n FROM psql_t;
\lo_import '` + filepath.Join(dir, "in.csv") + `'
\set loid :LASTOID
\lo_export :loid '` + filepath.Join(dir, "lo.csv") + `'
\lo_unlink :loid
`
	var in strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&in, "%d,name %d\n", i, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.csv"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, script, psql, "-X", "-v", "ON_ERROR_STOP=0", "-f", "-")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	for _, want := range []string{
		`Table "public.psql_t"`, "COPY 500", "division by zero",
		"current transaction is aborted, commands ignored until end of transaction block", "ROLLBACK",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("psql output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+500\s*$`).MatchString(out) {
		t.Errorf("count after ROLLBACK is not 500:\n%s", out)
	}
	copied, err := os.ReadFile(filepath.Join(dir, "out.csv"))
	if err != nil || string(copied) != in.String() {
		t.Fatalf("\\copy out differs from what went in (%d vs %d bytes, %v)", len(copied), in.Len(), err)
	}
	// \lo_import and \lo_export run on libpq's fastpath: FunctionCall messages.
	lo, err := os.ReadFile(filepath.Join(dir, "lo.csv"))
	if err != nil || string(lo) != in.String() || !strings.Contains(out, "lo_import") {
		t.Fatalf("large object round trip through FunctionCall: %d bytes, %v\n%s", len(lo), err, out)
	}

	// A 100 MB result.
	big := filepath.Join(dir, "big.txt")
	out, err = run(t, env, "", psql, "-X", "-At", "-o", big, "-c", "SELECT repeat('x', 1000) FROM generate_series(1, 100000)")
	if err != nil {
		t.Fatalf("psql big result: %v\n%s", err, out)
	}
	st, err := os.Stat(big)
	if err != nil || st.Size() != 100000*1001 {
		t.Fatalf("big result: %v bytes, %v", st.Size(), err)
	}
}

// TestPgbench: pgbench through belay with 20 server connections: init, then
// select-only and TPC-B in the simple and extended protocols at 10 and 100
// clients, and a connection per transaction. No transaction may fail.
func TestPgbench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pgbench")
	}
	pg := pgtest.Shared(t)
	pgbench := pgtest.RequireBinary(t, "pgbench")
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP DATABASE IF EXISTS bench")
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "CREATE DATABASE bench")
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 20 })
	env := clientEnv(p)
	if out, err := run(t, env, "", pgbench, "-i", "-s", "10", "-q", "bench"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	var runs [][]string
	for _, mode := range []string{"simple", "extended"} {
		for _, c := range []string{"10", "100"} {
			runs = append(runs, []string{"-S", "-M", mode, "-c", c})
			runs = append(runs, []string{"-M", mode, "-c", c})
		}
	}
	runs = append(runs, []string{"-S", "-C", "-c", "10"})
	okLine := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	for _, a := range runs {
		args := append([]string{"-j", "2", "-T", "3", "-n"}, a...)
		args = append(args, "bench")
		out, err := run(t, env, "", pgbench, args...)
		name := strings.Join(a, " ")
		if err != nil {
			t.Errorf("pgbench %s: %v\n%s", name, err, out)
			continue
		}
		m := okLine.FindStringSubmatch(out)
		f := failed.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("pgbench %s: no summary:\n%s", name, out)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("pgbench %s processed nothing:\n%s", name, out)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if f == nil || f[1] != "0" || strings.Contains(out, "aborted") {
			t.Errorf("pgbench %s had failures:\n%s", name, out)
		}
		tps := regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out)
		t.Logf("pgbench %-26s %7d transactions, tps %s, 0 failed", name, n, tps[1])
	}
}
