package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// failoverRun is one kill -9 of the primary under load, as measured.
type failoverRun struct {
	published time.Duration // from the kill to the new primary in etcd
	firstAck  time.Duration // from the kill to the first acknowledged transfer sent after it
	res       *bankcheck.Result
	pgbench   string // its summary lines
}

// TestFailoverKill9 (issue H): a primary and two synchronous standbys,
// `belay proxy --etcd` and `belay orch --etcd` as processes, pgbench TPC-B
// (-c 10) and the bank checker through belay; kill -9 of the primary's
// postmaster. No acknowledged commit lost, no phantom, the sums right; the
// clients' errors by SQLSTATE, none but 08007 and 40001, and none for what
// was sent after the kill. BELAY_FAILOVER_RUNS=5 repeats it (a cluster
// each) and reports the median and the worst.
func TestFailoverKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, three Postgres, belay proxy and belay orch")
	}
	failoverRuns(t, false)
}

// TestFailoverKill9Split (issue I): TestFailoverKill9 with the split
// shape: a belay pooler beside each node, a belay gateway in front, belay
// orch --require-poolers.
func TestFailoverKill9Split(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, three Postgres, three poolers, a gateway and belay orch")
	}
	failoverRuns(t, true)
}

// failoverRuns runs failoverOnce BELAY_FAILOVER_RUNS times and reports.
func failoverRuns(t *testing.T, split bool) {
	runs := envRuns(t, "BELAY_FAILOVER_RUNS")
	bin := buildBelay(t)
	var all []failoverRun
	for i := range runs {
		r := failoverOnce(t, bin, split)
		t.Logf("run %d: published %v after the kill; first transfer acknowledged %v after it; checker: %s; pgbench: %s",
			i+1, r.published.Round(time.Millisecond), r.firstAck.Round(time.Millisecond), r.res, r.pgbench)
		all = append(all, r)
	}
	if runs > 1 {
		t.Logf("%d runs: published after the kill %s; first acknowledged write %s", runs,
			medianWorst(all, func(r failoverRun) time.Duration { return r.published }),
			medianWorst(all, func(r failoverRun) time.Duration { return r.firstAck }))
	}
}

// medianWorst is "median M worst W" of f over runs (the median of an even
// count is the mean of the middle two), rounded to the millisecond.
func medianWorst[R any](runs []R, f func(R) time.Duration) string {
	if len(runs) == 0 {
		return "none"
	}
	v := make([]time.Duration, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + m) / 2
	}
	return fmt.Sprintf("median %v worst %v", m.Round(time.Millisecond), v[len(v)-1].Round(time.Millisecond))
}

// envRuns is how many times a fault test repeats: the environment
// variable name, 1 when unset.
func envRuns(t *testing.T, name string) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return 1
	}
	runs, err := strconv.Atoi(s)
	if err != nil || runs < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return runs
}

// belayCluster is a primary and two synchronous standbys (ANY 1), their
// topology in an etcd, `belay proxy --etcd` and orchestrators (`belay
// orch`) as processes, and the bank checker's tables made through belay.
type belayCluster struct {
	cl    *pgcluster.Cluster
	etcd  *etcdlocal.Server
	store *ha.Store
	port  string
	cs    string // a libpq connection string to belay
	bank  bankcheck.Options
}

// startBelayCluster registers cl in a new etcd as the cluster named name
// and starts belay proxy and orchestrators named orchs (`belay orch`) in
// front of it; every process is killed at the test's end.
func startBelayCluster(t *testing.T, ctx context.Context, bin string, cl *pgcluster.Cluster, name string, orchs ...string) *belayCluster {
	t.Helper()
	return startBelayShape(t, ctx, bin, cl, name, belayShape{}, orchs...)
}

// belayShape is how startBelayShape runs belay.
type belayShape struct {
	// split: a belay pooler beside each node and a belay gateway in
	// front, rather than belay proxy; the orchestrators then require
	// poolers.
	split bool
	args  []string // more flags for belay proxy (or the gateway)
}

// startBelayShape is startBelayCluster in shape sh.
func startBelayShape(t *testing.T, ctx context.Context, bin string, cl *pgcluster.Cluster, name string, sh belayShape, orchs ...string) *belayCluster {
	t.Helper()
	b := &belayCluster{cl: cl, etcd: etcdtest.New(t)}
	var err error
	if b.store, err = ha.NewStore(etcdtest.Client(t, b.etcd), name); err != nil {
		t.Fatal(err)
	}
	for _, n := range b.cl.Nodes() {
		if _, err := b.store.PutNode(ctx, n.Name, ha.NodeRecord{Shard: "0", Addr: n.Addr(), State: ha.StateUp}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.store.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: b.cl.Primary().Name}); err != nil {
		t.Fatal(err)
	}
	b.port = strconv.Itoa(freePort(t))
	start := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if !testing.Verbose() {
			cmd.Stdout, cmd.Stderr = nil, nil
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() })
	}
	front, orchArgs := "proxy", []string(nil)
	if sh.split {
		for _, n := range b.cl.Nodes() {
			addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
			start("pooler", "--listen", addr, "--server", n.Addr(), "--node", n.Name, "--etcd", b.etcd.Endpoint(), "--cluster", name,
				"--auth-type", "trust", "--pool-size", "20")
			waitListening(t, addr)
		}
		front, orchArgs = "gateway", []string{"--require-poolers"}
	}
	start(append([]string{front, "--listen", "127.0.0.1:" + b.port, "--etcd", b.etcd.Endpoint(), "--cluster", name,
		"--auth-type", "trust", "--admin-users", "postgres", "--pool-size", "20"}, sh.args...)...)
	for _, id := range orchs {
		start(append([]string{"orch", "--etcd", b.etcd.Endpoint(), "--cluster", name, "--id", id}, orchArgs...)...)
	}
	eventually(t, "belay to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+b.port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	b.cs = "host=127.0.0.1 port=" + b.port + " user=postgres dbname=postgres sslmode=disable"
	b.bank = bankcheck.Options{ConnString: b.cs, Clients: 4}
	conn, err := pgx.Connect(ctx, b.cs)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := bankcheck.Setup(ctx, conn, b.bank); err != nil {
		t.Fatal(err)
	}
	return b
}

// pgbenchInit runs pgbench -i through belay and returns pgbench's path and
// the environment that points it at belay.
func (b *belayCluster) pgbenchInit(t *testing.T) (string, []string) {
	t.Helper()
	pgbench := pgtest.RequireBinary(t, "pgbench")
	env := append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+b.port, "PGUSER=postgres", "PGDATABASE=postgres", "PGSSLMODE=disable")
	if out, err := (&exec.Cmd{Path: pgbench, Args: []string{"pgbench", "-i", "-s", "1", "-q"}, Env: env}).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	return pgbench, env
}

func failoverOnce(t *testing.T, bin string, split bool) failoverRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := startBelayShape(t, ctx, bin, pgtest.NewCluster(t, pgcluster.Options{Replicas: 2}), "f", belayShape{split: split}, "orch-1", "orch-2")
	cl, store, o := b.cl, b.store, b.bank
	pgbench, env := b.pgbenchInit(t)
	bench := exec.CommandContext(ctx, pgbench, "-c", "10", "-j", "2", "-T", "12", "--max-tries", "5", "--failures-detailed")
	bench.Env = env
	var benchBuf strings.Builder
	bench.Stdout, bench.Stderr = &benchBuf, &benchBuf
	benchOut := make(chan []byte, 1)
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = bench.Wait(); benchOut <- []byte(benchBuf.String()) }()

	cctx, stopChecker := context.WithCancel(ctx)
	recorded := make(chan *bankcheck.Recorder, 1)
	go func() { recorded <- bankcheck.Run(cctx, o) }()
	time.Sleep(4 * time.Second)
	old := cl.Primary()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var run failoverRun
	var top *ha.Topology
	var err error
	for {
		if top, err = store.Load(ctx); err == nil && top.Shard("0").Term > 1 {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no new primary published within 30 s of the kill: %+v %v", top, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.published = time.Since(killed)
	if os.Getenv("BELAY_FAILOVER_DEBUG") != "" {
		nc, err := pgx.Connect(ctx, cl.Node(top.Shard("0").Primary).ConnString("postgres", "postgres"))
		if err == nil {
			for range 16 {
				var st string
				_ = nc.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text || ' ' || coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state || ' sent ' || sent_lsn || ' flush ' || coalesce(flush_lsn::text, '-'), ', '), 'none') FROM pg_stat_replication`).Scan(&st)
				t.Logf("%v after the kill: %s", time.Since(killed).Round(time.Millisecond), st)
				time.Sleep(500 * time.Millisecond)
			}
			nc.Close(ctx)
		}
	}
	out := <-benchOut
	stopChecker()
	rec := <-recorded
	sh := top.Shard("0")
	if sh.Term != 2 || sh.Primary == old.Name {
		t.Fatalf("after the kill: term %d, primary %s (want exactly one promotion)", sh.Term, sh.Primary)
	}
	if err := cl.SetPrimary(sh.Primary); err != nil {
		t.Fatal(err)
	}
	np, err := pgx.Connect(ctx, cl.Primary().ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer np.Close(ctx)
	var repl string
	if err := np.QueryRow(ctx, "SELECT coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state, ', '), 'none') FROM pg_stat_replication").Scan(&repl); err != nil {
		t.Fatal(err)
	}
	t.Logf("the new primary %s replicates to: %s", sh.Primary, repl)
	if !strings.Contains(repl, "streaming") {
		for _, n := range cl.Nodes() {
			b, _ := os.ReadFile(n.Dir + "/postgres.log")
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("%s's log ends with:\n%s", n.Name, b)
		}
	}
	res, err := rec.Check(ctx, np, killed, o)
	if err != nil {
		t.Fatal(err)
	}
	run.res, run.firstAck = res, res.FirstAckAfter
	run.pgbench = pgbenchSummary(string(out))
	checkFault(t, res)
	if !strings.Contains(run.pgbench, "failed transactions: 0 ") {
		t.Errorf("pgbench: %s\n%s", run.pgbench, out)
	}
	return run
}

// checkFault checks what the bank checker found after a fault: nothing
// lost, no phantom, the sums right; only 08007 and 40001 (what was in
// flight); nothing sent after the fault failed; a transfer sent after it
// acknowledged.
func checkFault(t *testing.T, res *bankcheck.Result) {
	t.Helper()
	if !res.OK() {
		t.Errorf("the checker: %s", res)
	}
	for code := range res.Errors {
		if code != "08007" && code != "40001" {
			t.Errorf("clients saw %s errors (only 08007 and 40001 may be seen): %s", code, res)
		}
	}
	if len(res.ErrorsAfter) > 0 {
		t.Errorf("statements sent after the fault failed: %s; %q", res, res.AfterSamples)
	}
	if res.FirstAckAfter == 0 {
		t.Errorf("no transfer sent after the fault was acknowledged: %s", res)
	}
}

var pgbenchLineRE = regexp.MustCompile(`(?m)^(number of transactions actually processed|number of failed transactions|number of transactions retried|tps|pgbench: error).*$`)

// pgbenchSummary is pgbench's lines that count.
func pgbenchSummary(out string) string {
	lines := pgbenchLineRE.FindAllString(out, -1)
	if len(lines) > 8 {
		lines = append(lines[:8], fmt.Sprintf("(%d more lines)", len(lines)-8))
	}
	return strings.Join(lines, "; ")
}
