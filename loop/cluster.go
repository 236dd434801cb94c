package loop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/panjf2000/gnet/v2"
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
// Read-your-writes: after a transaction that ran on the primary and may
// have written commits, belay asks that server for its WAL position
// (pg_current_wal_lsn(), one round trip of belay's own before the server
// goes back to the pool; the client already has its answer). The client's
// later reads go only to replicas whose replay, as their last health check
// saw it, passed that position, else to the primary. belay.consistency =
// eventual turns it off for a session.
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
	policy  router.Policy
	view    atomic.Pointer[clusterView]
	gen     atomic.Uint64 // counts the views

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
	c := &cluster{p: p, src: cfg.Cluster, shard: cfg.ClusterShard, stats: map[string]*nodeStats{},
		policy:  router.Policy{MaxLagBytes: cfg.MaxReplicaLagBytes, MaxLag: cfg.MaxReplicaLag},
		checker: ha.NewChecker(ha.CheckerOptions{Dial: cfg.HealthDial, Logger: cfg.Logger})}
	c.scratch = make([][]router.Node, loops)
	c.turn = make([]uint32, loops)
	return c, nil
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
	if s != nil {
		v.term = s.Term
		c.checker.Update(t)
		for _, n := range s.Nodes {
			if err := c.p.pools.SetNode(n.Name, n.Addr); err != nil {
				c.p.log.Warn("a node's address is unusable", "node", n.Name, "addr", n.Addr, "err", err)
				continue
			}
			keep[n.Name] = true
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

// stop ends the health checks.
func (c *cluster) stop() { c.checker.Stop() }

// routerNode is n as the router sees it.
func (n *clusterNode) routerNode() router.Node {
	rn := router.Node{Primary: n.primary, Outstanding: int(n.inflight.Load())}
	h := n.health.Current()
	rn.Usable = !n.down && h != nil && h.Up
	if h != nil && !n.primary {
		rn.ReplayLSN, rn.LagBytes, rn.Lag = max(h.LSN, ha.LSN(n.replayed.Load())), h.Lag.Bytes, h.Lag.Time
	}
	return rn
}

// verifyTries and verifyPause bound the wait of a read for its replica to
// replay the client's last write: up to verifyTries questions, verifyPause
// apart, then the read goes to the primary.
const (
	verifyTries = 8
	verifyPause = time.Millisecond
)

// verifyReplay asks sc, on the replica the client's read was routed to,
// whether it replayed the client's last write, before the read runs there;
// if it did not after verifyTries questions, the read goes to the primary.
// On the loop.
func (s *session) verifyReplay(sc *poolcore.Server) {
	cs := s.cl
	var at ha.LSN
	cs.attempts++
	cs.verifying = true
	sc.ExecRows("SELECT pg_catalog.pg_last_wal_replay_lsn()::text", func(cols [][]byte) {
		if len(cols) == 1 {
			at, _ = ha.ParseLSN(string(cols[0]))
		}
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if s.state == sClosing || s.server != sc {
			cs.verifying = false
			s.giveBack(sc)
			return
		}
		node := cs.node
		if err == nil && at >= cs.verify {
			cs.verify, cs.verifying = 0, false
			for old := node.replayed.Load(); uint64(at) > old && !node.replayed.CompareAndSwap(old, uint64(at)); old = node.replayed.Load() {
			}
			s.resumeWork()
			return
		}
		if err == nil && cs.attempts < verifyTries {
			el := s.loop.EventLoop()
			time.AfterFunc(verifyPause, func() {
				_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
					if !s.done && s.server == sc && cs.verify != 0 {
						s.verifyReplay(sc)
					} else {
						cs.verifying = false
					}
					return nil
				}))
			})
			return
		}
		// Not in time: the primary serves this read.
		cs.verify, cs.toPrimary, cs.verifying = 0, true, false
		node.notReplayed.Add(1)
		s.giveBack(sc)
		s.unitDone()
		s.resumeWork()
	})
}

// --- the session's side: on its loop -----------------------------------------

// homePool is the pool a client logs in through, which it counts itself a
// client of: the server's, or the cluster's primary's. cred is how belay
// logs in as the client's user (what its authentication proved), for each
// node's pool.
func (s *session) homePool(cred poolcore.Credentials) (*poolcore.Pool, error) {
	if s.p.cluster == nil {
		p, err := s.p.pools.Pool(s.key)
		if err != nil {
			return nil, err
		}
		setCredentials(p, cred)
		p.Join(s.loop)
		return p, nil
	}
	s.cl = &clusterState{cred: cred}
	start := make([]setting, len(s.start))
	for i, p := range s.start {
		start[i] = setting(p)
	}
	s.noteRouteSettings(start)
	v := s.p.cluster.view.Load()
	if v.primary < 0 {
		return nil, errNoPrimary
	}
	s.cl.node = v.nodes[v.primary]
	return s.nodePool(v, v.primary)
}

// setCredentials gives p what the client's authentication proved, if
// anything.
func setCredentials(p *poolcore.Pool, cred poolcore.Credentials) {
	if cred.Password != "" || cred.MD5 != "" || cred.SCRAM != nil {
		p.SetCredentials(cred)
	}
}

// clusterState is what a session of a cluster holds.
type clusterState struct {
	cred  poolcore.Credentials // how belay logs in as the client's user
	node  *clusterNode         // the node of s.pool
	gen   uint64               // the view pools was filled for
	pools []*poolcore.Pool
	// joined are the pools it counts itself a client of (Leave at close).
	joined []*poolcore.Pool
	busy   bool // it counts in node.inflight
	// minLSN: its reads must see the primary this far (read-your-writes).
	minLSN  ha.LSN
	txWrite bool // its current unit runs on the primary and may write
	// unitTx: its current unit holds transaction control (BEGIN, COMMIT,
	// ...) or what may (EXECUTE): it may not end idle, so the WAL position
	// is asked after it, not pipelined with it (askLSN).
	unitTx bool
	// armed: its current unit is a read on a replica that has answered
	// nothing yet; retry holds what it sent, to send again elsewhere if
	// the replica dies first (retryRead).
	armed bool
	retry []byte
	// verify: its read went to a replica not yet known to have replayed
	// its last write; the replica is asked first (verifyReplay).
	verify    ha.LSN
	attempts  int
	verifying bool // a question or the pause after it is under way
	// toPrimary: the next unit goes to the primary (a replica did not
	// catch up in time).
	toPrimary bool
	// The session's own route (belay.route) and consistency
	// (belay.consistency = eventual), from its settings.
	route    router.Route
	eventual bool
}

// routeWork picks the node of the client's next unit of work, whose first
// message starts data, and makes that node's pool the client's. The client
// holds no server. It returns an error when the work can go nowhere.
func (s *session) routeWork(data []byte) error {
	c := s.p.cluster
	v := c.view.Load()
	cs := s.cl
	w := s.peekWork(data)
	c.turn[s.loop.Index()]++
	w.Turn = c.turn[s.loop.Index()]
	rs := router.Session{Route: cs.route}
	if !cs.eventual && !s.p.cfg.Eventual {
		rs.MinLSN = cs.minLSN
	}
	nodes := c.scratch[s.loop.Index()][:0]
	for _, n := range v.nodes {
		nodes = append(nodes, n.routerNode())
	}
	c.scratch[s.loop.Index()] = nodes
	if cs.toPrimary || s.p.live.Load().session {
		// A read that waited for a replica in vain; or pool_mode session,
		// where the client keeps its first server.
		cs.toPrimary = false
		rs.Route = router.Primary
	}
	i, why := router.Decide(w, rs, nodes, c.policy)
	cs.verify, cs.attempts = 0, 0
	if why == router.ReasonNotReplayed {
		// No replica is known to have replayed the client's last write,
		// as of their last health checks: ask the best one itself, which
		// has most likely caught up by now (verifyReplay).
		if j, why2 := router.Decide(w, router.Session{Route: rs.Route}, nodes, c.policy); why2 == router.ReasonRead || why2 == router.ReasonForced {
			i, cs.verify = j, rs.MinLSN
		}
	}
	if i < 0 {
		return errNoPrimary
	}
	n := v.nodes[i]
	pool, err := s.nodePool(v, i)
	if err != nil {
		return err
	}
	s.pool, s.stats, cs.node = pool, pool.LoopStats(s.loop), n
	cs.busy = true
	n.inflight.Add(1)
	cs.txWrite, cs.unitTx = n.primary && !w.ReadOnly, false
	cs.armed, cs.retry = !n.primary && w.ReadOnly, cs.retry[:0]
	if w.ReadOnly {
		n.reads.Add(1)
	} else {
		n.writes.Add(1)
	}
	return nil
}

// nodePool is the client's pool on node i of v (cached per view).
func (s *session) nodePool(v *clusterView, i int) (*poolcore.Pool, error) {
	cs := s.cl
	if cs.gen != v.gen {
		cs.gen = v.gen
		cs.pools = cs.pools[:0]
	}
	for len(cs.pools) < len(v.nodes) {
		cs.pools = append(cs.pools, nil)
	}
	if p := cs.pools[i]; p != nil {
		return p, nil
	}
	p, err := s.p.pools.Pool(poolcore.Key{Node: v.nodes[i].name, Database: s.key.Database, User: s.key.User})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(cs.joined, p) {
		setCredentials(p, cs.cred)
		p.Join(s.loop)
		cs.joined = append(cs.joined, p)
	}
	cs.pools[i] = p
	return p, nil
}

// unitDone ends the client's unit of work on its node (its server goes
// back to the pool).
func (s *session) unitDone() {
	if cs := s.cl; cs != nil && cs.busy {
		cs.busy = false
		cs.node.inflight.Add(-1)
	}
}

// leaveCluster uncounts the client from the pools it used. At close.
func (s *session) leaveCluster() {
	if cs := s.cl; cs != nil {
		s.unitDone()
		for _, p := range cs.joined {
			p.Leave(s.loop)
		}
		cs.joined = nil
	}
}

// peekWork is what the router needs of the unit of work starting with the
// first message of data.
func (s *session) peekWork(data []byte) router.Work {
	typ, bodyLen, err := codec.PeekHeader(data, codec.MaxProtocolMessage)
	if err != nil || len(data) < 5+bodyLen {
		return router.Work{}
	}
	body := data[5 : 5+bodyLen]
	switch typ {
	case codec.MsgQuery:
		q, err := codec.QueryText(body)
		if err != nil {
			return router.Work{}
		}
		return workOf(s.plan(q), q)
	case codec.MsgParse:
		m, err := codec.ParseParse(body)
		if err != nil {
			return router.Work{}
		}
		return workOf(s.plan(m.Query), m.Query)
	case codec.MsgBind:
		m, err := codec.ParseBind(body)
		if err != nil || s.ps == nil {
			return router.Work{}
		}
		if len(m.Statement) == 0 {
			if s.ps.hasUnnamed {
				return router.Work{ReadOnly: s.ps.unnamedReadOnly, Hint: s.ps.unnamedHint}
			}
		} else if st := s.ps.named[string(m.Statement)]; st != nil {
			return router.Work{ReadOnly: st.readOnly, Hint: st.hint}
		}
	}
	return router.Work{}
}

// workOf is the router's view of a statement's plan: it may go to a
// replica if the planner clears it for one, or if it begins a READ ONLY
// transaction; a BEGIN that is not READ ONLY starts a transaction whose
// writes are yet to come, so it goes to the primary; so does what pins the
// client to its server (SET ROLE, temporary objects, ...), whose later
// writes would have to run there.
func workOf(plan *planner.Plan, sql []byte) router.Work {
	ro := plan.ReplicaOK && plan.Class != planner.ClassTxControl || plan.Effects&planner.EffReadOnlyTx != 0
	if plan.Effects&planner.EffPin != 0 {
		ro = false
	}
	return router.Work{ReadOnly: ro, Hint: router.Hint(sql)}
}

// lsnSQL asks the primary for its WAL position.
const lsnSQL = "SELECT pg_catalog.pg_current_wal_lsn()::text"

// askLSN slips belay's question for the primary's WAL position in after the
// client's messages up to at, which end an autocommit unit that may have
// written (a Sync or a Query, and no transaction control in it): the server
// answers it right after the client's ReadyForQuery, and is released once
// it did, with no round trip of belay's own. noteLSN reads the answer.
func (w *rewriter) askLSN(at int) {
	w.begin(at)
	w.out = codec.AppendQuery(w.out, lsnSQL)
	w.s.r.push(reply{kind: rQuery, own: true, lsn: true})
	w.s.cl.txWrite = false // asked: nothing to ask at the release
}

// noteLSN reads the DataRow of askLSN's question.
func (s *session) noteLSN(body []byte) {
	cols, err := codec.ParseDataRow(body, nil)
	if err != nil || len(cols) != 1 || cols[0] == nil {
		return
	}
	if l, err := ha.ParseLSN(string(cols[0])); err == nil && l > s.cl.minLSN {
		s.cl.minLSN = l
	}
}

// noteUnit notes what a statement of the client's current unit means for
// askLSN (tx: txControl of its plan).
func (s *session) noteUnit(tx bool) {
	if cs := s.cl; cs != nil && tx {
		cs.unitTx = true
	}
}

// txControl says whether a plan holds transaction control (BEGIN, COMMIT,
// ...), or what may (EXECUTE, a text that did not parse).
func txControl(plan *planner.Plan) bool {
	if plan.Effects&planner.EffExecute != 0 {
		return true
	}
	for _, st := range plan.Stmts {
		if st.Class == planner.ClassTxControl || st.Class == planner.ClassUnknown {
			return true
		}
	}
	return false
}

// needLSN says the client's transaction that just ended on the primary may
// have written, and its WAL position is to be asked (learnLSN); not while the
// proxy closes its clients as they go idle (they read no more).
func (s *session) needLSN() bool {
	if s.cl == nil || !s.cl.txWrite {
		return false
	}
	if s.p.level.Load() == levelServers {
		s.cl.txWrite = false
		return false
	}
	return true
}

// learnLSN asks sc, the primary, where its WAL is now, after the client's
// transaction that may have written: the client's reads must see that far.
// Then next.
func (s *session) learnLSN(sc *poolcore.Server, next func(sc *poolcore.Server)) {
	cs := s.cl
	cs.txWrite = false
	sc.ExecRows(lsnSQL, func(cols [][]byte) {
		if len(cols) == 1 {
			if l, err := ha.ParseLSN(string(cols[0])); err == nil && l > cs.minLSN {
				cs.minLSN = l
			}
		}
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if err != nil {
			s.p.log.Debug("cannot read the primary's WAL position", "err", err)
		}
		next(sc)
	})
}

// noteRouteSettings reads the session's own route and consistency from
// its settings (SET belay.route = primary|replica|auto, SET
// belay.consistency = eventual|session).
func (s *session) noteRouteSettings(set []setting) {
	cs := s.cl
	if cs == nil {
		return
	}
	cs.route, cs.eventual = router.Auto, false
	for _, st := range set {
		switch strings.ToLower(st.name) {
		case "belay.route":
			cs.route, _ = router.ParseRoute(st.value)
		case "belay.consistency":
			cs.eventual = strings.EqualFold(strings.TrimSpace(st.value), "eventual")
		}
	}
}

// rerouteAfter handles a login to a replica that failed for a client whose
// unit of work has not started: the node is suspected (the router skips it
// until its health check answers) and the work routed again. It returns
// false for everything else (the primary, an error of the client's own).
func (s *session) rerouteAfter(err error) bool {
	cs := s.cl
	if cs == nil || cs.node == nil || cs.node.primary || s.state != sReady || s.server != nil || errors.Is(err, poolcore.ErrQueryWaitTimeout) {
		return false
	}
	var pe *poolcore.PgError
	if errors.As(err, &pe) {
		switch sqlstate.Code(pe.Code) {
		case sqlstate.AdminShutdown, sqlstate.CrashShutdown, sqlstate.CannotConnectNow, sqlstate.TooManyConnections:
		default:
			return false // the same on every node (authentication, a database that does not exist)
		}
	}
	s.suspectNode(err.Error())
	s.unitDone()
	s.p.log.Info("a replica failed a login; routing the client's work elsewhere", "node", cs.node.name, "err", err)
	s.resumeWork()
	return true
}

// retryRead sends the client's current unit of work again, to another node,
// when the replica running it died before answering anything: it is a read
// outside a transaction (the router cleared it for a replica), so running it
// twice is safe. It returns false when the unit is not that. The caller has
// forgotten the lost server.
func (s *session) retryRead(err error) bool {
	cs := s.cl
	if !cs.armed || s.c == nil || s.t.pinned { // (nothing sent yet: a question of verifyReplay's)
		cs.armed = false
		return false
	}
	cs.armed, cs.verify, cs.verifying = false, 0, false
	node := cs.node
	s.suspectNode(err.Error())
	s.unitDone()
	node.retries.Add(1)
	s.r.abandon() // what the unit set up on the session never happened
	s.t = newTracker()
	s.in.Unread(cs.retry)
	s.p.log.Info("a replica died before answering a read; sending it again elsewhere", "node", node.name, "err", err)
	if s.clientData(s.c) == gnet.Close {
		s.closeClient()
	}
	return true
}

// errReplicaGone is why a read is sent again after its replica said FATAL.
var errReplicaGone = errors.New("the replica ended the session (shutdown, crash, or a conflict with recovery)")

// replicaGone says an ErrorResponse is a FATAL that ends the server's
// session for reasons of the node's own: a shutdown or crash (57P01-57P03),
// a conflict with recovery (40001).
func replicaGone(body []byte) bool {
	f, err := codec.ParseErrorFields(body)
	if err != nil || string(f.SeverityNonLocalized) != "FATAL" && string(f.Severity) != "FATAL" {
		return false
	}
	c := sqlstate.Code(f.Code)
	return c == sqlstate.AdminShutdown || c == sqlstate.CrashShutdown || c == sqlstate.CannotConnectNow ||
		c == sqlstate.TRSerializationFailure
}

// suspectNode tells the health checks that the client's node failed it.
func (s *session) suspectNode(why string) {
	if cs := s.cl; cs != nil && cs.node != nil && cs.node.health != nil {
		cs.node.health.Suspect(why)
	}
}

// clusterTick applies a new topology. From OnTick.
func (p *Proxy) clusterTick() {
	if p.cluster != nil {
		p.cluster.apply()
	}
}

// nodes describes the nodes for SHOW NODES: the cluster's, or the one
// server. Any goroutine.
func (p *Proxy) nodes() []admin.Node {
	open := map[string]int{}
	for _, pool := range p.pools.Pools() {
		open[pool.Key().Node] += pool.Stats().Open
	}
	if p.cluster == nil {
		host, port := splitAddr(p.cfg.Server)
		return []admin.Node{{Node: "", Host: host, Port: port, Role: "primary", State: "up", ServersOpen: open[""]}}
	}
	v := p.cluster.view.Load()
	shard := p.cluster.shard
	if t := p.cluster.src.Current(); t != nil && shard == "" {
		if s := p.cluster.served(t); s != nil {
			shard = s.Name
		}
	}
	out := make([]admin.Node, 0, len(v.nodes))
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
