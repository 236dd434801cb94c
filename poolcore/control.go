package poolcore

import (
	"context"
	"strings"
	"time"

	"github.com/belaydb/belay/fairness"
	"github.com/panjf2000/gnet/v2"
)

// Tunables are the Options a reload may change while clients are served.
type Tunables struct {
	PoolSize         int
	MaxDBConnections int
	// AdaptiveLimit adapts each node's budget under MaxDBConnections to the
	// concurrency its Postgres serves best (a fairness.Limiter; see
	// limit.go). LimitMin is the least limit (0: fairness.DefaultLimitMin).
	AdaptiveLimit bool
	LimitMin      int
	// MaxUserConnections bounds a pool whose user has no Max in UserLimits (0: PoolSize).
	MaxUserConnections int
	UserLimits         map[string]fairness.Limits
	Lifetime           time.Duration
	IdleTimeout        time.Duration
	ConnectTimeout     time.Duration
	QueryWaitTimeout   time.Duration
	// ResetQuery runs before belay's DISCARD ALL on a server a client left
	// state on (PgBouncer's server_reset_query; "" or DISCARD ALL: only that).
	ResetQuery string
	// CheckQuery runs on a server idle longer than CheckDelay before a
	// client gets it; a server that fails it is closed (PgBouncer's
	// server_check_query and server_check_delay; "" disables the check,
	// CheckDelay 0 checks every time).
	CheckQuery string
	CheckDelay time.Duration
	// MinPoolSize keeps this many servers open in each pool that has
	// clients (PgBouncer's min_pool_size).
	MinPoolSize int
	// ReservePoolSize more servers a pool may open once a client waited
	// ReservePoolTimeout (PgBouncer's reserve_pool_size and reserve_pool_timeout).
	ReservePoolSize    int
	ReservePoolTimeout time.Duration
}

// tunablesOf is o's Tunables.
func tunablesOf(o Options) Tunables {
	return Tunables{PoolSize: o.PoolSize, MaxDBConnections: o.MaxDBConnections, AdaptiveLimit: o.AdaptiveLimit, LimitMin: o.LimitMin, MaxUserConnections: o.MaxUserConnections, UserLimits: o.UserLimits,
		Lifetime: o.Lifetime, IdleTimeout: o.IdleTimeout, ConnectTimeout: o.ConnectTimeout, QueryWaitTimeout: o.QueryWaitTimeout,
		ResetQuery: o.ResetQuery, CheckQuery: o.CheckQuery, CheckDelay: o.CheckDelay, MinPoolSize: o.MinPoolSize,
		ReservePoolSize: o.ReservePoolSize, ReservePoolTimeout: o.ReservePoolTimeout}
}

// limitsOf is user's share of the budget. Under m.mu (or before m is shared).
func (m *Manager) limitsOf(user string) fairness.Limits {
	t := tunablesOf(m.opts)
	return t.Limits(user)
}

// Limits are user's share of the budget as the pools apply it: its
// configured limits, Max from MaxUserConnections when it has none, capped
// at PoolSize. (A zero Weight counts as 1 in the allocator.)
func (t *Tunables) Limits(user string) fairness.Limits {
	lim := t.UserLimits[user]
	if lim.Max <= 0 {
		lim.Max = t.MaxUserConnections
	}
	if lim.Max <= 0 || lim.Max > t.PoolSize {
		lim.Max = t.PoolSize
	}
	return lim
}

// Tune applies t while clients are served: a larger pool or budget lets
// waiting clients log servers in at once; servers above a smaller one close
// as they are released; the timeouts apply from their next check. Safe for
// concurrent use.
func (m *Manager) Tune(t Tunables) {
	if t.PoolSize < 1 {
		t.PoolSize = 1
	}
	if t.ConnectTimeout <= 0 {
		t.ConnectTimeout = 15 * time.Second
	}
	m.tun.Store(&t)
	m.mu.Lock()
	m.opts.PoolSize, m.opts.UserLimits, m.opts.MaxDBConnections, m.opts.MaxUserConnections = t.PoolSize, t.UserLimits, t.MaxDBConnections, t.MaxUserConnections
	m.opts.AdaptiveLimit, m.opts.LimitMin = t.AdaptiveLimit, t.LimitMin
	m.opts.Lifetime, m.opts.IdleTimeout, m.opts.ConnectTimeout, m.opts.QueryWaitTimeout = t.Lifetime, t.IdleTimeout, t.ConnectTimeout, t.QueryWaitTimeout
	for _, n := range m.nodes {
		n.mu.Lock() // lock order: m.mu, then node.mu
		for _, p := range n.pools {
			if p == nil {
				continue // forgotten
			}
			lim := m.limitsOf(p.key.User)
			p.size.Store(int32(lim.Max))
			n.alloc.SetLimits(p.fid, lim)
		}
		n.adaptive, n.limitMin = t.AdaptiveLimit, t.LimitMin
		switch {
		case t.MaxDBConnections > 0:
			n.setCeiling(t.MaxDBConnections)
			n.askBudget = false
		case t.MaxDBConnections < 0:
			n.setCeiling(0)
			n.askBudget = false
		default:
			n.setCeiling(n.ceiling) // as read from the server; the limiter on or off
		}
		n.mu.Unlock()
	}
	m.mu.Unlock()
	m.kick("")
}

// Pause stops giving servers to the clients of database db ("" for every
// database): they wait, as with a pool full, and each server closes once
// released (idle ones at once). Paused reports when none is left. Safe for
// concurrent use.
func (m *Manager) Pause(db string) {
	m.mu.Lock()
	if db == "" {
		m.pausedAll = true
	} else {
		m.pausedDBs[db] = true
	}
	m.mu.Unlock()
	m.setPaused(db, true)
	m.closeIdle(db)
}

// Resume undoes Pause for db ("" for all: every pause is lifted) and serves
// the waiting clients.
func (m *Manager) Resume(db string) {
	m.mu.Lock()
	if db == "" {
		m.pausedAll = false
		clear(m.pausedDBs)
	} else {
		delete(m.pausedDBs, db)
	}
	all := m.pausedAll
	m.mu.Unlock()
	if !all {
		m.setPaused(db, false)
	}
	m.kick(db)
}

// IsPaused says whether db ("" for all) is paused.
func (m *Manager) IsPaused(db string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pausedAll || (db != "" && m.pausedDBs[db])
}

// OpenServers is the number of servers of db ("" for all) open or logging in.
func (m *Manager) OpenServers(db string) int {
	n := 0
	for _, p := range m.poolsOf(db) {
		n += int(p.open.Load())
	}
	return n
}

// Reconnect retires every server of db ("" for all) open now: each closes
// once released (idle ones at once), and new ones replace them on demand.
func (m *Manager) Reconnect(db string) {
	now := time.Now().UnixNano()
	for _, p := range m.poolsOf(db) {
		p.retireBefore.Store(now)
	}
	m.closeIdle(db)
}

// retired says sc must close rather than serve again: RECONNECT marked it,
// its pool holds more than a reload's smaller size, or its node was removed
// or now lives at another address.
func (p *Pool) retired(sc *Server) bool {
	rb := p.retireBefore.Load()
	return (rb != 0 && sc.born.UnixNano() < rb) || p.open.Load() > p.limit() || !p.n.serves(sc)
}

// limit is the most servers p may hold now: its size, and its reserve
// while a client has waited longer than ReservePoolTimeout.
func (p *Pool) limit() int32 {
	n := p.size.Load()
	if p.reserveOn.Load() {
		n += int32(p.m.tun.Load().ReservePoolSize)
	}
	return n
}

// sweepReserve opens or closes p's reserve: open once its oldest waiter
// waited ReservePoolTimeout, closed when nobody waits (its servers then
// close as released, being above the limit). Any goroutine.
func (p *Pool) sweepReserve(tun *Tunables) {
	on := tun.ReservePoolSize > 0 && p.OldestWait() > tun.ReservePoolTimeout
	if on == p.reserveOn.Load() || (!on && p.OldestWait() > 0) {
		return
	}
	m, n := p.m, p.n
	m.mu.Lock()
	lim := m.limitsOf(p.key.User)
	if on {
		lim.Max += tun.ReservePoolSize
		m.log.Info("reserve pool opened", "pool", p.key, "reserve_pool_size", tun.ReservePoolSize)
	}
	n.mu.Lock()
	n.alloc.SetLimits(p.fid, lim)
	p.reserveOn.Store(on)
	p.blocked.Store(false)
	n.mu.Unlock()
	m.mu.Unlock()
}

// resetSQL is what a server a client left state on runs before anyone else
// gets it.
func (t *Tunables) resetSQL() string {
	if q := strings.TrimSpace(t.ResetQuery); q != "" && !strings.EqualFold(q, "DISCARD ALL") {
		return q + "; DISCARD ALL"
	}
	return "DISCARD ALL"
}

// check runs CheckQuery on sc, an idle server c was about to get, then
// hands it to c, or closes it and acquires again for c. On sc's loop.
func (p *Pool) check(sc *Server, c Client, sig string, q string) {
	sc.Exec(q, func(sc *Server, err *PgError) {
		if err == nil {
			c.ServerReady(sc)
			return
		}
		p.m.log.Warn("server_check_query failed; closing the server", "pool", p.key, "err", err.Message)
		sc.owner = nil
		p.perLoop[sc.loop.idx].active.Add(-1)
		sc.Close()
		if next := p.Acquire(sc.loop, c, sig); next != nil {
			c.ServerReady(next)
		}
	})
}

// CloseServers closes every server of db ("" for all) now, in use or not
// (KILL); their clients get ServerLost.
func (m *Manager) CloseServers(db string) {
	m.eachLoop(func(l *Loop) {
		for sc := range l.servers {
			if db == "" || sc.pool.key.Database == db {
				sc.Close()
			}
		}
	})
}

// CloseIdle closes l's idle servers, each with Terminate (a proxy that
// stops). On l.
func (l *Loop) CloseIdle() {
	for sc := range l.servers {
		if sc.state == stateIdle {
			sc.Close()
		}
	}
}

// EachServer runs f on l for each of l's servers. On l.
func (l *Loop) EachServer(f func(sc *Server)) {
	for sc := range l.servers {
		f(sc)
	}
}

func (m *Manager) poolsOf(db string) []*Pool {
	var out []*Pool
	for _, p := range m.Pools() {
		if db == "" || p.key.Database == db {
			out = append(out, p)
		}
	}
	return out
}

func (m *Manager) setPaused(db string, paused bool) {
	for _, p := range m.poolsOf(db) {
		p.paused.Store(paused)
	}
}

// closeIdleOf closes, on each loop, the idle servers of n's pools that
// must not serve again (n removed, or pointed elsewhere).
func (m *Manager) closeIdleOf(n *node) {
	m.eachLoop(func(l *Loop) {
		for sc := range l.servers {
			if sc.state == stateIdle && sc.pool.n == n && !n.serves(sc) {
				sc.Close()
			}
		}
	})
}

// closeIdle closes, on each loop, the idle servers of db that must not
// serve again (paused or retired).
func (m *Manager) closeIdle(db string) {
	m.eachLoop(func(l *Loop) {
		for _, p := range m.poolsOf(db) {
			lp := &p.perLoop[l.idx]
			for i := len(lp.idle) - 1; i >= 0; i-- {
				if sc := lp.idle[i]; p.paused.Load() || p.retired(sc) {
					sc.Close()
				}
			}
		}
	})
}

// kick serves the waiting clients of db ("" for all) after a pause or a
// smaller limit ended: each loop logs in servers for its waiters as far as
// the pool and the budget allow.
func (m *Manager) kick(db string) {
	for _, n := range m.nodeList() {
		n.tick(m)
	}
	m.eachLoop(func(l *Loop) {
		for _, p := range m.poolsOf(db) {
			lp := &p.perLoop[l.idx]
			for lp.unserved() && !p.paused.Load() && p.reserve(l.idx) {
				p.dial(l)
			}
		}
	})
}

// eachLoop runs f on every loop, without waiting.
func (m *Manager) eachLoop(f func(l *Loop)) {
	m.mu.Lock()
	loops := append([]*Loop(nil), m.loops...)
	m.mu.Unlock()
	for _, l := range loops {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			f(l)
			return nil
		}))
	}
}

// ServerInfo describes a server for the admin console.
type ServerInfo struct {
	Key        Key
	State      string // PgBouncer's words: login, active, idle, used (belay's own query or draining), being_canceled
	Born       time.Time
	IdleSince  time.Time
	PID        uint32
	Local      string // host:port of belay's end
	Remote     string
	TLS        bool
	Owner      Client // nil when idle
	Statements int    // prepared statements belay keeps on it
	MaxStmts   int
	Loop       int
}

// Info describes sc. On its loop.
func (sc *Server) Info() ServerInfo {
	i := ServerInfo{Key: sc.pool.key, Born: sc.born, PID: sc.PID, TLS: sc.TLS(),
		Owner: sc.owner, Statements: len(sc.Stmts.used), MaxStmts: sc.Stmts.Max, Loop: sc.loop.idx}
	if sc.idleSince != 0 {
		i.IdleSince = sc.pool.m.epoch.Add(time.Duration(sc.idleSince))
	}
	if i.MaxStmts == 0 {
		i.MaxStmts = DefaultMaxStatements
	}
	switch sc.state {
	case stateDialing:
		i.State = "login"
	case stateIdle:
		i.State = "idle"
	case stateActive, stateParked:
		i.State = "active"
	case stateCancelWait:
		i.State = "being_canceled"
	default:
		i.State = "used"
	}
	if c := sc.conn; c != nil {
		if a := c.LocalAddr(); a != nil {
			i.Local = a.String()
		}
		if a := c.RemoteAddr(); a != nil {
			i.Remote = a.String()
		}
	}
	return i
}

// Retired says sc must close rather than serve again (RECONNECT, or its pool
// above a reload's smaller size). On sc's loop.
func (p *Pool) Retired(sc *Server) bool { return p.retired(sc) }
