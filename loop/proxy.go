package loop

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Defaults for the zero values of Config.
const (
	DefaultClientLoginTimeout = 60 * time.Second // PgBouncer's client_login_timeout
	DefaultMaxBufferedBytes   = 4 << 20
	// DefaultPlanCacheBytes bounds the plan cache of a proxy.
	DefaultPlanCacheBytes = 64 << 20
	DefaultMaxMessageSize = 256 << 20
	DefaultPoolSize       = 20
)

// DefaultEventLoops is one event loop per two cores. A loop spends most of
// its time in write(2), and on loopback the kernel delivers to the peer inside
// that call; with a loop per core every P is busy in syscalls, so the Go
// runtime's sysmon retakes Ps and hands them off (futex and nanosleep calls
// by the thousand per second), and each loop's epoll_wait returns fewer
// events. Side by side with PgBouncer on 2 cores (bench/sidebyside.sh,
// pgbench -S, 3 rounds; medians of CPU per 1,000 transactions at 10 and 100
// clients): one loop 26.3 and 30.9 ms, two loops 31.9 and 43.1 ms, PgBouncer
// 22.2 and 26.6 ms.
func DefaultEventLoops() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// Proxy is a running belay: one gnet engine whose loops serve clients and the
// server connections that serve them. Start returns it; Stop ends it. Its
// methods are safe for concurrent use.
type Proxy struct {
	cfg   Config
	log   *slog.Logger
	pools *poolcore.Manager
	addrs []string
	unix  string

	// cli is gnet's engine without listeners of its own (gnet.Client): an
	// Engine with no listener cannot Register connections or Stop
	// (Engine.Validate), and a listener gnet owns cannot be closed without
	// closing every connection. belay's listeners (listen.go) enroll what
	// they accept into it.
	cli        *gnet.Client
	lns        []*listener
	stopAccept sync.Once
	// Without ReusePort, gnet's own listeners accept (on the loops, the
	// cheapest accept there is: see startGnetListeners), and a shutdown
	// answers new clients 57P03 until the engine stops.
	eng       gnet.Engine
	booted    chan struct{}
	engDone   chan error
	refuseNew atomic.Bool
	stop      sync.Once
	stopped   chan struct{} // closed when Stop is done

	level atomic.Int32  // shutdown under way: 0 none, else a level* constant
	wake  chan struct{} // kicks drain (cap 1)
	conns atomic.Int64  // client sessions open, logged in or not

	// cluster: the cluster served (Config.Cluster); nil for one server.
	cluster *cluster
	// shards are the clusters of a sharded topology (shards.go).
	sharding shards
	gathers  gatherPlans // planner.PlanGather's plans, by SQL text

	clients atomic.Int64  // logged-in clients
	pins    atomic.Int64  // clients pinned to their server
	stmtSeq atomic.Uint64 // names the server-side statements of SQL PREPARE
	// stale: protocol statements whose plans a schema change outdated
	// (stmts.go); safe for concurrent use.
	stale staleStmts
	// parsed is the statements known to parse, per pool and settings
	// (parsed.go): a PQprepare of one is answered without a server.
	parsed parsedStmts

	// plans[i] is loop i's plan cache; only loop i touches it.
	plans   []*planner.Cache
	metrics *proxyMetrics
	parks   atomic.Int64 // connections parked for backpressure (a count of events)

	cancelMu sync.Mutex
	cancels  map[uint32]*session // belay-issued PID → session

	// logins[i] holds loop i's sessions not yet logged in, sessions[i] all
	// of them, with when they opened (UnixNano); only loop i touches them.
	logins, sessions []map[*session]int64

	// What a reload changes (Reconfigure, under reconfigMu); the loops read it.
	live       atomic.Pointer[live]
	reconfigMu sync.Mutex
	console    console // the admin console's view of the proxy (console.go)
	statsMu    sync.Mutex
	avg        *admin.Averager // SHOW STATS_AVERAGES; under statsMu
	disabledMu sync.Mutex
	disabled   map[string]bool // DISABLE; under disabledMu
	// fenced: the error logins get while the node is fenced (fence.go).
	fenced    atomic.Pointer[codec.ErrorResponse]
	coarseNow atomic.Int64 // UnixNano as of the last tick (100 ms): a clock for idle timeouts without a clock read per message

	// client authentication and TLS, fixed at Start
	method      authMethod
	hba         *auth.HBA
	authq       *authQuerier
	mockKey     []byte // salts mock SCRAM exchanges for unknown users
	tls         *tls.Config
	tlsRequired bool
	tlsSlots    chan struct{} // bounds concurrent handshakes

	gnet.BuiltinEventEngine
}

// Start listens and serves in the background; it returns once the listeners
// are up.
func Start(cfg Config) (*Proxy, error) {
	if cfg.Server == "" && cfg.Cluster == nil {
		return nil, errors.New("no server address")
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("no listen address")
	}
	cfg.fillDefaults()
	loops := cfg.EventLoops
	if loops <= 0 {
		loops = DefaultEventLoops()
	}
	p := &Proxy{
		cfg:      cfg,
		log:      cfg.Logger,
		stopped:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		cancels:  make(map[uint32]*session),
		avg:      admin.NewAverager(cfg.StatsPeriod),
		disabled: map[string]bool{},
	}
	p.console = console{p}
	if cfg.Cluster != nil {
		c, err := newCluster(p, cfg, loops)
		if err != nil {
			return nil, err
		}
		if cfg.Server, err = c.awaitPrimary(startPrimaryWait); err != nil {
			return nil, err // auth_query and the node "" use the primary
		}
		p.cfg.Server = cfg.Server
		p.cluster = c
	}
	p.pools = poolcore.NewManager(poolcore.Options{
		Server: cfg.Server, PoolSize: cfg.PoolSize, NumLoops: loops,
		Lifetime: cfg.ServerLifetime, IdleTimeout: cfg.ServerIdleTimeout,
		ConnectTimeout: cfg.ServerConnectTimeout, PassFile: cfg.PassFile, Logger: cfg.Logger,
		ServerTLSMode: cfg.ServerTLSMode, ServerTLSCAFile: cfg.ServerTLSCAFile, ServerTLSCertFile: cfg.ServerTLSCertFile, ServerTLSKeyFile: cfg.ServerTLSKeyFile,
		QueryWaitTimeout: cfg.QueryWaitTimeout, OnSweep: p.sweep, MaxPreparedStatements: cfg.MaxPreparedStatements,
		MaxDBConnections: cfg.MaxDBConnections, MaxUserConnections: cfg.MaxUserConnections, UserLimits: cfg.UserLimits,
		AdaptiveLimit: cfg.AdaptiveLimit, LimitMin: cfg.AdaptiveLimitMin,
		ResetQuery: cfg.ServerResetQuery, CheckQuery: cfg.ServerCheckQuery, CheckDelay: cfg.ServerCheckDelay,
		MinPoolSize: cfg.MinPoolSize, ReservePoolSize: cfg.ReservePoolSize, ReservePoolTimeout: cfg.ReservePoolTimeout, FairnessWindow: cfg.FairnessWindow,
		CloseUnused:  cfg.CloseUnusedServers,
		OnNewPool:    func(pool *poolcore.Pool) { p.metrics.addPool(pool) },
		OnForgetPool: func(pool *poolcore.Pool) { p.metrics.removePool(pool) },
	})
	p.metrics = newProxyMetrics(p, loops)
	if p.cluster != nil {
		p.cluster.apply()
	}
	p.plans = make([]*planner.Cache, loops)
	for i := range p.plans {
		p.plans[i] = planner.NewCache(cfg.PlanCacheBytes / loops)
	}
	p.applySharding() // after the plans: a shard's cluster counts the loops by them
	p.logins = make([]map[*session]int64, loops)
	p.sessions = make([]map[*session]int64, loops)
	for i := range p.logins {
		p.logins[i] = map[*session]int64{}
		p.sessions[i] = map[*session]int64{}
	}
	if err := p.setupAuth(); err != nil {
		return nil, err
	}
	for _, a := range cfg.Listen {
		p.addrs = append(p.addrs, "tcp://"+a)
	}
	if cfg.UnixSocketDir != "" {
		_, port, err := net.SplitHostPort(cfg.Listen[0])
		if err != nil {
			return nil, err
		}
		p.unix = filepath.Join(cfg.UnixSocketDir, ".s.PGSQL."+port)
		p.addrs = append(p.addrs, "unix://"+p.unix)
	}
	if cfg.ReusePort {
		// A rolling restart must stop accepting without closing the
		// clients: belay's own listeners (listen.go).
		if err := p.startOwnListeners(loops); err != nil {
			return nil, err
		}
	} else if err := p.startGnetListeners(loops); err != nil {
		return nil, err
	}
	return p, nil
}

// Addr is the first TCP listen address.
func (p *Proxy) Addr() string { return p.cfg.Listen[0] }

// Pools is the proxy's pool manager (for tests and, later, the console).
func (p *Proxy) Pools() *poolcore.Manager { return p.pools }

// Stats is a snapshot of the proxy's counters. The plan cache's are as of
// each loop's last sweep.
type Stats struct {
	Clients, Pinned, Parks int64
	PinsTotal              uint64 // clients ever pinned (belay_pins_total)
	PlanHits, PlanMisses   uint64
}

// Stats reads the proxy's counters.
func (p *Proxy) Stats() Stats {
	st := Stats{Clients: p.clients.Load(), Pinned: p.pins.Load(), Parks: p.parks.Load(), PinsTotal: p.metrics.pins.Get()}
	for i := range p.metrics.plans {
		st.PlanHits += p.metrics.plans[i].hits.Load()
		st.PlanMisses += p.metrics.plans[i].misses.Load()
	}
	return st
}

// Stop closes the listeners and every connection (ShutdownImmediate, and
// waits for it).
func (p *Proxy) Stop(ctx context.Context) error {
	p.StopAccepting()
	var err error
	p.stop.Do(func() {
		p.onLoops(func(l *poolcore.Loop) { l.CloseIdle() }) // with Terminate: the rest close with the engine
		ch := make(chan error, 1)
		if p.cli != nil {
			go func() { ch <- p.cli.Stop() }()
		} else {
			go func() {
				err := p.eng.Stop(ctx)
				if e := <-p.engDone; err == nil && e != nil && !errors.Is(e, context.Canceled) {
					err = e
				}
				if p.unix != "" {
					_ = os.Remove(p.unix)
				}
				ch <- err
			}()
		}
		select {
		case err = <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if p.authq != nil {
			p.authq.close()
		}
		if p.cluster != nil {
			p.cluster.stop()
		}
		close(p.stopped)
	})
	<-p.stopped
	return err
}

// --- gnet.EventHandler -------------------------------------------------------

// OnOpen is gnet's, on the connection's loop: a new client, a server that
// finished its login, or a parked connection coming back.
// OnBoot is gnet's: its own listeners are up (without ReusePort).
func (p *Proxy) OnBoot(eng gnet.Engine) gnet.Action {
	if p.booted != nil {
		p.eng = eng
		close(p.booted)
	}
	return gnet.None
}

func (p *Proxy) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch ctx := c.Context().(type) {
	case *poolcore.Server:
		return nil, ctx.Opened(c)
	case *session:
		ctx.inCB = true
		a := ctx.reopened(c)
		ctx.inCB = false
		return nil, a
	}
	s := newSession(p, c, p.pools.LoopFor(c.EventLoop()))
	c.SetContext(s)
	return nil, gnet.None
}

// OnTraffic is gnet's, on the connection's loop.
func (p *Proxy) OnTraffic(c gnet.Conn) gnet.Action {
	switch ctx := c.Context().(type) {
	case *session:
		ctx.inCB = true
		a := ctx.onTraffic(c)
		ctx.inCB = false
		return a
	case *poolcore.Server:
		return ctx.OnTraffic(c)
	}
	return gnet.Close
}

// OnClose is gnet's, on the connection's loop.
func (p *Proxy) OnClose(c gnet.Conn, err error) gnet.Action {
	switch ctx := c.Context().(type) {
	case *session:
		ctx.onClose()
	case *poolcore.Server:
		ctx.Closed(err)
	}
	return gnet.None
}

// OnTick is gnet's, on its own goroutine: idle and lifetime sweeps, run on
// each loop.
func (p *Proxy) OnTick() (time.Duration, gnet.Action) {
	now := time.Now()
	p.coarseNow.Store(now.UnixNano())
	p.clusterTick()
	p.pools.Tick()
	p.observeStats(now)
	return 100 * time.Millisecond, gnet.None
}

// --- cancel keys -------------------------------------------------------------

// register issues the client's BackendKeyData. With peers, the top 16 bits
// of the secret carry this process's PeerID, so that any peer receiving the
// CancelRequest knows where to send it.
func (p *Proxy) register(s *session) (pid, secret uint32) {
	var b [8]byte
	p.cancelMu.Lock()
	defer p.cancelMu.Unlock()
	for {
		_, _ = rand.Read(b[:])
		pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if _, taken := p.cancels[pid]; pid != 0 && !taken {
			break
		}
	}
	p.cancels[pid] = s
	secret = binary.BigEndian.Uint32(b[4:])
	if p.cfg.PeerID > 0 {
		secret = uint32(p.cfg.PeerID)<<16 | secret&0xffff
	}
	return pid, secret
}

func (p *Proxy) unregister(pid uint32) {
	p.cancelMu.Lock()
	delete(p.cancels, pid)
	p.cancelMu.Unlock()
}

// cancel routes a CancelRequest to the loop of the session it names, or to
// the peer that issued the key.
func (p *Proxy) cancel(pid uint32, secret []byte) {
	p.cancelMu.Lock()
	s := p.cancels[pid]
	p.cancelMu.Unlock()
	if s == nil {
		p.forwardCancel(pid, secret)
		return
	}
	key := append([]byte(nil), secret...)
	_ = s.loop.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if !s.done {
			s.cancelQuery(key)
		}
		return nil
	}))
}

// forwardCancel sends a cancel for a key this process did not issue to the
// peer that did. The peer's own address never forwards again (the key names
// it), so a request cannot loop.
func (p *Proxy) forwardCancel(pid uint32, secret []byte) {
	if p.cfg.PeerID == 0 || len(secret) != 4 {
		return
	}
	peer := int(binary.BigEndian.Uint16(secret))
	addr, ok := p.cfg.Peers[peer]
	if !ok && p.cfg.PeerAddr != nil {
		addr, ok = p.cfg.PeerAddr(peer)
	}
	if peer == p.cfg.PeerID || !ok {
		return
	}
	pkt := codec.AppendCancelRequest(nil, pid, secret)
	go func() {
		network := "tcp"
		if strings.HasPrefix(addr, "/") {
			network = "unix"
		}
		c, err := net.DialTimeout(network, addr, p.cfg.ServerConnectTimeout)
		if err != nil {
			p.log.Warn("cannot forward a cancel request to its peer", "peer", peer, "addr", addr, "err", err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(p.cfg.ServerConnectTimeout))
		_, _ = c.Write(pkt)
		var b [1]byte
		_, _ = c.Read(b[:]) // the peer closes once it has taken the request
	}()
}

// sweepLogins ends the clients of loop l that have not logged in within
// ClientLoginTimeout, with Postgres's error for its authentication_timeout.
// On l, from poolcore's Sweep (every 100 ms): one map per loop instead of a
// timer per connection.
// sweep is the proxy's periodic work on each loop.
func (p *Proxy) sweep(l *poolcore.Loop) {
	p.sweepLogins(l)
	p.sweepClients(l)
	p.notePlans(l)
	p.sweepShutdown(l)
}

// sweepClients closes the clients of l idle outside a transaction for
// longer than client_idle_timeout, with Postgres's error for its
// idle_session_timeout, and cancels queries running longer than
// query_timeout (the client gets Postgres's 57014 and keeps its connection).
func (p *Proxy) sweepClients(l *poolcore.Loop) {
	lv := p.live.Load()
	idle, qt := lv.clientIdle, lv.queryTimeout
	if idle <= 0 && qt <= 0 {
		return
	}
	old, now := p.coarseNow.Load()-int64(idle), nanotime()
	for s := range p.sessions[l.Index()] {
		if qt > 0 && s.qStart != 0 && s.server != nil && s.qCancelled != s.qStart && now-s.qStart > int64(qt) {
			s.qCancelled, s.syncRepCut = s.qStart, false
			p.log.Info("query_timeout: cancelling a query", "user", s.key.User, "database", s.key.Database,
				"running", time.Duration(now-s.qStart).Round(time.Millisecond))
			s.server.Cancel()
		}
		if idle <= 0 {
			continue
		}
		idleNow := s.server == nil || (!s.t.busy() && s.server.TxStatus == codec.TxIdle) // pool_mode session holds a server while idle
		if s.state == sReady && idleNow && !s.waiting && (s.cl == nil || !s.cl.held) && s.lastActive < old {
			s.kill(fatalf(sqlstate.IdleSessionTimeout, "terminating connection due to idle-session timeout"))
		}
	}
}

func (p *Proxy) sweepLogins(l *poolcore.Loop) {
	old := time.Now().UnixNano() - int64(p.live.Load().clientLoginTimeout)
	for s, opened := range p.logins[l.Index()] {
		if opened < old && s.state != sClosing {
			s.kill(fatalf(sqlstate.QueryCanceled, "canceling authentication due to timeout"))
		}
	}
}
