package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// partitionRun is one partition of the primary under load, as measured.
type partitionRun struct {
	published time.Duration // from the cut to the new primary in etcd
	firstAck  time.Duration // from the cut to the first transfer sent after it acknowledged
	rejoined  time.Duration // from the heal to the old primary streaming from the new one
	res       *bankcheck.Result
	old       *bankcheck.OldTimeline
	maxAnswer time.Duration // the longest a client waited for an answer after the cut
	pgbench   string
	cluster   string // the new primary's replication once healthy
	// What the old primary held beyond the fork when the hook read it:
	// WAL bytes past the new timeline's switch point, commits still
	// waiting there for a synchronous standby (ended to read it).
	oldWAL     int64
	oldWaiting int
	// The hook's time: reading the old primary, then pgcluster's Rejoin.
	readTook, rejoinTook time.Duration
}

// TestFailoverPartition (issue H): a primary and two synchronous standbys
// (ANY 1), each Postgres in a network namespace of its own linked to this
// one by a veth pair (internal/netns); `belay proxy --etcd` as a process,
// the orchestrator in this process with pgcluster's Rejoin as its hook
// (what `belay up` wires); the bank checker and pgbench TPC-B (-c 10)
// through belay, with a budget of 4 servers (--max-db-connections), so
// that clients queue for one. The primary's link is taken down. It must
// show:
//   - the orchestrator fails over: one standby promoted, published in etcd
//     at term 2;
//   - no acknowledged write lost (every acknowledged id on the new
//     primary), no phantom, the sums right; and 0 acknowledged writes on
//     the old timeline: the old primary, read directly once the link is
//     back and before it is rewound (the commits still waiting there for a
//     synchronous standby ended first, so that they show), holds nothing
//     beyond the fork that a client was told committed;
//   - clients in flight on the cut-off primary are answered (08007 or
//     40001, nothing else, no connection left hanging until TCP gives up)
//     once the new primary is published, clients that queued for a server
//     of the old primary go to the new one, and nothing sent after the
//     publish fails. (Work sent in the moment between the cut and the
//     proxy's health check seeing it, up to 0.7 s, is in flight there too:
//     a partition, unlike a crash, says nothing. It is answered the same.)
//   - the old primary rejoins as a standby of the new one (pg_rewind) when
//     the link comes back, and the cluster is healthy again: both standbys
//     streaming, synchronous replication set.
//
// BELAY_PARTITION_RUNS=5 repeats it (a cluster each) and reports the
// median and the worst; BELAY_PARTITION_DEBUG=1 shows pgcluster's and the
// orchestrator's logs (-v, the proxy's).
func TestFailoverPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, three Postgres in network namespaces, belay proxy and an orchestrator")
	}
	runs := envRuns(t, "BELAY_PARTITION_RUNS")
	bin := buildBelay(t)
	var all []partitionRun
	for i := range runs {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			r := partitionOnce(t, bin)
			t.Logf("published %v after the cut; first transfer acknowledged %v after it; rejoined %v after the heal "+
				"(the hook: %v reading the old primary, %v in pgcluster's Rejoin); longest wait for an answer after the cut %v; "+
				"old timeline: %d bytes of WAL beyond the fork, %d commits waiting there ended, %s; checker: %s; pgbench: %s; then: %s",
				r.published.Round(time.Millisecond), r.firstAck.Round(time.Millisecond), r.rejoined.Round(time.Millisecond),
				r.readTook.Round(time.Millisecond), r.rejoinTook.Round(time.Millisecond), r.maxAnswer.Round(time.Millisecond),
				r.oldWAL, r.oldWaiting, r.old, r.res, r.pgbench, r.cluster)
			all = append(all, r)
		})
	}
	if len(all) > 1 {
		med := func(f func(partitionRun) time.Duration) string { return medianWorst(all, f) }
		errs := map[string]int{}
		lost, acked, beyond, waiting := 0, 0, 0, 0
		var wal int64
		for _, r := range all {
			for k, n := range r.res.Errors {
				errs[k] += n
			}
			lost += len(r.res.Lost)
			acked += len(r.old.Acked)
			beyond += len(r.old.Beyond)
			waiting += r.oldWaiting
			wal += r.oldWAL
		}
		t.Logf("%d runs of %d: published after the cut %s; first acknowledged write after the cut %s; rejoined after the heal %s; "+
			"longest wait for an answer after the cut %s; checker errors by SQLSTATE (all runs) %v; acknowledged writes lost %d; "+
			"on the old timelines: %d bytes of WAL beyond the fork, %d commits waiting, %d ids, of them acknowledged %d",
			len(all), runs, med(func(r partitionRun) time.Duration { return r.published }),
			med(func(r partitionRun) time.Duration { return r.firstAck }),
			med(func(r partitionRun) time.Duration { return r.rejoined }),
			med(func(r partitionRun) time.Duration { return r.maxAnswer }), errs, lost, wal, waiting, beyond, acked)
	}
}

func partitionOnce(t *testing.T, bin string) partitionRun {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	debug := os.Getenv("BELAY_PARTITION_DEBUG") != ""
	// The orchestrator fails over only once no standby streams from the
	// primary (DeadPrimary): a standby that heard nothing from it for half
	// of wal_receiver_timeout (pgcluster's 2 s) and half a second more.
	var (
		mu                   sync.Mutex // guards the fields below
		oldIDs               map[int64]bool
		oldLSN               string
		waiting              int
		readTook, rejoinTook time.Duration
		recloned             []string // Rejoin's pg_rewind failed: made again with pg_basebackup
	)
	cl, nw := pgtest.NewNetCluster(t, pgcluster.Options{Replicas: 2,
		Logf: func(format string, args ...any) {
			if debug {
				t.Logf("pgcluster: "+format, args...)
			}
			if strings.Contains(format, "pg_rewind failed") {
				mu.Lock()
				recloned = append(recloned, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
		}})
	old := cl.Primary()
	// A budget of 4 servers for 14 clients: at the cut, clients wait in
	// the old primary's queue behind servers the partition made silent,
	// and must go to the new primary once it is published.
	bc := startBelayShape(t, ctx, bin, cl, "p", belayShape{args: []string{"--max-db-connections", "4"}})
	store, o := bc.store, bc.bank

	// The orchestrator, in this process, rejoins an old primary with
	// pgcluster (as belay up does); before it does, it reads what the old
	// primary holds.
	rejoin := func(ctx context.Context, node, primary ha.Node) error {
		n := cl.Node(node.Name)
		if n == nil {
			return fmt.Errorf("no node %s", node.Name)
		}
		mu.Lock()
		read := oldIDs != nil
		mu.Unlock()
		start := time.Now()
		if !read {
			ids, lsn, w, err := readOldPrimary(ctx, n)
			if err != nil {
				return fmt.Errorf("reading the old primary %s before its rewind: %w", n.Name, err)
			}
			mu.Lock()
			oldIDs, oldLSN, waiting, readTook = ids, lsn, w, time.Since(start)
			mu.Unlock()
		}
		if err := cl.SetPrimary(primary.Name); err != nil {
			return err
		}
		start = time.Now()
		err := n.Rejoin(ctx)
		mu.Lock()
		rejoinTook = time.Since(start)
		mu.Unlock()
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if debug {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	orch := ha.NewOrchestrator(ha.OrchOptions{Store: store, Client: store.Client(), ID: "orch-in-test",
		Dial: healthDial("postgres", "postgres", ""), Rejoin: rejoin, Logger: logger.With("component", "orch")})
	octx, stopOrch := context.WithCancel(context.Background())
	orchDone := make(chan struct{})
	go func() { defer close(orchDone); _ = orch.Run(octx) }()
	t.Cleanup(func() { stopOrch(); <-orchDone }) // before the cluster stops

	pgbench, env := bc.pgbenchInit(t)
	bench := exec.CommandContext(ctx, pgbench, "-c", "10", "-j", "2", "-T", "16", "--max-tries", "5", "--failures-detailed")
	bench.Env = env
	var benchBuf strings.Builder
	bench.Stdout, bench.Stderr = &benchBuf, &benchBuf
	benchDone := make(chan struct{})
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = bench.Wait(); close(benchDone) }()
	t.Cleanup(func() { _ = bench.Process.Kill(); <-benchDone })

	cctx, stopChecker := context.WithCancel(ctx)
	defer stopChecker()
	recorded := make(chan *bankcheck.Recorder, 1)
	go func() { recorded <- bankcheck.Run(cctx, o) }()
	time.Sleep(3 * time.Second)

	// The cut.
	if err := nw.Partition(old.Name); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	healed := false
	heal := func() {
		if !healed {
			healed = true
			if err := nw.Heal(old.Name); err != nil {
				t.Error(err)
			}
		}
	}
	defer heal() // on a failure too: the old primary must stop cleanly
	var run partitionRun
	var sh *ha.Shard
	for {
		if top, err := store.Load(ctx); err == nil && top.Shard("0").Term > 1 {
			sh = top.Shard("0")
			break
		}
		if time.Since(cut) > 30*time.Second {
			t.Fatalf("no new primary published within 30 s of the cut")
		}
		time.Sleep(20 * time.Millisecond)
	}
	run.published = time.Since(cut)
	publishedAt := time.Now()
	if sh.Term != 2 || sh.Primary == old.Name {
		t.Fatalf("after the cut: term %d, primary %s (want exactly one promotion, away from %s)", sh.Term, sh.Primary, old.Name)
	}
	np := cl.Node(sh.Primary)

	// Work goes on on the new primary for a while, the old one still cut
	// off; then the link comes back.
	time.Sleep(3 * time.Second)
	heal()
	healedAt := time.Now()
	pc, err := pgx.Connect(ctx, np.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	others := []string{}
	for _, n := range cl.Nodes() {
		if n != np {
			others = append(others, n.Name)
		}
	}
	var repl, ssn string
	for {
		repl, ssn, err = replicationOf(ctx, pc)
		if err == nil && healthy(repl, ssn, others) {
			break
		}
		if time.Since(healedAt) > 60*time.Second {
			logTails(t, cl)
			t.Fatalf("the cluster is not healthy 60 s after the heal: %s replicates to %s (synchronous_standby_names %q, %v)", np.Name, repl, ssn, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	run.rejoined = time.Since(healedAt)
	if debug {
		logTails(t, cl)
	}
	run.cluster = fmt.Sprintf("%s replicates to %s, synchronous_standby_names %q", np.Name, repl, ssn)
	oc, err := pgx.Connect(ctx, old.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var standby bool
	err = oc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby)
	oc.Close(context.Background())
	if err != nil || !standby {
		t.Fatalf("the old primary %s after its rejoin: standby %v, %v", old.Name, standby, err)
	}

	// A little more work on the healed cluster, then the end.
	time.Sleep(2 * time.Second)
	stopChecker()
	rec := <-recorded
	select {
	case <-benchDone:
	case <-time.After(30 * time.Second):
		t.Fatal("pgbench did not end within 30 s of its -T")
	}
	run.pgbench = pgbenchSummary(benchBuf.String())

	res, err := rec.Check(ctx, pc, cut, o)
	if err != nil {
		t.Fatal(err)
	}
	run.res, run.firstAck = res, res.FirstAckAfter
	run.maxAnswer = rec.LongestWait(cut)
	if !res.OK() {
		t.Errorf("the checker: %s", res)
	}
	for code := range res.Errors {
		if code != "08007" && code != "40001" {
			t.Errorf("clients saw %s errors (only 08007 and 40001 may be seen; \"conn\": a connection lost or an operation timed out): %s", code, res)
		}
	}
	if res.FirstAckAfter == 0 {
		t.Errorf("no transfer sent after the cut was acknowledged: %s", res)
	}
	afterPublish, err := rec.Check(ctx, pc, publishedAt, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(afterPublish.ErrorsAfter) > 0 {
		t.Errorf("statements sent after the new primary was published failed: %v; %q", afterPublish.ErrorsAfter, afterPublish.AfterSamples)
	}
	// Answered once the new primary is published (held work sent to it,
	// work in flight on the old one answered), not when TCP gives up
	// (minutes) nor when the checker's own 10 s timeout ends the wait.
	if limit := run.published + 3*time.Second; run.maxAnswer > limit {
		t.Errorf("a client waited %v for an answer (the new primary was published %v after the cut)", run.maxAnswer, run.published)
	}
	mu.Lock()
	oldSet := oldIDs
	run.oldWaiting, run.readTook, run.rejoinTook = waiting, readTook, rejoinTook
	if oldLSN != "" {
		// The new timeline's switch point, from its history file: "1 <tab> LSN <tab> reason".
		var hist string
		if err := pc.QueryRow(ctx, "SELECT pg_read_file('pg_wal/00000002.history')").Scan(&hist); err != nil {
			t.Errorf("the new timeline's history: %v", err)
		} else if f := strings.Fields(hist); len(f) >= 2 {
			if err := pc.QueryRow(ctx, "SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::int8", oldLSN, f[1]).Scan(&run.oldWAL); err != nil {
				t.Errorf("the old timeline's length: %v", err)
			}
		}
	}
	if len(recloned) > 0 {
		t.Errorf("the old primary was not rewound but made again: %q", recloned)
	}
	mu.Unlock()
	if oldSet == nil {
		t.Fatal("the orchestrator rejoined the old primary without its hook reading it")
	}
	cur, err := bankcheck.IDs(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	run.old = rec.CheckOldTimeline(oldSet, cur)
	if !run.old.OK() {
		t.Errorf("acknowledged writes on the old timeline only: %s: %v", run.old, run.old.Acked)
	}
	// pgbench is load here: its errors carry no SQLSTATE to check (the
	// checker's do). A client that gets 08007 for its COMMIT ends (pgbench
	// retries only 40001 and 40P01); the count is reported.
	if n := strings.Count(benchBuf.String(), "aborted in command"); n > 0 {
		run.pgbench += fmt.Sprintf("; %d of 10 clients ended on an error", n)
	}
	return run
}

// readOldPrimary reads the ids an old primary holds, over a connection of
// its own: first the commits that still wait there for a synchronous
// standby that will never answer are ended (pg_terminate_backend: such a
// commit is then committed locally, as a shutdown would leave it), so that
// everything its timeline holds shows. It returns them, its WAL position
// then, and how many commits it ended.
func readOldPrimary(ctx context.Context, n *pgcluster.Node) (ids map[int64]bool, lsn string, ended int, err error) {
	c, err := pgx.Connect(ctx, n.ConnString("postgres", "postgres")+" connect_timeout=5")
	if err != nil {
		return nil, "", 0, err
	}
	defer c.Close(context.Background())
	var standby bool
	if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return nil, "", 0, err
	}
	if standby {
		return nil, "", 0, errors.New("it is a standby already")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting int
		if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE wait_event = 'SyncRep' AND pid <> pg_backend_pid()`).Scan(&waiting); err != nil {
			return nil, "", 0, err
		}
		ended += waiting
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, "", 0, fmt.Errorf("%d commits still wait for a synchronous standby", waiting)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return nil, "", 0, err
	}
	ids, err = bankcheck.IDs(ctx, c)
	return ids, lsn, ended, err
}

// replicationOf is the standbys a primary replicates to, as "name state
// sync_state, ...", and its synchronous_standby_names.
func replicationOf(ctx context.Context, c *pgx.Conn) (repl, ssn string, err error) {
	err = c.QueryRow(ctx, `SELECT coalesce(string_agg(application_name || ' ' || state || ' ' || sync_state, ', ' ORDER BY application_name), 'none'),
		current_setting('synchronous_standby_names') FROM pg_stat_replication`).Scan(&repl, &ssn)
	return repl, ssn, err
}

// healthy says that every one of standbys streams, and that synchronous
// replication is set with a synchronous standby among them.
func healthy(repl, ssn string, standbys []string) bool {
	if ssn == "" {
		return false
	}
	for _, s := range standbys {
		if !strings.Contains(repl, s+" streaming") {
			return false
		}
	}
	return strings.Contains(repl, "streaming sync") || strings.Contains(repl, "streaming quorum")
}

// logTails logs the end of each node's server log, without the refused
// connections of readiness checks.
func logTails(t *testing.T, cl *pgcluster.Cluster) {
	for _, n := range cl.Nodes() {
		b, _ := os.ReadFile(n.Dir + "/postgres.log")
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "not yet accepting connections") && !strings.Contains(l, "Consistent recovery state has not been yet reached") {
				keep = append(keep, l)
			}
		}
		if len(keep) > 60 {
			keep = keep[len(keep)-60:]
		}
		t.Logf("%s's log ends with:\n%s", n.Name, strings.Join(keep, "\n"))
	}
}
