package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/testcert"
)

// Options configure Run. The zero value of a field means its default.
type Options struct {
	// Quick runs the core scenarios only, with shorter runs: under 4 minutes
	// on a 2-core machine.
	Quick bool
	// Out is the directory for report.md, results.json and the charts.
	Out string
	// Duration of each timed run (default 5s quick, 20s full).
	Duration time.Duration
	// Rounds of every scenario (default 1 quick, 3 full); the report shows
	// the median across rounds.
	Rounds int
	// PoolSize is the server connections per pool of PgBouncer and belay (default 20).
	PoolSize int
	// Scale is pgbench's scale factor (default 10).
	Scale int
	// IdleClients held open by the idle scenario (default 1,000 quick, 10,000 full).
	IdleClients int
	// SlowDuration is how long the slow client reads (default 5s quick, 15s full).
	SlowDuration time.Duration
	// SlowRate is the slow client's reading rate in bytes/s (default 1 MiB/s).
	SlowRate int64
	// Scenarios replaces DefaultScenarios when not nil.
	Scenarios []Scenario
	// Only keeps the scenarios whose ID contains one of these strings.
	Only []string
	// Jobs is pgbench's threads per process (default: the number of cores).
	Jobs int
	// MaxClientsPerPgbench splits larger client counts over several pgbench
	// processes (default 500).
	MaxClientsPerPgbench int

	// BelayExe is the belay binary, run as `BelayExe proxy ...` (default:
	// this executable). BelayEnv is added to its environment.
	BelayExe string
	BelayEnv []string

	// Placement is where the proxies run with respect to the kernel's
	// autogroup scheduling (default PlaceOwnSession); the report states it.
	Placement Placement

	// NoPgBouncer leaves PgBouncer out (its rows say why).
	NoPgBouncer bool
	// NoTiers leaves belay's two tiers (gateway in front of pooler) out.
	NoTiers bool
	// InstallPgBouncer installs Debian's pgbouncer with apt-get when missing.
	InstallPgBouncer bool
	// InstallPgpool installs Debian's pgpool2 (pgpool-II, for the
	// read-scaling scenarios) with apt-get when missing.
	InstallPgpool bool
	// NodeCPU is the CPU quota, in cores, of each PostgreSQL node of the
	// read-scaling scenarios (default 0.4).
	NodeCPU float64
	// ShardNodeCPU is the CPU quota, in cores, of each shard's PostgreSQL
	// node in the sharded scenarios (default 0.2: the four nodes take 0.8
	// of a 2-core machine, pgbench and belay the rest).
	ShardNodeCPU float64
	// QuotaNodeCPU is the CPU quota, in cores, of the quota-halved
	// scenario's node before the halving (default 1; halved mid-run).
	QuotaNodeCPU float64
	// QuotaDuration is each run of the quota-halved scenario (default 1.5
	// times Duration, at least 10 s); the quota is halved at its midpoint.
	QuotaDuration time.Duration

	// InstallPatroni installs Debian's patroni and etcd-server (for the
	// failover scenario) with apt-get when missing.
	InstallPatroni bool
	// PatroniAsIs adds Patroni with its defaults as they are
	// (primary_start_timeout 300: it restarts a killed primary in place)
	// to the failover scenario's targets.
	PatroniAsIs bool
	// FailoverMaxWait bounds how long a failover run waits, after the
	// kill, for a write to be acknowledged (default 60s).
	FailoverMaxWait time.Duration
	// FailoverTargets, when not nil, keeps only these targets of the
	// failover scenario (belay, patroni-defaults-pst0, patroni-tuned-pst0,
	// patroni-defaults), in its order.
	FailoverTargets []string

	// FlameDir, when set, makes Run profile belay under each scenario
	// instead of comparing targets: DIR/<scenario>.svg and .pb.gz, and
	// DIR/README.md (see RunFlamegraphs).
	FlameDir string

	// WorkDir holds Postgres's data, logs and pgbench's logs (default: a new
	// temporary directory, removed at the end unless Keep).
	WorkDir string
	Keep    bool

	// Progress receives one line per step (default os.Stderr).
	Progress io.Writer
	// Command is the command line shown in the report.
	Command string
	// SourceDir is where the belay commit is read with git when BelayExe
	// did not record it (default ".").
	SourceDir string
	// NoCharts skips the PNG charts.
	NoCharts bool
	// WarmUp is the select-only pgbench run through every target before the
	// first scenario (default 1s; negative: none).
	WarmUp time.Duration
}

func (o *Options) setDefaults() error {
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
		if o.Quick {
			o.Duration = 5 * time.Second
		}
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
		if o.Quick {
			o.Rounds = 1
		}
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 20
	}
	if o.Scale <= 0 {
		o.Scale = 10
	}
	if o.IdleClients <= 0 {
		o.IdleClients = 10000
		if o.Quick {
			o.IdleClients = 1000
		}
	}
	if o.SlowDuration <= 0 {
		o.SlowDuration = 15 * time.Second
		if o.Quick {
			o.SlowDuration = 5 * time.Second
		}
	}
	if o.SlowRate <= 0 {
		o.SlowRate = 1 << 20
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.MaxClientsPerPgbench <= 0 {
		o.MaxClientsPerPgbench = 500
	}
	if o.NodeCPU <= 0 {
		o.NodeCPU = 0.4
	}
	if o.ShardNodeCPU <= 0 {
		o.ShardNodeCPU = 0.2
	}
	if o.QuotaNodeCPU <= 0 {
		o.QuotaNodeCPU = 1
	}
	if o.QuotaDuration <= 0 {
		o.QuotaDuration = max(10*time.Second, wholeSeconds(o.Duration*3/2))
	}
	if o.WarmUp == 0 {
		o.WarmUp = time.Second
	}
	if o.FailoverMaxWait <= 0 {
		o.FailoverMaxWait = time.Minute
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	switch o.Placement {
	case "":
		o.Placement = PlaceOwnSession
	case PlaceOwnSession, PlaceShared:
	default:
		return fmt.Errorf("bench: placement %q: want %s or %s", o.Placement, PlaceOwnSession, PlaceShared)
	}
	if o.SourceDir == "" {
		o.SourceDir = "."
	}
	if o.BelayExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: finding the belay binary: %w", err)
		}
		o.BelayExe = exe
	}
	if o.Scenarios == nil {
		o.Scenarios = DefaultScenarios(o.Quick, o.IdleClients)
	}
	if len(o.Only) > 0 {
		var keep []Scenario
		for _, s := range o.Scenarios {
			for _, w := range o.Only {
				if matchScenario(o.Scenarios, s.ID, strings.TrimSpace(w)) {
					keep = append(keep, s)
					break
				}
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("bench: no scenario matches %q", o.Only)
		}
		o.Scenarios = keep
	}
	if o.Out == "" && o.FlameDir == "" {
		o.Out = "bench-out"
	}
	return nil
}

// matchScenario reports whether the --scenarios term w selects id: the
// scenario of that exact ID if there is one, else every ID containing w.
func matchScenario(all []Scenario, id, w string) bool {
	for _, s := range all {
		if s.ID == w {
			return id == w
		}
	}
	return w != "" && strings.Contains(id, w)
}

// env is the running environment of one Run.
type env struct {
	o       Options
	start   time.Time
	work    string
	pgbench string
	pg      *pginstance.Instance

	bouncerBin   string
	bouncer      *process
	bouncerPt    int
	belay        *process
	belayPort    int
	belayMetrics int    // port of belay's /metrics
	noBouncer    string // why PgBouncer is not run, when it is not
	noTiers      string // why belay's two tiers are not run, when they are not
	notes        []string
	tls          testcert.Pair // the proxies' certificate for the TLS scenarios
	// budget, when > 0, is the server connections PgBouncer and belay
	// may open in all, for the "pgbench" database (max_db_connections,
	// --max-db-connections); they pick it up when they are (re)started.
	budget int
	// users are the roles the scenarios log in as (PgBouncer's auth_file).
	users []string
	// rs is the read-scaling cluster, started by its first scenario.
	rs *readScaleEnv
	// sh is the sharded scenarios' nodes and belay, started by the first.
	sh *shardedEnv
	// fo is the failover scenario's etcd and programs, started by it.
	fo *failoverEnv
	// tiers is belay's two tiers as a target (tiers.go).
	tiers *tiersEnv
	// variants are the belay variants of the scenario running, variant
	// the one whose process runs, if any (adaptive.go).
	variants []BelayVariant
	variant  *variantProc
	// qe is the quota-halved scenario's node, started by its first run.
	qe *quotaEnv

	mu sync.Mutex // guards progress output
}

func (e *env) logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.o.Progress, "[%4.0fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run starts the environment, runs every scenario against every target and
// writes the report to o.Out. With o.FlameDir set it runs RunFlamegraphs.
// Everything it starts is stopped before it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	e := &env{o: o, start: time.Now()}
	defer e.close()
	if err := e.setup(ctx, o.FlameDir == ""); err != nil {
		return nil, err
	}
	if o.FlameDir != "" {
		return nil, e.flamegraphs(ctx)
	}
	rep := &Report{Meta: e.meta(ctx)}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	e.warmUp(ctx)
	for _, sc := range o.Scenarios {
		res, err := e.runScenario(ctx, sc)
		if err != nil {
			return nil, err
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	rep.Meta.WallSeconds = time.Since(e.start).Seconds()
	rep.Meta.LoadEnd = loadAvg()
	rep.Meta.Notes = append(rep.Meta.Notes, e.notes...)
	if err := e.write(rep); err != nil {
		return rep, err
	}
	e.logf("done in %s: %s", time.Since(e.start).Round(time.Second), filepath.Join(o.Out, "report.md"))
	return rep, nil
}

func (e *env) setup(ctx context.Context, withBouncer bool) error {
	o := e.o
	if n := raiseNoFile(uint64(2*o.IdleClients + 4096)); n < uint64(o.IdleClients+1024) {
		e.logf("warning: RLIMIT_NOFILE is %d; %d idle clients may not fit", n, o.IdleClients)
	}
	var err error
	if e.pgbench, err = exec.LookPath("pgbench"); err != nil {
		if bd, berr := pginstance.FindBinDir(); berr == nil {
			if p := filepath.Join(bd, "pgbench"); fileExists(p) {
				e.pgbench, err = p, nil
			}
		}
		if err != nil {
			return errors.New("bench: pgbench not found (Debian: apt-get install postgresql-contrib, or make deps)")
		}
	}
	if o.WorkDir == "" {
		if e.work, err = os.MkdirTemp("", "belay-bench-"); err != nil {
			return err
		}
	} else {
		e.work = o.WorkDir
		if err := os.MkdirAll(e.work, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(e.work, 0o755); err != nil { // PostgreSQL and PgBouncer run as postgres
		return err
	}
	// A run of cluster scenarios only needs no single node, no
	// PgBouncer, no single-node belay.
	if !needsSingleNode(o.Scenarios) && o.FlameDir == "" {
		return nil
	}
	if withBouncer && !o.NoPgBouncer {
		e.bouncerBin, err = findPgBouncer(ctx, o.InstallPgBouncer, e.logf)
		if err != nil {
			e.noBouncer = err.Error()
			e.logf("PgBouncer left out: %v", err)
		}
	} else if withBouncer {
		e.noBouncer = "left out (--no-pgbouncer)"
	}
	e.users = append([]string{"postgres"}, noisyRoles(o.Scenarios)...)
	maxConns := 1100
	if o.Quick {
		maxConns = 400
	}
	for _, sc := range o.Scenarios {
		maxConns = max(maxConns, sc.Clients+100)
	}
	e.logf("starting PostgreSQL (max_connections=%d, fsync=off) in %s", maxConns, e.work)
	if e.pg, err = startPostgres(ctx, filepath.Join(e.work, "pg"), "", maxConns, o.Scale, e.pgbench, e.logf); err != nil {
		return err
	}
	if err := createRoles(ctx, e.pg, e.users[1:]); err != nil {
		return err
	}
	if e.tls, err = proxyCert(filepath.Join(e.work, "tls")); err != nil {
		return err
	}
	if e.bouncerBin != "" {
		if err := e.startBouncer(ctx); err != nil {
			return err
		}
	}
	if o.FlameDir == "" {
		if err := e.startBelay(ctx, ""); err != nil {
			return err
		}
		if !o.NoTiers {
			if err := e.startTiers(ctx); err != nil {
				e.noTiers = err.Error()
				e.notes = append(e.notes, "belay's two tiers left out: "+err.Error())
				e.logf("belay's two tiers left out: %v", err)
			}
		}
	}
	return nil
}

// needsSingleNode says whether some scenario of scs runs against the
// single PostgreSQL (and PgBouncer and belay in front of it): all but the
// failover, sharded and quota-halved scenarios, which start nodes of
// their own.
func needsSingleNode(scs []Scenario) bool {
	for _, s := range scs {
		if s.Kind != KindFailover && s.Kind != KindSharded && s.Kind != KindQuota {
			return true
		}
	}
	return false
}

func (e *env) startBouncer(ctx context.Context) error {
	maxClients := e.o.IdleClients + 2000
	p, port, err := startPgBouncer(ctx, e.bouncerBin, filepath.Join(e.work, "pgbouncer"), e.pg.Port, e.o.PoolSize, maxClients, e.budget, e.users, e.tls, e.o.Placement)
	if err != nil {
		return err
	}
	e.bouncer, e.bouncerPt = p, port
	e.logf("PgBouncer (pid %d) on 127.0.0.1:%d, pool_mode=transaction, default_pool_size=%d%s", p.pid, port, e.o.PoolSize,
		budgetText(e.budget, ", max_db_connections=%d"))
	return nil
}

func (e *env) startBelay(ctx context.Context, profile string) error {
	mport, err := freePort()
	if err != nil {
		return err
	}
	p, port, err := startBelay(ctx, e.o.BelayExe, e.o.BelayEnv, e.work, e.pg.Addr(), e.o.PoolSize, e.budget, profile, e.tls, mport, e.o.Placement)
	if err != nil {
		return err
	}
	e.belayMetrics = mport
	e.belay, e.belayPort = p, port
	e.logf("belay (pid %d) on 127.0.0.1:%d, --pool-size %d%s", p.pid, port, e.o.PoolSize, budgetText(e.budget, " --max-db-connections %d"))
	return nil
}

func (e *env) close() {
	if e.rs != nil {
		e.rs.close(e.logf)
	}
	if e.sh != nil {
		e.sh.close(e.logf)
	}
	if e.fo != nil {
		e.fo.close(e.logf)
	}
	e.stopVariant()
	if e.qe != nil {
		e.qe.close(e.logf)
	}
	if e.belay != nil {
		if err := e.belay.Stop(); err != nil {
			e.logf("%v", err)
		}
	}
	if e.tiers != nil {
		e.stopTiers()
		e.tiers.etcd.Stop()
	}
	if e.bouncer != nil {
		if err := e.bouncer.Stop(); err != nil {
			e.logf("%v", err)
		}
	}
	if e.pg != nil {
		if err := e.pg.Stop(); err != nil {
			e.logf("%v", err)
		}
	}
	if e.work != "" && e.o.WorkDir == "" && !e.o.Keep {
		_ = os.RemoveAll(e.work)
	}
}

// target returns the target called name, restarting its proxy if it died.
func (e *env) target(ctx context.Context, name string) (Target, string, error) {
	t := Target{Name: name, Label: targetLabel(name), Host: "127.0.0.1", DB: benchDB}
	switch name {
	case Direct:
		t.Port = e.pg.Port
	case PgBouncer, PgBouncerSession:
		if e.bouncer == nil {
			return t, "PgBouncer not available: " + e.noBouncer, nil
		}
		if e.bouncer.exited() {
			note := fmt.Sprintf("PgBouncer (pid %d) exited (%v) and was restarted; log: %s", e.bouncer.pid, e.bouncer.err,
				trunc(readTail(filepath.Join(e.work, "pgbouncer", "pgbouncer.log"), 400), 400))
			e.notes = append(e.notes, note)
			e.logf("%s", note)
			_ = e.bouncer.Stop()
			if err := e.startBouncer(ctx); err != nil {
				return t, "", err
			}
		}
		t.Port, t.PID = e.bouncerPt, e.bouncer.pid
		if name == PgBouncerSession {
			t.DB = benchDB + "_session"
		}
	case Belay:
		if e.belay.exited() {
			note := fmt.Sprintf("belay (pid %d) exited (%v) and was restarted; log tail: %s", e.belay.pid, e.belay.err,
				trunc(readTail(filepath.Join(e.work, "belay.log"), 600), 600))
			e.notes = append(e.notes, note)
			e.logf("%s", note)
			_ = e.belay.Stop()
			if err := e.startBelay(ctx, ""); err != nil {
				return t, "", err
			}
		}
		t.Port, t.PID = e.belayPort, e.belay.pid
		t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", e.belayMetrics)
	case BelayTiers:
		if e.noTiers != "" {
			return t, "belay's two tiers not available: " + e.noTiers, nil
		}
		return e.tiersTarget(ctx, t)
	default:
		if v, ok := e.variantNamed(name); ok {
			vt, err := e.variantTarget(ctx, v)
			return vt, "", err
		}
	}
	return t, "", nil
}

// restart stops the proxy of target name and starts a new one.
func (e *env) restart(ctx context.Context, name string) (Target, error) {
	switch name {
	case PgBouncer, PgBouncerSession:
		if e.bouncer != nil {
			if err := e.bouncer.Stop(); err != nil {
				return Target{}, err
			}
			if err := e.startBouncer(ctx); err != nil {
				return Target{}, err
			}
		}
	case Belay:
		if err := e.belay.Stop(); err != nil {
			return Target{}, err
		}
		if err := e.startBelay(ctx, ""); err != nil {
			return Target{}, err
		}
	case BelayTiers:
		if e.tiers != nil {
			e.stopTiers()
			if err := e.startTiers(ctx); err != nil {
				return Target{}, err
			}
		}
	default:
		if _, ok := e.variantNamed(name); ok {
			e.stopVariant() // target starts it again
		}
	}
	t, _, err := e.target(ctx, name)
	return t, err
}

// runScenario runs sc against every target, round by round (A B C A B C).
func (e *env) runScenario(ctx context.Context, sc Scenario) (ScenarioResult, error) {
	switch sc.Kind {
	case KindReadScale:
		return e.runReadScale(ctx, sc)
	case KindFailover:
		return e.runFailover(ctx, sc)
	case KindSharded:
		return e.runSharded(ctx, sc)
	case KindQuota:
		return e.runQuota(ctx, sc)
	}
	e.variants = sc.Variants
	defer func() {
		e.stopVariant()
		e.variants = nil
	}()
	names := targetsFor(sc, true, !e.o.NoTiers)
	runs := map[string][]RunResult{}
	for round := 1; round <= e.o.Rounds; round++ {
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return ScenarioResult{}, err
			}
			r := RunResult{Scenario: sc.ID, Target: name, Round: round, CPUPer1k: -1}
			t, na, err := e.target(ctx, name)
			if err != nil {
				return ScenarioResult{}, err
			}
			if na == "" && name == Direct && sc.DirectNA != "" {
				na = sc.DirectNA
			}
			if na != "" {
				r.NA = na
				runs[name] = append(runs[name], r)
				continue
			}
			switch sc.Kind {
			case KindPgbench:
				err = e.runPgbenchScenario(ctx, sc, t, &r)
			case KindIdle:
				// A fresh proxy, so that the RSS per idle client is not
				// hidden by memory earlier scenarios left allocated.
				if t, err = e.restart(ctx, name); err != nil {
					return ScenarioResult{}, err
				}
				if t.Second != nil {
					err = e.runIdleTiers(ctx, sc, t, &r)
				} else {
					err = e.runIdle(ctx, sc, t, &r)
				}
			case KindSlow:
				err = e.runSlow(ctx, t, &r)
			case KindNoisy:
				err = e.runNoisy(ctx, sc, t, &r)
			}
			if err != nil {
				return ScenarioResult{}, fmt.Errorf("%s against %s: %w", sc.ID, name, err)
			}
			if _, ok := e.variantNamed(name); ok {
				e.stopVariant() // each run of a variant starts it afresh
			}
			e.logf("round %d/%d  %-22s %-26s %s", round, e.o.Rounds, sc.ID, t.Label, summaryLine(sc, r))
			runs[name] = append(runs[name], r)
		}
	}
	res := ScenarioResult{Scenario: sc}
	for _, name := range names {
		res.Rows = append(res.Rows, aggregate(name, sc.label(name), runs[name]))
	}
	return res, nil
}

func summaryLine(sc Scenario, r RunResult) string {
	errs := r.Failed + int64(r.Aborted) + int64(r.ConnFails) + int64(r.IdleOpenErrors)
	if r.Hung {
		errs++
	}
	s := ""
	switch sc.Kind {
	case KindSlow:
		s = fmt.Sprintf("read %s at %s/s, RSS %s -> peak %s, query ended %s after the client left",
			mib(r.BytesRead), mib(int64(r.ReadRate)), mib(r.RSSBase), mib(r.RSSPeak), releaseText(r.ServerReleaseMs))
	case KindIdle:
		s = fmt.Sprintf("%d idle open, %s per idle client, workers %.0f tps, p99 %.2f ms", r.IdleOpened, bytesText(r.RSSPerIdle), r.TPS, r.P99)
	case KindNoisy:
		f := r.Noisy
		s = fmt.Sprintf("quiet's share %.2f (quiet %.0f tps, noisy %.0f tps), quiet p99 %s ms alone, %s ms with noisy",
			f.QuietShare, f.QuietTPS, f.NoisyTPS, ms(f.QuietAloneP99), ms(f.QuietP99))
		if f.Arrivals+f.CalmArrivals > 0 {
			s += fmt.Sprintf("; arrivals: median %s ms, p99 %s%s ms", ms(f.ArrivalP50), atLeast(*f), ms(f.ArrivalP99))
		}
		if f.ArrivalTimeouts > 0 {
			s += fmt.Sprintf(" (%d timed out)", f.ArrivalTimeouts)
		}
		s += fmt.Sprintf("; total %.0f tps", f.TotalTPS)
		if f.Limit != nil {
			s += "; limit " + limitText(f.Limit)
		}
		errs += int64(f.ArrivalErrors)
	default:
		s = fmt.Sprintf("%8.0f tps  p50 %.2f ms  p99 %.2f ms", r.TPS, r.P50, r.P99)
		if r.CPUPer1k >= 0 {
			s += fmt.Sprintf("  cpu %.3f s/1k tx", r.CPUPer1k)
		}
		if r.Limit != nil {
			s += "  limit " + limitText(r.Limit)
		}
	}
	if errs > 0 || len(r.Errors) > 0 {
		s += fmt.Sprintf("  errors %d", errs)
		if len(r.Errors) > 0 {
			s += ": " + trunc(r.Errors[0], 120)
		}
	}
	return s
}

// pgbenchRun runs pgbench for sc against t and fills r's pgbench figures
// and the proxy's CPU time.
func (e *env) pgbenchInto(ctx context.Context, sc Scenario, t Target, r *RunResult) error {
	prefix := filepath.Join(e.work, "pgbench-logs", fmt.Sprintf("%s-%s-r%d", sc.ID, t.Name, r.Round))
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	var before ProcStat
	if t.PID != 0 {
		before, _ = readProcStat(t.PID)
	}
	partsBefore := make([]ProcStat, len(t.Parts))
	for i, p := range t.Parts {
		partsBefore[i], _ = readProcStat(p.PID)
	}
	var hits0, misses0 uint64
	if t.Metrics != "" {
		hits0, misses0, _ = planCacheCounts(ctx, t.Metrics)
	}
	run, err := runPgbench(ctx, e.pgbench, pgbenchSpec{
		Host: t.Host, Port: t.Port, DB: t.DB, User: "postgres",
		Args: sc.PgbenchArgs, Clients: sc.Clients, Jobs: e.o.Jobs,
		Duration: e.o.Duration, LogPrefix: prefix, MaxClientsPerProc: e.o.MaxClientsPerPgbench,
		SSLMode: sslMode(sc),
	})
	if err != nil {
		return err
	}
	s := run.Summary
	r.TPS, r.Transactions, r.Failed, r.Aborted, r.ConnFails = s.TPS, s.Processed, s.Failed, s.Aborted, s.ConnFails
	r.Errors = s.Errors
	r.Hung = run.Killed
	r.Seconds = run.Wall.Seconds()
	r.Failed = max(s.Failed, run.Log.Failed) // the summary and the log count the same failures
	r.setLatencies(run.Log.Latencies)
	if t.Metrics != "" {
		// belay copies its counters out every 100 ms (at each loop's sweep).
		time.Sleep(300 * time.Millisecond)
		if hits, misses, err := planCacheCounts(ctx, t.Metrics); err == nil {
			r.PlanHits, r.PlanMisses = hits-hits0, misses-misses0
		}
	}
	if len(t.Parts) > 0 {
		r.CPUSeconds = 0
		for i, p := range t.Parts {
			after, err := readProcStat(p.PID)
			if err != nil {
				return nil
			}
			cpu := after.CPUSeconds() - partsBefore[i].CPUSeconds()
			r.CPUSeconds += cpu
			if r.Transactions > 0 {
				r.TierCPUPer1k = append(r.TierCPUPer1k, TierCPU{Tier: p.Tier, Per1k: cpu / float64(r.Transactions) * 1000})
			}
		}
		if r.Transactions > 0 {
			r.CPUPer1k = r.CPUSeconds / float64(r.Transactions) * 1000
		}
	} else if t.PID != 0 {
		if after, err := readProcStat(t.PID); err == nil {
			r.CPUSeconds = after.CPUSeconds() - before.CPUSeconds()
			if r.Transactions > 0 {
				r.CPUPer1k = r.CPUSeconds / float64(r.Transactions) * 1000
			}
		}
	}
	return nil
}

// warmUp runs a short select-only pgbench through every target, so that
// the proxies have opened their server connections and Postgres's caches are
// warm before the first timed run.
func (e *env) warmUp(ctx context.Context) {
	if e.o.WarmUp < 0 || e.pg == nil {
		return
	}
	for _, name := range []string{Direct, PgBouncer, PgBouncerSession, Belay} {
		t, na, err := e.target(ctx, name)
		if err != nil || na != "" {
			continue
		}
		run, err := runPgbench(ctx, e.pgbench, pgbenchSpec{
			Host: t.Host, Port: t.Port, DB: t.DB, User: "postgres", Args: []string{"-S"},
			Clients: 10, Jobs: e.o.Jobs, Duration: e.o.WarmUp,
		})
		if err == nil {
			e.logf("warm-up %-26s %8.0f tps", t.Label, run.Summary.TPS)
		}
	}
}

// runPgbenchScenario is one pgbench run of sc against t; through a belay
// variant, with its adaptive limit read meanwhile (see sampleLimit).
func (e *env) runPgbenchScenario(ctx context.Context, sc Scenario, t Target, r *RunResult) error {
	if _, ok := e.variantNamed(t.Name); !ok || t.Metrics == "" {
		return e.pgbenchInto(ctx, sc, t, r)
	}
	lim := sampleLimit(ctx, t.Metrics)
	start := time.Now()
	err := e.pgbenchInto(ctx, sc, t, r)
	samples := lim.stop()
	r.Limit = limitFigures(samples, start, start.Add(time.Duration(r.Seconds*float64(time.Second))))
	return err
}

// write writes report.md, results.json and the charts.
func (e *env) write(rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.o.Out, "results.json"), b, 0o644); err != nil {
		return err
	}
	var fcsv bytes.Buffer
	if ok, err := writeFailoverCSV(&fcsv, rep); err != nil {
		return err
	} else if ok {
		if err := os.WriteFile(filepath.Join(e.o.Out, "failover.csv"), fcsv.Bytes(), 0o644); err != nil {
			return err
		}
	}
	charts := map[string][]string{}
	if !e.o.NoCharts {
		if charts, err = WriteCharts(e.o.Out, rep); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(e.o.Out, "report.md"), []byte(RenderMarkdown(rep, charts)), 0o644)
}

func (e *env) meta(ctx context.Context) Meta {
	m := Meta{
		Command: e.o.Command, Started: e.start, Quick: e.o.Quick, Rounds: e.o.Rounds,
		Duration: e.o.Duration.Seconds(), PoolSize: e.o.PoolSize, Jobs: e.o.Jobs, Scale: e.o.Scale,
		Cores: runtime.NumCPU(), CPUModel: cpuModel(), Memory: memTotal(),
		BelayCommit: belayCommit(e.o.BelayExe, e.o.SourceDir),
		GoVersion:   runtime.Version(), SlowReadRate: e.o.SlowRate,
		PgBouncerVersion: "not run", LoadStart: loadAvg(), Placement: e.o.Placement.describe(),
	}
	if e.pg != nil {
		m.PostgresVersion = serverVersion(ctx, e.pg)
	} else if bd, err := pginstance.FindBinDir(); err == nil {
		m.PostgresVersion = programVersion(filepath.Join(bd, "postgres"))
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command(e.pgbench, "--version").Output(); err == nil {
		m.PgbenchVersion = strings.TrimSpace(string(out))
	}
	if e.bouncerBin != "" {
		m.PgBouncerVersion = pgbouncerVersion(e.bouncerBin)
	} else if e.noBouncer != "" {
		m.PgBouncerVersion = "not run: " + e.noBouncer
	}
	var kv []string
	s := pgSettings(0)
	for _, k := range []string{"shared_buffers", "fsync", "synchronous_commit", "full_page_writes"} {
		kv = append(kv, k+"="+s[k])
	}
	m.PostgresSettings = strings.Join(kv, ", ")
	return m
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// budgetText is format with budget, or "" for no budget.
func budgetText(budget int, format string) string {
	if budget <= 0 {
		return ""
	}
	return fmt.Sprintf(format, budget)
}
