package loop

import (
	"errors"
	"slices"
	"strings"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/panjf2000/gnet/v2"
)

// The session's side of serving a cluster (cluster.go): where its units of
// work go, the pools it uses on each node, and what it does when a node
// fails under it. On the session's loop.

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
	s.cl = &clusterState{cred: cred, c: s.p.cluster}
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
	cred poolcore.Credentials // how belay logs in as the client's user
	// c is the cluster (the shard) this state is of; others are the
	// client's states on the other shards of a sharded cluster, shared by
	// all of them (shards.go).
	c      *cluster
	others *[]*clusterState
	// begin is a BEGIN belay answered and has yet to send (shards.go).
	begin []byte
	node  *clusterNode // the node of s.pool
	gen   uint64       // the view pools was filled for
	pools []*poolcore.Pool
	// joined are the pools it counts itself a client of (Leave at close).
	joined []*poolcore.Pool
	busy   bool // it counts in node.inflight
	// minLSN: its reads must see the primary this far (read-your-writes).
	minLSN  ha.LSN
	txWrite bool // its current unit runs on the primary and may write (its WAL position is to be asked)
	// blindWrite: its last write ran where the view had no replica, and
	// its WAL position was not asked (routeWork).
	blindWrite bool
	// unitTx: its current unit holds transaction control (BEGIN, COMMIT,
	// ...) or what may (EXECUTE): it may not end idle, so the WAL position
	// is asked after it, not pipelined with it (askLSN).
	unitTx bool
	// lsnOwed: askLSN's question is under way; the client's next unit
	// waits for the server's release, to be routed anew.
	lsnOwed bool
	// armed: its current unit is a read that has answered nothing yet,
	// sent again elsewhere if its server dies first (retryUnit). unsent:
	// its current unit went to a belay pooler (Config.PoolerServers) and
	// has answered nothing yet; routed again if the pooler says it never
	// reached the node (neverSent). retry holds what the client sent of
	// the unit while either is set.
	armed  bool
	unsent bool
	retry  []byte
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
	// Failover (failover.go): term is the view's term its current unit
	// was routed in; held, it is on its loop's held list; pendTx, a
	// statement of transaction control was sent since the last
	// ReadyForQuery (pendEnd: one that ends the transaction, COMMIT or
	// ROLLBACK; pendUnsure: one of unknown kind, as an EXECUTE or in the
	// extended protocol); lost, its transaction died with its server and
	// belay plays the rest.
	term       uint64
	held       bool
	pendTx     bool
	pendEnd    bool
	pendUnsure bool
	lost       *lostTx
}

// routeWork picks the node of the client's next unit of work, whose first
// message starts data, and makes that node's pool the client's. The client
// holds no server. It returns an error when the work can go nowhere.
func (s *session) routeWork(data []byte) error {
	if set := s.p.sharding.set.Load(); set != nil {
		k, err := s.unitShard(set, data)
		if err != nil {
			return err
		}
		if k >= 0 {
			s.moveToShard(set.clusters[k])
		}
	}
	cs := s.cl
	c := cs.c
	v := c.view.Load()
	w := s.peekWork(data)
	c.turn[s.loop.Index()]++
	w.Turn = c.turn[s.loop.Index()]
	rs := router.Session{Route: cs.route}
	if !cs.eventual && !s.p.cfg.Eventual {
		rs.MinLSN = cs.minLSN
	}
	nodes := c.scratch[s.loop.Index()][:0]
	tli := v.primaryTimeline()
	for _, n := range v.nodes {
		nodes = append(nodes, n.routerNode(tli))
	}
	c.scratch[s.loop.Index()] = nodes
	if cs.begin != nil && !workOf(s.plan(cs.begin), cs.begin).ReadOnly {
		// The first unit of a transaction whose BEGIN belay deferred
		// (shards.go): its writes are yet to come, as for a BEGIN.
		rs.Route = router.Primary
	}
	if cs.toPrimary || s.p.live.Load().session {
		// A read that waited for a replica in vain; or pool_mode session,
		// where the client keeps its first server.
		cs.toPrimary = false
		rs.Route = router.Primary
	}
	// With no replica in the view no read can go anywhere but the primary,
	// and a write's WAL position is not asked (blind). Once a replica
	// joins, the reads of a client that wrote blind stay on the primary
	// until a write of its own is asked its position.
	blind := len(v.nodes) < 2
	if cs.blindWrite && !blind && !cs.eventual && !s.p.cfg.Eventual && rs.Route == router.Auto {
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
	if i < 0 || v.nodes[i].primary {
		if err := s.admitPrimary(v); err != nil {
			return err // held for a failover, or the hold expired
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
	s.pool, s.stats, cs.node, cs.term = pool, pool.LoopStats(s.loop), n, v.term
	cs.busy = true
	n.inflight.Add(1)
	write := n.primary && !w.ReadOnly
	cs.txWrite, cs.unitTx = write && !blind, false
	if write {
		cs.blindWrite = blind
	}
	// A read is kept to be sent again if its server dies before answering,
	// on a replica or on the primary (a failover); any unit sent to a
	// pooler, until the pooler says whether it reached the node.
	if cap(cs.retry) > 64<<10 {
		cs.retry = nil // a large unit's buffer is not kept for the session's life
	}
	cs.armed, cs.unsent, cs.retry = w.ReadOnly, s.p.cfg.PoolerServers, cs.retry[:0]
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
	if cs := s.cl; cs != nil {
		cs.lsnOwed = false
	}
	if cs := s.cl; cs != nil && cs.busy {
		cs.busy = false
		cs.node.inflight.Add(-1)
	}
}

// leaveCluster uncounts the client from the pools it used. At close.
func (s *session) leaveCluster() {
	s.unhold()
	if cs := s.cl; cs != nil {
		s.unitDone()
		for _, st := range cs.states() {
			for _, p := range st.joined {
				p.Leave(s.loop)
			}
			st.joined = nil
		}
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

// keep adds b, sent to the server, to the unit kept to be sent again
// (retryUnit). A unit past max bytes is not kept: it is not sent again.
func (cs *clusterState) keep(b []byte, max int) {
	if len(cs.retry)+len(b) > max {
		cs.armed, cs.unsent, cs.retry = false, false, nil
		return
	}
	cs.retry = append(cs.retry, b...)
}

// retryUnit routes the client's current unit of work again when the server
// running it died before answering anything, and either the unit is a read
// outside a transaction (the router cleared it for a replica), so running
// it twice is safe, or its pooler said it never reached the node (err is
// errNeverSent). On the primary the caller has started the hold, so the
// unit waits for the new primary. It returns false when the unit is neither.
// The caller has forgotten the lost server.
func (s *session) retryUnit(err error) bool {
	cs := s.cl
	never := cs.unsent && errors.Is(err, errNeverSent)
	if !cs.armed && !never || s.c == nil || s.t.pinned { // (nothing sent yet: a question of verifyReplay's)
		cs.armed, cs.unsent = false, false
		return false
	}
	cs.armed, cs.unsent, cs.verify, cs.verifying = false, false, 0, false
	node := cs.node
	s.suspectNode(err.Error())
	s.unitDone()
	if never {
		node.unsent.Add(1)
	} else {
		node.retries.Add(1)
	}
	s.r.abandon() // what the unit set up on the session never happened
	s.t = newTracker()
	s.in.Unread(cs.retry)
	s.p.log.Info("a unit lost before any answer: routing it again", "node", node.name, "err", err, "never_sent", never)
	if s.clientData(s.c) == gnet.Close {
		s.closeClient()
	}
	return true
}

// errReplicaGone is why a read is sent again after its replica said FATAL.
var errReplicaGone = errors.New("the replica ended the session (shutdown, crash, or a conflict with recovery)")

// replicaGone says an ErrorResponse is a FATAL that ends the server's
// session for reasons of the node's own: a shutdown or crash (57P01-57P03),
// a conflict with recovery (40001), or, from a belay pooler in front of the
// node (a gateway's servers are poolers), the loss of its own server
// (08006: Postgres never sends it, a pooler does when its server dies).
func replicaGone(body []byte) bool {
	c, ok := fatalCode(body)
	return ok && (c == sqlstate.AdminShutdown || c == sqlstate.CrashShutdown || c == sqlstate.CannotConnectNow ||
		c == sqlstate.TRSerializationFailure || c == sqlstate.ConnectionFailure)
}

// errNeverSent: a pooler said the client's unit never reached its node.
var errNeverSent = errors.New("the pooler could not reach its node: the unit was not sent")

// neverSent says an ErrorResponse from a belay pooler is a FATAL that
// tells the unit it answers never reached the node: the pooler could not
// connect to its node (08001), or the node refused its login (57P03,
// which PostgreSQL sends only to a login). Only a gateway asks, and only
// before the pooler answered anything of the unit.
func neverSent(body []byte) bool {
	c, ok := fatalCode(body)
	return ok && (c == sqlstate.SQLClientUnableToEstablishSQLConnection || c == sqlstate.CannotConnectNow)
}

// fatalCode is the SQLSTATE of an ErrorResponse's body, and whether it is
// a FATAL.
func fatalCode(body []byte) (sqlstate.Code, bool) {
	f, err := codec.ParseErrorFields(body)
	if err != nil || string(f.SeverityNonLocalized) != "FATAL" && string(f.Severity) != "FATAL" {
		return "", false
	}
	return sqlstate.Code(f.Code), true
}

// suspectNode tells the health checks that the client's node failed it.
func (s *session) suspectNode(why string) {
	if cs := s.cl; cs != nil && cs.node != nil && cs.node.health != nil {
		cs.node.health.Suspect(why)
	}
}
