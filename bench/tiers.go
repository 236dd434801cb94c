package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
)

// The two-tier target (issue I): `belay gateway` in front of a `belay
// pooler` beside the bench's Postgres, the node registered in an embedded
// etcd, each tier a process of its own started as belay proxy is (same
// pool size, same placement, the gateway with the same TLS certificate).
// Its CPU is measured for each tier.

// tiersEnv is the two-tier target's processes: two gateways, the
// second taking half of the idle clients of the idle scenario (and killed
// there), pgbench's workers on the first.
type tiersEnv struct {
	etcd            *etcdlocal.Server
	pooler, gateway *process
	gateway2        *process
	port, port2     int // the gateways'
	metrics         int // the first gateway's /metrics
	poolerMetrics   int // the pooler's /metrics: its node's limit
}

// tiersCluster is the cluster's name in the bench's etcd.
const tiersCluster = "bench-tiers"

// startTiers starts etcd once, then the pooler and the gateway.
func (e *env) startTiers(ctx context.Context) error {
	dir := filepath.Join(e.work, "tiers")
	if e.tiers == nil {
		ts := &tiersEnv{}
		var err error
		if ts.etcd, err = etcdlocal.Start(ctx, etcdlocal.Options{Dir: filepath.Join(dir, "etcd"), NoFsync: true, LogLevel: "warn"}); err != nil {
			return fmt.Errorf("bench: etcd for the two tiers: %w", err)
		}
		e.tiers = ts
		if err := registerNode(ctx, ts.etcd, e.pg.Addr()); err != nil {
			return err
		}
	}
	ts := e.tiers
	common := []string{"--etcd", ts.etcd.Endpoint(), "--cluster", tiersCluster, "--pool-size", strconv.Itoa(e.o.PoolSize),
		"--log-level", "warn", "--auth-type", "trust"}
	pargs := append([]string{"--server", e.pg.Addr(), "--node", "pg"}, common...)
	if e.budget > 0 {
		pargs = append(pargs, "--max-db-connections", strconv.Itoa(e.budget))
	}
	var err error
	if ts.poolerMetrics, err = freePort(); err != nil {
		return err
	}
	pargs = append(pargs, "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", ts.poolerMetrics))
	if ts.pooler, _, err = e.startTier(ctx, dir, "pooler", "pooler.log", pargs...); err != nil {
		return err
	}
	gargs := append([]string{"--tls-mode", "allow", "--tls-cert", e.tls.CertFile, "--tls-key", e.tls.KeyFile,
		"--health-user", "postgres"}, common...)
	if ts.metrics, err = freePort(); err != nil {
		return err
	}
	if ts.gateway, ts.port, err = e.startTier(ctx, dir, "gateway", "gateway.log",
		append(gargs, "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", ts.metrics))...); err != nil {
		return err
	}
	if ts.gateway2, ts.port2, err = e.startTier(ctx, dir, "gateway", "gateway2.log", gargs...); err != nil {
		return err
	}
	e.logf("belay gateways (pids %d, %d) on 127.0.0.1:%d and :%d in front of belay pooler (pid %d), --pool-size %d%s",
		ts.gateway.pid, ts.gateway2.pid, ts.port, ts.port2, ts.pooler.pid, e.o.PoolSize, budgetText(e.budget, ", the pooler's --max-db-connections %d"))
	return nil
}

// startTier starts `belay tier --listen 127.0.0.1:PORT args...` on a free
// port (its log in dir/logName) and waits until it serves.
func (e *env) startTier(ctx context.Context, dir, tier, logName string, args ...string) (*process, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	args = append([]string{tier, "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	p, err := startProcess("belay "+tier, e.o.BelayExe, args, append(clientEnv(), e.o.BelayEnv...),
		filepath.Join(dir, logName), nil, e.o.Placement)
	if err != nil {
		return nil, 0, err
	}
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port), benchDB); err != nil {
		_ = p.Stop()
		return nil, 0, fmt.Errorf("%w\n--- %s log ---\n%s", err, tier, readTail(filepath.Join(dir, logName), 2000))
	}
	return p, port, nil
}

// registerNode writes the bench's Postgres as the primary of
// tiersCluster's shard 0.
func registerNode(ctx context.Context, etcd *etcdlocal.Server, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := etcd.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	st, err := ha.NewStore(cli, tiersCluster)
	if err != nil {
		return err
	}
	if _, err := st.PutNode(ctx, "pg", ha.NodeRecord{Shard: "0", Addr: addr, State: ha.StateUp}); err != nil {
		return err
	}
	_, _, err = st.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: "pg"})
	return err
}

// stopTiers stops the gateways and the pooler (etcd stays, for a
// restart).
func (e *env) stopTiers() {
	for _, p := range []*process{e.tiers.gateway, e.tiers.gateway2, e.tiers.pooler} {
		if p != nil && !p.exited() {
			if err := p.Stop(); err != nil {
				e.logf("%v", err)
			}
		}
	}
	e.tiers.gateway, e.tiers.gateway2, e.tiers.pooler = nil, nil, nil
}

// tiersTarget is the two-tier target, its tiers started again if one
// died.
func (e *env) tiersTarget(ctx context.Context, t Target) (Target, string, error) {
	if e.tiers == nil || e.tiers.gateway == nil {
		return t, "the two tiers did not start: see the notes", nil
	}
	ts := e.tiers
	if ts.gateway.exited() || ts.gateway2.exited() || ts.pooler.exited() {
		note := fmt.Sprintf("a belay gateway (pids %d, %d) or the pooler (pid %d) exited and all were restarted; logs in %s",
			ts.gateway.pid, ts.gateway2.pid, ts.pooler.pid, filepath.Join(e.work, "tiers"))
		e.notes = append(e.notes, note)
		e.logf("%s", note)
		e.stopTiers()
		if err := e.startTiers(ctx); err != nil {
			return t, "", err
		}
	}
	t.Port, t.PID = ts.port, ts.gateway.pid
	t.Parts = []Part{{Tier: "gateway", PID: ts.gateway.pid}, {Tier: "pooler", PID: ts.pooler.pid}}
	t.Second = &Part{Tier: "gateway 2", PID: ts.gateway2.pid, Port: ts.port2}
	t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ts.metrics)
	t.LimitMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ts.poolerMetrics)
	return t, "", nil
}

// runIdleTiers is the idle scenario through the two tiers: the idle
// clients spread over both gateways, the RSS per idle client of each
// process, pgbench's workers on the first gateway; halfway through their
// run the second gateway is killed (kill -9): its idle clients are lost,
// the workers and the first gateway's idle clients must not notice.
func (e *env) runIdleTiers(ctx context.Context, sc Scenario, t Target, r *RunResult) error {
	defer func() { // the killed gateway back, for what follows (after the idle clients are closed)
		if g := e.tiers.gateway2; g != nil && g.exited() {
			e.stopTiers()
			if err := e.startTiers(ctx); err != nil {
				e.noTiers = err.Error()
			}
		}
	}()
	r.IdleWanted = sc.Idle
	time.Sleep(200 * time.Millisecond)
	procs := append(append([]Part(nil), t.Parts...), *t.Second)
	before := make([]int64, len(procs))
	for i, p := range procs {
		var err error
		if before[i], err = readRSS(p.PID); err != nil {
			return err
		}
	}
	start := time.Now()
	half := sc.Idle / 2
	first, fails1, err1 := holdIdle(ctx, t.Addr(), t.DB, sc.Idle-half, 64)
	defer closeAll(first)
	second, fails2, err2 := holdIdle(ctx, fmt.Sprintf("%s:%d", t.Host, t.Second.Port), t.DB, half, 64)
	defer closeAll(second)
	r.IdleOpenSecs = time.Since(start).Seconds()
	r.IdleOpened, r.IdleOpenErrors = len(first)+len(second), fails1+fails2
	time.Sleep(300 * time.Millisecond)
	var rssBefore, rssAfter int64
	for i, p := range procs {
		after, err := readRSS(p.PID)
		if err != nil {
			return err
		}
		rssBefore, rssAfter = rssBefore+before[i], rssAfter+after
		n := len(first)
		if p.Tier == "gateway 2" {
			n = len(second)
		} else if p.Tier == "pooler" {
			n = len(first) + len(second)
		}
		if n > 0 {
			r.TierRSSPerIdle = append(r.TierRSSPerIdle, TierCPU{Tier: p.Tier, Per1k: float64(after-before[i]) / float64(n)})
		}
	}
	r.RSSBefore, r.RSSIdle = rssBefore, rssAfter
	if r.IdleOpened > 0 {
		r.RSSPerIdle = float64(rssAfter-rssBefore) / float64(r.IdleOpened)
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-time.After(e.o.Duration / 2):
			_ = e.tiers.gateway2.Kill()
		case <-ctx.Done():
		}
	}()
	perr := e.pgbenchInto(ctx, sc, t, r)
	<-killed
	for _, fe := range []struct {
		n   int
		err error
	}{{fails1, err1}, {fails2, err2}} {
		if fe.err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%d idle connections failed: %v", fe.n, fe.err))
		}
	}
	if perr != nil {
		return perr
	}
	r.IdleStillOpen = stillOpen(first)
	r.KilledGatewayIdleOpen = stillOpen(second)
	r.KilledGatewayIdle = len(second)
	if r.IdleStillOpen < len(first) {
		r.Errors = append(r.Errors, fmt.Sprintf("%d idle connections of the gateway that was not killed were closed", len(first)-r.IdleStillOpen))
	}
	return nil
}
