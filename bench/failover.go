package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The failover scenario (KindFailover) measures a kill -9 of the primary's
// postmaster under load, belay against Patroni, in one run, each target
// on a 3-node cluster of its own started afresh for every round:
//
//   - belay: a primary and 2 streaming replicas (internal/pgcluster,
//     synchronous_standby_names ANY 1 of them), registered in etcd, one
//     `belay proxy --etcd --cluster` and two `belay orch` processes, as
//     cmd/belay's TestFailoverKill9 runs them; the clients connect to the
//     proxy.
//   - Patroni: three Patroni processes (Debian's patroni, as user
//     postgres) bootstrap and run the same kind of cluster, synchronous_mode
//     on, their DCS a Debian etcd-server process started on loopback ports;
//     the clients reach it with libpq's multi-host connection string,
//     target_session_attrs=read-write (pgx understands the same).
//
// The etcd process serves belay's proxy and orchestrators too (under keys
// of their own); without etcd-server, belay uses an embedded etcd and the
// Patroni rows say why they are missing.
//
// A run: pgbench TPC-B (-c 10) and the bank checker load the cluster for
// failoverLoad; the primary's postmaster gets SIGKILL; a sampler asks
// every node every 50 ms whether it is a primary and what its
// synchronous_standby_names is; the checker runs on until a transfer sent
// after the kill is acknowledged plus failoverAfter (at most
// Options.FailoverMaxWait) and pgbench has ended; then the checker reads
// the final state on the primary (belay: the one published in etcd;
// Patroni: the node that answers as a primary).

const (
	failoverPgbenchClients = 10
	failoverCheckerClients = 4
	failoverScale          = 1
	failoverLoad           = 4 * time.Second
	failoverPgbenchTime    = 12 * time.Second
	failoverAfter          = 3 * time.Second
	failoverSampleEvery    = 50 * time.Millisecond
	failoverRunTimeout     = 5 * time.Minute
)

// failoverPgbenchArgs are pgbench's workload flags, as TestFailoverKill9's.
var failoverPgbenchArgs = []string{"-M", "simple", "--max-tries", "5", "--failures-detailed"}

// failoverSettings are every node's PostgreSQL settings, both clusters:
// the single-node bench's (fsync off, ...) with synchronous_commit on, and
// the replication settings pgcluster sets.
func failoverSettings() map[string]string {
	s := pgSettings(200)
	delete(s, "synchronous_commit")
	return s
}

// failoverTargets are the targets of a failover round, in run order.
func failoverTargets(asIs bool) []string {
	t := []string{failoverBelay}
	for _, s := range patroniSetups(asIs) {
		t = append(t, s.Target)
	}
	return t
}

// failoverEnv is what the runs of the failover scenario share.
type failoverEnv struct {
	dir         string
	binDir      string
	patroniBin  string
	skipPatroni string            // why the Patroni targets cannot run
	etcd        *process          // Debian's etcd: Patroni's DCS, and belay's
	etcdEP      string            // its client address, host:port
	embedded    *etcdlocal.Server // belay's etcd when there is no etcd-server
	info        FailoverInfo
}

func (fo *failoverEnv) belayEndpoint() string {
	if fo.embedded != nil {
		return fo.embedded.Endpoint()
	}
	return fo.etcdEP
}

func (fo *failoverEnv) close(logf func(string, ...any)) {
	if fo.etcd != nil {
		if err := fo.etcd.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if fo.embedded != nil {
		fo.embedded.Stop()
	}
}

// startFailover finds (or installs) Patroni and etcd-server and starts
// the etcd.
func (e *env) startFailover(ctx context.Context) (*failoverEnv, error) {
	fo := &failoverEnv{dir: filepath.Join(e.work, "failover")}
	if err := os.MkdirAll(fo.dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if fo.binDir, err = pginstance.FindBinDir(); err != nil {
		return nil, err
	}
	settings := failoverSettings()
	var kv []string
	for _, k := range []string{"shared_buffers", "fsync", "full_page_writes", "max_connections"} {
		kv = append(kv, k+"="+settings[k])
	}
	fo.info = FailoverInfo{
		Postgres: programVersion(filepath.Join(fo.binDir, "postgres")), Settings: strings.Join(kv, ", ") + ", synchronous_commit=on",
		Setups: map[string]string{}, LoadSeconds: failoverLoad.Seconds(), PgbenchSeconds: failoverPgbenchTime.Seconds(),
		AfterSeconds: failoverAfter.Seconds(), MaxWaitSeconds: e.o.FailoverMaxWait.Seconds(),
		CheckerClients: failoverCheckerClients, PgbenchClients: failoverPgbenchClients,
	}
	patroniBin, etcdBin, err := findPatroni(ctx, e.o.InstallPatroni, e.logf)
	if err != nil {
		fo.skipPatroni = err.Error()
		fo.info.PatroniSkipped = fo.skipPatroni
		e.logf("failover: Patroni left out: %v", err)
	} else {
		fo.patroniBin = patroniBin
		fo.info.Patroni, fo.info.Etcd = "Patroni "+programVersion(patroniBin), "etcd "+programVersion(etcdBin)
		if fo.etcd, fo.etcdEP, err = startEtcd(ctx, etcdBin, filepath.Join(fo.dir, "etcd"), e.o.Placement); err != nil {
			return fo, err
		}
		e.logf("failover: %s, %s (pid %d) on %s", fo.info.Patroni, fo.info.Etcd, fo.etcd.pid, fo.etcdEP)
		fo.info.BelayEtcd = "the same etcd process as Patroni's (" + fo.info.Etcd + "), keys of its own"
	}
	if fo.etcd == nil {
		if fo.embedded, err = etcdlocal.Start(ctx, etcdlocal.Options{Dir: filepath.Join(fo.dir, "etcd-embedded"), LogLevel: "warn"}); err != nil {
			return fo, err
		}
		fo.info.BelayEtcd = "an embedded etcd (etcd-server is not available)"
	}
	fo.info.Setups[failoverBelay] = fmt.Sprintf("`belay proxy --etcd … --cluster … --pool-size %d` and two `belay orch --etcd … --cluster …` "+
		"(defaults: checks every 200 ms, primary dead after 600 ms unreachable with no standby streaming from it, "+
		"proxy holds queries up to 10 s); synchronous_standby_names `ANY 1 (pg1, pg2)`; etcd: %s; clients connect to the proxy.",
		e.o.PoolSize, fo.info.BelayEtcd)
	for _, s := range patroniSetups(true) {
		fo.info.Setups[s.Target] = fmt.Sprintf("%s, %s; %s; synchronous_mode on (Patroni 3.0 names one synchronous standby), "+
			"use_pg_rewind, use_slots; clients: `host=127.0.0.1,127.0.0.1,127.0.0.1 port=A,B,C target_session_attrs=read-write`.",
			fo.info.Patroni, fo.info.Etcd, s.effective())
	}
	return fo, nil
}

// runFailover runs the failover scenario: every round, each target in
// turn, a cluster of its own each time.
func (e *env) runFailover(ctx context.Context, sc Scenario) (ScenarioResult, error) {
	if e.fo == nil {
		fo, err := e.startFailover(ctx)
		e.fo = fo
		if err != nil {
			return ScenarioResult{}, fmt.Errorf("%s: %w", sc.ID, err)
		}
	}
	fo := e.fo
	info := fo.info
	res := ScenarioResult{Scenario: sc, Failover: &info}
	names := failoverTargets(e.o.PatroniAsIs || slices.Contains(e.o.FailoverTargets, patroniDefaultsAsIs))
	if e.o.FailoverTargets != nil {
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(e.o.FailoverTargets, n) })
	}
	runs := map[string][]RunResult{}
	for round := 1; round <= e.o.Rounds; round++ {
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			r := RunResult{Scenario: sc.ID, Target: name, Round: round, CPUPer1k: -1}
			if _, isPatroni := patroniSetupOf(name); isPatroni && fo.skipPatroni != "" {
				r.NA = "Patroni not available: " + fo.skipPatroni
				runs[name] = append(runs[name], r)
				continue
			}
			f := e.failoverOnce(ctx, name, round)
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			r.Failover = f
			e.logf("round %d/%d  failover %-22s %s", round, e.o.Rounds, name, failoverLine(f))
			runs[name] = append(runs[name], r)
		}
	}
	for _, name := range names {
		res.Rows = append(res.Rows, aggregate(name, failoverLabel(name), runs[name]))
	}
	return res, nil
}

// failoverLine is a run's progress line.
func failoverLine(f *FailoverRun) string {
	if f.Err != "" {
		return "not measured: " + trunc(f.Err, 300)
	}
	return fmt.Sprintf("%s -> %s; writable after %s, promoted after %s, no sync standby %s (%d acked); lost %d; acked %d, ambiguous %d; errors %s, after the kill %s; pgbench %d tx, %d failed, %d aborted clients",
		f.OldPrimary, f.NewPrimary, msText(f.WritableMs), msText(f.PromotedMs), msText(f.NoSyncMs), f.AckedNoSync, f.Lost,
		f.Acked, f.Ambiguous, countsText(f.Errors), countsText(f.ErrorsAfter), f.PgbenchProcessed, f.PgbenchFailed, f.PgbenchAborted)
}

// clusterNode is one PostgreSQL node of a failover cluster.
type clusterNode struct {
	Name string
	Port int
}

func (n clusterNode) connString(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=2", n.Port, db)
}

// failoverCluster is a target's cluster, started for one run.
type failoverCluster interface {
	nodes() []clusterNode
	// clientConnString is where the checker connects (pgx syntax).
	clientConnString() string
	// pgbenchTarget is pgbench's -h and -p and more environment.
	pgbenchTarget() (host, ports string, env []string)
	// postmaster is the PID of node's postmaster.
	postmaster(node clusterNode) (int, error)
	// killed tidies up after node's postmaster was killed.
	killed(node clusterNode)
	// newPrimary is the primary the clients are sent to after the kill,
	// waiting for one until ctx ends.
	newPrimary(ctx context.Context, old clusterNode) (clusterNode, error)
	stop(logf func(string, ...any))
}

// failoverOnce runs one kill -9 against target; a run that cannot be
// measured says why in Err.
func (e *env) failoverOnce(ctx context.Context, target string, round int) *FailoverRun {
	f := &FailoverRun{WritableMs: -1, PromotedMs: -1}
	ctx, cancel := context.WithTimeout(ctx, failoverRunTimeout+e.o.FailoverMaxWait)
	defer cancel()
	name := fmt.Sprintf("%s-r%d", target, round)
	dir := filepath.Join(e.fo.dir, name)
	var c failoverCluster
	var err error
	if setup, ok := patroniSetupOf(target); ok {
		c, err = e.startPatroniCluster(ctx, dir, name, setup)
	} else {
		c, err = e.startBelayCluster(ctx, dir, name)
	}
	if err != nil {
		f.Err = fmt.Sprintf("starting the cluster: %v", err)
		return f
	}
	defer c.stop(e.logf)
	if err := e.failoverMeasure(ctx, c, dir, f); err != nil {
		f.Err = err.Error()
	}
	return f
}

// failoverMeasure loads c, kills its primary and fills f.
func (e *env) failoverMeasure(ctx context.Context, c failoverCluster, dir string, f *FailoverRun) error {
	nodes := c.nodes()
	old, err := findPrimary(ctx, nodes)
	if err != nil {
		return err
	}
	ictx, icancel := context.WithTimeout(ctx, time.Minute)
	defer icancel()
	cmd := pgbenchInit(ictx, e.pgbench, "127.0.0.1", old.Port, "postgres", failoverScale)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i on %s: %v\n%s", old.Name, err, out)
	}
	o := bankcheck.Options{ConnString: c.clientConnString(), Clients: failoverCheckerClients}
	conn, err := pgx.Connect(ictx, o.ConnString)
	if err != nil {
		return fmt.Errorf("connecting as the clients do: %w", err)
	}
	err = bankcheck.Setup(ictx, conn, o)
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("the checker's tables: %w", err)
	}
	// The load starts on a settled cluster: both standbys have replayed
	// the tables (pgbench -i writes 100,000 rows and vacuums them).
	if err := waitReplayed(ictx, old); err != nil {
		return err
	}

	host, ports, env := c.pgbenchTarget()
	bctx, stopBench := context.WithCancel(ctx)
	defer stopBench()
	type benchResult struct {
		run pgbenchRun
		err error
	}
	benched := make(chan benchResult, 1)
	go func() {
		run, err := runPgbench(bctx, e.pgbench, pgbenchSpec{Host: host, Ports: ports, DB: benchDB, User: "postgres",
			Args: failoverPgbenchArgs, Clients: failoverPgbenchClients, Jobs: 2, Duration: failoverPgbenchTime, Env: env,
			OutFile: filepath.Join(dir, "pgbench.out")})
		benched <- benchResult{run, err}
	}()
	rec := &bankcheck.Recorder{}
	cctx, stopChecker := context.WithCancel(ctx)
	checked := make(chan struct{})
	go func() {
		bankcheck.RunInto(cctx, o, rec)
		close(checked)
	}()
	var bench *benchResult
	defer func() { // on an early return
		stopChecker()
		<-checked
		if bench == nil {
			stopBench()
			<-benched
		}
	}()
	select {
	case <-time.After(failoverLoad):
	case <-ctx.Done():
		return ctx.Err()
	}
	if old, err = findPrimary(ctx, nodes); err != nil {
		return fmt.Errorf("before the kill: %w", err)
	}
	f.OldPrimary = old.Name
	pid, err := c.postmaster(old)
	if err != nil {
		return err
	}
	sent, err := killPostmaster(pid)
	if err != nil {
		return fmt.Errorf("killing %s: %w", old.Name, err)
	}
	// Times count from the SIGKILL; writes and errors "after the kill" are
	// those of operations started once the old primary was gone: an
	// orphaned backend may still answer a client (even acknowledge a
	// commit its standby had) for a moment after the SIGKILL.
	gone := time.Now()
	f.GoneMs = ms64(gone.Sub(sent))
	c.killed(old)
	writable := func() time.Duration {
		if first := rec.FirstAckAfter(gone); first > 0 {
			return gone.Sub(sent) + first
		}
		return 0
	}
	sctx, stopSampler := context.WithCancel(ctx)
	sampler := &roleSampler{}
	sampled := make(chan struct{})
	go func() {
		sampler.run(sctx, nodes, failoverSampleEvery)
		close(sampled)
	}()

	for {
		if bench == nil {
			select {
			case r := <-benched:
				bench = &r
			default:
			}
		}
		since := time.Since(sent)
		first := writable()
		// Done once writes resumed a while ago and the new primary has a
		// synchronous standby named (so that its time without one is
		// measured whole), or at the longest wait.
		p := promotion(sampler.samples(), time.Now())
		if bench != nil && ((first > 0 && since >= first+failoverAfter && p.Node != "" && !p.Open) || since >= e.o.FailoverMaxWait) {
			break
		}
		select {
		case <-ctx.Done():
			stopSampler()
			<-sampled
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	end := time.Now()
	stopSampler()
	<-sampled
	samples := sampler.samples()
	stopChecker()
	<-checked
	if bench.err != nil {
		return fmt.Errorf("pgbench: %w", bench.err)
	}
	s := bench.run.Summary
	f.PgbenchProcessed, f.PgbenchFailed, f.PgbenchRetried, f.PgbenchAborted, f.PgbenchErrors = s.Processed, s.Failed, s.Retried, s.Aborted, s.Errors

	p := promotion(samples, end)
	if p.Node != "" {
		f.PromotedMs = ms64(p.At.Sub(sent))
		f.NoSyncMs, f.NoSyncOpen = ms64(p.NoSync), p.Open
		if p.NoSync > 0 {
			f.AckedNoSync = rec.AckedBetween(p.At, p.At.Add(p.NoSync))
		}
	}
	if first := writable(); first > 0 {
		f.WritableMs = ms64(first)
	}

	nctx, ncancel := context.WithTimeout(ctx, 30*time.Second)
	defer ncancel()
	np, err := c.newPrimary(nctx, old)
	if err != nil {
		return fmt.Errorf("after the kill: %w", err)
	}
	f.NewPrimary, f.FailedOver = np.Name, np.Name != old.Name
	conn, err = pgx.Connect(nctx, np.connString(benchDB))
	if err != nil {
		return fmt.Errorf("the checker cannot read the new primary %s: %w", np.Name, err)
	}
	defer conn.Close(context.Background())
	res, err := rec.Check(nctx, conn, gone, o)
	if err != nil {
		return fmt.Errorf("the checker on %s: %w", np.Name, err)
	}
	f.Checked = true
	f.Acked, f.Ambiguous, f.AmbiguousCommitted, f.Failed = res.Acked, res.Ambiguous, res.AmbiguousFound, res.Failed
	f.Lost, f.Phantom, f.BadSums = len(res.Lost), len(res.Phantom), len(res.BadSums)
	f.Errors, f.ErrorsAfter, f.AfterSamples = res.Errors, res.ErrorsAfter, res.AfterSamples
	return nil
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// findPrimary is the node of nodes that answers as a primary now.
func findPrimary(ctx context.Context, nodes []clusterNode) (clusterNode, error) {
	var errs []error
	for _, n := range nodes {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		primary, _, err := nodeRole(qctx, n)
		cancel()
		if err == nil && primary {
			return n, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
		}
	}
	return clusterNode{}, fmt.Errorf("no node answers as a primary: %w", errors.Join(errs...))
}

// nodeRole asks n whether it is a primary and for its
// synchronous_standby_names, over a connection of its own.
func nodeRole(ctx context.Context, n clusterNode) (primary bool, syncNames string, err error) {
	conn, err := pgx.Connect(ctx, n.connString("postgres"))
	if err != nil {
		return false, "", err
	}
	defer conn.Close(context.Background())
	var rec bool
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')").Scan(&rec, &syncNames)
	return !rec, syncNames, err
}

// waitReplayed waits until two standbys stream from primary and have
// replayed its WAL as it is now.
func waitReplayed(ctx context.Context, primary clusterNode) error {
	conn, err := pgx.Connect(ctx, primary.connString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var target string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		return err
	}
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication
			WHERE state = 'streaming' AND replay_lsn >= $1::pg_lsn`, target).Scan(&n)
		if err == nil && n >= 2 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standbys of %s have not replayed its WAL to %s (%d did; %v): %w", primary.Name, target, n, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPrimary polls nodes until one answers as a primary.
func waitPrimary(ctx context.Context, nodes []clusterNode) (clusterNode, error) {
	for {
		n, err := findPrimary(ctx, nodes)
		if err == nil {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return clusterNode{}, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// roleSample is one node's answer at one moment of a run.
type roleSample struct {
	Node      string
	At        time.Time
	Primary   bool
	SyncNames string
}

// roleSampler asks every node, every interval, whether it is a primary
// and for its synchronous_standby_names (run), and keeps the answers
// (samples). run's goroutines append; samples may be read meanwhile.
type roleSampler struct {
	mu  sync.Mutex // guards out
	out []roleSample
}

// run samples until ctx ends, each node from a goroutine of its own over
// a connection it keeps (made again when lost); a node that does not
// answer within a second gives no sample.
func (s *roleSampler) run(ctx context.Context, nodes []clusterNode, every time.Duration) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for ctx.Err() == nil {
				qctx, cancel := context.WithTimeout(ctx, time.Second)
				if conn == nil {
					conn, _ = pgx.Connect(qctx, n.connString("postgres"))
				}
				if conn != nil {
					var rec bool
					var names string
					err := conn.QueryRow(qctx, "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names')").Scan(&rec, &names)
					at := time.Now()
					if err == nil {
						s.mu.Lock()
						s.out = append(s.out, roleSample{Node: n.Name, At: at, Primary: !rec, SyncNames: names})
						s.mu.Unlock()
					} else {
						conn.Close(context.Background())
						conn = nil
					}
				}
				cancel()
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
}

// samples are the samples so far, in time order.
func (s *roleSampler) samples() []roleSample {
	s.mu.Lock()
	out := slices.Clone(s.out)
	s.mu.Unlock()
	slices.SortStableFunc(out, func(a, b roleSample) int { return a.At.Compare(b.At) })
	return out
}

// killPostmaster sends SIGKILL to the postmaster pid and waits, 10 s at
// most, until it and the processes it had started are gone (exited, or
// zombies): a backend orphaned by the kill may still answer its client for
// a moment, until it notices its postmaster's death. sent is when the
// signal went.
func killPostmaster(pid int) (sent time.Time, err error) {
	children := pgcluster.ChildPIDs(pid)
	sent = time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return sent, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range append(children, pid) {
		for processRuns(p) {
			if time.Now().After(deadline) {
				return sent, fmt.Errorf("process %d of the killed postmaster %d still runs after 10 s", p, pid)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return sent, nil
}

// processRuns says whether process pid exists and is not a zombie.
func processRuns(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// promoted is what promotion finds.
type promoted struct {
	Node string    // the first node seen as a primary ("": none)
	At   time.Time // when
	// NoSync is how long it was seen with synchronous_standby_names empty
	// from At on; Open says it still was at its last sample, and NoSync
	// then runs to the end of the run.
	NoSync time.Duration
	Open   bool
}

// promotion reads samples (in time order): the first node seen as a
// primary, and for how long from then on its synchronous_standby_names
// stayed empty; end is the end of the run.
func promotion(samples []roleSample, end time.Time) promoted {
	var p promoted
	for _, s := range samples {
		if s.Primary {
			p.Node, p.At = s.Node, s.At
			break
		}
	}
	if p.Node == "" {
		return p
	}
	for _, s := range samples {
		if s.Node != p.Node || s.At.Before(p.At) {
			continue
		}
		if s.SyncNames != "" {
			p.NoSync = s.At.Sub(p.At)
			return p
		}
	}
	p.NoSync, p.Open = end.Sub(p.At), true
	return p
}

// belayCluster is belay's side: pgcluster, the registration in etcd, a
// proxy and two orchestrators.
type belayCluster struct {
	cl    *pgcluster.Cluster
	cli   *clientv3.Client
	store *ha.Store
	port  int // the proxy's
	procs []*process
}

func (e *env) startBelayCluster(ctx context.Context, dir, name string) (_ *belayCluster, err error) {
	b := &belayCluster{}
	defer func() {
		if err != nil {
			b.stop(e.logf)
		}
	}()
	if b.cl, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Replicas: 2, Settings: failoverSettings()}); err != nil {
		return b, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.cl.WaitStreaming(wctx); err != nil {
		return b, err
	}
	p := b.cl.Primary()
	if err := execOn(wctx, clusterNode{p.Name, p.Port()}, "CREATE DATABASE "+benchDB); err != nil {
		return b, err
	}
	if b.cli, err = etcdlocal.NewClient([]string{e.fo.belayEndpoint()}); err != nil {
		return b, err
	}
	if b.store, err = ha.NewStore(b.cli, name); err != nil {
		return b, err
	}
	for _, n := range b.cl.Nodes() {
		if _, err := b.store.PutNode(wctx, n.Name, ha.NodeRecord{Shard: "0", Addr: n.Addr(), State: ha.StateUp}); err != nil {
			return b, fmt.Errorf("registering %s in etcd: %w", n.Name, err)
		}
	}
	if _, _, err := b.store.CreateShard(wctx, "0", ha.ShardRecord{Term: 1, Primary: p.Name}); err != nil {
		return b, fmt.Errorf("registering cluster %s in etcd: %w", name, err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return b, err
	}
	b.port = ports[0]
	env := append(clientEnv(), e.o.BelayEnv...)
	for i := 1; i <= 2; i++ {
		id := "orch-" + strconv.Itoa(i)
		o, err := startProcess("belay "+id, e.o.BelayExe, []string{"orch", "--etcd", e.fo.belayEndpoint(), "--cluster", name, "--id", id},
			env, filepath.Join(dir, id+".log"), nil, e.o.Placement)
		if err != nil {
			return b, err
		}
		b.procs = append(b.procs, o)
	}
	px, err := startClusterBelay(ctx, e.o.BelayExe, e.o.BelayEnv, filepath.Join(dir, "belay.log"), e.fo.belayEndpoint(), name,
		e.o.PoolSize, ports[0], ports[1], e.o.Placement)
	if err != nil {
		return b, err
	}
	b.procs = append(b.procs, px)
	return b, nil
}

func (b *belayCluster) nodes() []clusterNode {
	var ns []clusterNode
	for _, n := range b.cl.Nodes() {
		ns = append(ns, clusterNode{n.Name, n.Port()})
	}
	return ns
}

func (b *belayCluster) clientConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", b.port, benchDB)
}

func (b *belayCluster) pgbenchTarget() (string, string, []string) {
	return "127.0.0.1", strconv.Itoa(b.port), nil
}

func (b *belayCluster) postmaster(n clusterNode) (int, error) {
	if inst := b.cl.Node(n.Name).Instance(); inst != nil {
		return inst.PID, nil
	}
	return 0, fmt.Errorf("%s is not running", n.Name)
}

// killed lets pgcluster reap the node and forget it runs.
func (b *belayCluster) killed(n clusterNode) { _ = b.cl.Node(n.Name).Kill() }

// newPrimary is the primary published in etcd at a term after the
// first.
func (b *belayCluster) newPrimary(ctx context.Context, old clusterNode) (clusterNode, error) {
	for {
		top, err := b.store.Load(ctx)
		if err == nil && top.Shard("0") != nil && top.Shard("0").Term > 1 {
			if n := b.cl.Node(top.Shard("0").Primary); n != nil {
				return clusterNode{n.Name, n.Port()}, nil
			}
		}
		select {
		case <-ctx.Done():
			return clusterNode{}, fmt.Errorf("no new primary published in etcd (%v; %v)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *belayCluster) stop(logf func(string, ...any)) {
	for _, p := range b.procs {
		if err := p.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if b.cli != nil {
		_ = b.cli.Close()
	}
	if b.cl != nil {
		if err := b.cl.Stop(); err != nil {
			logf("failover: %v", err)
		}
	}
}

// patroniCluster is Patroni's side: three Patroni processes.
type patroniCluster struct {
	nodesP []patroniNode
	procs  []*process
}

func (e *env) startPatroniCluster(ctx context.Context, dir, scope string, setup patroniSetup) (_ *patroniCluster, err error) {
	pc := &patroniCluster{}
	defer func() {
		if err != nil {
			pc.stop(e.logf)
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return pc, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return pc, err
	}
	params := failoverSettings()
	for k, v := range map[string]string{"wal_level": "replica", "max_wal_senders": "16", "max_replication_slots": "16",
		"wal_log_hints": "on", "hot_standby": "on", "hot_standby_feedback": "on"} {
		params[k] = v
	}
	for i := range 3 {
		n := patroniNode{Name: "pg" + strconv.Itoa(i), Dir: filepath.Join(dir, "pg"+strconv.Itoa(i)), RestPort: ports[2*i], PGPort: ports[2*i+1]}
		p, err := startPatroni(e.fo.patroniBin, patroniSpec{Scope: scope, Node: n, Etcd: e.fo.etcdEP, BinDir: e.fo.binDir,
			Setup: setup, Parameters: params}, e.o.Placement)
		if err != nil {
			return pc, err
		}
		pc.nodesP, pc.procs = append(pc.nodesP, n), append(pc.procs, p)
	}
	// Ready: a primary with both standbys streaming and one synchronous.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var last error
	for {
		for i, p := range pc.procs {
			if p.exited() {
				return pc, fmt.Errorf("patroni %s exited: %v; log: %s", pc.nodesP[i].Name, p.err, readTail(filepath.Join(pc.nodesP[i].Dir, "patroni.log"), 1500))
			}
		}
		if last = pc.ready(wctx); last == nil {
			break
		}
		select {
		case <-wctx.Done():
			return pc, fmt.Errorf("the Patroni cluster is not ready: %v; pg0's log: %s", last, readTail(filepath.Join(pc.nodesP[0].Dir, "patroni.log"), 1500))
		case <-time.After(250 * time.Millisecond):
		}
	}
	p, err := findPrimary(wctx, pc.nodes())
	if err != nil {
		return pc, err
	}
	return pc, execOn(wctx, p, "CREATE DATABASE "+benchDB)
}

// ready says why the cluster is not ready yet (nil: it is): a primary,
// two standbys streaming from it, one of them synchronous.
func (pc *patroniCluster) ready(ctx context.Context) error {
	p, err := findPrimary(ctx, pc.nodes())
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, p.connString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var streaming, sync int
	var names string
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'streaming'), count(*) FILTER (WHERE sync_state = 'sync'),
		current_setting('synchronous_standby_names') FROM pg_stat_replication`).Scan(&streaming, &sync, &names); err != nil {
		return err
	}
	if streaming < 2 || sync < 1 || names == "" {
		return fmt.Errorf("primary %s: %d standbys streaming, %d synchronous, synchronous_standby_names %q", p.Name, streaming, sync, names)
	}
	return nil
}

func (pc *patroniCluster) nodes() []clusterNode {
	var ns []clusterNode
	for _, n := range pc.nodesP {
		ns = append(ns, clusterNode{n.Name, n.PGPort})
	}
	return ns
}

// clientConnString is libpq's multi-host form, as pgx reads it too.
func (pc *patroniCluster) clientConnString() string {
	host, ports, _ := pc.pgbenchTarget()
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable target_session_attrs=read-write connect_timeout=5", host, ports, benchDB)
}

func (pc *patroniCluster) pgbenchTarget() (string, string, []string) {
	var hosts, ports []string
	for _, n := range pc.nodesP {
		hosts, ports = append(hosts, "127.0.0.1"), append(ports, strconv.Itoa(n.PGPort))
	}
	return strings.Join(hosts, ","), strings.Join(ports, ","), []string{"PGTARGETSESSIONATTRS=read-write"}
}

// postmaster is the PID in the node's postmaster.pid, checked to be a
// postgres running on its data directory.
func (pc *patroniCluster) postmaster(n clusterNode) (int, error) {
	for _, pn := range pc.nodesP {
		if pn.Name != n.Name {
			continue
		}
		pid := postmasterPID(pn.DataDir())
		if pid <= 0 || !isPostmaster(pid, pn.DataDir()) {
			return 0, fmt.Errorf("no postmaster running in %s (postmaster.pid says %d)", pn.DataDir(), pid)
		}
		return pid, nil
	}
	return 0, fmt.Errorf("no node %s", n.Name)
}

// killed: Patroni reaps its postmaster itself.
func (pc *patroniCluster) killed(clusterNode) {}

// newPrimary is the node that answers as a primary (Patroni's leader, or
// the old primary restarted in place).
func (pc *patroniCluster) newPrimary(ctx context.Context, _ clusterNode) (clusterNode, error) {
	return waitPrimary(ctx, pc.nodes())
}

func (pc *patroniCluster) stop(logf func(string, ...any)) {
	var wg sync.WaitGroup
	for i, p := range pc.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := stopPatroni(p, pc.nodesP[i].DataDir()); err != nil {
				logf("failover: %v", err)
			}
		}()
	}
	wg.Wait()
}

// execOn runs sql on node n's database postgres.
func execOn(ctx context.Context, n clusterNode, sql string) error {
	conn, err := pgx.Connect(ctx, n.connString("postgres"))
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name, sql, err)
	}
	return nil
}
