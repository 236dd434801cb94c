package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

// tier is what a belay process serves: both layers in one (belay proxy),
// the pooler beside one Postgres node, or a stateless gateway in front of
// the poolers (DESIGN.md, "The cluster").
type tier int

const (
	tierProxy tier = iota
	tierPooler
	tierGateway
)

func (t tier) String() string {
	return [...]string{"proxy", "pooler", "gateway"}[t]
}

func (t tier) synopsis() string {
	switch t {
	case tierPooler:
		return "belay pooler --listen ADDR --server PGADDR --etcd ENDPOINTS --cluster NAME [flags]"
	case tierGateway:
		return "belay gateway --listen ADDR --etcd ENDPOINTS --cluster NAME [flags]"
	}
	return "belay proxy [flags] [pgbouncer.ini]"
}

func (t tier) about() string {
	switch t {
	case tierPooler:
		return "Runs beside one PostgreSQL node of a cluster whose topology etcd holds: owns the node's server\n" +
			"connections, shares them fairly between users, carries each client's session state and prepared\n" +
			"statements, as belay proxy does. It registers its address for the node (--node, or the node whose\n" +
			"address is --server) under a lease, so that gateways send the node's work to it; killed, its\n" +
			"registration lapses after --register-ttl."
	case tierGateway:
		return "Accepts applications' connections for a cluster whose topology etcd holds: TLS, authentication,\n" +
			"the plan cache, routing (writes to the primary, reads to replicas, read-your-writes) and holding\n" +
			"work during a failover. Each node's work goes to the pooler registered beside it, never to\n" +
			"Postgres itself; it keeps no state of its own, and any number may serve one cluster."
	}
	return "Runs belay's gateway and pooler in one process, in front of one PostgreSQL server (--server),\n" +
		"as PgBouncer runs. With a pgbouncer.ini, the file sets what the flags before it do not; SIGHUP\n" +
		"or the console's RELOAD read it again. SIGINT stops after each client's transaction, SIGTERM\n" +
		"after each client leaves."
}

// check refuses flags that make no sense for the tier.
func (t tier) check(fs *flag.FlagSet, o *proxyOptions) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch t {
	case tierPooler:
		if *o.cluster.etcd == "" {
			return errors.New("belay pooler needs --etcd (and --cluster): it registers beside its node there")
		}
		if !set["server"] {
			return errors.New("belay pooler needs --server: the Postgres node it runs beside")
		}
	case tierGateway:
		if *o.cluster.etcd == "" {
			return errors.New("belay gateway needs --etcd (and --cluster): the poolers are found there")
		}
		if set["server"] {
			return errors.New("belay gateway takes no --server: it reaches each node through its pooler")
		}
	}
	return nil
}

// tierOptions are belay pooler's and belay gateway's own flags.
type tierOptions struct {
	node, nodeAddr, advertise *string
	ttl                       *int
	fenceGrace                *time.Duration
}

func (o *tierOptions) define(fs *flag.FlagSet, t tier) {
	o.node, o.nodeAddr, o.advertise, o.ttl, o.fenceGrace = new(string), new(string), new(string), new(int), new(time.Duration)
	switch t {
	case tierPooler:
		o.node = fs.String("node", "", "the node it runs beside, by its name in the topology (default: the node whose address is --server); with --shard, registered there if the topology lacks it")
		o.nodeAddr = fs.String("node-addr", "", "with --node and --shard: the node's address as the orchestrator and the other nodes reach it, registered with it (default: --server)")
		o.advertise = fs.String("advertise", "", "the address gateways reach it at (default: --listen's first, unless it is a wildcard)")
		o.fenceGrace = fs.Duration("fence-grace", ha.FenceGraceDefault, "how long its node may run as a primary beside the one the topology names, that one not answering, before the pooler fences it (longer than a failover takes from promotion to publication)")
	case tierGateway:
		o.advertise = fs.String("advertise", "", "the address the other gateways forward cancel requests to (default: --listen's first, unless it is a wildcard)")
	default:
		return
	}
	o.ttl = fs.Int("register-ttl", 2, "seconds its registration in etcd outlives it if it dies (its lease)")
}

// peering registers the gateway in etcd under a peer id of its own, which
// its cancel keys carry, and follows the other gateways' addresses, so
// that a cancel request reaching any gateway is forwarded to the one that
// issued its key. stop deletes the registration.
func (o *tierOptions) peering(ctx context.Context, po *proxyOptions, cfg *loop.Config, logger *slog.Logger) (stop func(), err error) {
	if cfg.PeerID != 0 {
		return nil, errors.New("belay gateway takes its peer id in etcd: no --peer-id")
	}
	addr, err := advertised(*o.advertise, *po.listen)
	if err != nil {
		return nil, err
	}
	store := po.cluster.store
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	peers, err := store.WatchGateways(rctx, logger)
	if err != nil {
		return nil, err
	}
	id, unregister, err := store.RegisterGateway(rctx, ha.GatewayRecord{Addr: addr}, *o.ttl, logger)
	if err != nil {
		peers.Stop()
		return nil, err
	}
	cfg.PeerID, cfg.PeerAddr = id, peers.Addr
	logger.Info("gateway registered", "peer_id", id, "addr", addr)
	return func() { unregister(); peers.Stop() }, nil
}

// register finds the pooler's node in the cluster and registers the pooler
// beside it; stop deletes the registration.
func (o *tierOptions) register(ctx context.Context, po *proxyOptions, cfg *loop.Config, p *loop.Proxy, logger *slog.Logger) (stop func(), err error) {
	addr, err := advertised(*o.advertise, *po.listen)
	if err != nil {
		return nil, err
	}
	cli, err := etcdlocal.NewClient(splitList(*po.cluster.etcd))
	if err != nil {
		return nil, err
	}
	store, err := ha.NewStore(cli, *po.cluster.cluster)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dial := healthDial(*po.cluster.healthUser, *po.cluster.healthDB, *po.passFile, serverTLSOf(cfg))
	if *o.node != "" && *po.cluster.shard != "" {
		if err := o.registerNode(rctx, store, *po.cluster.shard, dial, serverAddr(*po.server), logger); err != nil {
			_ = cli.Close()
			return nil, err
		}
	}
	top, err := store.Load(rctx)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	node, err := poolerNode(top, *o.node, serverAddr(*po.server))
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	unregister, err := store.RegisterPooler(rctx, node, ha.PoolerRecord{Addr: addr}, *o.ttl, logger)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	logger.Info("pooler registered", "node", node, "addr", addr, "cluster", *po.cluster.cluster)
	gctx, stopGuard := context.WithCancel(context.Background())
	guarded := make(chan struct{})
	go func() {
		defer close(guarded)
		guard(gctx, store, node, dial, serverAddr(*po.server), p, *o.fenceGrace, logger)
	}()
	return func() { stopGuard(); <-guarded; unregister(); _ = cli.Close() }, nil
}

// guardEvery is how often a pooler asks its node whether it is in
// recovery, between changes of the topology.
const guardEvery = time.Second

// guard fences the pooler's proxy while its node is a stale primary
// (ha.MustFence, ha.FenceGuard): it watches the topology and asks the
// node, over a connection of its own, whether it is in recovery and its
// timeline, at each change and every guardEvery. A node it cannot ask
// keeps its last state. Until ctx ends.
func guard(ctx context.Context, store *ha.Store, node string, dial func(context.Context, string) (*pgx.Conn, error),
	server string, p *loop.Proxy, grace time.Duration, logger *slog.Logger) {
	changed := make(chan struct{}, 1)
	w, err := store.Watch(ctx, ha.WatchOptions{Logger: logger, OnChange: func(*ha.Topology) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		logger.Error("the pooler cannot watch the topology: it will not fence a stale primary", "err", err)
		return
	}
	defer w.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(guardEvery)
	defer t.Stop()
	guard := ha.FenceGuard{Grace: grace}
	for {
		qctx, cancel := context.WithTimeout(ctx, guardEvery)
		if conn == nil {
			conn, _ = dial(qctx, server)
		}
		var inRecovery bool
		var tli uint32
		if conn != nil {
			var err error
			if inRecovery, tli, err = ha.AskRunning(qctx, conn); err != nil {
				_ = conn.Close(context.Background())
				conn = nil
			}
		}
		cancel()
		if conn != nil {
			top := w.Current()
			fence, sure, why := staleVerdict(ctx, dial, top, node, inRecovery, tli)
			if guard.Step(time.Now(), fence, sure) {
				p.Fence(why)
			} else {
				p.Unfence()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// registerNode registers the pooler's node (--node) in shard if the
// topology lacks it, at --node-addr; and if the shard has no record yet
// and the node is not in recovery, makes it the shard's primary in term 1
// (a new cluster's bootstrap: the first primary names itself; a shard
// with a record is the orchestrator's to change).
func (o *tierOptions) registerNode(ctx context.Context, store *ha.Store, shard string,
	dial func(context.Context, string) (*pgx.Conn, error), server string, logger *slog.Logger) error {
	top, err := store.Load(ctx)
	if err != nil {
		return err
	}
	if top.Node(*o.node) == nil {
		addr := *o.nodeAddr
		if addr == "" {
			addr = server
		}
		if _, err := store.PutNode(ctx, *o.node, ha.NodeRecord{Shard: shard, Addr: addr}); err != nil {
			return err
		}
		logger.Info("node registered", "node", *o.node, "shard", shard, "addr", addr)
	}
	if sh := top.Shard(shard); sh != nil && sh.Term > 0 {
		return nil
	}
	inRecovery, _, err := askRunning(ctx, dial, server)
	if err != nil {
		return fmt.Errorf("asking the node whether it is a primary: %w", err)
	}
	if inRecovery {
		return nil
	}
	rec, created, err := store.CreateShard(ctx, shard, ha.ShardRecord{Term: 1, Primary: *o.node})
	if err != nil {
		return err
	}
	if created {
		logger.Info("shard created with this node as its primary", "shard", shard, "node", *o.node, "term", rec.Term)
	}
	return nil
}

// poolerNode is the node a pooler serves: named, or the one whose address
// is server's.
func poolerNode(top *ha.Topology, name, server string) (string, error) {
	if name != "" {
		if top.Node(name) == nil {
			return "", fmt.Errorf("cluster %q has no node %q", top.Cluster, name)
		}
		return name, nil
	}
	for _, s := range top.Shards {
		for _, n := range s.Nodes {
			if n.Addr == server {
				return n.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no node of cluster %q has the address %s: name it with --node", top.Cluster, server)
}

// advertised is the address a pooler registers: adv, or listen's first
// address when it names a host.
func advertised(adv, listen string) (string, error) {
	if adv != "" {
		return adv, nil
	}
	first := strings.TrimSpace(strings.Split(listen, ",")[0])
	host, _, err := net.SplitHostPort(first)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", first, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("--listen %s is a wildcard: say where gateways reach this pooler with --advertise", first)
	}
	return first, nil
}
