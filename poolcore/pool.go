package poolcore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/fairness"
	"github.com/panjf2000/gnet/v2"
)

// Key identifies a pool: server connections log in as User to Database on
// Node ("" is the Manager's own server, Options.Server; other nodes are
// added with SetNode).
type Key struct{ Node, Database, User string }

func (k Key) String() string {
	if k.Node != "" {
		return k.User + "@" + k.Database + "@" + k.Node
	}
	return k.User + "@" + k.Database
}

// Options configure a Manager.
type Options struct {
	// Server is the Postgres "host:port" (or a Unix socket directory and
	// port as "/dir:port"), or several, comma-separated: the hosts of one
	// database (PgBouncer's host list), taken in turn for each new server
	// and tried in order when one cannot be reached.
	Server string
	// PoolSize is the most server connections a pool may hold open.
	PoolSize int
	// NumLoops is the number of gnet event loops (each gets a share of every pool).
	NumLoops int
	// Lifetime closes a server released after living this long (0: never).
	Lifetime time.Duration
	// IdleTimeout closes a server idle for this long (0: never).
	IdleTimeout time.Duration
	// ConnectTimeout bounds one login.
	ConnectTimeout time.Duration
	// PassFile is a .pgpass file for md5/SCRAM logins ("" = libpq defaults).
	PassFile string
	// ServerTLSMode is libpq's sslmode for server connections: disable (""),
	// allow, prefer, require, verify-ca or verify-full (see login.go).
	ServerTLSMode string
	// ServerTLSCAFile holds the CA certificates that verify the server
	// (verify-ca, verify-full; with require, as in libpq, it makes require
	// verify the chain too). "" means the system roots.
	ServerTLSCAFile string
	// ServerTLSCertFile and ServerTLSKeyFile are a client certificate for
	// Postgres's cert authentication (optional).
	ServerTLSCertFile, ServerTLSKeyFile string
	// MaxPreparedStatements bounds the prepared statements belay keeps on
	// each server connection (0: DefaultMaxStatements); the least recently
	// used is deallocated to make room.
	MaxPreparedStatements int
	// QueryWaitTimeout fails a client that waited this long in a pool's
	// queue with ErrQueryWaitTimeout (0: it waits for ever).
	QueryWaitTimeout time.Duration
	// MaxDBConnections is the server's budget of connections, shared
	// between the pools by package fairness: 0 reads it from the server at
	// the first login (max_connections less reserved slots), -1 means none
	// (only PoolSize bounds each pool).
	MaxDBConnections int
	// AdaptiveLimit and LimitMin: see Tunables. The limit adapts under the
	// budget, so with MaxDBConnections -1 there is none.
	AdaptiveLimit bool
	LimitMin      int
	// MaxUserConnections bounds a pool whose user has no Max in UserLimits (0: PoolSize).
	MaxUserConnections int
	// ResetQuery, CheckQuery, CheckDelay, MinPoolSize, ReservePoolSize and
	// ReservePoolTimeout: see Tunables.
	ResetQuery, CheckQuery       string
	CheckDelay                   time.Duration
	MinPoolSize, ReservePoolSize int
	ReservePoolTimeout           time.Duration
	// UserLimits gives a user's pools a weight, a guaranteed minimum and a
	// maximum in the budget (a Max above PoolSize is cut to it).
	UserLimits map[string]fairness.Limits
	// FairnessWindow is how long a pool's peak demand holds its share up
	// (0: fairness.DefaultWindow).
	FairnessWindow time.Duration
	// CloseUnused closes, at each Sweep, the idle servers of a pool on a
	// loop where it has no client left. For a gateway, whose servers are
	// poolers: an idle connection kept for a user whose clients are gone
	// counts at the pooler as a client of that user, whose demand then
	// holds a share of the node's budget for a fairness window; closed,
	// the pooler shares it out at once, as belay proxy does when a user's
	// last client leaves. Re-opening one is a login to a pooler, not to
	// Postgres.
	CloseUnused bool
	Logger      *slog.Logger
	// OnSweep, when set, runs at the end of every Sweep, on the loop swept:
	// the owner's own periodic work per loop (the loop package's login
	// timeouts) without a timer per connection.
	OnSweep func(l *Loop)
	// OnNewPool, when set, is told of each pool as it is created (for
	// metrics), under the Manager's lock: it must not call back into it.
	OnNewPool func(p *Pool)
	// OnForgetPool, when set, is told of each pool the Manager forgets (a
	// pool that never logged in, once its clients are gone: see
	// forgetUnused), under the Manager's lock: it must not call back into it.
	OnForgetPool func(p *Pool)
}

// ErrQueryWaitTimeout is what ServerFailed reports to a client that waited
// longer than Options.QueryWaitTimeout for a server (as a *WaitTimeoutError,
// which says why).
var ErrQueryWaitTimeout = errors.New("query_wait_timeout")

// WaitTimeoutError is ErrQueryWaitTimeout with the state of the client's
// pool when it gave up.
type WaitTimeoutError struct {
	Pool          Key
	Waited        time.Duration
	Held, Share   int // the pool's servers and its fair share of the budget
	Open, Budget  int // the node's servers and budget (0: none)
	PoolSizeLimit int
}

func (e *WaitTimeoutError) Error() string {
	budget := "no budget"
	if e.Budget > 0 {
		budget = fmt.Sprintf("%d of the server's budget of %d in use", e.Open, e.Budget)
	}
	return fmt.Sprintf("no server connection for %s within %v: the pool holds %d (its fair share %d, its limit %d); %s",
		e.Pool, e.Waited.Round(time.Millisecond), e.Held, e.Share, e.PoolSizeLimit, budget)
}

func (e *WaitTimeoutError) Is(target error) bool { return target == ErrQueryWaitTimeout }

func (p *Pool) waitTimeout(waited time.Duration) error {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return &WaitTimeoutError{Pool: p.key, Waited: waited, Held: n.alloc.Held(p.fid), Share: n.alloc.Share(p.fid),
		Open: n.alloc.Open(), Budget: n.alloc.Budget(), PoolSizeLimit: int(p.size.Load())}
}

// Check reports options that cannot work (an unknown TLS mode, unreadable
// certificate files), so that a caller can refuse to start. NewManager
// accepts them anyway; every login then fails with the same error.
func (o Options) Check() error {
	if _, err := serverAddrs(o.Server); err != nil {
		return err
	}
	_, err := newServerTLS(o)
	return err
}

// serverAddrs splits Options.Server into its host:port addresses.
func serverAddrs(server string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(server, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("server address %q: %w", a, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// Manager holds every pool. Safe for concurrent use.
type Manager struct {
	opts  Options
	log   *slog.Logger
	epoch time.Time

	mu    sync.Mutex // guards pools, loops and nodes
	pools map[Key]*Pool
	loops []*Loop
	// nodes are the Postgres servers the pools log in to, by name; "" is
	// Options.Server.
	nodes map[string]*node
	// loopByIdx[i] is loops[i], readable without mu (node code runs under
	// node.mu, which is taken after mu, never before).
	loopByIdx []atomic.Pointer[Loop]

	tun atomic.Pointer[Tunables] // what a reload may change (Tune)
	// PAUSE: every database, or the ones named; under mu.
	pausedAll bool
	pausedDBs map[string]bool

	tls    *serverTLS // how logins use TLS; nil with tlsErr
	tlsErr error      // why the TLS options cannot work

	// cancelAddr, when set, is where CancelRequests go instead of the
	// server's own address (a test points it at a relay to delay them).
	cancelAddr string

	// Counters for tests and metrics.
	Dials     atomic.Int64 // logins started
	Transfers atomic.Int64 // servers closed on one loop to give their slot to another
	Handovers atomic.Int64 // servers closed to give their slot to another pool (package fairness)
	// LoginRetries counts logins tried again after Postgres answered 53300
	// too_many_connections (a handed-over slot's old backend still exiting).
	LoginRetries atomic.Int64
}

// NewManager returns a Manager; nothing is dialled until a client asks.
func NewManager(o Options) *Manager {
	if o.NumLoops < 1 {
		o.NumLoops = 1
	}
	if o.PoolSize < 1 {
		o.PoolSize = 1
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{opts: o, log: o.Logger, epoch: time.Now(), pools: make(map[Key]*Pool),
		loopByIdx: make([]atomic.Pointer[Loop], o.NumLoops), pausedDBs: map[string]bool{}, nodes: map[string]*node{}}
	t := tunablesOf(o)
	m.tun.Store(&t)
	m.tls, m.tlsErr = newServerTLS(o)
	m.nodes[""] = m.newNode("", o.Server)
	return m
}

// newNode makes the node name whose server is server (host:port, or a
// comma-separated host list).
func (m *Manager) newNode(name, server string) *node {
	n := &node{name: name, log: m.log}
	n.setServer(server) // first: the limiter's start depends on where the server is
	n.init(m.opts)
	return n
}

// SetNode adds the node name, whose pools log in to server (host:port, a
// Unix socket directory as /dir:port, or a comma-separated host list), or
// points it at server if it exists: servers logged in to another address
// close as released. Safe for concurrent use.
func (m *Manager) SetNode(name, server string) error {
	if _, err := serverAddrs(server); err != nil {
		return err
	}
	m.mu.Lock()
	n := m.nodes[name]
	if n == nil {
		m.nodes[name] = m.newNode(name, server)
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	if n.setServer(server) {
		m.closeIdleOf(n)
	}
	return nil
}

// RemoveNode takes the node name out of service: its pools get no new
// client and their servers close as released. Safe for concurrent use.
func (m *Manager) RemoveNode(name string) {
	m.mu.Lock()
	n := m.nodes[name]
	if name != "" {
		delete(m.nodes, name)
	}
	m.mu.Unlock()
	if n == nil {
		return
	}
	n.removed.Store(true)
	n.gen.Add(1)
	m.closeIdleOf(n)
}

// Nodes lists the names of the nodes. Safe for concurrent use.
func (m *Manager) Nodes() []string {
	var out []string
	for _, n := range m.nodeList() {
		out = append(out, n.name)
	}
	return out
}

// nodeList is a snapshot of the nodes.
func (m *Manager) nodeList() []*node {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*node, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	return out
}

func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

// outlived says sc is past server_lifetime at now (Manager.now): born and
// epoch both carry monotonic readings, so their difference reads no clock.
func (m *Manager) outlived(sc *Server, now int64) bool {
	lt := m.tun.Load().Lifetime
	return lt > 0 && time.Duration(now)-sc.born.Sub(m.epoch) > lt
}

// Loop is the per-event-loop side of the Manager. Its fields belong to its
// loop and are used without locks.
type Loop struct {
	m       *Manager
	idx     int
	el      gnet.EventLoop
	servers map[*Server]struct{}
	scratch []byte
	depth   int // nesting of synchronous hand-offs
}

// Scratch is a reusable buffer for building messages on the loop; give it
// back with KeepScratch once written.
func (l *Loop) Scratch() []byte { return l.scratch[:0] }

// KeepScratch keeps b's storage for the next Scratch.
func (l *Loop) KeepScratch(b []byte) {
	if cap(b) <= 64<<10 {
		l.scratch = b[:0]
	}
}

// Index is the loop's number, 0..NumLoops-1.
func (l *Loop) Index() int { return l.idx }

// EventLoop is the gnet loop.
func (l *Loop) EventLoop() gnet.EventLoop { return l.el }

// LoopFor returns the Loop of el, created the first time el is seen. Safe for
// concurrent use; call it once per connection, not per message.
func (m *Manager) LoopFor(el gnet.EventLoop) *Loop {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.loops {
		if l.el == el {
			return l
		}
	}
	if len(m.loops) == m.opts.NumLoops {
		panic("BUG: more gnet event loops than Options.NumLoops")
	}
	l := &Loop{m: m, idx: len(m.loops), el: el, servers: make(map[*Server]struct{})}
	m.loops = append(m.loops, l)
	m.loopByIdx[l.idx].Store(l)
	return l
}

// Loop is event loop i once it has started (nil before). Safe for
// concurrent use.
func (m *Manager) Loop(i int) *Loop { return m.loop(i) }

func (m *Manager) loop(i int) *Loop {
	if i < len(m.loopByIdx) {
		return m.loopByIdx[i].Load()
	}
	return nil
}

// Pool returns the pool for k, creating it. Safe for concurrent use.
func (m *Manager) Pool(k Key) (*Pool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[k.Node]
	if n == nil {
		return nil, fmt.Errorf("no node %q", k.Node)
	}
	if p := m.pools[k]; p != nil && p.n == n {
		p.touched.Store(m.now())
		return p, nil
	}
	addrs := *n.addrs.Load()
	host, port, err := net.SplitHostPort(addrs[0]) // the .pgpass entry of the first host serves all
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", addrs[0], err)
	}
	if m.tlsErr != nil {
		return nil, m.tlsErr
	}
	lim := m.limitsOf(k.User)
	p := &Pool{key: k, m: m, n: n, host: host, port: port,
		passfile: lookupPassFile(m.opts.PassFile, host, port, k),
		perLoop:  make([]loopPool, m.opts.NumLoops), params: make(map[string][]byte)}
	p.size.Store(int32(lim.Max))
	p.touched.Store(m.now())
	p.paused.Store(m.pausedAll || m.pausedDBs[k.Database])
	n.register(p, lim)
	m.pools[k] = p
	if m.opts.OnNewPool != nil {
		m.opts.OnNewPool(p)
	}
	return p, nil
}

// Pools returns a snapshot of all pools. Safe for concurrent use.
func (m *Manager) Pools() []*Pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Pool, 0, len(m.pools))
	for _, p := range m.pools {
		out = append(out, p)
	}
	return out
}

// Pool is one (database, user) pool. Its shared fields are atomic; perLoop[i]
// belongs to loop i except for the atomics other loops read.
type Pool struct {
	key  Key
	m    *Manager
	n    *node        // the node it logs in to
	size atomic.Int32 // the most servers it may hold (PoolSize, or its user's Max; a reload may change it)
	open atomic.Int32 // servers open or being dialled; changed under node.mu
	fid  fairness.ID  // the pool as a user of the node's allocator
	// blocked: the allocator refused this pool a slot; it waits to be
	// offered one (see reserve).
	blocked atomic.Bool
	// paused: PAUSE; its clients wait and its servers close as released.
	paused atomic.Bool
	// retireBefore: RECONNECT; servers born before (UnixNano) close as released.
	retireBefore atomic.Int64
	// reserveOn: a client waited ReservePoolTimeout; the reserve is open.
	reserveOn atomic.Bool
	// loggedIn: a server of the pool logged in once; touched: when Manager.Pool
	// last returned it (Manager.now). A pool that never logged in is
	// forgotten once unused (forgetUnused).
	loggedIn atomic.Bool
	touched  atomic.Int64

	host, port string                      // of Options.Server
	passfile   string                      // the .pgpass password for key, looked up once
	creds      atomic.Pointer[Credentials] // set by SetCredentials; nil: none

	perLoop []loopPool

	cancels atomic.Int32 // CancelRequests of its clients sent to Postgres, not yet answered

	paramMu sync.Mutex
	params  map[string][]byte // client startup signature → ParameterStatus messages it gets
}

type waiter struct {
	c     Client
	since int64
}

type loopPool struct {
	idle    []*Server // LIFO; owned by the loop
	waiters []waiter  // FIFO from whead; owned by the loop
	whead   int

	// Read by other loops to decide where a free slot goes.
	nIdle     atomic.Int32
	nWait     atomic.Int32
	active    atomic.Int32
	held      atomic.Int32 // servers open or dialling on this loop
	dialing   atomic.Int32 // logins in flight for this loop
	clients   atomic.Int32 // clients of the pool on this loop (the stable measure of demand)
	headSince atomic.Int64 // since when the oldest waiter waits; 0: none
	// servers released while a cancel of theirs is in flight (stateCancelWait)
	cancelWait atomic.Int32

	// What the pool served on this loop (Totals), on cache lines of its own.
	stats LoopStats
}

// Key is the pool's key.
func (p *Pool) Key() Key { return p.key }

// Stats is a snapshot of a pool, for tests and metrics.
// CancelWait counts released servers held back until their cancels finish;
// Served the clients that got a server after waiting, and Waited the time
// they waited in all.
type Stats struct {
	Open, Idle, Active, Waiting, Dialing, CancelWait int
	Served                                           int64
	Waited                                           time.Duration
}

// Stats reads the pool's counters. Safe for concurrent use.
func (p *Pool) Stats() Stats {
	s := Stats{Open: int(p.open.Load())}
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		s.Idle += int(lp.nIdle.Load())
		s.Active += int(lp.active.Load())
		s.Waiting += int(lp.nWait.Load())
		s.Dialing += int(lp.dialing.Load())
		s.CancelWait += int(lp.cancelWait.Load())
		s.Served += lp.stats.served.Load()
		s.Waited += time.Duration(lp.stats.waitedNanos.Load())
	}
	return s
}

// CachedParams returns the ParameterStatus messages recorded for sig.
func (p *Pool) CachedParams(sig string) ([]byte, bool) {
	p.paramMu.Lock()
	defer p.paramMu.Unlock()
	b, ok := p.params[sig]
	return b, ok
}

// StoreParams records the ParameterStatus messages a client with sig gets.
func (p *Pool) StoreParams(sig string, msgs []byte) {
	p.paramMu.Lock()
	defer p.paramMu.Unlock()
	if len(p.params) < 1024 {
		p.params[sig] = msgs
	}
}

// Acquire returns an idle server of the pool on l at once, or nil after
// queueing c, which then gets ServerReady or ServerFailed later. On l.
func (p *Pool) Acquire(l *Loop, c Client, sig string) *Server {
	lp := &p.perLoop[l.idx]
	if p.paused.Load() {
		p.enqueue(lp, c) // PAUSE: it waits for RESUME
		return nil
	}
	if n := len(lp.idle); n > 0 {
		i := n - 1
		for j := n - 1; j >= 0 && j >= n-8; j-- {
			if lp.idle[j].AppliedSig == sig {
				i = j
				break
			}
		}
		sc := lp.idle[i]
		copy(lp.idle[i:], lp.idle[i+1:])
		lp.idle[n-1] = nil
		lp.idle = lp.idle[:n-1]
		lp.nIdle.Add(-1)
		lp.active.Add(1)
		sc.state, sc.owner = stateActive, c
		if tun := p.m.tun.Load(); tun.CheckQuery != "" && (sc.checkDue || tun.CheckDelay == 0) {
			sc.checkDue = false
			p.check(sc, c, sig, tun.CheckQuery) // c gets it (or another) with ServerReady
			return nil
		}
		return sc
	}
	p.enqueue(lp, c)
	if p.reserve(l.idx) {
		p.dial(l)
		return nil
	}
	// The budget is used up: a loop with idle servers gives one up.
	for i := range p.perLoop {
		if i != l.idx && p.perLoop[i].nIdle.Load() > 0 {
			if other := p.m.loop(i); other != nil {
				_ = other.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
					p.giveUpIdle(other)
					return nil
				}))
				break
			}
		}
	}
	return nil
}

// ErrServerGone is what ServerFailed reports to a client that waited for a
// particular server (AcquireServer) when that server closed.
var ErrServerGone = errors.New("the server waited for closed")

// AcquireServer gets c the server sc, of p on l: at once if it is idle
// (got), or, with wait, once its owner releases it (waiting: ServerReady
// follows, or ServerFailed with ErrServerGone if it closes). Neither when sc
// is closed, on another loop, or another client already waits for it. A
// client that stops waiting calls Unwant. On l.
func (p *Pool) AcquireServer(l *Loop, c Client, sc *Server, wait bool) (got, waiting bool) {
	if sc.pool != p || sc.loop != l || sc.wanted != nil || p.paused.Load() {
		return false, false
	}
	switch sc.state {
	case stateIdle:
		p.removeIdle(sc)
		p.perLoop[l.idx].active.Add(1)
		sc.state, sc.owner = stateActive, c
		return true, false
	case stateActive, stateInternal, stateDraining, stateParked, stateCancelWait:
		if wait {
			sc.wanted = c
		}
		return false, wait
	}
	return false, false
}

// Unwant takes c off the wait for sc (it left, or gave up). On sc's loop.
func (sc *Server) Unwant(c Client) {
	if sc.wanted == c {
		sc.wanted = nil
	}
}

// enqueue puts c at the end of lp's wait queue.
func (p *Pool) enqueue(lp *loopPool, c Client) {
	now := p.m.now()
	if len(lp.waiters) == lp.whead {
		lp.headSince.Store(now)
	}
	lp.waiters = append(lp.waiters, waiter{c: c, since: now})
	lp.nWait.Add(1)
}

// Join counts a client of the pool on l; Leave uncounts it. The counts decide
// how the pool's servers are spread over the loops.
func (p *Pool) Join(l *Loop)  { p.perLoop[l.idx].clients.Add(1) }
func (p *Pool) Leave(l *Loop) { p.perLoop[l.idx].clients.Add(-1) }

// CancelWait removes c from the wait queue of l (it went away). On l.
func (p *Pool) CancelWait(l *Loop, c Client) {
	lp := &p.perLoop[l.idx]
	for i := lp.whead; i < len(lp.waiters); i++ {
		if lp.waiters[i].c == c {
			copy(lp.waiters[i:], lp.waiters[i+1:])
			lp.waiters[len(lp.waiters)-1] = waiter{}
			lp.waiters = lp.waiters[:len(lp.waiters)-1]
			lp.nWait.Add(-1)
			p.resetHead(lp)
			return
		}
	}
}

func (p *Pool) popWaiter(lp *loopPool) (Client, bool) {
	w, ok := p.popWaiterSince(lp)
	return w.c, ok
}

// popWaiterSince is popWaiter that also says since when the client waited.
func (p *Pool) popWaiterSince(lp *loopPool) (waiter, bool) {
	if lp.whead == len(lp.waiters) {
		return waiter{}, false
	}
	w := lp.waiters[lp.whead]
	lp.waiters[lp.whead] = waiter{}
	lp.whead++
	if lp.whead == len(lp.waiters) {
		lp.waiters, lp.whead = lp.waiters[:0], 0
	} else if lp.whead > 1024 && lp.whead*2 > len(lp.waiters) {
		n := copy(lp.waiters, lp.waiters[lp.whead:])
		lp.waiters, lp.whead = lp.waiters[:n], 0
	}
	lp.nWait.Add(-1)
	p.resetHead(lp)
	return w, true
}

func (p *Pool) resetHead(lp *loopPool) {
	if lp.whead == len(lp.waiters) {
		lp.headSince.Store(0)
	} else {
		lp.headSince.Store(lp.waiters[lp.whead].since)
	}
}

// Release gives sc back: reset if a client left state on it, then to the
// next waiter, to an idle stack, or its slot to a starved loop. On the loop.
func (p *Pool) Release(sc *Server) {
	sc.owner = nil
	p.perLoop[sc.loop.idx].active.Add(-1)
	p.finishRelease(sc)
}

func (p *Pool) finishRelease(sc *Server) {
	if sc.state == stateClosed || sc.conn == nil {
		if sc.state != stateClosed {
			sc.Close()
		}
		return
	}
	if sc.cancels > 0 {
		// A CancelRequest for this server is still on its way: Postgres
		// could signal the backend while the next client's query runs.
		// Nobody gets the server until every cancel finished (cancelDone).
		if sc.state != stateCancelWait {
			sc.state = stateCancelWait
			sc.idleSince = p.m.now() // Sweep closes it after cancelHoldMax
			p.perLoop[sc.loop.idx].cancelWait.Add(1)
		}
		return
	}
	if sc.cancelUnsure {
		// A cancel timed out or broke after it may have reached Postgres: it
		// may still land. The server is not worth that risk.
		sc.Close()
		return
	}
	switch {
	case sc.TxStatus != 'I':
		sc.Exec("ROLLBACK", func(sc *Server, err *PgError) {
			if err != nil || sc.TxStatus != 'I' {
				sc.Close()
				return
			}
			p.finishRelease(sc)
		})
		return
	case sc.Dirty:
		sc.Exec(p.m.tun.Load().resetSQL(), func(sc *Server, err *PgError) {
			if err != nil {
				sc.Close()
				return
			}
			sc.Dirty, sc.AppliedSig = false, ""
			sc.Stmts.Reset()
			sc.SeqMark++ // DISCARD ALL forgot the sequences' state
			p.finishRelease(sc)
		})
		return
	}
	l := sc.loop
	now := p.m.now()
	if p.m.outlived(sc, now) || p.retired(sc) {
		sc.Close() // too old, marked by RECONNECT, or above a pool size a reload lowered
		return
	}
	if p.paused.Load() {
		sc.Close() // PAUSE: every server closes as it is released
		return
	}
	if w := sc.wanted; w != nil {
		sc.wanted = nil
		p.handoff(sc, w) // a client waits for this very server (AcquireServer)
		return
	}
	if p.n.contended.Load() && p.handOver(sc) {
		return // another pool waits below its fair share: the slot is its
	}
	lp := &p.perLoop[l.idx]
	switch target := p.pickLoop(l.idx, now); target {
	case -1:
		sc.state, sc.owner = stateIdle, nil
		sc.idleSince = now
		lp.idle = append(lp.idle, sc)
		lp.nIdle.Add(1)
	case l.idx:
		w, _ := p.popWaiterSince(lp)
		lp.stats.waited(time.Duration(now - w.since))
		p.handoff(sc, w.c)
	default:
		p.moveSlot(sc, target)
	}
}

// moveSlot closes sc and spends its slot on a login for loop target. The
// accounting moves now, not when the close completes, so that the next
// decision already sees it.
func (p *Pool) moveSlot(sc *Server, target int) {
	l := p.m.loop(target)
	if l == nil {
		return
	}
	p.m.Transfers.Add(1)
	p.m.log.Debug("moving a server slot", "pool", p.key, "from", sc.loop.idx, "to", target)
	p.perLoop[sc.loop.idx].held.Add(-1)
	p.perLoop[target].held.Add(1)
	sc.slotMoved = true
	sc.Close()
	p.dial(l)
}

// handoff gives sc to c. Deeply nested hand-offs (a chain of clients that
// release at once) are deferred to the loop's queue.
func (p *Pool) handoff(sc *Server, c Client) {
	l := sc.loop
	p.perLoop[l.idx].active.Add(1)
	sc.state, sc.owner = stateActive, c
	if l.depth > 8 {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			if sc.state == stateActive && sc.owner == c {
				c.ServerReady(sc)
			}
			return nil
		}))
		return
	}
	l.depth++
	c.ServerReady(sc)
	l.depth--
}

// starveAfter is how long a loop's oldest waiter may wait, and must wait twice
// as long as the local one, before a released server's slot moves to it. It
// is well above the cost of a login, which the move spends.
const starveAfter = int64(50 * time.Millisecond)

// unserved says loop i has waiters that no login in flight will serve.
func (lp *loopPool) unserved() bool { return lp.nWait.Load() > lp.dialing.Load() }

// pickLoop decides where a server released on loop local goes: local (its
// waiters), another loop (its slot moves there), or -1 (nobody waits: idle).
// A slot moves only when the pool is full and another loop has waiters that no
// login in flight will serve, and then only if that loop holds fewer servers
// than its share of the pool by demand while local holds more, or if its
// oldest waiter starves. Under balanced load servers stay where they are and
// no login is spent. now is Manager.now.
func (p *Pool) pickLoop(local int, now int64) int {
	best, bestWait := -1, int64(-1)
	var total int64
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		total += int64(lp.clients.Load())
		if i == local || !lp.unserved() {
			continue
		}
		if hs := lp.headSince.Load(); hs != 0 && now-hs > bestWait {
			best, bestWait = i, now-hs
		}
	}
	localHS := p.perLoop[local].headSince.Load()
	stay, localWait := local, int64(0) // where the server goes if it does not move
	if localHS == 0 {
		stay = -1 // idle: a client of this loop will want it in a moment
	} else {
		localWait = now - localHS
	}
	if best < 0 || (!p.blocked.Load() && p.open.Load() < p.limit()) {
		return stay // nobody else waits, or they can log in servers of their own
	}
	// A starving loop gets the slot, unless local has waiters too and would
	// be left with fewer servers than it: that only moves the starvation
	// (and, back and forth, spends a login each time).
	if bestWait > starveAfter && bestWait > 2*localWait && p.perLoop[best].dialing.Load() == 0 &&
		(localHS == 0 || p.perLoop[local].held.Load() > p.perLoop[best].held.Load()) {
		return best
	}
	// Share by clients: move if local holds more than its share and best less.
	if total > 0 {
		lpL, lpB := &p.perLoop[local], &p.perLoop[best]
		size := int64(p.size.Load())
		dL, dB := int64(lpL.clients.Load()), int64(lpB.clients.Load())
		heldL, heldB := int64(lpL.held.Load()), int64(lpB.held.Load())
		// More than one server above and below the shares (size*d/total):
		// a move costs a login.
		if heldL*total > size*dL+total && heldB*total+total < size*dB {
			return best
		}
	}
	return stay
}

// arrived is a freshly logged-in server on its loop.
func (p *Pool) arrived(sc *Server) {
	p.loggedIn.Store(true)
	p.perLoop[sc.loop.idx].dialing.Add(-1)
	sc.born = time.Now()
	p.n.learnBudget(sc, func() { p.finishRelease(sc) })
}

// gone accounts for a server that closed, and gives its slot to the pool
// the allocator picks (this one if it waits, else another that does).
func (p *Pool) gone(sc *Server) {
	if sc.slotMoved {
		return // moveSlot or handOver did the accounting
	}
	p.perLoop[sc.loop.idx].held.Add(-1)
	p.n.closed(p)
}

// longestUnserved is the loop whose oldest waiter no login in flight will
// serve and waits longest, or -1.
func (p *Pool) longestUnserved() int {
	best, bestWait, now := -1, int64(-1), p.m.now()
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		if hs := lp.headSince.Load(); hs != 0 && lp.unserved() && now-hs > bestWait {
			best, bestWait = i, now-hs
		}
	}
	return best
}

// giveUpMinIdle is how long a server must have been idle before its slot
// moves to a loop with waiters: a server released a moment ago is about to be
// taken by a client of its own loop, and a move costs a login.
const giveUpMinIdle = 2 * time.Millisecond

// giveUpIdle moves the slot of l's longest idle server to the loop whose
// waiters no login will serve, if there is one. On l.
func (p *Pool) giveUpIdle(l *Loop) {
	lp := &p.perLoop[l.idx]
	if len(lp.idle) == 0 {
		return
	}
	target := p.longestUnserved()
	if target < 0 || target == l.idx {
		return
	}
	if fresh := giveUpMinIdle - time.Duration(p.m.now()-lp.idle[0].idleSince); fresh > 0 {
		// Look again once it has been idle long enough, rather than at the
		// next Sweep: the other loop's client waits meanwhile.
		// (gnet's EventLoop.Schedule is not implemented.)
		time.AfterFunc(fresh, func() {
			_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				p.giveUpIdle(l)
				return nil
			}))
		})
		return
	}
	p.moveSlot(lp.idle[0], target)
}

func (p *Pool) removeIdle(sc *Server) {
	lp := &p.perLoop[sc.loop.idx]
	for i, s := range lp.idle {
		if s == sc {
			copy(lp.idle[i:], lp.idle[i+1:])
			lp.idle[len(lp.idle)-1] = nil
			lp.idle = lp.idle[:len(lp.idle)-1]
			lp.nIdle.Add(-1)
			return
		}
	}
}

// dial logs a new server in for l, off the loop. The slot is reserved.
func (p *Pool) dial(l *Loop) {
	p.m.Dials.Add(1)
	p.n.logins.Add(1)
	p.perLoop[l.idx].dialing.Add(1)
	p.m.log.Debug("dialling", "pool", p.key, "loop", l.idx, "open", p.open.Load())
	go func() {
		err := p.login(l)
		// A slot handed over between pools is logged into while the backend
		// of the server closed for it may still be exiting: at a budget of
		// max_connections, Postgres can refuse the login for a moment.
		deadline := time.Now().Add(p.m.tun.Load().ConnectTimeout)
		for wait := time.Millisecond; tooManyConnections(err) && time.Now().Add(wait).Before(deadline); wait = min(2*wait, 100*time.Millisecond) {
			p.m.LoginRetries.Add(1)
			time.Sleep(wait)
			err = p.login(l)
		}
		if err == nil {
			return
		}
		p.m.log.Warn("server login failed", "pool", p.key, "err", err)
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			p.dialFailed(l, err)
			return nil
		}))
	}()
}

func tooManyConnections(err error) bool {
	var pe *PgError
	return errors.As(err, &pe) && sqlstate.Code(pe.Code) == sqlstate.TooManyConnections
}

func (p *Pool) login(l *Loop) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.m.tun.Load().ConnectTimeout)
	defer cancel()
	r, err := p.connect(ctx)
	if err != nil {
		return err
	}
	sc := &Server{pool: p, loop: l, addr: r.addr, nodeGen: r.gen, PID: r.pid, CancelKey: r.key, Params: r.params,
		TxStatus: 'I', state: stateDialing, parkedFD: -1, Stmts: Statements{Max: p.m.opts.MaxPreparedStatements}}
	if r.tls != nil {
		// From now on the loop decrypts the server's records (Input.Bytes)
		// and encrypts what poolcore and the owner write (Server.Write).
		r.tls.Detach()
		sc.in.SetTLS(r.tls)
	}
	ch, err := l.el.Enroll(gnet.NewContext(context.Background(), sc), r.nc)
	if err != nil {
		_ = r.nc.Close()
		return err
	}
	if res := <-ch; res.Err != nil {
		_ = r.nc.Close()
		return res.Err
	}
	return nil
}

// dialFailed gives the slot back and fails the waiters of l: the same login
// would fail for them too.
func (p *Pool) dialFailed(l *Loop, err error) {
	lp := &p.perLoop[l.idx]
	lp.held.Add(-1)
	lp.dialing.Add(-1)
	for {
		c, ok := p.popWaiter(lp)
		if !ok {
			break
		}
		c.ServerFailed(err)
	}
	p.n.closed(p)
}

// cancel sends a CancelRequest for sc's running query, off the loop. On
// sc's loop.
//
// Postgres signals the backend asynchronously: the cancel connection's
// process sends SIGINT and closes. A signal that lands after the query ended,
// once the server went to another client, would cancel that client's query
// (pgbouncer issue #245). So every cancel is counted on the server
// (sc.cancels) until its connection closed (or failed), and a server released
// meanwhile waits in stateCancelWait instead of going to a waiter or the idle
// stack (for at most cancelHoldMax: Sweep then closes it and frees its
// slot). When the count is back to 0 it is released for real: by then the
// signal was delivered, and a backend that gets SIGINT while idle, reading
// its next command, ignores it.
func (m *Manager) cancel(sc *Server) {
	if len(sc.CancelKey) == 0 || sc.state == stateClosed {
		return
	}
	sc.cancels++
	msg := codec.AppendCancelRequest(nil, sc.PID, sc.CancelKey)
	addr, timeout, el, p := sc.addr, m.tun.Load().ConnectTimeout, sc.loop.el, sc.pool
	if m.cancelAddr != "" {
		addr = m.cancelAddr
	}
	p.cancels.Add(1)
	go func() {
		sure := sendCancel(addr, timeout, msg)
		p.cancels.Add(-1)
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			sc.cancelDone(sure)
			return nil
		}))
	}()
}

// sendCancel sends one CancelRequest over plain TCP (Postgres accepts it so
// even when the server's sessions use TLS) and waits for Postgres to close
// the connection, which it does once it signalled the backend. sure is false
// when the request may have reached Postgres but its outcome is unknown (a
// timeout or an error after the write).
func sendCancel(addr string, timeout time.Duration, msg []byte) (sure bool) {
	network, address := serverNetwork(addr)
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return true // never reached Postgres
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(msg); err != nil {
		return false
	}
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// serverNetwork maps "host:port" to a dial address; a host starting with '/'
// is a Unix socket directory, as in libpq.
func serverNetwork(server string) (network, address string) {
	host, port, err := net.SplitHostPort(server)
	if err == nil && strings.HasPrefix(host, "/") {
		return "unix", filepath.Join(host, ".s.PGSQL."+port)
	}
	return "tcp", server
}

// cancelDone counts a cancel of sc as finished and releases sc for real if it
// waited for it. On sc's loop.
func (sc *Server) cancelDone(sure bool) {
	sc.cancels--
	if !sure {
		sc.cancelUnsure = true
	}
	if sc.cancels > 0 || sc.state != stateCancelWait {
		return
	}
	sc.pool.perLoop[sc.loop.idx].cancelWait.Add(-1)
	sc.state = stateActive // held by belay until finishRelease decides
	sc.pool.finishRelease(sc)
}

// Sweep closes servers idle or alive too long, fails clients that waited
// longer than Options.QueryWaitTimeout, and gives the slot of a server idle
// here to a loop with waiters. Call it on l, periodically.
func (m *Manager) Sweep(l *Loop) {
	now := m.now()
	tun := m.tun.Load()
	for _, p := range m.Pools() {
		p.giveUpIdle(l)
		lp := &p.perLoop[l.idx]
		if qwt := int64(tun.QueryWaitTimeout); qwt > 0 && lp.whead < len(lp.waiters) {
			// The queue is in arrival order: the expired ones are at its head.
			for lp.whead < len(lp.waiters) && now-lp.waiters[lp.whead].since > qwt {
				w, _ := p.popWaiterSince(lp)
				w.c.ServerFailed(p.waitTimeout(time.Duration(now - w.since)))
			}
		}
		unused := m.opts.CloseUnused && lp.clients.Load() == 0
		for i := len(lp.idle) - 1; i >= 0; i-- {
			sc := lp.idle[i]
			if (tun.IdleTimeout > 0 && time.Duration(now-sc.idleSince) > tun.IdleTimeout) ||
				m.outlived(sc, now) || p.paused.Load() || p.retired(sc) || unused {
				sc.Close() // takes it off lp.idle
				continue
			}
			sc.checkDue = tun.CheckDelay > 0 && time.Duration(now-sc.idleSince) > tun.CheckDelay
		}
		if l.idx == 0 {
			p.sweepReserve(tun)
			// min_pool_size: top up a pool that has clients, one login per sweep.
			if cl := p.Clients(); int(p.open.Load()) < tun.MinPoolSize && cl.Active+cl.Waiting > 0 && !p.paused.Load() && p.reserve(l.idx) {
				p.dial(l)
			}
		}
	}
	for sc := range l.servers {
		if sc.state == stateCancelWait && time.Duration(now-sc.idleSince) > cancelHoldMax {
			// Postgres is slow to take the cancel (its postmaster is
			// busy forking): rather than keep the slot from everyone, end
			// this session and log in another in its place.
			sc.Close()
		}
	}
	if m.opts.OnSweep != nil {
		m.opts.OnSweep(l)
	}
}

// cancelHoldMax bounds how long a released server waits for a cancel of its
// in flight (stateCancelWait) before it is closed instead: a slot held back
// while Postgres is slow to accept the cancel connection would make every
// client of the pool wait.
const cancelHoldMax = time.Second

// Tick runs Sweep on every loop. Call it periodically from any goroutine.
func (m *Manager) Tick() {
	m.forgetUnused()
	for _, n := range m.nodeList() {
		n.tick(m)
	}
	m.mu.Lock()
	loops := append([]*Loop(nil), m.loops...)
	m.mu.Unlock()
	for _, l := range loops {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			m.Sweep(l)
			return nil
		}))
	}
}

// CloseAll closes every server of l. On l.
func (m *Manager) CloseAll(l *Loop) {
	for sc := range l.servers {
		sc.Close()
	}
}
