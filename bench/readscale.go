package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// The read-scaling scenarios (KindReadScale) run against a cluster of
// their own: a primary and readScaleNodes-1 streaming replicas
// (internal/pgcluster, synchronous replication as `belay up` makes it),
// each node in a cgroup of its own with a CPU quota (Options.NodeCPU
// cores), so that a node added adds capacity as a machine would although
// every node shares this machine's cores. The nodes are registered in an
// embedded etcd as one cluster per node count (readscale-1: the primary
// alone; readscale-2: and pg1; readscale-3: and pg2), each served by a
// `belay proxy --etcd ... --cluster readscale-N`, and by a pgpool-II in
// streaming-replication mode with load balancing over the same nodes. Each
// round runs pgbench directly against the primary, then through pgpool-II
// and belay in front of 1, 2 and 3 nodes, alternating. pgbench, belay and
// pgpool-II run outside the node cgroups.

// readScaleNodes is the size of the read-scaling cluster: a primary and 2 replicas.
const readScaleNodes = 3

// readScaleClients are the pgbench clients of the read-scaling scenarios.
const readScaleClients = 16

// readScaleScenarios are the read-scaling scenarios: select-only, and a
// read-mostly mix of 90% select-only and 10% TPC-B-like transactions.
func readScaleScenarios() []Scenario {
	sc := func(id, what string, args ...string) Scenario {
		return Scenario{
			ID: id,
			Title: fmt.Sprintf("read scaling: %s, %d clients, through belay and pgpool-II in front of 1, 2 and %d CPU-limited nodes",
				what, readScaleClients, readScaleNodes),
			Kind: KindReadScale, PgbenchArgs: args, Clients: readScaleClients, Nodes: readScaleNodes,
		}
	}
	return []Scenario{
		sc("readscale-select", "select-only (`-S -M simple`)", "-S", "-M", "simple"),
		sc("readscale-mix", "90% select-only, 10% TPC-B-like (`-b select-only@9 -b tpcb-like@1 -M simple`)",
			"-b", "select-only@9", "-b", "tpcb-like@1", "-M", "simple"),
	}
}

// Proxies of the read-scaling scenarios; a target is "PROXY-N", N the nodes
// behind it, or Direct (the primary).
const (
	pgpoolProxy = "pgpool"
	belayProxy  = "belay"
)

func readScaleTarget(proxy string, nodes int) string { return fmt.Sprintf("%s-%d", proxy, nodes) }

// readScaleTargets are the targets of a read-scaling round in run order:
// the primary directly, then pgpool-II and belay with 1, 2, ... nodes.
func readScaleTargets(nodes int) []string {
	t := []string{Direct}
	for n := 1; n <= nodes; n++ {
		t = append(t, readScaleTarget(pgpoolProxy, n), readScaleTarget(belayProxy, n))
	}
	return t
}

// parseReadScaleTarget splits "PROXY-N"; ok is false for Direct.
func parseReadScaleTarget(name string) (proxy string, nodes int, ok bool) {
	p, n, found := strings.Cut(name, "-")
	if !found {
		return "", 0, false
	}
	k, err := strconv.Atoi(n)
	if err != nil || (p != pgpoolProxy && p != belayProxy) {
		return "", 0, false
	}
	return p, k, true
}

func readScaleLabel(name string) string {
	p, n, ok := parseReadScaleTarget(name)
	if !ok {
		return "direct to the primary"
	}
	what := "belay"
	if p == pgpoolProxy {
		what = "pgpool-II"
	}
	if n == 1 {
		return what + ", 1 node"
	}
	return fmt.Sprintf("%s, %d nodes", what, n)
}

// ReadScaleRun is what the nodes did during one run of a read-scaling
// scenario, node by node (pg0, the primary, first).
type ReadScaleRun struct {
	// NodeCPU is the CPU each node used, in cores on average over the run
	// (the quota is Options.NodeCPU).
	NodeCPU []float64 `json:"node_cpu_cores"`
	// Throttled is the share of the CFS periods of the run in which the
	// node used up its quota and was held back.
	Throttled []float64 `json:"node_throttled_share"`
}

// ReadScaleResult is a read-scaling scenario's summary: tps by node count.
type ReadScaleResult struct {
	// Skipped, when set, says why the scenario did not run (no pgpool-II,
	// no cgroups).
	Skipped string `json:"skipped,omitempty"`
	// Cgroup says which cgroup interface limited the nodes, and where.
	Cgroup string `json:"cgroup,omitempty"`
	// NodeCPU is each node's CPU quota in cores: QuotaUs per PeriodUs.
	NodeCPU  float64 `json:"node_cpu_cores,omitempty"`
	QuotaUs  int64   `json:"quota_us,omitempty"`
	PeriodUs int64   `json:"period_us,omitempty"`
	// Pgpool is pgpool-II's version, PgpoolConfig what matters of its
	// configuration.
	Pgpool       string `json:"pgpool_version,omitempty"`
	PgpoolConfig string `json:"pgpool_config,omitempty"`
	// DirectTPS is the baseline: pgbench directly against the primary.
	DirectTPS float64          `json:"direct_tps"`
	Points    []ReadScalePoint `json:"points"`
}

// ReadScalePoint is one node count: medians across rounds, and their spread.
type ReadScalePoint struct {
	Nodes                int     `json:"nodes"`
	PgpoolTPS            float64 `json:"pgpool_tps"`
	PgpoolMin, PgpoolMax float64 `json:"-"`
	BelayTPS             float64 `json:"belay_tps"`
	BelayMin, BelayMax   float64 `json:"-"`
	// Ratio is BelayTPS ÷ PgpoolTPS (0: n/a).
	Ratio float64 `json:"belay_over_pgpool"`
	// PgpoolScale and BelayScale are the tps over the same proxy's with 1
	// node (0: n/a).
	PgpoolScale float64 `json:"pgpool_over_its_1_node"`
	BelayScale  float64 `json:"belay_over_its_1_node"`
	// Spreads are "min–max" of the rounds' tps.
	PgpoolSpread string `json:"pgpool_tps_spread"`
	BelaySpread  string `json:"belay_tps_spread"`
	PgpoolErrors int64  `json:"pgpool_errors"`
	BelayErrors  int64  `json:"belay_errors"`
}

// readScalePoints folds a read-scaling scenario's rows into one point per
// node count, 1 to nodes.
func readScalePoints(s *ScenarioResult, nodes int) []ReadScalePoint {
	tpsRange := func(r *Row) (lo, hi float64) {
		first := true
		for _, run := range r.Runs {
			if run.NA != "" {
				continue
			}
			if first {
				lo, hi, first = run.TPS, run.TPS, false
			}
			lo, hi = math.Min(lo, run.TPS), math.Max(hi, run.TPS)
		}
		return lo, hi
	}
	usable := func(r *Row) bool { return r != nil && r.NA == "" }
	var pts []ReadScalePoint
	var pgpool1, belay1 float64
	for n := 1; n <= nodes; n++ {
		p := ReadScalePoint{Nodes: n, PgpoolSpread: "n/a", BelaySpread: "n/a"}
		if r := s.Row(readScaleTarget(pgpoolProxy, n)); usable(r) {
			p.PgpoolTPS, p.PgpoolErrors = r.TPS, r.ErrorCount()
			p.PgpoolMin, p.PgpoolMax = tpsRange(r)
			p.PgpoolSpread = tpsText(p.PgpoolMin) + "–" + tpsText(p.PgpoolMax)
		}
		if r := s.Row(readScaleTarget(belayProxy, n)); usable(r) {
			p.BelayTPS, p.BelayErrors = r.TPS, r.ErrorCount()
			p.BelayMin, p.BelayMax = tpsRange(r)
			p.BelaySpread = tpsText(p.BelayMin) + "–" + tpsText(p.BelayMax)
		}
		if p.PgpoolTPS > 0 {
			p.Ratio = p.BelayTPS / p.PgpoolTPS
		}
		if n == 1 {
			pgpool1, belay1 = p.PgpoolTPS, p.BelayTPS
		}
		if pgpool1 > 0 {
			p.PgpoolScale = p.PgpoolTPS / pgpool1
		}
		if belay1 > 0 {
			p.BelayScale = p.BelayTPS / belay1
		}
		pts = append(pts, p)
	}
	return pts
}

// readScaleEnv is the cluster, etcd and proxies of the read-scaling
// scenarios, started at the first of them and stopped by env.close.
type readScaleEnv struct {
	skip   string // why the scenarios cannot run here, when they cannot
	info   ReadScaleResult
	dir    string
	cg     *nodeCgroups
	etcd   *etcdlocal.Server
	pg     *pgcluster.Cluster
	nodes  []string   // pg0, pg1, ...
	pgpool []*process // [n-1]: in front of n nodes
	belay  []*process
	// ports of pgpool[i] and belay[i], and belay's metrics
	pgpoolPort, belayPort, belayMetrics []int
}

// readScaleCluster is the name, in etcd, of the cluster of the first n nodes.
func readScaleCluster(n int) string { return fmt.Sprintf("readscale-%d", n) }

// readScaleSettings are the nodes' PostgreSQL settings: those of the
// single-node bench (durability off) with room for every pool of every
// proxy. synchronous_commit is pgcluster's: on, with ANY 1 of the replicas
// synchronous, as `belay up` runs the cluster.
func readScaleSettings() map[string]string {
	s := pgSettings(400)
	delete(s, "synchronous_commit")
	return s
}

// startReadScale starts the read-scaling environment for the scenarios
// of e.o: it returns one with skip set when pgpool-II or CPU limits cannot
// be had here, and an error when something that should work fails.
func (e *env) startReadScale(ctx context.Context) (*readScaleEnv, error) {
	o := e.o
	rs := &readScaleEnv{dir: filepath.Join(e.work, "readscale")}
	nodes, clients := 0, 0
	for _, sc := range o.Scenarios {
		if sc.Kind == KindReadScale {
			nodes, clients = max(nodes, sc.Nodes), max(clients, sc.Clients)
		}
	}
	for i := range nodes {
		rs.nodes = append(rs.nodes, "pg"+strconv.Itoa(i))
	}
	quota, err := cpuQuotaUs(o.NodeCPU, cpuPeriodUs)
	if err != nil {
		return nil, err
	}
	rs.info.NodeCPU, rs.info.QuotaUs, rs.info.PeriodUs = o.NodeCPU, quota, cpuPeriodUs
	bin, err := findPgpool(ctx, o.InstallPgpool, e.logf)
	if err != nil {
		rs.skip = "pgpool-II is not available: " + err.Error()
		return rs, nil
	}
	rs.info.Pgpool = pgpoolVersion(bin)
	if rs.cg, err = newNodeCgroups(rs.nodes); err != nil {
		rs.skip = "cannot limit each node's CPU: " + err.Error()
		return rs, nil
	}
	rs.info.Cgroup = fmt.Sprintf("%s (the cpu controller's hierarchy at %s)", rs.cg.h.Version, rs.cg.h.Mount)
	e.logf("read scaling: %s; a cgroup per node under %s", rs.info.Cgroup, rs.cg.base)
	if err := os.MkdirAll(rs.dir, 0o755); err != nil {
		return rs, err
	}
	if rs.etcd, err = etcdlocal.Start(ctx, etcdlocal.Options{Dir: filepath.Join(rs.dir, "etcd"), NoFsync: true, LogLevel: "warn"}); err != nil {
		return rs, err
	}
	e.logf("read scaling: etcd (embedded) at %s; PostgreSQL: a primary and %d replicas in %s", rs.etcd.Endpoint(), nodes-1, rs.dir)
	if rs.pg, err = pgcluster.Start(ctx, pgcluster.Options{
		Dir: rs.dir, Replicas: nodes - 1, Settings: readScaleSettings(), Cgroup: rs.cg.dir,
		Logf: func(f string, a ...any) { e.logf("read scaling: "+f, a...) },
	}); err != nil {
		return rs, err
	}
	if err := rs.load(ctx, e); err != nil {
		return rs, err
	}
	for _, n := range rs.nodes {
		if err := rs.cg.limit(n, quota); err != nil {
			return rs, err
		}
	}
	e.logf("read scaling: each node limited to %d µs of CPU per %d µs (%.2g core)", quota, cpuPeriodUs, o.NodeCPU)
	if err := rs.register(ctx, len(rs.nodes)); err != nil {
		return rs, err
	}
	var addrs []string
	for _, n := range rs.pg.Nodes() {
		addrs = append(addrs, n.Addr())
	}
	for n := 1; n <= len(rs.nodes); n++ {
		ports, err := freePorts(4)
		if err != nil {
			return rs, err
		}
		spec := pgpoolSpec{Dir: filepath.Join(rs.dir, fmt.Sprintf("pgpool-%d", n)), Port: ports[0], PCPPort: ports[1],
			Backends: addrs[:n], Children: clients + 4, DelayThreshold: 16 << 20, Placement: o.Placement}
		if n == 1 {
			conf, _ := pgpoolConf(spec)
			rs.info.PgpoolConfig = pgpoolSummary(conf)
		}
		p, err := startPgpool(ctx, bin, spec)
		if err != nil {
			return rs, err
		}
		rs.pgpool, rs.pgpoolPort = append(rs.pgpool, p), append(rs.pgpoolPort, spec.Port)
		e.logf("read scaling: pgpool-II (pid %d) on 127.0.0.1:%d in front of %d node(s)", p.pid, spec.Port, n)
		b, err := startClusterBelay(ctx, o.BelayExe, o.BelayEnv, filepath.Join(rs.dir, fmt.Sprintf("belay-%d.log", n)),
			rs.etcd.Endpoint(), readScaleCluster(n), o.PoolSize, ports[2], ports[3], o.Placement)
		if err != nil {
			return rs, err
		}
		rs.belay, rs.belayPort, rs.belayMetrics = append(rs.belay, b), append(rs.belayPort, ports[2]), append(rs.belayMetrics, ports[3])
		e.logf("read scaling: belay (pid %d) on 127.0.0.1:%d serving cluster %s from etcd", b.pid, ports[2], readScaleCluster(n))
	}
	if o.WarmUp > 0 {
		for _, name := range readScaleTargets(len(rs.nodes)) {
			t := rs.target(name)
			run, err := runPgbench(ctx, e.pgbench, pgbenchSpec{Host: t.Host, Port: t.Port, DB: t.DB, User: "postgres",
				Args: []string{"-S"}, Clients: 4, Jobs: e.o.Jobs, Duration: o.WarmUp})
			if err == nil {
				e.logf("read scaling: warm-up %-24s %8.0f tps", t.Label, run.Summary.TPS)
			}
		}
	}
	return rs, nil
}

// load makes pgbench's tables on the primary (scale Options.Scale), waits
// for every replica to replay them, and reads them into each node's
// shared buffers (pg_prewarm; a node without it warms up as it serves).
// The nodes have no CPU limit yet.
func (rs *readScaleEnv) load(ctx context.Context, e *env) error {
	p := rs.pg.Primary()
	if err := rs.exec(ctx, p, "postgres", "CREATE DATABASE "+benchDB); err != nil {
		return err
	}
	e.logf("read scaling: pgbench -i -s %d on the primary (%s)", e.o.Scale, p.Addr())
	inst := p.Instance()
	cmd := pgbenchInit(ctx, e.pgbench, inst.Host, inst.Port, inst.Superuser, e.o.Scale)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: pgbench -i on the read-scaling primary: %v\n%s", err, out)
	}
	if err := rs.exec(ctx, p, benchDB, "CREATE EXTENSION IF NOT EXISTS pg_prewarm"); err != nil {
		e.logf("read scaling: no pg_prewarm (%v): the nodes warm up as they serve", err)
	}
	if err := rs.waitReplayed(ctx); err != nil {
		return err
	}
	for _, n := range rs.pg.Nodes() {
		err := rs.exec(ctx, n, benchDB, `SELECT pg_prewarm(c.oid) FROM pg_class c
			WHERE c.relname LIKE 'pgbench\_%' AND c.relkind IN ('r', 'i')`)
		if err != nil {
			e.logf("read scaling: prewarming %s: %v", n.Name, err)
		}
	}
	return nil
}

// waitReplayed waits until every replica has replayed the primary's WAL
// as it is now.
func (rs *readScaleEnv) waitReplayed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var target string
	if err := rs.queryRow(ctx, rs.pg.Primary(), "SELECT pg_current_wal_lsn()::text", &target); err != nil {
		return err
	}
	for _, r := range rs.pg.Replicas() {
		for {
			var done bool
			err := rs.queryRow(ctx, r, "SELECT pg_last_wal_replay_lsn() >= '"+target+"'::pg_lsn", &done)
			if err == nil && done {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("bench: replica %s has not replayed the primary's WAL to %s: %v", r.Name, target, errors.Join(err, ctx.Err()))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (rs *readScaleEnv) exec(ctx context.Context, n *pgcluster.Node, db, sql string) error {
	conn, err := pgx.Connect(ctx, n.ConnString(db, rs.pg.Superuser()))
	if err != nil {
		return fmt.Errorf("bench: %s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("bench: %s: %s: %w", n.Name, trunc(sql, 60), err)
	}
	return nil
}

func (rs *readScaleEnv) queryRow(ctx context.Context, n *pgcluster.Node, sql string, dst any) error {
	conn, err := pgx.Connect(ctx, n.ConnString("postgres", rs.pg.Superuser()))
	if err != nil {
		return fmt.Errorf("bench: %s: %w", n.Name, err)
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dst)
}

// register writes, in etcd, cluster readscale-N for N = 1..nodes: its
// first N nodes, pg0 the primary (term 1).
func (rs *readScaleEnv) register(ctx context.Context, nodes int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := rs.etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	all := rs.pg.Nodes()
	for n := 1; n <= nodes; n++ {
		st, err := ha.NewStore(cli, readScaleCluster(n))
		if err != nil {
			return err
		}
		for _, node := range all[:n] {
			if _, err := st.PutNode(ctx, node.Name, ha.NodeRecord{Shard: "0", Addr: node.Addr(), State: ha.StateUp}); err != nil {
				return fmt.Errorf("bench: registering %s in etcd: %w", node.Name, err)
			}
		}
		if _, _, err := st.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: all[0].Name}); err != nil {
			return fmt.Errorf("bench: registering cluster %s in etcd: %w", readScaleCluster(n), err)
		}
	}
	return nil
}

// startClusterBelay starts `exe proxy --etcd endpoint --cluster cluster`
// on port, its metrics on metricsPort, its output in logPath.
func startClusterBelay(ctx context.Context, exe string, env []string, logPath, endpoint, cluster string, poolSize, port, metricsPort int, pl Placement) (*process, error) {
	args := []string{"proxy", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--etcd", endpoint, "--cluster", cluster,
		"--pool-size", strconv.Itoa(poolSize), "--log-level", "warn", "--auth-type", "trust",
		"--health-user", "postgres", "--health-dbname", "postgres",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	p, err := startProcess("belay", exe, args, append(clientEnv(), env...), logPath, nil, pl)
	if err != nil {
		return nil, err
	}
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port), benchDB); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\n--- belay log ---\n%s", err, readTail(logPath, 2000))
	}
	return p, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// pgpoolSummary is what matters of a pgpool.conf for the report: its
// settings but the file paths and ports.
func pgpoolSummary(conf string) string {
	var kept []string
	for _, l := range strings.Split(conf, "\n") {
		k, _, ok := strings.Cut(l, " = ")
		if !ok || strings.HasPrefix(k, "backend_") || strings.Contains(k, "port") || strings.Contains(k, "dir") ||
			strings.Contains(k, "file") || strings.Contains(k, "passwd") || strings.Contains(k, "address") || strings.HasPrefix(k, "log") {
			continue
		}
		kept = append(kept, strings.TrimSpace(l))
	}
	return strings.Join(kept, ", ")
}

// target is the read-scaling target called name.
func (rs *readScaleEnv) target(name string) Target {
	t := Target{Name: name, Label: readScaleLabel(name), Host: "127.0.0.1", DB: benchDB}
	p, n, ok := parseReadScaleTarget(name)
	switch {
	case !ok:
		t.Port = rs.pg.Primary().Port()
	case p == pgpoolProxy:
		// Its CPU is its processes' (runReadScale), not the main one's.
		t.Port = rs.pgpoolPort[n-1]
	default:
		t.Port, t.PID = rs.belayPort[n-1], rs.belay[n-1].pid
		t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", rs.belayMetrics[n-1])
	}
	return t
}

// alive checks that the proxy of target name still runs.
func (rs *readScaleEnv) alive(name string) error {
	p, n, ok := parseReadScaleTarget(name)
	if !ok {
		return nil
	}
	proc, log := rs.belay[n-1], filepath.Join(rs.dir, fmt.Sprintf("belay-%d.log", n))
	if p == pgpoolProxy {
		proc, log = rs.pgpool[n-1], filepath.Join(rs.dir, fmt.Sprintf("pgpool-%d", n), "pgpool.log")
	}
	if proc.exited() {
		return fmt.Errorf("bench: %s (pid %d) exited: %v; log tail: %s", readScaleLabel(name), proc.pid, proc.err, readTail(log, 1000))
	}
	return nil
}

// nodeCPU is the CPU seconds the processes of each node have used, and
// its cgroup's CPU statistics.
func (rs *readScaleEnv) nodeCPU() ([]float64, []cpuStat) {
	var secs []float64
	var stats []cpuStat
	for _, n := range rs.pg.Nodes() {
		st, _ := rs.cg.stat(n.Name)
		stats = append(stats, st)
		if st.HasUsage {
			secs = append(secs, float64(st.UsageUs)/1e6)
			continue
		}
		pm := 0
		if inst := n.Instance(); inst != nil {
			pm = inst.PID
		}
		secs = append(secs, familyCPUSeconds(pm))
	}
	return secs, stats
}

// familyCPUSeconds adds up the CPU time of process parent, of its
// children (those that have exited but not been waited for included, which
// a cgroup no longer lists), and of those it has waited for: a PostgreSQL
// node's whole CPU time, its postmaster being parent (every server process
// is the postmaster's child), or a pgpool-II's (a process per client, each
// the main process's child). 0 for parent 0.
func familyCPUSeconds(parent int) float64 {
	if parent == 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks uint64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile: its parent has its time now
		}
		st, err := ParseProcStat(b)
		if err != nil {
			continue
		}
		switch {
		case pid == parent:
			ticks += st.UTimeTicks + st.STimeTicks + st.CUTimeTicks + st.CSTimeTicks
		case st.PPid == parent:
			ticks += st.UTimeTicks + st.STimeTicks
		}
	}
	return float64(ticks) / clockTicks
}

// runReadScale runs a read-scaling scenario: every round, each target of
// readScaleTargets in turn.
func (e *env) runReadScale(ctx context.Context, sc Scenario) (ScenarioResult, error) {
	if e.rs == nil {
		rs, err := e.startReadScale(ctx)
		e.rs = rs
		if err != nil {
			return ScenarioResult{}, fmt.Errorf("%s: starting the cluster: %w", sc.ID, err)
		}
		if rs.skip != "" {
			e.logf("read scaling skipped: %s", rs.skip)
			e.notes = append(e.notes, "The read-scaling scenarios were skipped: "+rs.skip)
		}
	}
	rs := e.rs
	names := readScaleTargets(sc.Nodes)
	info := rs.info
	res := ScenarioResult{Scenario: sc, ReadScale: &info}
	if rs.skip != "" {
		info.Skipped = rs.skip
		for _, name := range names {
			res.Rows = append(res.Rows, Row{Target: name, Label: readScaleLabel(name), NA: "skipped: " + rs.skip, CPUPer1k: -1})
		}
		return res, nil
	}
	runs := map[string][]RunResult{}
	for round := 1; round <= e.o.Rounds; round++ {
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			if err := rs.alive(name); err != nil {
				return ScenarioResult{}, fmt.Errorf("%s: %w", sc.ID, err)
			}
			t := rs.target(name)
			r := RunResult{Scenario: sc.ID, Target: name, Round: round, CPUPer1k: -1}
			pgpool := 0 // pgpool-II's main process: a child per client
			if p, n, ok := parseReadScaleTarget(name); ok && p == pgpoolProxy {
				pgpool = rs.pgpool[n-1].pid
			}
			cpu0, st0 := rs.nodeCPU()
			g0 := familyCPUSeconds(pgpool)
			start := time.Now()
			if err := e.pgbenchInto(ctx, sc, t, &r); err != nil {
				return ScenarioResult{}, fmt.Errorf("%s against %s: %w", sc.ID, t.Label, err)
			}
			cpu1, st1 := rs.nodeCPU()
			if pgpool != 0 && r.Transactions > 0 {
				r.CPUSeconds = familyCPUSeconds(pgpool) - g0
				r.CPUPer1k = r.CPUSeconds / float64(r.Transactions) * 1000
			}
			r.ReadScale = nodeFigures(cpu0, cpu1, st0, st1, time.Since(start).Seconds())
			e.logf("round %d/%d  %-18s %-24s %s  nodes' CPU %s", round, e.o.Rounds, sc.ID, t.Label, summaryLine(sc, r), coresText(r.ReadScale.NodeCPU))
			runs[name] = append(runs[name], r)
		}
	}
	for _, name := range names {
		res.Rows = append(res.Rows, aggregate(name, readScaleLabel(name), runs[name]))
	}
	if d := res.Row(Direct); d != nil {
		info.DirectTPS = d.TPS
	}
	info.Points = readScalePoints(&res, sc.Nodes)
	return res, nil
}

// nodeFigures are the nodes' figures of a run of secs seconds, from their
// CPU seconds and cgroup statistics before and after.
func nodeFigures(cpu0, cpu1 []float64, st0, st1 []cpuStat, secs float64) *ReadScaleRun {
	f := &ReadScaleRun{}
	for i := range cpu1 {
		used := 0.0
		if secs > 0 && i < len(cpu0) {
			used = math.Max(0, cpu1[i]-cpu0[i]) / secs
		}
		thr := 0.0
		if i < len(st0) && i < len(st1) {
			if p := st1[i].Periods - st0[i].Periods; p > 0 {
				thr = float64(st1[i].Throttled-st0[i].Throttled) / float64(p)
			}
		}
		f.NodeCPU = append(f.NodeCPU, used)
		f.Throttled = append(f.Throttled, thr)
	}
	return f
}

// coresText is "0.40 / 0.01 / 0.00": a figure per node.
func coresText(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " / ")
}

// medianNodeFigures is the per-node median over r's runs of what of
// returns.
func medianNodeFigures(r Row, of func(*ReadScaleRun) []float64) []float64 {
	var per [][]float64
	for _, run := range r.Runs {
		if run.ReadScale == nil {
			continue
		}
		for i, v := range of(run.ReadScale) {
			if i >= len(per) {
				per = append(per, nil)
			}
			per[i] = append(per[i], v)
		}
	}
	out := make([]float64, len(per))
	for i, v := range per {
		out[i] = Median(v)
	}
	return out
}

// close stops the proxies, the cluster and etcd, and removes the cgroups.
func (rs *readScaleEnv) close(logf func(string, ...any)) {
	for _, p := range rs.pgpool {
		stopPgpool(p)
	}
	for _, p := range append(append([]*process{}, rs.belay...), rs.pgpool...) {
		if err := p.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if rs.pg != nil {
		if err := rs.pg.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if rs.etcd != nil {
		rs.etcd.Stop()
	}
	if rs.cg != nil {
		if err := rs.cg.remove(); err != nil {
			logf("%v", err)
		}
	}
}
