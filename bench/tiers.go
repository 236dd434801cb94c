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

// tiersEnv is the two-tier target's processes.
type tiersEnv struct {
	etcd            *etcdlocal.Server
	pooler, gateway *process
	port            int // the gateway's
	metrics         int // the gateway's /metrics
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
	ppt, err := freePort()
	if err != nil {
		return err
	}
	common := []string{"--etcd", ts.etcd.Endpoint(), "--cluster", tiersCluster, "--pool-size", strconv.Itoa(e.o.PoolSize),
		"--log-level", "warn", "--auth-type", "trust"}
	pargs := append([]string{"pooler", "--listen", fmt.Sprintf("127.0.0.1:%d", ppt), "--server", e.pg.Addr(), "--node", "pg"}, common...)
	if e.budget > 0 {
		pargs = append(pargs, "--max-db-connections", strconv.Itoa(e.budget))
	}
	if ts.pooler, err = startProcess("belay pooler", e.o.BelayExe, pargs, append(clientEnv(), e.o.BelayEnv...),
		filepath.Join(dir, "pooler.log"), nil, e.o.Placement); err != nil {
		return err
	}
	if err := waitServing(ctx, ts.pooler, fmt.Sprintf("127.0.0.1:%d", ppt), benchDB); err != nil {
		return fmt.Errorf("%w\n--- pooler log ---\n%s", err, readTail(filepath.Join(dir, "pooler.log"), 2000))
	}
	if ts.port, err = freePort(); err != nil {
		return err
	}
	if ts.metrics, err = freePort(); err != nil {
		return err
	}
	gargs := append([]string{"gateway", "--listen", fmt.Sprintf("127.0.0.1:%d", ts.port),
		"--tls-mode", "allow", "--tls-cert", e.tls.CertFile, "--tls-key", e.tls.KeyFile,
		"--health-user", "postgres", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", ts.metrics)}, common...)
	if ts.gateway, err = startProcess("belay gateway", e.o.BelayExe, gargs, append(clientEnv(), e.o.BelayEnv...),
		filepath.Join(dir, "gateway.log"), nil, e.o.Placement); err != nil {
		return err
	}
	if err := waitServing(ctx, ts.gateway, fmt.Sprintf("127.0.0.1:%d", ts.port), benchDB); err != nil {
		return fmt.Errorf("%w\n--- gateway log ---\n%s", err, readTail(filepath.Join(dir, "gateway.log"), 2000))
	}
	e.logf("belay gateway (pid %d) on 127.0.0.1:%d in front of belay pooler (pid %d), --pool-size %d%s",
		ts.gateway.pid, ts.port, ts.pooler.pid, e.o.PoolSize, budgetText(e.budget, ", the pooler's --max-db-connections %d"))
	return nil
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

// stopTiers stops the gateway and the pooler (etcd stays, for a restart).
func (e *env) stopTiers() {
	for _, p := range []*process{e.tiers.gateway, e.tiers.pooler} {
		if p != nil {
			if err := p.Stop(); err != nil {
				e.logf("%v", err)
			}
		}
	}
	e.tiers.gateway, e.tiers.pooler = nil, nil
}

// tiersTarget is the two-tier target, its tiers started again if one
// died.
func (e *env) tiersTarget(ctx context.Context, t Target) (Target, string, error) {
	if e.tiers == nil || e.tiers.gateway == nil {
		return t, "the two tiers did not start: see the notes", nil
	}
	ts := e.tiers
	if ts.gateway.exited() || ts.pooler.exited() {
		note := fmt.Sprintf("belay gateway (pid %d) or pooler (pid %d) exited and both were restarted; logs in %s",
			ts.gateway.pid, ts.pooler.pid, filepath.Join(e.work, "tiers"))
		e.notes = append(e.notes, note)
		e.logf("%s", note)
		e.stopTiers()
		if err := e.startTiers(ctx); err != nil {
			return t, "", err
		}
	}
	t.Port, t.PID = ts.port, ts.gateway.pid
	t.Parts = []Part{{Tier: "gateway", PID: ts.gateway.pid}, {Tier: "pooler", PID: ts.pooler.pid}}
	t.Metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", ts.metrics)
	return t, "", nil
}
