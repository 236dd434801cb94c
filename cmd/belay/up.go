package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/loop"
	"golang.org/x/sys/unix"
)

// runUp is `belay up`: a local cluster (an etcd, a PostgreSQL primary and
// its streaming replicas, data kept in DIR across runs) with the proxy in
// front of it, until SIGINT or SIGTERM.
func runUp(args []string) error {
	fs := newFlagSet("belay up", "belay up [flags]",
		"Starts a local cluster on this machine: an etcd (embedded; or --etcd), a PostgreSQL primary\n"+
			"and --replicas streaming replicas with synchronous replication, registered in etcd, and the\n"+
			"belay proxy in front of them. Ctrl-C stops everything: the proxy first, as `belay proxy`\n"+
			"stops on SIGINT (each client closed once its transaction is over), then PostgreSQL, then etcd.\n"+
			"--shards N: N hash shards, each a primary and --replicas replicas, the cluster sharded over them.")
	dir := fs.String("dir", "./.belay", "directory for the local cluster, kept across runs: PostgreSQL node pgK in DIR/pgK (sharded: sKpgI), etcd in DIR/etcd, proxy socket in DIR/sock")
	port := fs.Int("port", 6432, "proxy port on 127.0.0.1; if it is busy a free one is picked")
	replicas := fs.Int("replicas", 2, "streaming replicas besides the primary (0 to 9), in each shard; 0 is a single PostgreSQL without replication settings")
	shards := fs.Int("shards", 1, "hash shards (1 to 16): with N > 1, N shards, each a primary and --replicas replicas of its own (shard K's nodes sKpg0, sKpg1, ...; max_prepared_transactions set for two-phase commits), and the cluster sharded over them in etcd (belay shard init N): add tables with belay shard. A directory keeps its number of shards")
	etcdEndpoints := fs.String("etcd", "", "comma-separated endpoints of a running etcd to register the cluster in; empty: an etcd embedded in belay, data in DIR/etcd")
	clusterName := fs.String("cluster", "local", "the cluster's name in etcd (its keys are under /belay/NAME/)")
	poolSize := fs.Int("pool-size", 20, "most server connections per (database, user) pool")
	shape := fs.String("shape", "split", "split: each tier a process of its own (belay pooler beside each node, belay gateway in front, belay orch), as ps shows; proxy: one belay proxy process serving everything, the orchestrator inside belay up")
	gateways := fs.Int("gateways", 1, "with --shape split: how many belay gateway processes (the first on --port, the others on free ports)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	stopWait := fs.Duration("stop-timeout", 10*time.Second, "how long Ctrl-C lets running transactions finish before their clients are closed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	if *shape != "split" && *shape != "proxy" {
		return fmt.Errorf("--shape %q: split or proxy", *shape)
	}
	if *gateways < 1 || *gateways > 16 {
		return fmt.Errorf("--gateways %d: from 1 to 16", *gateways)
	}
	if *replicas < 0 || *replicas > 9 {
		return fmt.Errorf("--replicas %d: from 0 to 9", *replicas)
	}
	if *shards < 1 || *shards > maxUpShards {
		return fmt.Errorf("--shards %d: from 1 to %d", *shards, maxUpShards)
	}
	if err := ha.CheckName("cluster", *clusterName); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	var endpoints []string
	for _, e := range strings.Split(*etcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	binDir, err := pginstance.FindBinDir()
	if err != nil {
		return errors.New("needs the PostgreSQL server programs (initdb, postgres, pg_basebackup), and found them neither on PATH\n" +
			"nor under /usr/lib/postgresql/*/bin. Install PostgreSQL, e.g. on Debian or Ubuntu:\n\n" +
			"    sudo apt-get install postgresql postgresql-contrib     (or: make deps)\n\n" +
			"or put the directory holding initdb and postgres on PATH")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(root)
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkDirShards(root, *shards); err != nil {
		return err
	}
	if err := moveSingleNode(root); err != nil {
		return err
	}

	// Ctrl-C during startup stops what has started so far.
	ctx, stopStartSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopStartSignals()
	c := &cluster{root: root, log: logger, info: clusterInfo{Name: *clusterName, Endpoints: endpoints, Shard: upShard, Shards: *shards},
		replicas: *replicas, rejoined: make(chan *pgcluster.Node, 16), rejoining: map[string]bool{}}
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.claimShards(ctx); err != nil {
		return errors.Join(err, c.stopEtcd())
	}
	if err := c.startPostgres(ctx, binDir, *replicas); err != nil {
		return errors.Join(err, c.stopPostgres(), c.stopEtcd())
	}
	if err := c.register(ctx); err != nil {
		return errors.Join(err, c.stopPostgres(), c.stopEtcd())
	}
	if *shape == "split" {
		if err := c.startSplit(ctx, *port, *gateways, *poolSize, *logLevel); err != nil {
			if c.split != nil {
				c.stopFront(nil, 0, true)
			}
			return errors.Join(fmt.Errorf("starting the tiers: %w", err), c.stopPostgres(), c.stopEtcd())
		}
		if *replicas > 0 {
			rctx, stopRewind := context.WithCancel(context.Background())
			rewound := make(chan struct{})
			go func() { defer close(rewound); c.rewindStale(rctx) }()
			c.stopRewind = func() { stopRewind(); <-rewound }
		}
	} else {
		if *replicas > 0 || *shards > 1 {
			if err := c.startOrch(logger); err != nil {
				return errors.Join(err, c.stopPostgres(), c.stopEtcd())
			}
		}
		proxy, stopWatch, err := startProxy(ctx, root, *port, &c.info, *poolSize, logger)
		c.proxy, c.stopWatch = proxy, stopWatch
		if err != nil {
			return errors.Join(fmt.Errorf("starting the proxy: %w", err), c.stopPostgres(), c.stopEtcd())
		}
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	interrupted := ctx.Err() != nil // a signal came while the proxy started
	stopStartSignals()              // (cancels ctx)
	if interrupted {
		sig <- os.Interrupt
	} else {
		printBanner(c.frontAddr(), c)
	}
	return c.run(sig, *stopWait)
}

// upShard is the shard belay up registers its nodes in (with --shards N,
// the first of ha.ShardName(0..N-1)).
const upShard = "0"

// clusterInfo is what belay up started, as the proxy and the banner need it.
type clusterInfo struct {
	Name      string     // the cluster's name in etcd (--cluster)
	Endpoints []string   // etcd's client endpoints
	Shard     string     // the one shard, "0" (sharded: the first)
	Shards    int        // hash shards (--shards): 1, the cluster is not sharded
	Term      uint64     // the shard's term in etcd
	Terms     []uint64   // each shard's term, by index
	Superuser string     // PostgreSQL's superuser, an admin of the console
	Primary   string     // the (first shard's) primary's address, 127.0.0.1:PORT
	Nodes     []nodeInfo // shard by shard, each shard's by name
}

type nodeInfo struct {
	Name, Role, Addr string
	Shard            string // the topology's shard, ha.ShardName(k)
	Dir              string // DIR/pgK (sharded: DIR/sKpgI): data, socket, log
}

// cluster is what `belay up` runs: etcd (embedded, or only a client's view
// of a running one), PostgreSQL's nodes and the proxy in front of them.
// Its methods run on runUp's goroutine.
type cluster struct {
	root string
	log  *slog.Logger
	info clusterInfo
	etcd *etcdlocal.Server // nil with --etcd
	// pgs are the PostgreSQL clusters, one per shard (index k: the
	// topology's shard ha.ShardName(k)), each a primary and replicas
	// (--replicas of them).
	pgs      []*pgcluster.Cluster
	replicas int
	proxy    *loop.Proxy
	// stopWatch ends the proxy's watch of the topology in etcd.
	stopWatch func()
	// split: the processes of the split shape (nil: the proxy shape);
	// stopRewind ends its rewinding of stale primaries.
	split      *split
	stopRewind func()
	// stopOrch stops the orchestrator (nil: none runs) and waits for it.
	stopOrch func()
	// rejoined receives each old primary once it runs again as a replica
	// (run watches it anew); rejoining holds those being rewound, whose
	// stop is no death.
	rejoined  chan *pgcluster.Node
	mu        sync.Mutex // guards rejoining
	rejoining map[string]bool
}

// startOrch runs a failover orchestrator of the cluster (as `belay orch`
// does) that can rejoin an old primary itself: it has the data
// directories.
func (c *cluster) startOrch(logger *slog.Logger) error {
	o, err := newOrchestrator(c.info.Endpoints, c.info.Name, ha.OrchOptions{
		ID: fmt.Sprintf("belay-up:%d", os.Getpid()), Dial: healthDial(c.info.Superuser, "postgres", ""), DialDB: dialDB(c.info.Superuser, ""),
		Logger: logger.With("component", "orch"),
		Rejoin: func(ctx context.Context, node, primary ha.Node) error { return c.rejoin(ctx, node.Name, primary.Name) },
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = o.run(ctx) }()
	c.stopOrch = func() { cancel(); <-done }
	return nil
}

// rejoin makes node, an old primary, a replica of primary (pg_rewind).
// It runs on the orchestrator's goroutine or on one of run's.
func (c *cluster) rejoin(ctx context.Context, node, primary string) error {
	pg, _ := c.shardOf(node)
	if pg == nil {
		return fmt.Errorf("no node %s", node)
	}
	if err := pg.SetPrimary(primary); err != nil {
		return err
	}
	n := pg.Node(node)
	c.mu.Lock()
	c.rejoining[node] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.rejoining, node)
		c.mu.Unlock()
	}()
	fmt.Fprintf(os.Stderr, "belay up: %s, the old primary, rejoins as a replica of %s (pg_rewind) ...\n", node, primary)
	if err := n.Rejoin(ctx); err != nil {
		return err
	}
	c.rejoined <- n
	return nil
}

// isRejoining says whether node is being rewound (stopped on purpose).
func (c *cluster) isRejoining(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejoining[node]
}

// afterFailover waits (up to 2 minutes) for etcd to name a primary other
// than old, the primary that died, then rejoins old as its replica.
func (c *cluster) afterFailover(old *pgcluster.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, done, err := c.store()
	if err != nil {
		return err
	}
	defer done()
	_, shard := c.shardOf(old.Name)
	for {
		if top, err := st.Load(ctx); err == nil {
			if sh := top.Shard(shard); sh != nil && sh.Primary != "" && sh.Primary != old.Name {
				return c.rejoin(ctx, old.Name, sh.Primary)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no new primary in etcd within 2 minutes of %s's death", old.Name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// moveSingleNode moves the PostgreSQL of a directory made by an earlier
// belay up, which had one node in DIR/pg, to DIR/pg0 where the primary is
// now (a data directory does not record its own path).
func moveSingleNode(root string) error {
	old, primary := filepath.Join(root, "pg"), filepath.Join(root, "pg0")
	if _, err := os.Stat(filepath.Join(old, "data", "PG_VERSION")); err != nil {
		return nil
	}
	if _, err := os.Stat(primary); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "belay up: moving PostgreSQL's data from %s to %s (where the primary lives now)\n", old, primary)
	return os.Rename(old, primary)
}

// startEtcd starts the embedded etcd in root/etcd (its data and ports kept
// across runs), unless --etcd named a running one.
func (c *cluster) startEtcd(ctx context.Context) error {
	if len(c.info.Endpoints) > 0 {
		return nil
	}
	dir := filepath.Join(c.root, "etcd")
	fmt.Fprintf(os.Stderr, "belay up: starting etcd (embedded) in %s ...\n", dir)
	s, err := etcdlocal.Start(ctx, etcdlocal.Options{Dir: dir})
	if err != nil {
		return err
	}
	c.etcd = s
	c.info.Endpoints = []string{s.Endpoint()}
	return nil
}

// startPostgres starts the primary in root/pg0 and the replicas in
// root/pg1..., each on the port it had the last time (kept in its
// directory) when that port is free, and waits for the replicas to stream.
// With shards, it does so for each shard k: its primary in root/sKpg0, its
// replicas in root/sKpg1....
func (c *cluster) startPostgres(ctx context.Context, binDir string, replicas int) error {
	n := c.info.Shards
	var settings map[string]string
	if n == 1 {
		fmt.Fprintf(os.Stderr, "belay up: starting PostgreSQL (%s): a primary and %d replicas in %s ...\n", binDir, replicas, c.root)
	} else {
		fmt.Fprintf(os.Stderr, "belay up: starting PostgreSQL (%s): %d shards, each a primary and %d replicas, in %s ...\n", binDir, n, replicas, c.root)
		// Statements for every shard commit with two-phase commits.
		settings = map[string]string{"max_prepared_transactions": upPreparedTransactions}
	}
	for k := range n {
		primary, err := c.recordedPrimary(ctx, ha.ShardName(k))
		if err != nil {
			return err
		}
		pg, err := pgcluster.Start(ctx, pgcluster.Options{
			Dir: c.root, Prefix: nodePrefix(n, k), Replicas: replicas, BinDir: binDir, Primary: primary, Settings: settings,
			Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "belay up: "+format+"\n", args...) },
		})
		if err != nil {
			return err
		}
		c.pgs = append(c.pgs, pg)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, pg := range c.pgs {
		if err := pg.WaitStreaming(wctx); err != nil {
			return err
		}
	}
	c.info.Superuser = c.pgs[0].Superuser()
	c.noteNodes()
	return nil
}

// noteNodes records the nodes and their roles in c.info.
func (c *cluster) noteNodes() {
	c.info.Primary = c.pgs[0].Primary().Addr()
	c.info.Nodes = nil
	for k, pg := range c.pgs {
		for _, n := range pg.Nodes() {
			role := string(ha.RoleReplica)
			if n.IsPrimary() {
				role = string(ha.RolePrimary)
			}
			c.info.Nodes = append(c.info.Nodes, nodeInfo{Name: n.Name, Role: role, Addr: n.Addr(), Shard: ha.ShardName(k), Dir: n.Dir})
		}
	}
}

// shardOf is the PostgreSQL cluster of the shard node belongs to, and the
// shard's name in the topology (nil, "": none of belay up's).
func (c *cluster) shardOf(node string) (*pgcluster.Cluster, string) {
	for k, pg := range c.pgs {
		if pg.Node(node) != nil {
			return pg, ha.ShardName(k)
		}
	}
	return nil, ""
}

// pgNodes are every shard's nodes.
func (c *cluster) pgNodes() []*pgcluster.Node {
	var all []*pgcluster.Node
	for _, pg := range c.pgs {
		all = append(all, pg.Nodes()...)
	}
	return all
}

// store is the cluster's store in etcd, over a client of its own that done
// closes.
func (c *cluster) store() (st *ha.Store, done func(), err error) {
	cli, err := etcdlocal.NewClient(c.info.Endpoints)
	if err != nil {
		return nil, nil, fmt.Errorf("etcd at %s: %w", strings.Join(c.info.Endpoints, ","), err)
	}
	if st, err = ha.NewStore(cli, c.info.Name); err != nil {
		_ = cli.Close()
		return nil, nil, err
	}
	return st, func() { _ = cli.Close() }, nil
}

// recordedPrimary is the primary etcd records for belay up's shard, if
// one of belay up's nodes (pgK, sKpgI) is: after a failover it is no
// longer pg0, and the cluster starts again around it. "" when etcd records
// none.
func (c *cluster) recordedPrimary(ctx context.Context, shard string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, done, err := c.store()
	if err != nil {
		return "", err
	}
	defer done()
	top, err := st.Load(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the cluster from etcd at %s: %w", strings.Join(c.info.Endpoints, ","), err)
	}
	sh := top.Shard(shard)
	if sh == nil || sh.Primary == "" {
		return "", nil
	}
	if _, err := os.Stat(filepath.Join(c.root, sh.Primary, "data", "PG_VERSION")); err != nil {
		return "", nil // not one of ours (or gone): pg0 is made the primary again
	}
	return sh.Primary, nil
}

// register writes the cluster's topology in etcd: each node's record, then
// each shard's (its primary at term 1) if it has none. A shard whose record
// names another primary (as a failover would leave it) is given back to
// the primary belay up started (pg0, or sKpg0), with a new term; nodes of
// the shard that belay up did not start this time are removed.
func (c *cluster) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, done, err := c.store()
	if err != nil {
		return err
	}
	defer done()
	wrap := func(err error) error {
		return fmt.Errorf("registering the cluster in etcd at %s: %w", strings.Join(c.info.Endpoints, ","), err)
	}
	ours := map[string]bool{}
	for _, n := range c.info.Nodes {
		ours[n.Name] = true
		if _, err := st.PutNode(ctx, n.Name, ha.NodeRecord{Shard: n.Shard, Addr: n.Addr, State: ha.StateUp}); err != nil {
			return wrap(err)
		}
	}
	c.info.Terms = make([]uint64, len(c.pgs))
	for k, pg := range c.pgs {
		name, primary := ha.ShardName(k), pg.Primary().Name
		rec, _, err := st.CreateShard(ctx, name, ha.ShardRecord{Term: 1, Primary: primary})
		if err != nil {
			return wrap(err)
		}
		if rec.Primary != primary {
			fmt.Fprintf(os.Stderr, "belay up: etcd says %s is shard %s's primary (term %d); belay up started %s as the primary: recording it\n", rec.Primary, name, rec.Term, primary)
			if rec, err = st.SetPrimary(ctx, name, rec.Term, primary); err != nil {
				return wrap(err)
			}
		}
		c.info.Terms[k] = rec.Term
	}
	c.info.Term = c.info.Terms[0]
	top, err := st.Load(ctx)
	if err != nil {
		return wrap(err)
	}
	for k := range c.pgs {
		if s := top.Shard(ha.ShardName(k)); s != nil {
			for _, n := range s.Nodes {
				if !ours[n.Name] {
					fmt.Fprintf(os.Stderr, "belay up: removing node %s (not started this time) from etcd\n", n.Name)
					if err := st.RemoveNode(ctx, n.Name); err != nil {
						return wrap(err)
					}
				}
			}
		}
	}
	return nil
}

// startProxy starts the proxy on 127.0.0.1:port (or a free port if that one
// is busy) with a Unix socket in root/sock, in front of the cluster cl. Its
// superuser is an admin of the console (database belay or pgbouncer). With
// replicas it serves the cluster as etcd has it (watched until the returned
// stop), as `belay proxy --etcd` does; with none, the primary alone, as
// `belay proxy --server` does.
func startProxy(ctx context.Context, root string, port int, cl *clusterInfo, poolSize int, logger *slog.Logger) (*loop.Proxy, func(), error) {
	addr, err := freeAddr(port)
	if err != nil {
		return nil, nil, err
	}
	sockDir := upSocketDir(root)

	cfg := loop.Config{
		Listen:        []string{addr},
		UnixSocketDir: sockDir,
		Server:        cl.Primary,
		PoolSize:      poolSize,
		AuthType:      "trust",
		AdminUsers:    []string{cl.Superuser},
		Logger:        logger,
	}
	stop := func() {}
	var ref proxyRef
	if len(cl.Nodes) > 1 || cl.Shards > 1 {
		// The cluster as etcd has it: reads on the replicas, writes on the
		// primary, read-your-writes (README, "The cluster"); with shards,
		// each statement on its key's shard.
		w, st, stopWatch, err := watchCluster(context.WithoutCancel(ctx), cl.Endpoints, cl.Name, logger, ref.changed)
		if err != nil {
			return nil, nil, err
		}
		cfg.Cluster, cfg.ClusterShard = w, cl.Shard
		cfg.Switchover = func(ctx context.Context, node string) (string, error) { return switchover(ctx, st, cl.Shard, node) }
		cfg.RecordDecision, cfg.ForgetDecision = st.RecordDecision, st.ForgetDecision // two-phase commits over the shards
		cfg.HealthDial = healthDial(cl.Superuser, "postgres", "")
		cfg.MaxReplicaLag, cfg.MaxReplicaLagBytes = time.Second, 16<<20
		stop = stopWatch
	}
	p, err := loop.Start(cfg)
	if err != nil {
		stop()
		return nil, nil, err
	}
	ref.started(p)
	return p, stop, nil
}

// run serves until a signal (or the death of the primary or of the
// embedded etcd), then stops the proxy, PostgreSQL and etcd. A replica that
// dies is reported, and the cluster runs on without it.
func (c *cluster) run(sig <-chan os.Signal, stopWait time.Duration) error {
	died := make(chan *pgcluster.Node, 4*len(c.info.Nodes))
	watch := func(n *pgcluster.Node) {
		if inst := n.Instance(); inst != nil {
			go func() { <-inst.Done(); died <- n }() // ends when the node stops, at the latest
		}
	}
	for _, n := range c.pgNodes() {
		watch(n)
	}
	var etcdErr <-chan error
	if c.etcd != nil {
		etcdErr = c.etcd.Err()
	}
	var runErr error
serve:
	for {
		select {
		case s := <-sig:
			then := "then PostgreSQL"
			if c.etcd != nil {
				then += ", then etcd"
			}
			front := "the proxy"
			if c.split != nil {
				front = "the gateways, the orchestrator and the poolers"
			}
			fmt.Fprintf(os.Stderr, "\nbelay up: %v: stopping %s (clients are closed once their transactions end; Ctrl-C again to close them now), %s ...\n", s, front, then)
			c.stopFrontAny(sig, stopWait)
			break serve
		case n := <-died:
			if inst := n.Instance(); inst != nil {
				select {
				case <-inst.Done():
				default:
					continue // running again since (rejoined): watched anew
				}
			}
			if c.isRejoining(n.Name) {
				continue // stopped to be rewound: watched anew once it runs
			}
			// A primary with replicas is failed over by the orchestrator.
			failover := c.stopOrch != nil && c.replicas > 0
			if !n.IsPrimary() || !failover {
				fmt.Fprintf(os.Stderr, "belay up: %s exited unexpectedly; the cluster runs on without it. Log: %s\n",
					n.Name, filepath.Join(n.Dir, "postgres.log"))
				if !failover {
					runErr = fmt.Errorf("the primary, %s, exited unexpectedly; log: %s", n.Name, filepath.Join(n.Dir, "postgres.log"))
					c.stopFrontNow()
					break serve
				}
				continue
			}
			fmt.Fprintf(os.Stderr, "belay up: the primary, %s, exited unexpectedly: the orchestrator fails over to a replica; %s then rejoins as a replica. Log: %s\n",
				n.Name, n.Name, filepath.Join(n.Dir, "postgres.log"))
			go func() {
				if err := c.afterFailover(n); err != nil {
					fmt.Fprintf(os.Stderr, "belay up: %s did not rejoin: %v\n", n.Name, err)
				}
			}()
		case n := <-c.rejoined:
			if pg, _ := c.shardOf(n.Name); pg != nil {
				fmt.Fprintf(os.Stderr, "belay up: %s is a replica of %s again\n", n.Name, pg.Primary().Name)
			}
			watch(n)
		case err := <-etcdErr:
			runErr = fmt.Errorf("etcd failed: %v; log: %s", err, c.etcd.LogPath)
			c.stopFrontNow()
			break serve
		}
	}
	runErr = errors.Join(runErr, c.stopPostgres(), c.stopEtcd())
	if runErr == nil {
		fmt.Fprintln(os.Stderr, "belay up: stopped.")
	}
	return runErr
}

// frontAddr is where clients connect: the proxy's address, or the first
// gateway's.
func (c *cluster) frontAddr() string {
	if c.split != nil {
		return c.split.gatewayAddr()
	}
	return c.proxy.Addr()
}

// stopFrontAny stops what clients connect to (the proxy, or the gateways
// and the tiers behind them) as belay proxy stops on SIGINT.
func (c *cluster) stopFrontAny(sig <-chan os.Signal, stopWait time.Duration) {
	if c.stopRewind != nil {
		c.stopRewind()
		c.stopRewind = nil
	}
	if c.split != nil {
		c.stopFront(sig, stopWait, false)
		return
	}
	c.stopProxy(sig, stopWait)
}

// stopFrontNow stops what clients connect to at once.
func (c *cluster) stopFrontNow() {
	if c.stopRewind != nil {
		c.stopRewind()
		c.stopRewind = nil
	}
	if c.split != nil {
		c.stopFront(nil, 0, true)
		return
	}
	c.proxy.Shutdown(loop.ShutdownImmediate)
	<-c.proxy.Done()
}

// stopProxy stops the proxy as `belay proxy` stops on SIGINT (SHUTDOWN
// WAIT_FOR_SERVERS): it accepts no new client and closes each one with
// FATAL 57P01 once it is between transactions. Clients still in a
// transaction after stopWait, or at another signal, are closed at once.
func (c *cluster) stopProxy(sig <-chan os.Signal, stopWait time.Duration) {
	p := c.proxy
	p.Shutdown(loop.ShutdownWaitForServers)
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-p.Done():
		return
	case s := <-sig:
		c.log.Info("stopping now: closing every client", "signal", s.String(), "clients", p.Stats().Clients)
	case <-t.C:
		c.log.Warn("clients still in a transaction after the stop timeout: closing them", "timeout", stopWait, "clients", p.Stats().Clients)
	}
	p.Shutdown(loop.ShutdownImmediate)
	<-p.Done()
}

// stopPostgres stops every node, shard by shard, each shard's primary
// first.
func (c *cluster) stopPostgres() error {
	if c.stopOrch != nil {
		c.stopOrch() // first: a primary stopping is not one to fail over from
		c.stopOrch = nil
	}
	var errs []error
	for _, pg := range c.pgs {
		if err := pg.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping PostgreSQL: %w", err))
		}
	}
	return errors.Join(errs...)
}

// stopEtcd stops the proxy's watch of etcd, then the embedded etcd, if
// belay up started one.
func (c *cluster) stopEtcd() error {
	if c.stopWatch != nil {
		c.stopWatch()
		c.stopWatch = nil
	}
	if c.etcd != nil {
		c.etcd.Stop()
	}
	return nil
}

// lockDir makes sure one `belay up` at a time uses root: it holds an
// exclusive flock on root/up.lock (which records its PID) until unlock.
// The kernel drops the lock when the process dies, so a crash leaves
// nothing to clean up; the file itself stays.
func lockDir(root string) (unlock func(), err error) {
	path := filepath.Join(root, "up.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			return nil, fmt.Errorf("already running in %s (pid %s): stop that one with Ctrl-C, or give this one another --dir", root, pid)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { _ = f.Close() }, nil
}

func printBanner(proxyAddr string, c *cluster) {
	host, port, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		host, port = "127.0.0.1", proxyAddr
	}
	cl := &c.info
	user := cl.Superuser
	url := fmt.Sprintf("postgres://%s@%s/postgres", user, net.JoinHostPort(host, port))
	etcd := strings.Join(cl.Endpoints, ",")
	if c.etcd != nil {
		etcd += " (embedded; data in " + c.etcd.Dir + ")"
	}
	var nodes strings.Builder
	if cl.Shards == 1 {
		fmt.Fprintf(&nodes, "  Nodes (cluster %s, shard %s, term %d):\n", cl.Name, cl.Shard, cl.Term)
		for _, n := range cl.Nodes {
			fmt.Fprintf(&nodes, "    %-4s  %-7s  %-15s  (%s: data, postgres.log)\n", n.Name, n.Role, n.Addr, n.Dir)
		}
	} else {
		fmt.Fprintf(&nodes, "  Nodes (cluster %s, %d hash shards, each a primary and its replicas):\n", cl.Name, cl.Shards)
		for k := range cl.Shards {
			fmt.Fprintf(&nodes, "    shard %s (term %d):\n", ha.ShardName(k), cl.Terms[k])
			for _, n := range cl.Nodes {
				if n.Shard == ha.ShardName(k) {
					fmt.Fprintf(&nodes, "      %-6s  %-7s  %-15s  (%s: data, postgres.log)\n", n.Name, n.Role, n.Addr, n.Dir)
				}
			}
		}
	}
	var next string
	if cl.Shards == 1 {
		next = fmt.Sprintf(`  pgbench:
    pgbench -h %[1]s -p %[2]s -U %[3]s -i -s 10 postgres
    pgbench -h %[1]s -p %[2]s -U %[3]s -S -c 10 -T 10 postgres
`, host, port, user)
	} else {
		shardCmd := fmt.Sprintf("%s shard --etcd %s --cluster %s", selfCommand(), strings.Join(cl.Endpoints, ","), cl.Name)
		next = fmt.Sprintf(`  sharding (the schema in etcd, %[1]s): name each table, sharded by a key
  column (integer, text or uuid) or a reference table (a copy on every shard), then create it
  through belay (DDL runs on every shard):
    %[2]s table accounts aid bigint
    %[2]s reference branches
    psql "%[3]s" -c 'CREATE TABLE accounts (aid bigint PRIMARY KEY, abalance int)'
    %[2]s show
`, ha.ShardingKey(cl.Name), shardCmd, url)
	}
	fmt.Printf(`
belay is up.

  Connection string:  %[1]s

%[5]s
  etcd: %[6]s, keys under /belay/%[7]s/

  psql:
    psql "%[1]s"

%[8]s
  admin console (SHOW POOLS|CLIENTS|SERVERS|STATS|HELP, ...):
    psql -h %[2]s -p %[3]s -U %[4]s belay -c 'SHOW POOLS'
    psql -h %[2]s -p %[3]s -U %[4]s belay -c 'SHOW NODES'

Press Ctrl-C to stop.
`, url, host, port, user, nodes.String(), etcd, cl.Name, next)
}
