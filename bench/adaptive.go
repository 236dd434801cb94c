package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/jackc/pgx/v5/pgconn"
)

// The adaptive-limit scenarios (issue Q: a self-tuning node budget; full
// runs, or --scenarios adaptive) measure belay's adaptive limit on a node's
// concurrency (`belay proxy --adaptive-limit`, on by default, with
// --max-db-connections its ceiling) against fixed budgets
// (`--adaptive-limit=false`, the budget exactly --max-db-connections):
//
//   - adaptive-noisy-j1, adaptive-noisy-j2: the noisy neighbour (runNoisy,
//     without the fresh users for the fixed budgets), the noisy user's
//     pgbench with -j 1 and -j 2, against PgBouncer (max_db_connections
//     10, as in noisy-neighbour), belay adaptive (ceiling 20) and belay
//     fixed at 3, 5, 8, 10 and 20;
//   - adaptive-sweep-readonly-c100, adaptive-sweep-tpc-b-c100: pgbench
//     -S and TPC-B at 100 clients, direct, PgBouncer (pool 20), belay
//     adaptive (ceiling 20) and belay fixed pools of 3, 5, 8, 10 and 20;
//   - adaptive-quota-halved, adaptive-quota-halved-heavy: a PostgreSQL of
//     its own in a cgroup whose CPU quota is halved midway through a
//     pgbench run of 100 clients (-S at Options.QuotaNodeCPU; a range read
//     of 5,000 accounts at 2 cores), belay adaptive (ceiling 20) against
//     belay fixed 20 (runQuota).
//
// Each belay of these scenarios is a BelayVariant: a `belay proxy` with
// settings of its own, started afresh for each run (each phase of a noisy
// run) and stopped after it. belay_node_limit is read from its /metrics
// every limitSampleEvery while it is measured.

// sweepBudgets are the fixed budgets the adaptive limit is compared with.
var sweepBudgets = []int{3, 5, 8, 10, 20}

// adaptiveCeiling is the adaptive limit's ceiling in these scenarios
// (--max-db-connections, and --pool-size).
const adaptiveCeiling = 20

// limitSampleEvery is how often belay_node_limit is read.
const limitSampleEvery = 250 * time.Millisecond

// BelayVariant is belay proxy started with settings of its own, a target
// of its own (Name) in the scenarios that list it (Scenario.Variants).
type BelayVariant struct {
	Name  string `json:"name"`  // the target's name: "belay-adaptive", "belay-fixed-5"
	Label string `json:"label"` // as the report shows it
	// PoolSize is its --pool-size (0: Options.PoolSize).
	PoolSize int `json:"pool_size,omitempty"`
	// MaxDB is its --max-db-connections: the adaptive limit's ceiling,
	// or with Fixed the budget itself.
	MaxDB int `json:"max_db_connections"`
	// Fixed turns the adaptive limit off (--adaptive-limit=false): one of
	// the sweep's fixed budgets.
	Fixed bool `json:"fixed,omitempty"`
}

// args are the variant's flags besides --pool-size and --max-db-connections.
func (v BelayVariant) args() []string {
	if v.Fixed {
		return []string{"--adaptive-limit=false"}
	}
	return []string{"--adaptive-limit=true"}
}

// flagsText is the variant's flags as the report shows them.
func (v BelayVariant) flagsText(defaultPool int) string {
	pool := v.PoolSize
	if pool <= 0 {
		pool = defaultPool
	}
	return fmt.Sprintf("`%s --pool-size %d --max-db-connections %d`", v.args()[0], pool, v.MaxDB)
}

// adaptiveVariantName is the target name of belay with the adaptive limit.
const adaptiveVariantName = "belay-adaptive"

// fixedVariantName is the target name of belay with a fixed budget of b.
func fixedVariantName(b int) string { return "belay-fixed-" + strconv.Itoa(b) }

func adaptiveVariant() BelayVariant {
	return BelayVariant{Name: adaptiveVariantName, Label: fmt.Sprintf("belay adaptive (ceiling %d)", adaptiveCeiling),
		PoolSize: adaptiveCeiling, MaxDB: adaptiveCeiling}
}

func fixedVariant(b, pool int) BelayVariant {
	return BelayVariant{Name: fixedVariantName(b), Label: fmt.Sprintf("belay fixed %d", b), PoolSize: pool, MaxDB: b, Fixed: true}
}

// sweepVariants are belay adaptive and belay fixed at each of sweepBudgets;
// with fixedPool the fixed ones' pool size is their budget too, else
// adaptiveCeiling.
func sweepVariants(fixedPool bool) []BelayVariant {
	vs := []BelayVariant{adaptiveVariant()}
	for _, b := range sweepBudgets {
		pool := adaptiveCeiling
		if fixedPool {
			pool = b
		}
		vs = append(vs, fixedVariant(b, pool))
	}
	return vs
}

// adaptiveScenarios are the adaptive-limit scenarios of full runs.
func adaptiveScenarios() []Scenario {
	budgets := budgetsText(sweepBudgets)
	noisy := func(jobs int) Scenario {
		sc := noisyScenario(fmt.Sprintf("adaptive-noisy-j%d", jobs), "`-S -M simple`", "-S", "-M", "simple")
		sc.Title = fmt.Sprintf("adaptive limit, noisy neighbour (noisy's pgbench `-j %d`): user `noisy` with 100 clients flat out, "+
			"user `quiet` with 4 (`-S -M simple`); belay adaptive (ceiling %d) against belay fixed at %s and PgBouncer (max_db_connections 10)",
			jobs, adaptiveCeiling, budgets)
		sc.NoisyJobs = jobs
		sc.Variants = sweepVariants(false)
		return sc
	}
	sweep := func(id, what string, args ...string) Scenario {
		return Scenario{
			ID: id,
			Title: fmt.Sprintf("adaptive limit, budget sweep: %s, 100 clients; belay adaptive (ceiling %d) against belay's fixed pools of %s",
				what, adaptiveCeiling, budgets),
			PgbenchArgs: args, Clients: 100, Variants: sweepVariants(true),
		}
	}
	return []Scenario{
		noisy(1),
		noisy(2),
		sweep("adaptive-sweep-readonly-c100", "select-only (`-S -M simple`)", "-S", "-M", "simple"),
		sweep("adaptive-sweep-tpc-b-c100", "TPC-B-like, the default script (`-M simple`)", "-M", "simple"),
		quota("adaptive-quota-halved", "select-only (`-S -M simple`)", "", 0, "-S", "-M", "simple"),
		quota("adaptive-quota-halved-heavy", "a read of 5,000 accounts' range (`-M simple`)", quotaHeavyScript, 2, "-M", "simple"),
	}
}

// quotaHeavyScript is the heavy quota-halved scenario's read: an index
// range scan of 5,000 accounts, about 0.4 ms of a core each. The node's own
// work then dwarfs pgbench's and belay's, so a node of 2 cores uses them
// (pgbench -S at 100 clients leaves a node about one of this machine's two
// cores), and the limit settles above the band's floor: room for it to
// fall when the quota halves (measured: 5, then 4). With -S at 1 core the
// floor, 3, is the limit before and after.
const quotaHeavyScript = `\set aid random(1, 100000 * :scale - 4999)
SELECT sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 4999;
`

// quota is a quota-halved scenario: pgbench's 100 clients running script
// (none: the built-in one args name) through belay adaptive and belay fixed
// at the ceiling, the node at cores (0: Options.QuotaNodeCPU) halved
// mid-run.
func quota(id, what, script string, cores float64, args ...string) Scenario {
	return Scenario{
		ID: id,
		Title: fmt.Sprintf("adaptive limit, a node's CPU quota halved mid-run: %s, 100 clients, belay adaptive (ceiling %d) against belay fixed %d",
			what, adaptiveCeiling, adaptiveCeiling),
		Kind: KindQuota, PgbenchArgs: args, Clients: 100, Script: script, QuotaCores: cores,
		Variants: []BelayVariant{adaptiveVariant(), fixedVariant(adaptiveCeiling, adaptiveCeiling)},
	}
}

// budgetsText is "3, 5, 8, 10 and 20".
func budgetsText(bs []int) string {
	s := ""
	for i, b := range bs {
		switch {
		case i == 0:
		case i == len(bs)-1:
			s += " and "
		default:
			s += ", "
		}
		s += strconv.Itoa(b)
	}
	return s
}

// variantProc is a BelayVariant's running process.
type variantProc struct {
	v             BelayVariant
	p             *process
	port, metrics int
	dir           string // its log is dir/belay.log
}

// variantNamed is the variant of the running scenario called name.
func (e *env) variantNamed(name string) (BelayVariant, bool) {
	for _, v := range e.variants {
		if v.Name == name {
			return v, true
		}
	}
	return BelayVariant{}, false
}

// startVariant starts v in front of the PostgreSQL at server.
func (e *env) startVariant(ctx context.Context, v BelayVariant, server string) (*variantProc, error) {
	dir := filepath.Join(e.work, "variants", v.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	pool := v.PoolSize
	if pool <= 0 {
		pool = e.o.PoolSize
	}
	p, port, err := startBelay(ctx, e.o.BelayExe, e.o.BelayEnv, dir, server, pool, v.MaxDB, "", e.tls, mport, e.o.Placement, v.args()...)
	if err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", v.Label, err)
	}
	return &variantProc{v: v, p: p, port: port, metrics: mport, dir: dir}, nil
}

// target is the variant's target.
func (vp *variantProc) target() Target {
	return Target{Name: vp.v.Name, Label: vp.v.Label, Host: "127.0.0.1", Port: vp.port, DB: benchDB, PID: vp.p.pid,
		Metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", vp.metrics)}
}

// variantTarget is the target of variant v in front of the bench's
// PostgreSQL, started when it does not run (another variant running is
// stopped first).
func (e *env) variantTarget(ctx context.Context, v BelayVariant) (Target, error) {
	if vp := e.variant; vp != nil && (vp.v.Name != v.Name || vp.p.exited()) {
		if vp.p.exited() {
			note := fmt.Sprintf("%s (pid %d) exited (%v); log tail: %s", vp.v.Label, vp.p.pid, vp.p.err,
				trunc(readTail(filepath.Join(vp.dir, "belay.log"), 600), 600))
			e.notes = append(e.notes, note)
			e.logf("%s", note)
		}
		e.stopVariant()
	}
	if e.variant == nil {
		vp, err := e.startVariant(ctx, v, e.pg.Addr())
		if err != nil {
			return Target{}, err
		}
		e.variant = vp
	}
	return e.variant.target(), nil
}

// stopVariant stops the running variant, if any.
func (e *env) stopVariant() {
	if e.variant == nil {
		return
	}
	if err := e.variant.p.Stop(); err != nil {
		e.logf("%v", err)
	}
	e.variant = nil
}

// limitSample is belay's adaptive limit read from its /metrics at a moment.
type limitSample struct {
	At time.Time
	nodeLimit
}

// limitSampler reads belay_node_limit every limitSampleEvery.
type limitSampler = sampler[limitSample]

// sampleLimit starts reading the limit from the /metrics at url. A failed
// read is skipped.
func sampleLimit(ctx context.Context, url string) *limitSampler {
	return startSampler(ctx, limitSampleEvery, func() (func(time.Time) (limitSample, bool), func(), error) {
		return func(at time.Time) (limitSample, bool) {
			body, err := fetchMetrics(ctx, url)
			if err != nil {
				return limitSample{}, false
			}
			nl, ok := parseNodeLimit(body)
			return limitSample{At: at, nodeLimit: nl}, ok
		}, nil, nil
	})
}

// fetchMetrics reads the Prometheus text at url.
func fetchMetrics(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("bench: %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return string(b), err
}

// quotaEnv is the quota-halved scenario's PostgreSQL, in a cgroup of its
// own, started by its first run and stopped by env.close.
type quotaEnv struct {
	skip   string // why the scenario cannot run here, when it cannot
	cgroup string // QuotaInfo.Cgroup
	dir    string
	cg     *nodeCgroups
	pg     *pginstance.Instance
}

// quotaInfo is sc's setup: its node's quota (Scenario.QuotaCores, else
// Options.QuotaNodeCPU) before and after the halving.
func (e *env) quotaInfo(sc Scenario) (QuotaInfo, error) {
	cores := sc.QuotaCores
	if cores <= 0 {
		cores = e.o.QuotaNodeCPU
	}
	full, err := cpuQuotaUs(cores, quotaPeriodUs)
	if err != nil {
		return QuotaInfo{}, err
	}
	half, err := cpuQuotaUs(cores/2, quotaPeriodUs)
	if err != nil {
		return QuotaInfo{}, err
	}
	return QuotaInfo{CoresBefore: cores, CoresAfter: cores / 2, QuotaBeforeUs: full, QuotaAfterUs: half, PeriodUs: quotaPeriodUs,
		Seconds: e.o.QuotaDuration.Seconds(), HalvedAt: e.o.QuotaDuration.Seconds() / 2, Scale: e.o.Scale}, nil
}

// quotaNode is the name of the quota-halved scenario's node cgroup.
const quotaNode = "quota-node"

// quotaPeriodUs is the CFS period of the quota-halved node: 10 ms, as the
// sharded nodes' (shardCPUPeriodUs says why: with 100 ms periods a node
// that used up its quota stalls every client for the rest of the period,
// and the latencies measured would be the stalls').
const quotaPeriodUs = shardCPUPeriodUs

// startQuota starts the quota-halved scenario's node: a PostgreSQL in a
// cgroup (no quota yet) with pgbench's tables at Options.Scale. It returns
// one with skip set when CPU limits cannot be had here.
func (e *env) startQuota(ctx context.Context) (*quotaEnv, error) {
	o := e.o
	qe := &quotaEnv{dir: filepath.Join(e.work, "quota")}
	var err error
	if qe.cg, err = newNodeCgroups([]string{quotaNode}); err != nil {
		qe.skip = "cannot limit the node's CPU: " + err.Error()
		return qe, nil
	}
	qe.cgroup = fmt.Sprintf("%s (the cpu controller's hierarchy at %s)", qe.cg.h.Version, qe.cg.h.Mount)
	if err := os.MkdirAll(qe.dir, 0o755); err != nil {
		return qe, err
	}
	e.logf("quota halved: PostgreSQL in %s, in cgroup %s (%s)", qe.dir, qe.cg.dir(quotaNode), qe.cgroup)
	if qe.pg, err = startPostgres(ctx, filepath.Join(qe.dir, "pg"), qe.cg.dir(quotaNode), 300, o.Scale, e.pgbench, e.logf); err != nil {
		return qe, fmt.Errorf("bench: the quota-halved scenario's PostgreSQL: %w", err)
	}
	if conn, err := pgconn.Connect(ctx, qe.pg.ConnString(benchDB, qe.pg.Superuser)); err == nil {
		_ = conn.Exec(ctx, "CHECKPOINT").Close() // pgbench -i's writes, before the quota
		_ = conn.Close(ctx)
	}
	if e.tls.CertFile == "" { // a run of this scenario alone starts no single node
		if e.tls, err = proxyCert(filepath.Join(e.work, "tls")); err != nil {
			return qe, err
		}
	}
	return qe, nil
}

// close stops the node and removes its cgroup.
func (qe *quotaEnv) close(logf func(string, ...any)) {
	if qe.pg != nil {
		if err := qe.pg.Stop(); err != nil {
			logf("%v", err)
		}
	}
	if qe.cg != nil {
		if err := qe.cg.remove(); err != nil {
			logf("%v", err)
		}
	}
}

// runQuota runs the quota-halved scenario: every round, each variant of
// sc in turn, each afresh in front of the node, the node given its full
// quota before each run (see quotaRun).
func (e *env) runQuota(ctx context.Context, sc Scenario) (ScenarioResult, error) {
	if e.qe == nil {
		qe, err := e.startQuota(ctx)
		e.qe = qe
		if err != nil {
			return ScenarioResult{}, fmt.Errorf("%s: starting its PostgreSQL: %w", sc.ID, err)
		}
		if qe.skip != "" {
			e.logf("quota halved skipped: %s", qe.skip)
			e.notes = append(e.notes, "The quota-halved scenario was skipped: "+qe.skip)
		}
	}
	qe := e.qe
	info, err := e.quotaInfo(sc)
	if err != nil {
		return ScenarioResult{}, err
	}
	info.Cgroup = qe.cgroup
	res := ScenarioResult{Scenario: sc, Quota: &info}
	if qe.skip != "" {
		info.Skipped = qe.skip
		for _, v := range sc.Variants {
			res.Rows = append(res.Rows, Row{Target: v.Name, Label: v.Label, NA: "skipped: " + qe.skip, CPUPer1k: -1})
		}
		return res, nil
	}
	args := sc.PgbenchArgs
	if sc.Script != "" {
		path := filepath.Join(qe.dir, sc.ID+".sql")
		if err := os.WriteFile(path, []byte(sc.Script), 0o644); err != nil {
			return ScenarioResult{}, err
		}
		args = scriptArgs(path, e.o.Scale, args...)
	}
	runs := map[string][]RunResult{}
	for round := 1; round <= e.o.Rounds; round++ {
		for _, v := range sc.Variants {
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			r := RunResult{Scenario: sc.ID, Target: v.Name, Round: round, CPUPer1k: -1}
			if err := e.quotaRun(ctx, sc, args, info, v, &r); err != nil {
				return ScenarioResult{}, fmt.Errorf("%s against %s: %w", sc.ID, v.Label, err)
			}
			e.logf("round %d/%d  %-22s %-26s %s", round, e.o.Rounds, sc.ID, v.Label, quotaLine(r))
			runs[v.Name] = append(runs[v.Name], r)
		}
	}
	for _, v := range sc.Variants {
		res.Rows = append(res.Rows, aggregate(v.Name, v.Label, runs[v.Name]))
	}
	return res, nil
}

// quotaRun is one run of the quota-halved scenario sc through v: the node
// at its full quota (info), v started afresh in front of it, pgbench with
// args for QuotaDuration, the quota halved at its midpoint,
// belay_node_limit sampled throughout.
func (e *env) quotaRun(ctx context.Context, sc Scenario, args []string, info QuotaInfo, v BelayVariant, r *RunResult) (err error) {
	qe := e.qe
	if err := qe.cg.limitPeriod(quotaNode, info.QuotaBeforeUs, quotaPeriodUs); err != nil {
		return err
	}
	vp, err := e.startVariant(ctx, v, qe.pg.Addr())
	if err != nil {
		return err
	}
	defer func() {
		if serr := vp.p.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	t := vp.target()
	prefix := filepath.Join(e.work, "pgbench-logs", fmt.Sprintf("%s-%s-r%d", sc.ID, v.Name, r.Round))
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	before, _ := readProcStat(t.PID)
	st0, _ := qe.cg.stat(quotaNode)
	lim := sampleLimit(ctx, t.Metrics)
	start := time.Now()
	bg := e.runBackground(ctx, pgbenchSpec{
		Host: t.Host, Port: t.Port, DB: t.DB, User: "postgres", Args: args, Clients: sc.Clients, Jobs: e.o.Jobs,
		Duration: e.o.QuotaDuration, LogPrefix: prefix, MaxClientsPerProc: e.o.MaxClientsPerPgbench,
	})
	sleepCtx(ctx, e.o.QuotaDuration/2)
	halved := time.Now()
	st1, _ := qe.cg.stat(quotaNode)
	herr := qe.cg.limitPeriod(quotaNode, info.QuotaAfterUs, quotaPeriodUs)
	run, rerr := bg.wait()
	end := time.Now()
	samples := lim.stop()
	st2, _ := qe.cg.stat(quotaNode)
	if err := errors.Join(herr, rerr); err != nil {
		return err
	}
	r.addPgbench("pgbench", run)
	r.TPS, r.Transactions, r.Seconds = run.Summary.TPS, run.Summary.Processed, run.Wall.Seconds()
	r.setLatencies(append([]float64(nil), run.Log.Latencies...))
	if after, err := readProcStat(t.PID); err == nil && r.Transactions > 0 {
		r.CPUSeconds = after.CPUSeconds() - before.CPUSeconds()
		r.CPUPer1k = r.CPUSeconds / float64(r.Transactions) * 1000
	}
	r.Quota = quotaFigures(run.Log, samples, start, halved, end)
	r.Quota.ThrottledBefore, r.Quota.ThrottledAfter = throttledShare(st0, st1), throttledShare(st1, st2)
	return nil
}

// throttledShare is the share of the CFS periods between a and b in
// which the node used up its quota.
func throttledShare(a, b cpuStat) float64 {
	if p := b.Periods - a.Periods; p > 0 {
		return float64(b.Throttled-a.Throttled) / float64(p)
	}
	return 0
}
