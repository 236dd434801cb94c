package compat

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// skipPgbenchPreparedThroughBelay, when not empty, is why the 20-client run
// through belay is skipped. Remove it once prepared statements follow the
// client under transaction pooling (issue C).
//
// Why: belay pins a client that prepares a statement to its server until
// the client disconnects. pgbench -M prepared prepares on each connection's
// first transaction, so the first 2 of its 20 clients pin belay's 2 servers;
// the other 18 wait for a server for ever, and pgbench, which closes a
// thread's connections only when all of its clients are done, never ends:
// belay's Stats show Clients:20 Pinned:2, and Postgres shows the 2 server
// connections idle in ClientRead after "SELECT abalance FROM
// pgbench_accounts WHERE aid = $1;" (observed on branch compat-c). The
// README documents this ("pgbench -M prepared with more clients than servers
// hangs through belay").
const skipPgbenchPreparedThroughBelay = "pgbench -M prepared -c 20 through belay with 2 servers hangs: a client that prepares is pinned to its server until it disconnects, so 18 of the 20 clients wait for ever (issue C removes pinning; see skipPgbenchPreparedThroughBelay)"

// pgbenchArgs: 20 clients on 2 threads for 5 s, select-only, with named
// prepared statements (pgbench prepares each per connection on first use).
var pgbenchArgs = []string{"-n", "-M", "prepared", "-c", "20", "-j", "2", "-T", "5", "-S"}

// pgbenchPoolArgs: as many clients as belay has servers, which works even
// while prepared statements pin: it runs through belay whatever the skip.
var pgbenchPoolArgs = []string{"-n", "-M", "prepared", "-c", strconv.Itoa(poolSize), "-j", "2", "-T", "3", "-S"}

// TestPgbench runs pgbench -M prepared with 20 clients directly and then
// through belay with 2 server connections (and with 2 clients through belay);
// no run may fail a transaction or report an error.
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
	t.Run("belay_2_clients", func(t *testing.T) {
		runPgbench(t, pgbench, pgbenchPoolArgs, "through belay", ep)
		checkIdle(t, pg, p)
	})
	t.Run("belay_20_clients", func(t *testing.T) {
		if skipPgbenchPreparedThroughBelay != "" {
			t.Skip(skipPgbenchPreparedThroughBelay)
		}
		runPgbench(t, pgbench, pgbenchArgs, "through belay", ep)
		checkIdle(t, pg, p)
	})
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
