package bench

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
)

// The sharded scenarios (KindSharded, issue J) run pgbench's tables hash-
// sharded by belay over 1, 2 and 4 shards of a primary each, every
// PostgreSQL node in a cgroup of its own with the same CPU quota
// (Options.ShardNodeCPU cores), so that a shard added adds capacity as a
// machine would although every node shares this machine's cores.
//
// The data: pgbench_accounts and pgbench_history sharded by aid (history
// by aid too, rather than a reference table: the keyed update's INSERT
// into it then lands on the shard of the account it updated, one shard's
// transaction; a reference table would make every such INSERT a write on
// every shard, a two-phase commit each), pgbench_branches and
// pgbench_tellers as reference tables (a copy on every shard). `pgbench
// -i` cannot load them through belay (it truncates its four tables in one
// transaction, which spans every shard, and loads them with COPY), so each
// shard is loaded directly with its own rows only: pgbench -i -I dt makes
// the tables, INSERT ... SELECT from generate_series writes the branches,
// the tellers and the accounts for which satisfies_hash_partition (a table
// PARTITION BY HASH (aid) made for the purpose) says shard k of N, which is
// the placement belay's hash computes; pgbench -i -I vp then vacuums and
// adds the primary keys. Then, through belay, a count of every shard must
// be the scale's accounts and random keyed reads must find their rows.
//
// The nodes: node0 ... node3, plain primaries (pginstance), each with a
// database per shard count, pgbench_s1 (node0: every row), pgbench_s2
// (node0 and node1: half each), pgbench_s4, so that the three layouts
// share the four CPU-limited nodes. In an embedded etcd, cluster
// sharded-N is shard k = nodek for k < N and the sharding schema of N
// shards; belay serves it as belay up does, in the split shape: a `belay
// pooler` beside each node of the cluster and a `belay gateway` in front.
// Each round runs pgbench (the scenario's script, keys from :scale)
// directly against node0's pgbench_s1 (the baseline: one PostgreSQL, no
// belay), then through the gateway of 1, 2 and 4 shards; belay's CPU is
// its gateway's and its poolers' (/proc), per 1,000 transactions.

// shardedClients are the pgbench clients of the sharded scenarios: 8 per
// shard at 4 shards, so that a shard whose node is held back by its quota
// does not hold most clients (with 16, and 100 ms periods, the 4 shards'
// nodes used 0.13 of their 0.2 core).
const shardedClients = 32

// shardCPUPeriodUs is the CFS period of the shards' node cgroups: 10 ms,
// not the kernel's 100 ms. A node that used up its quota stalls for the
// rest of the period, and every client waiting on it with it: with 100 ms
// periods (20 ms of CPU, then 80 ms stalled) the clients piled up on the
// stalled shards while the others idled, so that the shard counts measured
// stalls rather than capacity (tries with 16 clients: p99 90 ms, 4 shards'
// nodes at 0.13 of their 0.2 core). Quotas of 1 ms per 10 ms (0.1 core)
// were too thin for PostgreSQL itself: backends throttled while holding
// locks made a keyed read cost its node about 330 µs instead of about 80.
const shardCPUPeriodUs = 10_000

// shardCounts are the layouts each round runs through belay.
var shardCounts = []int{1, 2, 4}

// The scripts of the sharded scenarios; :scale is given with -D.
const (
	shardedSelectScript = `\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
`
	shardedUpdateScript = `\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`
	// Two accounts of (most likely) different shards in one transaction:
	// belay commits it on both with two-phase commit (its decision
	// written in etcd). The lower key first, so that two transfers never
	// wait for each other across shards (PostgreSQL sees no deadlock
	// there).
	shardedTransferScript = `\set a random(1, 100000 * :scale)
\set b random(1, 100000 * :scale)
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set delta random(1, 100)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance - :delta WHERE aid = :lo;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :hi;
END;
`
	// A range of keys is no key to a hash: every shard answers, and
	// belay adds their counts and sums (a scatter whose work on each
	// node is an index range scan of 100 rows, so that belay's own cost
	// per scatter shows rather than a scan's).
	shardedScatterScript = `\set aid random(1, 100000 * :scale - 99)
SELECT count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 99;
`
)

// shardedScenarios are the sharded scenarios of full runs (or
// --scenarios sharded).
func shardedScenarios() []Scenario {
	sc := func(id, what, script string) Scenario {
		return Scenario{
			ID: id,
			Title: fmt.Sprintf("sharding: %s, %d clients (`-M simple`), pgbench_accounts sharded by aid over 1, 2 and 4 CPU-limited shards",
				what, shardedClients),
			Kind: KindSharded, PgbenchArgs: []string{"-M", "simple"}, Clients: shardedClients, Nodes: shardCounts[len(shardCounts)-1],
			Script: script,
		}
	}
	return []Scenario{
		sc("sharded-select", "a keyed read (`SELECT abalance FROM pgbench_accounts WHERE aid = :aid`)", shardedSelectScript),
		sc("sharded-update", "a keyed write transaction (UPDATE, SELECT of the account by aid, INSERT into pgbench_history with its aid)", shardedUpdateScript),
		sc("sharded-scatter", "a read of every shard merged by belay (`SELECT count(*), sum(abalance) ... WHERE aid BETWEEN :aid AND :aid + 99`)", shardedScatterScript),
		sc("sharded-transfer", "a transfer between two random accounts, a transaction across shards on 2 and 4 shards (two-phase commit, the decision in etcd)", shardedTransferScript),
	}
}

// shardedTarget is the target name of belay over n shards.
func shardedTarget(n int) string { return fmt.Sprintf("shards-%d", n) }

// parseShardedTarget is the shard count of a target name; ok is false for
// Direct.
func parseShardedTarget(name string) (n int, ok bool) {
	s, found := strings.CutPrefix(name, "shards-")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

func shardedLabel(name string) string {
	n, ok := parseShardedTarget(name)
	switch {
	case !ok:
		return "direct to one PostgreSQL (every row, no belay)"
	case n == 1:
		return "belay, 1 shard"
	}
	return fmt.Sprintf("belay, %d shards", n)
}

// shardedTargets are the targets of a round in run order.
func shardedTargets() []string {
	t := []string{Direct}
	for _, n := range shardCounts {
		t = append(t, shardedTarget(n))
	}
	return t
}

// shardedDB is the database holding the rows of the layout of n shards.
func shardedDB(n int) string { return fmt.Sprintf("pgbench_s%d", n) }

// shardedCluster is the name, in etcd, of the cluster of n shards.
func shardedCluster(n int) string { return fmt.Sprintf("sharded-%d", n) }

// shardedSettings are the nodes' settings: the single-node bench's
// (durability off), room for every pool, shared buffers that hold every
// layout's rows of a node at the default scale, and prepared transactions
// as belay up sets them.
func shardedSettings() map[string]string {
	s := pgSettings(400)
	s["shared_buffers"] = "512MB"
	s["max_prepared_transactions"] = "200"
	return s
}

// settingsText is s as "k=v, ..." in the order of the keys.
func settingsText(s map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		kv = append(kv, k+"="+s[k])
	}
	return strings.Join(kv, ", ")
}

// shardedSchema is the sharding schema of n shards over pgbench's tables.
func shardedSchema(n int) (*shard.Schema, error) {
	var tables []shard.Table
	for _, t := range []struct {
		name string
		key  string // "": a reference table
	}{{"pgbench_accounts", "aid"}, {"pgbench_history", "aid"}, {"pgbench_branches", ""}, {"pgbench_tellers", ""}} {
		name, err := shard.ParseTableName(t.name)
		if err != nil {
			return nil, err
		}
		if t.key == "" {
			tables = append(tables, shard.ReferenceTable(name))
		} else {
			tables = append(tables, shard.ShardedTable(name, t.key, shard.KeyInteger))
		}
	}
	return shard.New(n, tables...)
}

// shardLoadSQL fills pgbench's tables of shard k of n at scale: every
// branch and teller (reference tables), and the accounts PostgreSQL's hash
// partitioning places on partition k of n (the same hash as belay's).
func shardLoadSQL(scale, n, k int) []string {
	return []string{
		"DROP TABLE IF EXISTS belay_placement",
		"CREATE TABLE belay_placement (aid int) PARTITION BY HASH (aid)",
		fmt.Sprintf("INSERT INTO pgbench_branches (bid, bbalance) SELECT bid, 0 FROM generate_series(1, %d) AS bid", scale),
		fmt.Sprintf("INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT tid, (tid - 1) / 10 + 1, 0 FROM generate_series(1, %d) AS tid", 10*scale),
		fmt.Sprintf(`INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
			SELECT aid, (aid - 1) / 100000 + 1, 0, '' FROM generate_series(1, %d) AS aid
			WHERE satisfies_hash_partition('belay_placement'::regclass, %d, %d, aid)`, 100000*scale, n, k),
		"DROP TABLE belay_placement",
	}
}

// shardedEnv is the nodes, etcd and belay's processes of the sharded
// scenarios, started at the first of them and stopped by env.close.
type shardedEnv struct {
	skip  string // why the scenarios cannot run here, when they cannot
	info  ShardedResult
	dir   string
	cg    *nodeCgroups
	etcd  *etcdlocal.Server
	names []string               // node0, node1, ...
	nodes []*pginstance.Instance // by index
	// by shard count: the gateway, its port and metrics, and the poolers
	// of its nodes (index k: nodek's)
	gateway              map[int]*process
	gatewayPort, metrics map[int]int
	poolers              map[int][]*process
	scripts              map[string]string // scenario ID → script file
	logs                 map[*process]string
}

// startSharded starts the sharded scenarios' environment: it returns one
// with skip set when CPU limits cannot be had here, and an error when
// something that should work fails.
func (e *env) startSharded(ctx context.Context) (*shardedEnv, error) {
	o := e.o
	se := &shardedEnv{dir: filepath.Join(e.work, "sharded"), gateway: map[int]*process{}, gatewayPort: map[int]int{},
		metrics: map[int]int{}, poolers: map[int][]*process{}, scripts: map[string]string{}, logs: map[*process]string{}}
	maxShards := shardCounts[len(shardCounts)-1]
	for i := range maxShards {
		se.names = append(se.names, "node"+strconv.Itoa(i))
	}
	quota, err := cpuQuotaUs(o.ShardNodeCPU, shardCPUPeriodUs)
	if err != nil {
		return nil, err
	}
	se.info = ShardedResult{NodeCPU: o.ShardNodeCPU, QuotaUs: quota, PeriodUs: shardCPUPeriodUs, Scale: o.Scale, Clients: shardedClients,
		Settings: settingsText(shardedSettings())}
	if se.cg, err = newNodeCgroups(se.names); err != nil {
		se.skip = "cannot limit each node's CPU: " + err.Error()
		return se, nil
	}
	se.info.Cgroup = fmt.Sprintf("%s (the cpu controller's hierarchy at %s)", se.cg.h.Version, se.cg.h.Mount)
	if err := os.MkdirAll(se.dir, 0o755); err != nil {
		return se, err
	}
	if se.etcd, err = etcdlocal.Start(ctx, etcdlocal.Options{Dir: filepath.Join(se.dir, "etcd"), NoFsync: true, LogLevel: "warn"}); err != nil {
		return se, err
	}
	e.logf("sharding: etcd (embedded) at %s; %d PostgreSQL nodes in %s, a cgroup each under %s (%s)",
		se.etcd.Endpoint(), maxShards, se.dir, se.cg.base, se.info.Cgroup)
	for _, name := range se.names {
		inst, err := pginstance.Start(ctx, pginstance.Options{Dir: filepath.Join(se.dir, name), Settings: shardedSettings(), Cgroup: se.cg.dir(name)})
		if err != nil {
			return se, fmt.Errorf("bench: starting %s: %w", name, err)
		}
		se.nodes = append(se.nodes, inst)
	}
	start := time.Now()
	for _, n := range shardCounts {
		for k := range n {
			if err := se.load(ctx, e, n, k); err != nil {
				return se, err
			}
		}
	}
	for k := range se.nodes {
		if err := se.exec(ctx, k, "postgres", "CHECKPOINT"); err != nil { // the load's writes, before the quotas
			return se, err
		}
	}
	e.logf("sharding: pgbench's tables loaded at scale %d for 1, 2 and 4 shards in %s", o.Scale, time.Since(start).Round(time.Second))
	for _, name := range se.names {
		if err := se.cg.limitPeriod(name, quota, shardCPUPeriodUs); err != nil {
			return se, err
		}
	}
	e.logf("sharding: each node limited to %d µs of CPU per %d µs (%.2g core)", quota, shardCPUPeriodUs, o.ShardNodeCPU)
	for _, sc := range o.Scenarios {
		if sc.Kind == KindSharded {
			path := filepath.Join(se.dir, sc.ID+".sql")
			if err := os.WriteFile(path, []byte(sc.Script), 0o644); err != nil {
				return se, err
			}
			se.scripts[sc.ID] = path
		}
	}
	for _, n := range shardCounts {
		if err := se.startBelay(ctx, e, n); err != nil {
			return se, err
		}
		if err := se.check(ctx, n); err != nil {
			return se, err
		}
	}
	if o.WarmUp > 0 {
		warm := filepath.Join(se.dir, "warm-up.sql")
		if err := os.WriteFile(warm, []byte(shardedSelectScript), 0o644); err != nil {
			return se, err
		}
		for _, name := range shardedTargets() {
			t := se.target(name)
			run, err := runPgbench(ctx, e.pgbench, pgbenchSpec{Host: t.Host, Port: t.Port, DB: t.DB, User: "postgres",
				Args: scriptArgs(warm, o.Scale), Clients: 4, Jobs: o.Jobs, Duration: o.WarmUp})
			if err == nil {
				e.logf("sharding: warm-up %-48s %8.0f tps", t.Label, run.Summary.TPS)
			}
		}
	}
	return se, nil
}

// load makes database shardedDB(n) on nodek and fills it with shard k's
// rows of n shards, then reads it into the node's shared buffers.
func (se *shardedEnv) load(ctx context.Context, e *env, n, k int) error {
	inst, db := se.nodes[k], shardedDB(n)
	if err := se.exec(ctx, k, "postgres", "CREATE DATABASE "+db); err != nil {
		return err
	}
	pgbenchInit := func(steps string) error {
		cmd := exec.CommandContext(ctx, e.pgbench, "-i", "-q", "-I", steps, "-s", strconv.Itoa(e.o.Scale),
			"-h", inst.Host, "-p", strconv.Itoa(inst.Port), "-U", inst.Superuser, db)
		cmd.Env = clientEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("bench: pgbench -i -I %s on %s, %s: %v\n%s", steps, se.names[k], db, err, out)
		}
		return nil
	}
	if err := pgbenchInit("dt"); err != nil {
		return err
	}
	for _, sql := range shardLoadSQL(e.o.Scale, n, k) {
		if err := se.exec(ctx, k, db, sql); err != nil {
			return err
		}
	}
	if err := pgbenchInit("vp"); err != nil {
		return err
	}
	if err := se.exec(ctx, k, db, "CREATE EXTENSION IF NOT EXISTS pg_prewarm"); err == nil {
		_ = se.exec(ctx, k, db, `SELECT pg_prewarm(c.oid) FROM pg_class c WHERE c.relname LIKE 'pgbench\_%' AND c.relkind IN ('r', 'i')`)
	}
	var rows int64
	if err := se.queryRow(ctx, k, db, "SELECT count(*) FROM pgbench_accounts", &rows); err != nil {
		return err
	}
	e.logf("sharding: %s, database %s: shard %d of %d, %s accounts", se.names[k], db, k, n, thousands(rows))
	return nil
}

func (se *shardedEnv) connect(ctx context.Context, k int, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, se.nodes[k].ConnString(db, se.nodes[k].Superuser))
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", se.names[k], err)
	}
	return conn, nil
}

func (se *shardedEnv) exec(ctx context.Context, k int, db, sql string) error {
	conn, err := se.connect(ctx, k, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("bench: %s, %s: %s: %w", se.names[k], db, trunc(sql, 60), err)
	}
	return nil
}

func (se *shardedEnv) queryRow(ctx context.Context, k int, db, sql string, dst ...any) error {
	conn, err := se.connect(ctx, k, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql).Scan(dst...)
}

// startBelay registers the cluster of n shards in etcd (shard k: nodek,
// its primary; the sharding schema of n shards) and starts a pooler beside
// each of its nodes and a gateway in front of them.
func (se *shardedEnv) startBelay(ctx context.Context, e *env, n int) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := se.etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	cluster := shardedCluster(n)
	st, err := ha.NewStore(cli, cluster)
	if err != nil {
		return err
	}
	sc, err := shardedSchema(n)
	if err != nil {
		return err
	}
	if _, err := st.UpdateSharding(rctx, func(*shard.Schema) (*shard.Schema, error) { return sc, nil }); err != nil {
		return fmt.Errorf("bench: the sharding schema of %s: %w", cluster, err)
	}
	for k := range n {
		name := se.names[k]
		if _, err := st.PutNode(rctx, name, ha.NodeRecord{Shard: ha.ShardName(k), Addr: se.nodes[k].Addr(), State: ha.StateUp}); err != nil {
			return fmt.Errorf("bench: registering %s in %s: %w", name, cluster, err)
		}
		if _, _, err := st.CreateShard(rctx, ha.ShardName(k), ha.ShardRecord{Term: 1, Primary: name}); err != nil {
			return fmt.Errorf("bench: registering shard %d of %s: %w", k, cluster, err)
		}
	}
	common := []string{"--etcd", se.etcd.Endpoint(), "--cluster", cluster, "--pool-size", strconv.Itoa(e.o.PoolSize),
		"--log-level", "warn", "--auth-type", "trust"}
	db := shardedDB(n)
	for k := range n {
		port, err := freePort()
		if err != nil {
			return err
		}
		log := filepath.Join(se.dir, fmt.Sprintf("pooler-%d-%s.log", n, se.names[k]))
		args := append([]string{"pooler", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--server", se.nodes[k].Addr(), "--node", se.names[k]}, common...)
		p, err := startProcess("belay pooler", e.o.BelayExe, args, append(clientEnv(), e.o.BelayEnv...), log, nil, e.o.Placement)
		if err != nil {
			return err
		}
		se.poolers[n], se.logs[p] = append(se.poolers[n], p), log
		if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port), db); err != nil {
			return fmt.Errorf("%w\n--- pooler log ---\n%s", err, readTail(log, 2000))
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	log := filepath.Join(se.dir, fmt.Sprintf("gateway-%d.log", n))
	args := append([]string{"gateway", "--listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--health-user", "postgres",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", ports[1])}, common...)
	p, err := startProcess("belay gateway", e.o.BelayExe, args, append(clientEnv(), e.o.BelayEnv...), log, nil, e.o.Placement)
	if err != nil {
		return err
	}
	se.gateway[n], se.gatewayPort[n], se.metrics[n], se.logs[p] = p, ports[0], ports[1], log
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", ports[0]), db); err != nil {
		return fmt.Errorf("%w\n--- gateway log ---\n%s", err, readTail(log, 2000))
	}
	var pids []string
	for _, pl := range se.poolers[n] {
		pids = append(pids, strconv.Itoa(pl.pid))
	}
	e.logf("sharding: cluster %s: belay gateway (pid %d) on 127.0.0.1:%d, a belay pooler beside each of its %d nodes (pids %s)",
		cluster, p.pid, ports[0], n, strings.Join(pids, ", "))
	return nil
}

// check reads, through the gateway of n shards, the count of every
// shard's accounts (the scale's, once the gateway has the schema) and 50
// random accounts by key (each one row): the data are where belay looks.
func (se *shardedEnv) check(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable", se.gatewayPort[n], shardedDB(n)))
	if err != nil {
		return fmt.Errorf("bench: through the gateway of %d shards: %w", n, err)
	}
	defer conn.Close(context.Background())
	want := int64(100000 * se.info.Scale)
	var got int64
	for {
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_accounts", pgx.QueryExecModeSimpleProtocol).Scan(&got)
		if err == nil && got == want {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: count(*) of pgbench_accounts through the gateway of %d shards: %d, %v; want %d", n, got, err, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for range 50 {
		aid := 1 + rand.Int64N(want)
		var found int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pgbench_accounts WHERE aid = $1", aid).Scan(&found); err != nil || found != 1 {
			return fmt.Errorf("bench: account %d through the gateway of %d shards: %d rows, %v", aid, n, found, err)
		}
	}
	return nil
}

// target is the sharded target called name.
func (se *shardedEnv) target(name string) Target {
	t := Target{Name: name, Label: shardedLabel(name), Host: "127.0.0.1"}
	n, ok := parseShardedTarget(name)
	if !ok {
		t.Port, t.DB = se.nodes[0].Port, shardedDB(1)
		return t
	}
	g := se.gateway[n]
	t.Port, t.DB, t.PID = se.gatewayPort[n], shardedDB(n), g.pid
	t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", se.metrics[n])
	t.Parts = []Part{{Tier: "gateway", PID: g.pid}}
	for k, p := range se.poolers[n] {
		t.Parts = append(t.Parts, Part{Tier: "pooler " + se.names[k], PID: p.pid})
	}
	return t
}

// alive checks that belay's processes of target name still run.
func (se *shardedEnv) alive(name string) error {
	n, ok := parseShardedTarget(name)
	if !ok {
		return nil
	}
	for _, p := range append([]*process{se.gateway[n]}, se.poolers[n]...) {
		if p.exited() {
			return fmt.Errorf("bench: %s (pid %d) of %d shards exited: %v; log tail: %s", p.name, p.pid, n, p.err, readTail(se.logs[p], 1000))
		}
	}
	return nil
}

// nodeCPU is the CPU seconds each node has used (its cgroup's usage, or
// its processes') and its cgroup's statistics.
func (se *shardedEnv) nodeCPU() ([]float64, []cpuStat) {
	var secs []float64
	var stats []cpuStat
	for i, name := range se.names {
		st, _ := se.cg.stat(name)
		stats = append(stats, st)
		if st.HasUsage {
			secs = append(secs, float64(st.UsageUs)/1e6)
			continue
		}
		secs = append(secs, familyCPUSeconds(se.nodes[i].PID))
	}
	return secs, stats
}

// runSharded runs a sharded scenario: every round, each target of
// shardedTargets in turn.
func (e *env) runSharded(ctx context.Context, sc Scenario) (ScenarioResult, error) {
	if e.sh == nil {
		se, err := e.startSharded(ctx)
		e.sh = se
		if err != nil {
			return ScenarioResult{}, fmt.Errorf("%s: starting the shards: %w", sc.ID, err)
		}
		if se.skip != "" {
			e.logf("sharding skipped: %s", se.skip)
			e.notes = append(e.notes, "The sharded scenarios were skipped: "+se.skip)
		}
	}
	se := e.sh
	names := shardedTargets()
	info := se.info
	res := ScenarioResult{Scenario: sc, Sharded: &info}
	if se.skip != "" {
		info.Skipped = se.skip
		for _, name := range names {
			res.Rows = append(res.Rows, Row{Target: name, Label: shardedLabel(name), NA: "skipped: " + se.skip, CPUPer1k: -1})
		}
		return res, nil
	}
	run := sc
	run.PgbenchArgs = scriptArgs(se.scripts[sc.ID], e.o.Scale, sc.PgbenchArgs...)
	runs := map[string][]RunResult{}
	for round := 1; round <= e.o.Rounds; round++ {
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			if err := se.alive(name); err != nil {
				return ScenarioResult{}, fmt.Errorf("%s: %w", sc.ID, err)
			}
			t := se.target(name)
			r := RunResult{Scenario: sc.ID, Target: name, Round: round, CPUPer1k: -1}
			cpu0, st0 := se.nodeCPU()
			start := time.Now()
			if err := e.pgbenchInto(ctx, run, t, &r); err != nil {
				return ScenarioResult{}, fmt.Errorf("%s against %s: %w", sc.ID, t.Label, err)
			}
			cpu1, st1 := se.nodeCPU()
			r.ReadScale = nodeFigures(cpu0, cpu1, st0, st1, time.Since(start).Seconds())
			e.logf("round %d/%d  %-16s %-48s %s  nodes' CPU %s", round, e.o.Rounds, sc.ID, t.Label, summaryLine(sc, r), coresText(r.ReadScale.NodeCPU))
			runs[name] = append(runs[name], r)
		}
	}
	for _, name := range names {
		res.Rows = append(res.Rows, aggregate(name, shardedLabel(name), runs[name]))
	}
	info.Points = shardedPoints(&res)
	if d := res.Row(Direct); d != nil && d.NA == "" {
		info.DirectTPS = d.TPS
	}
	return res, nil
}

// close stops belay's processes, the nodes and etcd, and removes the
// cgroups.
func (se *shardedEnv) close(logf func(string, ...any)) {
	for _, n := range shardCounts {
		for _, p := range append([]*process{se.gateway[n]}, se.poolers[n]...) {
			if p != nil {
				if err := p.Stop(); err != nil {
					logf("%v", err)
				}
			}
		}
	}
	for _, inst := range se.nodes {
		if err := inst.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if se.etcd != nil {
		se.etcd.Stop()
	}
	if se.cg != nil {
		if err := se.cg.remove(); err != nil {
			logf("%v", err)
		}
	}
}
