package poolcore

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/fairness"
	"github.com/panjf2000/gnet/v2"
)

// node is the Postgres server's budget of connections, shared by every pool
// of the Manager through a fairness.Allocator (each pool is one of its users).
//
// The allocator is consulted only where a login is spent anyway or a server
// is free: a pool that must grow (Acquire found no idle server), a server
// that closed (its slot goes to Next), the periodic Tick, and, while the
// budget is contended (some pool with waiting clients holds less than its
// share), each release, when the released server may go to that pool. A
// client that finds an idle server of its pool on its own loop, and a release
// while nothing is contended, touch none of it: one atomic load.
type node struct {
	name string
	log  *slog.Logger // the Manager's (nil in some tests)
	// addrs are its server's addresses (a host list); next picks the one a
	// new server logs in to (round robin). Replaced whole by setServer.
	addrs atomic.Pointer[[]string]
	next  atomic.Uint32
	// removed: RemoveNode; its pools get no client and close as released.
	removed atomic.Bool
	// gen counts the changes of addrs and removed: a server logged in under
	// an older one must not serve again (serves).
	gen atomic.Uint32

	mu    sync.Mutex // guards the fields below, the allocator, and the pools' open counts
	alloc *fairness.Allocator
	pools []*Pool // by fairness.ID
	// askBudget is set until a login read the server's max_connections
	// (Options.MaxDBConnections 0); the first server to arrive claims it.
	askBudget bool
	// ceiling is the hard budget (MaxDBConnections, or as read from the
	// server; 0: none). limiter, when the adaptive limit is on and there
	// is a ceiling, sets the allocator's budget under it (limit.go).
	ceiling  int
	adaptive bool // Tunables.AdaptiveLimit
	limitMin int  // Tunables.LimitMin
	limiter  *fairness.Limiter

	// logins counts the servers that began to log in (the adaptive
	// limit does not measure the node while they do: limit.go).
	logins atomic.Uint64

	// contended mirrors alloc.Contended(): a release with it set offers its
	// server to the allocator (Pool.handOver).
	contended atomic.Bool
}

// budgetSQL is what a server's connections leave for belay: max_connections
// less the slots Postgres reserves (reserved_connections exists from 16 on).
const budgetSQL = "SELECT current_setting('max_connections')::int" +
	" - current_setting('superuser_reserved_connections')::int" +
	" - coalesce(current_setting('reserved_connections', true)::int, 0)"

func (n *node) init(o Options) {
	budget := o.MaxDBConnections
	if budget < 0 {
		budget = 0 // unlimited: only PoolSize bounds a pool
	}
	n.alloc = fairness.New(0)
	n.adaptive, n.limitMin = o.AdaptiveLimit, o.LimitMin
	n.setCeiling(budget)
	if o.FairnessWindow > 0 {
		n.alloc.SetWindow(o.FairnessWindow)
	}
	n.askBudget = o.MaxDBConnections == 0
}

// setServer points the node at server's addresses; it reports whether they
// changed.
func (n *node) setServer(server string) bool {
	addrs, _ := serverAddrs(server)
	if len(addrs) == 0 {
		addrs = []string{server} // Check refuses it; every login fails with its error
	}
	old := n.addrs.Load()
	if old != nil && slices.Equal(*old, addrs) {
		return false
	}
	n.addrs.Store(&addrs)
	if old != nil {
		n.gen.Add(1)
	}
	return true
}

// serves says whether sc may serve again on n: it logged in under n's
// current addresses, and n is in service. One atomic load.
func (n *node) serves(sc *Server) bool { return sc.nodeGen == n.gen.Load() }

// register makes p a user of the allocator. Lock order: Manager.mu, then node.mu.
func (n *node) register(p *Pool, l fairness.Limits) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p.fid = n.alloc.Add(l)
	if int(p.fid) < len(n.pools) {
		n.pools[p.fid] = p // the ID of a forgotten pool
	} else {
		n.pools = append(n.pools, p)
	}
}

// forget removes p, which holds no server, from the allocator.
// Lock order: Manager.mu, then node.mu.
func (n *node) forget(p *Pool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.alloc.Remove(p.fid)
	n.pools[p.fid] = nil
}

// refresh reports every pool's load to the allocator and publishes whether
// the budget is contended. Under n.mu.
func (n *node) refresh(now int64) {
	for _, p := range n.pools {
		if p == nil {
			continue // forgotten
		}
		n.alloc.Report(p.fid, p.load(), time.Duration(now))
	}
	n.contended.Store(n.alloc.Contended())
}

// load is the pool's demand as the allocator wants it: clients connected,
// clients holding a server, clients waiting that no login in flight will
// serve, and since when the oldest of those waits. Safe for concurrent use (atomics).
func (p *Pool) load() fairness.Load {
	var l fairness.Load
	oldest := int64(0)
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		l.Clients += int(lp.clients.Load())
		l.Busy += int(lp.active.Load())
		if w := int(lp.nWait.Load() - lp.dialing.Load()); w > 0 && !p.paused.Load() {
			l.Waiting += w
			if hs := lp.headSince.Load(); hs != 0 && (oldest == 0 || hs < oldest) {
				oldest = hs
			}
		}
	}
	l.WaitingSince = time.Duration(oldest)
	return l
}

// granted counts a slot the allocator gave p, for a login on loop i. Under n.mu.
func (p *Pool) granted(i int) {
	p.open.Add(1)
	p.perLoop[i].held.Add(1)
	p.blocked.Store(false)
}

// grantLoop is the loop a new server of p should log in on: the one whose
// oldest waiter no login in flight will serve waits longest (first come,
// first served within the pool), else fallback.
func (p *Pool) grantLoop(fallback int) int {
	if i := p.longestUnserved(); i >= 0 {
		return i
	}
	return fallback
}

// reserve asks the node for a slot for a login of p on loop i. A pool the
// allocator refused is marked blocked and does not ask again until a slot
// is granted to it or the next Tick: it will be offered slots as they free.
func (p *Pool) reserve(i int) bool {
	if p.blocked.Load() || p.paused.Load() || p.open.Load() >= p.limit() {
		return false
	}
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refresh(p.m.now())
	if !n.alloc.Grow(p.fid) {
		p.blocked.Store(true)
		n.reclaimIdle()
		return false
	}
	p.granted(i)
	n.contended.Store(n.alloc.Contended())
	return true
}

// handOver offers sc, a server of p free on its loop (just released, or
// idle), to the allocator. If p holds more than its share while another pool
// waits below its own, sc is closed and a server of that pool logs in in its
// slot (or, when the budget shrank, sc is just closed); it returns true. On
// sc's loop.
func (p *Pool) handOver(sc *Server) bool {
	n := p.n
	n.mu.Lock()
	n.refresh(p.m.now())
	to := n.alloc.Take(p.fid)
	var q *Pool
	var qi int
	if to != fairness.None {
		p.open.Add(-1)
		p.perLoop[sc.loop.idx].held.Add(-1)
		if to != fairness.Drop {
			q = n.pools[to]
			qi = q.grantLoop(sc.loop.idx)
			q.granted(qi)
		}
		n.contended.Store(n.alloc.Contended())
	}
	n.mu.Unlock()
	if to == fairness.None {
		return false
	}
	sc.slotMoved = true // the accounting is done
	sc.Close()
	if q != nil {
		p.m.Handovers.Add(1)
		p.m.log.Debug("server slot handed over", "from", p.key, "to", q.key)
		q.dial(p.m.loop(qi))
	}
	return true
}

// closed returns the slot of a server of p that closed (or never logged in)
// to the allocator and gives it, with any other free slot, to the pools that
// wait. Any goroutine.
func (n *node) closed(p *Pool) {
	n.mu.Lock()
	n.alloc.Closed(p.fid)
	p.open.Add(-1)
	n.mu.Unlock()
	n.grantFree(p.m)
}

// grantFree gives the budget's free slots to the pools that wait, in the
// allocator's order, and dials for them.
func (n *node) grantFree(m *Manager) {
	type grant struct {
		p *Pool
		i int
	}
	var grants []grant
	n.mu.Lock()
	n.refresh(m.now())
	for id := n.alloc.Next(); id != fairness.None; id = n.alloc.Next() {
		q := n.pools[id]
		i := q.grantLoop(-1)
		if i < 0 { // its waiters were served meanwhile
			n.alloc.Closed(id)
			break
		}
		q.granted(i)
		grants = append(grants, grant{q, i})
	}
	n.contended.Store(n.alloc.Contended())
	n.mu.Unlock()
	for _, g := range grants {
		g.p.dial(m.loop(g.i)) // a loop with waiters exists
	}
}

// reclaimIdle asks the loops holding idle servers of pools above their share
// to hand them over, while the budget is contended. Under n.mu.
func (n *node) reclaimIdle() {
	if !n.alloc.Contended() {
		return
	}
	for _, p := range n.pools {
		if p == nil || !n.alloc.Over(p.fid) {
			continue
		}
		for i := range p.perLoop {
			if p.perLoop[i].nIdle.Load() == 0 {
				continue
			}
			l := p.m.loop(i)
			if l == nil {
				continue
			}
			_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				p.handOverIdle(l)
				return nil
			}))
		}
	}
}

// handOverIdle offers l's idle servers of p, longest idle first, until the
// allocator keeps one. On l.
func (p *Pool) handOverIdle(l *Loop) {
	lp := &p.perLoop[l.idx]
	for len(lp.idle) > 0 && p.n.contended.Load() && p.handOver(lp.idle[0]) {
	}
}

// tick runs from Manager.Tick: loads age, blocked pools may ask again, free
// slots go to waiters, idle servers above their pool's share are reclaimed.
func (n *node) tick(m *Manager) {
	n.mu.Lock()
	for _, p := range n.pools {
		if p != nil {
			p.blocked.Store(false)
		}
	}
	now := m.now()
	n.adapt(now)
	n.refresh(now)
	n.reclaimIdle()
	n.mu.Unlock()
	n.grantFree(m)
}

// learnBudget reads the server's connection budget on sc, the first server
// to log in when Options.MaxDBConnections is 0, then calls then. On the loop.
func (n *node) learnBudget(sc *Server, then func()) {
	n.mu.Lock()
	ask := n.askBudget
	n.askBudget = false
	n.mu.Unlock()
	if !ask {
		then()
		return
	}
	budget := 0
	sc.ExecRows(budgetSQL, func(cols [][]byte) {
		if len(cols) == 1 {
			budget, _ = strconv.Atoi(string(cols[0]))
		}
	}, func(sc *Server, err *PgError) {
		if err != nil || budget <= 0 {
			sc.pool.m.log.Warn("could not read the server's max_connections; no budget but pool sizes", "err", err)
		} else {
			n.mu.Lock()
			n.setCeiling(budget)
			n.mu.Unlock()
			sc.pool.m.log.Info("server connection budget", "max_db_connections", budget)
		}
		then()
	})
}

// NodeStats is a snapshot of the node's budget, for tests and metrics.
type NodeStats struct {
	Budget, Open int // Budget 0: unlimited (or not read yet)
	Contended    bool
	Limit        LimitStats
}

// NodeStats reads the budget of the Manager's own server (node ""). Safe
// for concurrent use.
func (m *Manager) NodeStats() NodeStats {
	s, _ := m.NodeStatsOf("")
	return s
}

// NodeStatsOf reads the budget of the node name. Safe for concurrent use.
func (m *Manager) NodeStatsOf(name string) (NodeStats, bool) {
	m.mu.Lock()
	n := m.nodes[name]
	m.mu.Unlock()
	if n == nil {
		return NodeStats{}, false
	}
	return n.stats(), true
}

func (n *node) stats() NodeStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return NodeStats{Budget: n.alloc.Budget(), Open: n.alloc.Open(), Contended: n.alloc.Contended(), Limit: n.limitStats()}
}

// Fairness reads p's place in the budget: its smoothed demand and its fair
// share. Safe for concurrent use.
func (p *Pool) Fairness() (demand, share int) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.alloc.Demand(p.fid), n.alloc.Share(p.fid)
}
