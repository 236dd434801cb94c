package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

// clusterOptions are belay proxy's flags for serving a cluster from etcd.
type clusterOptions struct {
	etcd, cluster, shard *string
	maxLag               *time.Duration
	maxLagBytes          *uint64
	consistency          *string
	healthUser, healthDB *string
	failoverHold         *time.Duration
	proxy                proxyRef
	// store is the cluster's, once apply connected to etcd.
	store *ha.Store
}

// proxyRef is the proxy a watch of the topology tells of each change, once
// it runs (it applies a new topology at once, not at its next tick).
type proxyRef struct{ p atomic.Pointer[loop.Proxy] }

// started is called with the proxy once it runs.
func (r *proxyRef) started(p *loop.Proxy) { r.p.Store(p) }

// changed is the watch's OnChange.
func (r *proxyRef) changed(*ha.Topology) {
	if p := r.p.Load(); p != nil {
		p.TopologyChanged()
	}
}

func (o *clusterOptions) define(fs *flag.FlagSet) {
	o.etcd = fs.String("etcd", "", "serve the cluster whose topology etcd holds (comma-separated endpoints) instead of --server")
	o.cluster = fs.String("cluster", "local", "with --etcd: the cluster's name (its keys are under /belay/NAME/)")
	o.shard = fs.String("shard", "", "with --etcd: the shard served (default: the first)")
	o.maxLag = fs.Duration("max-replica-lag", time.Second, "a replica further behind its primary than this gets no reads (0: no bound)")
	o.maxLagBytes = fs.Uint64("max-replica-lag-bytes", 16<<20, "a replica this many bytes of WAL behind gets no reads (0: no bound)")
	o.consistency = fs.String("consistency", "session", "session (read-your-writes: a client's reads see its own writes) or eventual (reads go to any replica within the lag limits); SET belay.consistency per session")
	o.healthUser = fs.String("health-user", "postgres", "user the nodes' health checks log in as (its password from --passfile)")
	o.healthDB = fs.String("health-dbname", "postgres", "database the health checks connect to")
	o.failoverHold = fs.Duration("failover-hold", 10*time.Second, "while the primary is lost, statements for it wait this long for a new one to be published (then 57P03); 0: not held")
}

// apply sets cfg up to serve the cluster, if --etcd says so: it connects to
// etcd, loads the topology and watches it. stop ends the watch.
func (o *clusterOptions) apply(ctx context.Context, cfg *loop.Config, passfile string, logger *slog.Logger) (stop func(), err error) {
	switch *o.consistency {
	case "session":
	case "eventual":
		cfg.Eventual = true
	default:
		return nil, fmt.Errorf("--consistency %q: use session or eventual", *o.consistency)
	}
	cfg.MaxReplicaLag, cfg.MaxReplicaLagBytes = *o.maxLag, *o.maxLagBytes
	if *o.etcd == "" {
		return func() {}, nil
	}
	w, st, stop, err := watchCluster(ctx, splitList(*o.etcd), *o.cluster, logger, o.proxy.changed)
	if err != nil {
		return nil, err
	}
	o.store = st
	cfg.Cluster, cfg.ClusterShard = w, *o.shard
	cfg.FailoverHold = *o.failoverHold
	if cfg.FailoverHold == 0 {
		cfg.FailoverHold = -1 // loop.Config: negative is never
	}
	cfg.HealthDial = healthDial(*o.healthUser, *o.healthDB, passfile, serverTLSOf(cfg))
	cfg.Switchover = func(ctx context.Context, node string) (string, error) { return switchover(ctx, st, *o.shard, node) }
	cfg.RecordDecision, cfg.ForgetDecision = st.RecordDecision, st.ForgetDecision // a sharded cluster's two-phase commits (loop/spread.go)
	return stop, nil
}

// watchCluster connects to etcd and watches cluster's topology (onChange,
// if not nil, is called with each new one); it waits (up to 10 s) for one
// with a primary.
func watchCluster(ctx context.Context, endpoints []string, cluster string, logger *slog.Logger,
	onChange func(*ha.Topology)) (*ha.Watcher, *ha.Store, func(), error) {
	cli, err := etcdlocal.NewClient(endpoints)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	store, err := ha.NewStore(cli, cluster)
	if err != nil {
		_ = cli.Close()
		return nil, nil, nil, err
	}
	// The watch lives as long as ctx; the first load and the wait for a
	// primary are bounded.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := store.Watch(ctx, ha.WatchOptions{Logger: logger, OnChange: onChange})
	if err != nil {
		_ = cli.Close()
		return nil, nil, nil, fmt.Errorf("etcd %v, cluster %q: %w", endpoints, cluster, err)
	}
	stop := func() { w.Stop(); _ = cli.Close() }
	for {
		if t := w.Current(); t != nil && len(t.Shards) > 0 && t.Shards[0].PrimaryNode() != nil {
			return w, store, stop, nil
		}
		select {
		case <-lctx.Done():
			stop()
			return nil, nil, nil, fmt.Errorf("cluster %q in etcd %v has no primary", cluster, endpoints)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dialDB opens a connection as user to any database of a node (the
// resolver of two-phase commits finishes a transaction in its own).
func dialDB(user, passfile string) func(ctx context.Context, addr, db string) (*pgx.Conn, error) {
	return func(ctx context.Context, addr, db string) (*pgx.Conn, error) {
		return healthDial(user, db, passfile)(ctx, addr)
	}
}

// healthDial opens a health check's connection to a node as user, with
// the TLS of belay's connections to its servers (tls; its zero value is
// sslmode=prefer).
func healthDial(user, dbname, passfile string, tls ...serverTLS) func(ctx context.Context, addr string) (*pgx.Conn, error) {
	st := serverTLS{mode: "prefer"}
	if len(tls) > 0 && tls[0].mode != "" {
		st = tls[0]
	}
	return func(ctx context.Context, addr string) (*pgx.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cs := fmt.Sprintf("host=%s port=%s user=%s dbname=%s application_name=belay_health", quoteConninfo(host), port, user, dbname)
		cs += st.conninfo()
		if passfile != "" {
			cs += " passfile=" + quoteConninfo(passfile)
		}
		return pgx.Connect(ctx, cs)
	}
}

// serverTLS is how belay reaches its servers: libpq's sslmode and files.
type serverTLS struct{ mode, ca, cert, key string }

// serverTLSOf is the TLS cfg gives belay's server connections.
func serverTLSOf(cfg *loop.Config) serverTLS {
	return serverTLS{mode: cfg.ServerTLSMode, ca: cfg.ServerTLSCAFile, cert: cfg.ServerTLSCertFile, key: cfg.ServerTLSKeyFile}
}

// conninfo is st as libpq keywords, each after a space.
func (st serverTLS) conninfo() string {
	s := " sslmode=" + st.mode
	for _, kv := range [][2]string{{"sslrootcert", st.ca}, {"sslcert", st.cert}, {"sslkey", st.key}} {
		if kv[1] != "" {
			s += " " + kv[0] + "=" + quoteConninfo(kv[1])
		}
	}
	return s
}

// quoteConninfo quotes v as a libpq keyword value.
func quoteConninfo(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
