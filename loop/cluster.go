package loop

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
)

// Serving a cluster (issue G). With Config.Cluster the proxy serves a
// primary and its streaming replicas: the shard's nodes are nodes of the
// pool manager (each with its budget shared fairly between users), a
// health check runs against each (ha.Checker), and at the start of each
// unit of work a client holds no server for, the router (package router,
// pure) picks the node from what the planner says of its first message,
// the client's session and the nodes' health, lag and work in flight. The
// client's pool is then that node's pool for its database and user; what
// a session holds (settings, prepared statements) follows it there as it
// follows it between servers of one node.
//
// Read-your-writes (ryw.go): after a unit of work on the primary that may
// have written, belay learns the primary's WAL position (pipelined after
// an autocommit unit, asked at the release after a transaction block); the
// client's later reads go only to replicas that replayed that far, known
// from their health checks or asked before the read runs, else to the
// primary. belay.consistency = eventual turns it off for a session. The
// session's side (route.go): the pools it uses on each node, a read sent
// again when its replica dies before answering.
//
// Who owns what: the topology is read and applied on gnet's ticker
// goroutine (Proxy.OnTick: apply, under mu); the view the loops route with
// is an immutable snapshot behind an atomic pointer; each node's counters
// are atomics; each session's cache of its pools per node belongs to its
// loop.

// ClusterSource is where the proxy reads the cluster's topology (an
// ha.Watcher): Current never blocks.
type ClusterSource interface{ Current() *ha.Topology }

// errNoPrimary is what a client gets when its work needs the primary and
// the topology has none.
var errNoPrimary = errors.New("the cluster has no primary")

type cluster struct {
	p       *Proxy
	src     ClusterSource
	shard   string // the shard served ("": the first)
	checker *ha.Checker
	// sibling: a cluster of one more shard of a sharded topology
	// (shards.go), sharing the first one's checker.
	sibling bool
	policy  router.Policy
	view    atomic.Pointer[clusterView]
	gen     atomic.Uint64 // counts the views
	// hold decides the fate of work for a lost primary (failover.go);
	// held[i] is loop i's held clients, loop i's alone.
	hold *ha.Hold
	held []heldSessions

	mu    sync.Mutex // guards the fields below (apply)
	last  *ha.Topology
	stats map[string]*nodeStats // by node name, across views
	// scratch[i] is loop i's room for the router's input, turn[i] its
	// count of decisions (router.Work.Turn); loop i's alone.
	scratch [][]router.Node
	turn    []uint32
}

// clusterView is the nodes of the shard served as the loops see them.
// Immutable.
type clusterView struct {
	gen     uint64
	term    uint64
	nodes   []*clusterNode
	primary int // index in nodes; -1: none
}

// clusterNode is one node in a view.
type clusterNode struct {
	name, addr string
	primary    bool
	down       bool // administratively (ha.StateDown)
	health     *ha.NodeHealth
	*nodeStats
}

// nodeStats are a node's counters, kept across views. Atomics: any loop
// adds, the console and the metrics read.
type nodeStats struct {
	inflight atomic.Int32 // units of work routed to it and not finished
	reads    atomic.Int64 // units routed to it that the planner cleared for a replica
	writes   atomic.Int64 // the other units routed to it
	retries  atomic.Int64 // reads it lost with a server, sent again elsewhere
	unsent   atomic.Int64 // units its pooler never sent it, routed again
	// replayed: the highest replay position a read's own question found
	// (verifyReplay), which the health checks may not have seen yet.
	replayed atomic.Uint64
	// notReplayed counts reads that waited for it to replay their client's
	// last write in vain, and went to the primary.
	notReplayed atomic.Int64
}

func newCluster(p *Proxy, cfg Config, loops int) (*cluster, error) {
	if cfg.HealthDial == nil {
		return nil, errors.New("a cluster needs HealthDial")
	}
	return makeCluster(p, cfg, loops, cfg.ClusterShard, ha.NewChecker(ha.CheckerOptions{Dial: cfg.HealthDial, Logger: cfg.Logger})), nil
}

// makeCluster is the cluster of shard ("": the first) checked by checker.
func makeCluster(p *Proxy, cfg Config, loops int, shard string, checker *ha.Checker) *cluster {
	c := &cluster{p: p, src: cfg.Cluster, shard: shard, stats: map[string]*nodeStats{},
		policy:  router.Policy{MaxLagBytes: cfg.MaxReplicaLagBytes, MaxLag: cfg.MaxReplicaLag},
		checker: checker}
	c.scratch = make([][]router.Node, loops)
	c.hold = ha.NewHold(cfg.FailoverHold)
	c.held = make([]heldSessions, loops)
	for i := range c.held {
		c.held[i] = heldSessions{}
	}
	c.turn = make([]uint32, loops)
	return c
}

// primaryAddr is the address of the current topology's primary.
func (c *cluster) primaryAddr() (string, error) {
	t := c.src.Current()
	if t == nil {
		return "", errors.New("no topology yet")
	}
	s := c.served(t)
	if s == nil || s.PrimaryNode() == nil {
		return "", fmt.Errorf("cluster %q: %w", t.Cluster, errNoPrimary)
	}
	return s.PrimaryNode().Addr, nil
}

// startPrimaryWait is how long Start waits for a topology that names a
// primary.
const startPrimaryWait = 10 * time.Second

// awaitPrimary is primaryAddr, waiting up to d for a topology that names a
// primary: a gateway started a moment after its pooler registered may see
// the topology before the registration has reached it through etcd's
// watch (the pooler view shows only nodes with a pooler), and exited with
// "the cluster has no primary" (TestRollingRestart, once in CI).
func (c *cluster) awaitPrimary(d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		addr, err := c.primaryAddr()
		if err == nil || !errors.Is(err, errNoPrimary) || time.Now().After(deadline) {
			return addr, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// served is the shard of t the proxy serves.
func (c *cluster) served(t *ha.Topology) *ha.Shard {
	if c.shard != "" {
		return t.Shard(c.shard)
	}
	if len(t.Shards) > 0 {
		return &t.Shards[0]
	}
	return nil
}

// apply makes t the view, if it is new: the pool manager's nodes and the
// health checks follow it. From the ticker goroutine (and Start).
func (c *cluster) apply() {
	t := c.src.Current()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t == nil || t == c.last {
		return
	}
	if err := t.Validate(); err != nil {
		c.p.log.Warn("ignoring an invalid topology", "err", err)
		return
	}
	if old := c.last; old != nil {
		if s, o := c.served(t), c.served(old); s != nil && o != nil && s.Term < o.Term {
			c.p.log.Warn("ignoring a topology of an older term", "term", s.Term, "known", o.Term)
			return
		}
	}
	c.last = t
	s := c.served(t)
	v := &clusterView{gen: c.gen.Add(1), primary: -1}
	keep := map[string]bool{}
	// The pool manager knows every shard's nodes (a sharded topology's
	// other shards are other clusters' views: shards.go); the view, the
	// served shard's.
	for _, sh := range t.Shards {
		for _, n := range sh.Nodes {
			if err := c.p.pools.SetNode(n.Name, n.Addr); err != nil {
				if s != nil && sh.Name == s.Name {
					c.p.log.Warn("a node's address is unusable", "node", n.Name, "addr", n.Addr, "err", err)
				}
				continue
			}
			keep[n.Name] = true
		}
	}
	if s != nil {
		v.term = s.Term
		c.checker.Update(t)
		for _, n := range s.Nodes {
			if !keep[n.Name] {
				continue
			}
			st := c.stats[n.Name]
			if st == nil {
				st = &nodeStats{}
				c.stats[n.Name] = st
			}
			if n.Role == ha.RolePrimary {
				v.primary = len(v.nodes)
			}
			v.nodes = append(v.nodes, &clusterNode{name: n.Name, addr: n.Addr, primary: n.Role == ha.RolePrimary,
				down: n.State == ha.StateDown, health: c.checker.Health(n.Name), nodeStats: st})
		}
	}
	for _, name := range c.p.pools.Nodes() {
		if name != "" && !keep[name] {
			c.p.pools.RemoveNode(name)
		}
	}
	c.view.Store(v)
	c.published(v)
	names := make([]string, 0, len(v.nodes))
	for _, n := range v.nodes {
		role := "replica"
		if n.primary {
			role = "primary"
		}
		names = append(names, n.name+"="+role+"@"+n.addr)
	}
	c.p.log.Info("cluster topology", "cluster", t.Cluster, "term", v.term, "nodes", strings.Join(names, " "))
}

// primaryTimeline is v's primary's timeline as its health check last saw
// it (0: not known).
func (v *clusterView) primaryTimeline() uint32 {
	if v.primary < 0 {
		return 0
	}
	if h := v.nodes[v.primary].health.Current(); h != nil && h.Up {
		return h.Timeline
	}
	return 0
}

// stop ends the health checks (a sibling's are its first cluster's).
func (c *cluster) stop() {
	if !c.sibling {
		c.checker.Stop()
	}
}

// routerNode is n as the router sees it; primaryTLI is the primary's
// timeline as its health check last saw it (0: not known).
func (n *clusterNode) routerNode(primaryTLI uint32) router.Node {
	rn := router.Node{Primary: n.primary, Outstanding: int(n.inflight.Load())}
	h := n.health.Current()
	// A replica out of recovery (promoted behind belay's back, or an old
	// primary back on its old timeline before it is rewound) has writes
	// the primary lacks and lacks the primary's: no read goes to it. Nor
	// to a standby streaming another timeline than the primary's (one left
	// on a fork, whose replay position may even be ahead of the primary's),
	// nor, for a moment, to one whose receiver has not yet switched to a
	// new primary's timeline.
	rn.Usable = !n.down && h != nil && h.Up && (n.primary || h.InRecovery &&
		(primaryTLI == 0 || h.Timeline == 0 || h.Timeline == primaryTLI))
	if h != nil && !n.primary {
		rn.ReplayLSN, rn.LagBytes, rn.Lag = max(h.LSN, ha.LSN(n.replayed.Load())), h.Lag.Bytes, h.Lag.Time
	}
	return rn
}

// TopologyChanged applies the cluster's current topology now rather than
// at the next tick (100 ms later at most): the work held for a new primary
// goes to it without that wait. Any goroutine (the watcher's OnChange).
func (p *Proxy) TopologyChanged() {
	if p.cluster != nil {
		p.cluster.apply()
		p.applySharding()
	}
}

// clusterTick applies a new topology. From OnTick.
func (p *Proxy) clusterTick() {
	if p.cluster != nil {
		p.cluster.apply()
		p.applySharding()
		now := time.Now()
		p.cluster.holdTick(now)
		for _, c := range p.shardClusters() {
			c.holdTick(now)
		}
	}
}

// shards describes the topology's shards for SHOW SHARDS (none without a
// cluster). Any goroutine.
func (p *Proxy) shards() []admin.Shard {
	t := p.topology()
	if t == nil {
		return nil
	}
	out := make([]admin.Shard, 0, len(t.Shards))
	for _, s := range t.Shards {
		names := make([]string, len(s.Nodes))
		for i, n := range s.Nodes {
			names[i] = n.Name
		}
		out = append(out, admin.Shard{Shard: s.Name, Primary: s.Primary, Term: int64(s.Term), Nodes: len(s.Nodes),
			Names: strings.Join(names, ",")})
	}
	return out
}

// shardedTables describes the sharding schema for SHOW SHARDED_TABLES
// (none when the cluster is not sharded). Any goroutine.
func (p *Proxy) shardedTables() []admin.ShardedTable {
	t := p.topology()
	if t == nil || t.Sharding == nil {
		return nil
	}
	var out []admin.ShardedTable
	for _, tb := range t.Sharding.Tables() {
		row := admin.ShardedTable{Table: tb.Name.String(), Kind: tb.Kind.String(), Shards: t.Sharding.Shards()}
		if tb.Kind == shard.Sharded {
			row.Key, row.KeyType = tb.Key, tb.KeyType.String()
		}
		out = append(out, row)
	}
	return out
}

// topology is the cluster's topology as last read (nil without a cluster).
func (p *Proxy) topology() *ha.Topology {
	if p.cluster == nil {
		return nil
	}
	return p.cluster.src.Current()
}

// nodes describes the nodes for SHOW NODES: the cluster's, or the one
// server. Any goroutine.
func (p *Proxy) nodes() []admin.Node {
	open := map[string]int{}
	for _, pool := range p.pools.Pools() {
		open[pool.Key().Node] += pool.Stats().Open
	}
	var out []admin.Node
	if p.cluster == nil {
		host, port := splitAddr(p.cfg.Server)
		out = []admin.Node{{Node: "", Host: host, Port: port, Role: "primary", State: "up", ServersOpen: open[""]}}
	} else {
		clusters := []*cluster{p.cluster}
		if set := p.sharding.set.Load(); set != nil {
			clusters = set.clusters
		}
		for _, c := range clusters {
			out = c.nodeRows(out, open)
		}
	}
	for i := range out {
		l := p.Limit(out[i].Node)
		out[i].Limit, out[i].LimitReason = l.Limit, limitReason(l)
	}
	return out
}

// Limit is the adaptive limit of the node name ("" for the one server of
// a proxy without a cluster; see poolcore's limit.go). Any goroutine.
func (p *Proxy) Limit(name string) poolcore.LimitStats {
	ns, _ := p.pools.NodeStatsOf(name)
	return ns.Limit
}

// limitReason is why l is what it is, for SHOW.
func limitReason(l poolcore.LimitStats) string {
	if !l.Adaptive {
		return "fixed"
	}
	return l.Reason
}

// nodeRows appends the rows of SHOW NODES of c's nodes to out; open counts
// the servers open to each node.
func (c *cluster) nodeRows(out []admin.Node, open map[string]int) []admin.Node {
	v := c.view.Load()
	if v == nil {
		return out
	}
	shard := c.shardName()
	for _, n := range v.nodes {
		host, port := splitAddr(n.addr)
		row := admin.Node{Shard: shard, Node: n.name, Host: host, Port: port, Role: "replica", State: "down",
			Term: int64(v.term), ServersOpen: open[n.name], Reads: n.reads.Load(), Writes: n.writes.Load(),
			InFlight: int(n.inflight.Load())}
		if n.primary {
			row.Role = "primary"
		}
		if h := n.health.Current(); h != nil {
			if h.Up {
				row.State = "up"
			}
			row.LSN, row.LastError = h.LSN.String(), h.Err
			row.LagBytes, row.LagMs = int64(h.Lag.Bytes), h.Lag.Time.Milliseconds()
		}
		if n.down {
			row.State = "disabled"
		}
		out = append(out, row)
	}
	return out
}
