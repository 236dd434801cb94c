package loop

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/fairness"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Version is what SHOW VERSION answers.
const Version = "belay 0.1 (PgBouncer 1.18 console)"

// Settings serve the console's SHOW CONFIG, SET and RELOAD: cmd/belay owns
// the configuration file and its keys. Its methods are called off the event
// loops and may block; Set and Reload apply through Proxy.Reconfigure.
type Settings interface {
	Config() []admin.ConfigItem
	Set(key, value string) error
	Reload() error
}

// IsConsoleDB says whether a client asking for database db gets the admin
// console rather than a server.
func IsConsoleDB(db string) bool { return db == "pgbouncer" || db == "belay" }

// live is the part of the configuration a reload changes while clients are
// served; the loops read it through Proxy.live.
type live struct {
	clientLoginTimeout time.Duration
	idleTx             time.Duration
	maxClientConn      int
	session            bool // pool_mode = session
	clientIdle         time.Duration
	queryTimeout       time.Duration
	ignoreStartup      map[string]bool
	adminUsers         []string
	statsUsers         []string
	users              map[string]auth.Secret // the auth file
	cfg                Config                 // for the console (SHOW DATABASES, USERS, FAIRNESS)
}

func newLive(cfg Config, users map[string]auth.Secret) *live {
	ignore := map[string]bool{}
	for _, k := range cfg.IgnoreStartupParameters {
		ignore[strings.ToLower(k)] = true
	}
	return &live{clientIdle: cfg.ClientIdleTimeout, queryTimeout: cfg.QueryTimeout, ignoreStartup: ignore, clientLoginTimeout: cfg.ClientLoginTimeout, idleTx: cfg.IdleTransactionTimeout,
		maxClientConn: cfg.MaxClientConn, session: cfg.PoolMode == "session", adminUsers: cfg.AdminUsers, statsUsers: cfg.StatsUsers, users: users, cfg: cfg}
}

// loadUserlist reads the auth file (none: an empty list).
func loadUserlist(path string) (map[string]auth.Secret, error) {
	if path == "" {
		return map[string]auth.Secret{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth_file: %w", err)
	}
	defer f.Close()
	users, err := auth.ParseUserlist(f)
	if err != nil {
		return nil, fmt.Errorf("auth_file %s: %w", path, err)
	}
	return users, nil
}

// Reconfigure applies a new configuration while clients are served (RELOAD,
// SIGHUP, SET): pool sizes, the budget and users' shares, the timeouts,
// max_client_conn, the auth file's users, admin_users and stats_users,
// stats_period. Settings that need new sockets or a new engine (listen
// addresses, event loops, the server, TLS, auth_type) are logged as waiting
// for a restart. On an error nothing changes. The caller logs what it
// applied (a reload, a SET). Safe for concurrent use.
func (p *Proxy) Reconfigure(cfg Config) error {
	cfg.fillDefaults()
	users, err := loadUserlist(cfg.AuthFile)
	if err != nil {
		return err
	}
	p.reconfigMu.Lock()
	defer p.reconfigMu.Unlock()
	old := p.live.Load().cfg
	for _, c := range []struct {
		name     string
		old, new any
	}{
		{"listen_addr/listen_port", fmt.Sprint(old.Listen), fmt.Sprint(cfg.Listen)},
		{"unix_socket_dir", old.UnixSocketDir, cfg.UnixSocketDir},
		{"[databases] server", old.Server, cfg.Server},
		{"auth_type", old.AuthType, cfg.AuthType},
		{"auth_hba_file", old.AuthHBAFile, cfg.AuthHBAFile},
		{"auth_user", old.AuthUser, cfg.AuthUser},
		{"auth_query", old.AuthQuery, cfg.AuthQuery},
		{"client_tls_sslmode", old.TLSMode, cfg.TLSMode},
		{"client_tls_cert_file", old.TLSCertFile, cfg.TLSCertFile},
		{"client_tls_key_file", old.TLSKeyFile, cfg.TLSKeyFile},
		{"client_tls_ca_file", old.TLSCAFile, cfg.TLSCAFile},
		{"server_tls_sslmode", old.ServerTLSMode, cfg.ServerTLSMode},
		{"event_loops", old.EventLoops, cfg.EventLoops},
		{"so_reuseport", old.ReusePort, cfg.ReusePort},
		{"max_prepared_statements", old.MaxPreparedStatements, cfg.MaxPreparedStatements},
		{"plan_cache_bytes", old.PlanCacheBytes, cfg.PlanCacheBytes},
	} {
		if c.old != c.new {
			p.log.Warn("a changed setting takes effect at the next restart", "setting", c.name, "running", c.old, "configured", c.new)
		}
	}
	p.pools.Tune(cfg.tunables())
	// The running process keeps what it cannot change, so the console shows it.
	cfg.Listen, cfg.UnixSocketDir, cfg.Server, cfg.EventLoops = old.Listen, old.UnixSocketDir, old.Server, old.EventLoops
	p.live.Store(newLive(cfg, users))
	p.statsMu.Lock()
	p.avg.SetPeriod(cfg.StatsPeriod)
	p.statsMu.Unlock()
	p.log.Debug("configuration applied", "pool_size", cfg.PoolSize, "max_db_connections", cfg.MaxDBConnections,
		"users", len(users))
	return nil
}

// --- the console session ------------------------------------------------------

// consoleState is a console client's: its role and the command under way.
type consoleState struct {
	role admin.Role
	busy bool // a command runs off the loop; its answer comes back with Execute
	skip bool // an extended-protocol message was refused: skip up to Sync
}

// consoleLogin ends the login of an authenticated client of the console.
func (s *session) consoleLogin(st *startup) gnet.Action {
	lv := s.p.live.Load()
	var role admin.Role
	switch {
	case slices.Contains(lv.adminUsers, st.user):
		role = admin.RoleAdmin
	case slices.Contains(lv.statsUsers, st.user):
		role = admin.RoleStats
	default:
		return s.fatal(fatalf(sqlstate.InsufficientPrivilege,
			"user %q may not use the admin console: it is in neither admin_users nor stats_users", st.user))
	}
	s.key = poolcore.Key{Database: st.database, User: st.user}
	s.con = &consoleState{role: role}
	s.pid, s.secret = s.p.register(s)
	b := s.loop.Scratch()
	if s.hs != nil {
		b = append(b, s.hs.preamble...)
	}
	b = codec.AppendAuthenticationOk(b)
	for _, kv := range [][2]string{
		{"server_version", "1.18.0/belay"}, {"client_encoding", "UTF8"}, {"server_encoding", "UTF8"},
		{"DateStyle", "ISO"}, {"standard_conforming_strings", "on"}, {"integer_datetimes", "on"},
		{"TimeZone", "UTC"}, {"application_name", ""},
	} {
		b = codec.AppendParameterStatus(b, kv[0], kv[1])
	}
	b = codec.AppendBackendKeyData(b, s.pid, s.secret)
	b = codec.AppendReadyForQuery(b, 'I')
	_, _ = s.write(b)
	s.loop.KeepScratch(b)
	s.state = sConsole
	s.loggedIn()
	return s.consoleTraffic(s.c)
}

// consoleTraffic reads console commands: simple Query messages, each run
// off the loop (commands gather from every loop and may wait, as PAUSE does)
// and answered in order. On the loop.
func (s *session) consoleTraffic(c gnet.Conn) gnet.Action {
	for s.state == sConsole && !s.con.busy && c != nil {
		data := s.in.Bytes(c)
		if len(data) == 0 {
			return gnet.None
		}
		typ, bodyLen, act, ok := s.header(data)
		if !ok {
			return act
		}
		if len(data) < 5+bodyLen {
			return gnet.None
		}
		body := data[5 : 5+bodyLen]
		switch typ {
		case codec.MsgTerminate:
			return gnet.Close
		case codec.MsgQuery:
			sql := string(body)
			if i := len(sql) - 1; i >= 0 && sql[i] == 0 {
				sql = sql[:i]
			}
			s.in.Consume(c, 5+bodyLen)
			if s.con.skip {
				continue
			}
			s.con.busy = true
			go s.consoleRun(sql)
		case codec.MsgSync:
			s.in.Consume(c, 5+bodyLen)
			s.con.skip = false
			_, _ = s.write(codec.AppendReadyForQuery(nil, 'I'))
		case codec.MsgFlush:
			s.in.Consume(c, 5+bodyLen)
		default:
			s.in.Consume(c, 5+bodyLen)
			if !s.con.skip {
				s.con.skip = true
				s.writeError(codec.ErrorResponse{Code: sqlstate.FeatureNotSupported,
					Message: "the admin console takes simple queries only (e.g. psql, or pgx with default_query_exec_mode=simple_protocol)"})
			}
		}
	}
	return gnet.None
}

// consoleRun runs one command off the loop and hands the answer back to it.
func (s *session) consoleRun(sql string) {
	admin.Exec(s.p.console, s.con.role, sql, func(msgs []byte) {
		msgs = codec.AppendReadyForQuery(msgs, 'I')
		_ = s.loop.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			if s.done || s.state != sConsole {
				return nil
			}
			_, _ = s.write(msgs)
			s.con.busy = false
			if a := s.consoleTraffic(s.c); a == gnet.Close {
				s.closeClient()
			}
			return nil
		}))
	})
}

// --- the console's Backend -----------------------------------------------------

// console implements admin.Backend over the proxy. Its methods run off the
// event loops (consoleRun's goroutine): what belongs to a loop is read on
// that loop with onLoops.
type console struct{ p *Proxy }

// onLoops runs f on every event loop and waits for all of them.
func (p *Proxy) onLoops(f func(l *poolcore.Loop)) {
	var wg sync.WaitGroup
	for i := range p.sessions {
		l := p.pools.Loop(i)
		if l == nil {
			continue // no client or server was ever on it
		}
		wg.Add(1)
		err := l.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer wg.Done()
			f(l)
			return nil
		}))
		if err != nil {
			wg.Done()
		}
	}
	wg.Wait()
}

// countOnLoops runs f on every event loop and sums what it returns.
func (p *Proxy) countOnLoops(f func(l *poolcore.Loop) int) int {
	var n atomic.Int64
	p.onLoops(func(l *poolcore.Loop) { n.Add(int64(f(l))) })
	return int(n.Load())
}

func (c console) Version() string { return Version }

func (c console) Pools() []admin.Pool {
	p := c.p
	lv := p.live.Load()
	var out []admin.Pool
	consoles := p.countOnLoops(func(l *poolcore.Loop) (n int) {
		for s := range p.sessions[l.Index()] {
			if s.con != nil {
				n++
			}
		}
		return n
	})
	out = append(out, admin.Pool{Database: "pgbouncer", User: "pgbouncer", ClActive: consoles, Mode: "statement"})
	for _, pool := range sortedPools(p.pools.Pools()) {
		st := pool.Stats()
		k := pool.Key()
		demand, share := pool.Fairness()
		cl := pool.Clients()
		out = append(out, admin.Pool{
			Database: k.Database, User: k.User,
			ClActive: cl.Active, ClWaiting: cl.Waiting, ClActiveCancelReq: cl.ActiveCancelReq,
			SvActive: int(st.Active), SvIdle: int(st.Idle), SvLogin: int(st.Dialing), SvBeingCanceled: int(st.CancelWait),
			MaxWait: pool.OldestWait(), Mode: lv.poolMode(),
			ClPinned: int(pool.Pins()), SvOpen: int(st.Open), FairShare: share, Demand: demand,
			Weight: lv.limits(k.User).Weight, NodeLimit: p.Limit(k.Node).Limit,
		})
	}
	return out
}

// limits are user's share of the budget as the pools apply it.
func (lv *live) limits(user string) fairness.Limits {
	t := lv.cfg.tunables()
	lim := t.Limits(user)
	lim.Weight = max(lim.Weight, 1)
	return lim
}

func (lv *live) poolMode() string {
	if lv.cfg.PoolMode == "" {
		return "transaction"
	}
	return lv.cfg.PoolMode
}

func sortedPools(pools []*poolcore.Pool) []*poolcore.Pool {
	sort.Slice(pools, func(i, j int) bool {
		a, b := pools[i].Key(), pools[j].Key()
		return a.Database < b.Database || (a.Database == b.Database && a.User < b.User)
	})
	return pools
}

// totalsByDB sums the pools' counters per database.
func (p *Proxy) totalsByDB() map[string]poolcore.Totals {
	out := map[string]poolcore.Totals{}
	for _, pool := range p.pools.Pools() {
		db := pool.Key().Database
		out[db] = out[db].Add(pool.Totals())
	}
	return out
}

// observeStats feeds the averager; from OnTick. It logs each database's
// averages once per stats period, as PgBouncer's log_stats does.
func (p *Proxy) observeStats(now time.Time) {
	totals := p.totalsByDB()
	p.statsMu.Lock()
	ended := p.avg.Observe(now, totals)
	var lines []func()
	if ended {
		for db := range totals {
			a := p.avg.Average(db)
			if a.Xacts == 0 && a.Queries == 0 {
				continue
			}
			lines = append(lines, func() {
				p.log.Info("stats", "database", db, "xacts_per_s", a.Xacts, "queries_per_s", a.Queries,
					"in_bytes_per_s", a.Received, "out_bytes_per_s", a.Sent,
					"xact_us", a.XactTime.Microseconds(), "query_us", a.QueryTime.Microseconds(), "wait_us_per_s", a.WaitTime.Microseconds())
			})
		}
	}
	p.statsMu.Unlock()
	for _, l := range lines {
		l()
	}
}

func (c console) Stats() []admin.DatabaseStats {
	p := c.p
	totals := p.totalsByDB()
	dbs := make([]string, 0, len(totals))
	for db := range totals {
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	out := make([]admin.DatabaseStats, 0, len(dbs))
	for _, db := range dbs {
		out = append(out, admin.DatabaseStats{Database: db, Total: totals[db], Avg: p.avg.Average(db)})
	}
	return out
}

// conns lists the clients (servers false) or the servers of every loop.
func (c console) conns(servers bool) []admin.Conn {
	p := c.p
	var mu sync.Mutex
	var out []admin.Conn
	p.onLoops(func(l *poolcore.Loop) {
		var rows []admin.Conn
		if servers {
			l.EachServer(func(sc *poolcore.Server) { rows = append(rows, serverRow(sc)) })
		} else {
			for s, opened := range p.sessions[l.Index()] {
				rows = append(rows, s.row(opened))
			}
		}
		mu.Lock()
		out = append(out, rows...)
		mu.Unlock()
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ConnectTime.Before(out[j].ConnectTime) })
	return out
}

func (c console) Clients() []admin.Conn { return c.conns(false) }
func (c console) Servers() []admin.Conn { return c.conns(true) }

func splitAddr(a string) (string, int) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a, 0
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func ptr(x any) string { return fmt.Sprintf("%p", x) }

// row is the session's SHOW CLIENTS row. On its loop.
func (s *session) row(opened int64) admin.Conn {
	r := admin.Conn{User: s.key.User, Database: s.key.Database, Ptr: ptr(s),
		ConnectTime: time.Unix(0, opened), RequestTime: time.Unix(0, opened),
		Pinned: s.t.pinned, Loop: s.loop.Index()}
	switch {
	case s.state < sReady:
		r.State = "login"
	case s.waiting:
		r.State = "waiting"
		if w := s.pool; w != nil {
			r.Wait = w.OldestWait()
		}
	default:
		r.State = "active"
	}
	if s.c != nil {
		r.Addr, r.Port = splitAddr(s.c.RemoteAddr().String())
		if la := s.c.LocalAddr(); la != nil {
			r.LocalAddr, r.LocalPort = splitAddr(la.String())
		}
	}
	if s.in.TLS() != nil {
		r.TLS = "TLS"
	}
	if s.server != nil {
		r.Link = ptr(s.server)
	}
	if s.ps != nil {
		r.PreparedStatements = s.ps.count()
	}
	r.ApplicationName = appName(s)
	r.RemotePID = int(s.pid)
	return r
}

// serverRow is sc's SHOW SERVERS row. On its loop.
func serverRow(sc *poolcore.Server) admin.Conn {
	i := sc.Info()
	r := admin.Conn{Server: true, User: i.Key.User, Database: i.Key.Database, State: i.State, Ptr: ptr(sc),
		ConnectTime: i.Born, RequestTime: i.IdleSince, RemotePID: int(i.PID),
		PreparedStatements: i.Statements, Loop: i.Loop}
	if r.RequestTime.IsZero() {
		r.RequestTime = i.Born
	}
	r.Addr, r.Port = splitAddr(i.Remote)
	r.LocalAddr, r.LocalPort = splitAddr(i.Local)
	if i.TLS {
		r.TLS = "TLS"
	}
	if s, ok := i.Owner.(*session); ok {
		r.Link = ptr(s)
		r.Pinned = s.t.pinned
		r.ApplicationName = appName(s)
	}
	return r
}

func appName(s *session) string {
	for _, kv := range s.start {
		if kv.name == "application_name" {
			return kv.value
		}
	}
	return ""
}

func (c console) Databases() []admin.Database {
	p := c.p
	lv := p.live.Load()
	names := map[string]bool{}
	for _, db := range lv.cfg.Databases {
		names[db] = true
	}
	for _, pool := range p.pools.Pools() {
		names[pool.Key().Database] = true
	}
	// A host list shows as PgBouncer shows it: the hosts comma-separated,
	// the first one's port; a Unix socket directory shows as NULL.
	var hosts []string
	port := 0
	for i, a := range strings.Split(lv.cfg.Server, ",") {
		h, pt := splitAddr(strings.TrimSpace(a))
		if i == 0 {
			port = pt
		}
		if !strings.HasPrefix(h, "/") {
			hosts = append(hosts, h)
		}
	}
	host := strings.Join(hosts, ",")
	_, listenPort := splitAddr(lv.cfg.Listen[0])
	out := []admin.Database{{Name: "pgbouncer", Port: listenPort, Database: "pgbouncer", ForceUser: "pgbouncer",
		PoolSize: 2, PoolMode: "statement"}}
	sorted := make([]string, 0, len(names))
	for db := range names {
		sorted = append(sorted, db)
	}
	sort.Strings(sorted)
	for _, db := range sorted {
		out = append(out, admin.Database{Name: db, Host: host, Port: port, Database: db,
			PoolSize: lv.cfg.PoolSize, MaxConnections: max(lv.cfg.MaxDBConnections, 0),
			CurrentConnections: p.pools.OpenServers(db), Paused: p.pools.IsPaused(db), Disabled: p.isDisabled(db)})
	}
	return out
}

func (c console) Users() []admin.User {
	p := c.p
	lv := p.live.Load()
	names := map[string]bool{}
	for u := range lv.users {
		names[u] = true
	}
	for u := range lv.cfg.UserLimits {
		names[u] = true
	}
	for _, pool := range p.pools.Pools() {
		names[pool.Key().User] = true
	}
	sorted := make([]string, 0, len(names))
	for u := range names {
		sorted = append(sorted, u)
	}
	sort.Strings(sorted)
	out := make([]admin.User, 0, len(sorted))
	for _, u := range sorted {
		lim := lv.limits(u)
		out = append(out, admin.User{Name: u, Weight: lim.Weight, Min: lim.Min, Max: lim.Max})
	}
	return out
}

func (c console) Lists() []admin.ListItem {
	p := c.p
	clients := int(p.clients.Load())
	logins := p.countOnLoops(func(l *poolcore.Loop) int { return len(p.logins[l.Index()]) })
	return []admin.ListItem{
		{Name: "databases", Items: len(c.Databases())}, {Name: "users", Items: len(c.Users())}, {Name: "pools", Items: len(p.pools.Pools())},
		{Name: "free_clients", Items: 0}, {Name: "used_clients", Items: clients}, {Name: "login_clients", Items: logins},
		{Name: "free_servers", Items: 0}, {Name: "used_servers", Items: p.pools.OpenServers("")},
		{Name: "dns_names", Items: 0}, {Name: "dns_zones", Items: 0}, {Name: "dns_queries", Items: 0}, {Name: "dns_pending", Items: 0},
	}
}

func (c console) Mem() []admin.MemRow {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return []admin.MemRow{
		{Name: "go_heap", Used: int64(ms.HeapInuse), Free: int64(ms.HeapIdle - ms.HeapReleased), Total: int64(ms.HeapSys)},
		{Name: "go_stacks", Used: int64(ms.StackInuse), Total: int64(ms.StackSys)},
		{Name: "go_other", Used: int64(ms.Sys - ms.HeapSys - ms.StackSys), Total: int64(ms.Sys - ms.HeapSys - ms.StackSys)},
	}
}

func (c console) State() admin.State {
	paused := c.p.pools.IsPaused("")
	return admin.State{Active: !paused && c.p.level.Load() == levelNone, Paused: paused}
}

func (c console) Config() []admin.ConfigItem {
	if c.p.cfg.Settings == nil {
		return nil
	}
	return c.p.cfg.Settings.Config()
}

func (c console) Fairness() []admin.Fair {
	p := c.p
	lv := p.live.Load()
	var out []admin.Fair
	for _, pool := range sortedPools(p.pools.Pools()) {
		k := pool.Key()
		st := pool.Stats()
		ns, _ := p.pools.NodeStatsOf(k.Node)
		demand, share := pool.Fairness()
		lim := lv.limits(k.User)
		out = append(out, admin.Fair{Database: k.Database, User: k.User, Weight: lim.Weight, Min: lim.Min, Max: lim.Max,
			Demand: demand, Share: share, Held: int(st.Open), Waiting: int(st.Waiting), Budget: ns.Budget, Open: ns.Open, Node: k.Node,
			Limit: ns.Limit.Limit, MaxDB: ns.Limit.Ceiling, LimitReason: limitReason(ns.Limit)})
	}
	return out
}

func (c console) Nodes() []admin.Node { return c.p.nodes() }

func (c console) Shards() []admin.Shard { return c.p.shards() }

func (c console) ShardedTables() []admin.ShardedTable { return c.p.shardedTables() }

func (c console) PreparedStatements() []admin.ServerStatements {
	var mu sync.Mutex
	var out []admin.ServerStatements
	c.p.onLoops(func(l *poolcore.Loop) {
		l.EachServer(func(sc *poolcore.Server) {
			i := sc.Info()
			mu.Lock()
			out = append(out, admin.ServerStatements{Ptr: ptr(sc), User: i.Key.User, Database: i.Key.Database, Count: i.Statements, Max: i.MaxStmts})
			mu.Unlock()
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Ptr < out[j].Ptr })
	return out
}

// --- control -------------------------------------------------------------------

func noSuchDB(db string) error {
	return &admin.Error{Code: sqlstate.InvalidCatalogName, Message: "no such database: " + db}
}

// knownDB says whether the configuration or a pool names db.
func (p *Proxy) knownDB(db string) bool {
	if slices.Contains(p.live.Load().cfg.Databases, db) {
		return true
	}
	for _, pool := range p.pools.Pools() {
		if pool.Key().Database == db {
			return true
		}
	}
	return false
}

func (c console) checkDB(db string) error {
	if db != "" && !c.p.knownDB(db) {
		return noSuchDB(db)
	}
	return nil
}

func (c console) Pause(db string, done func(error)) {
	if err := c.checkDB(db); err != nil {
		done(err)
		return
	}
	c.p.Pause(db)
	pollUntil(func() bool { return c.p.pools.OpenServers(db) == 0 }, done)
}

// Pause stops giving servers to the clients of db ("" for all) and closes
// each server as it is released (PAUSE, SIGUSR1); it returns at once.
func (p *Proxy) Pause(db string) {
	p.pools.Pause(db)
	p.log.Info("paused", "database", db)
}

// Resume undoes Pause (RESUME, SIGUSR2).
func (p *Proxy) Resume(db string) {
	p.pools.Resume(db)
	p.log.Info("resumed", "database", db)
}

// pollUntil polls cond until it holds, then calls done. PAUSE and WAIT_CLOSE
// have no deadline, as in PgBouncer; the console client may cancel by
// disconnecting.
func pollUntil(cond func() bool, done func(error)) {
	for !cond() {
		time.Sleep(10 * time.Millisecond)
	}
	done(nil)
}

func (c console) Resume(db string) error {
	if err := c.checkDB(db); err != nil {
		return err
	}
	c.p.Resume(db)
	return nil
}

func (p *Proxy) isDisabled(db string) bool {
	p.disabledMu.Lock()
	defer p.disabledMu.Unlock()
	return p.disabled[db]
}

func (c console) Disable(db string) error {
	if err := c.checkDB(db); err != nil {
		return err
	}
	c.p.disabledMu.Lock()
	c.p.disabled[db] = true
	c.p.disabledMu.Unlock()
	return nil
}

func (c console) Enable(db string) error {
	if err := c.checkDB(db); err != nil {
		return err
	}
	c.p.disabledMu.Lock()
	delete(c.p.disabled, db)
	c.p.disabledMu.Unlock()
	return nil
}

func (c console) Reconnect(db string) error {
	if err := c.checkDB(db); err != nil {
		return err
	}
	c.p.pools.Reconnect(db)
	return nil
}

func (c console) WaitClose(db string, done func(error)) {
	if err := c.checkDB(db); err != nil {
		done(err)
		return
	}
	pollUntil(func() bool {
		old := c.p.countOnLoops(func(l *poolcore.Loop) (n int) {
			l.EachServer(func(sc *poolcore.Server) {
				if (db == "" || sc.Pool().Key().Database == db) && sc.Pool().Retired(sc) {
					n++
				}
			})
			return n
		})
		return old == 0
	}, done)
}

// killClients closes, on their loops, the clients match selects.
func (p *Proxy) killClients(match func(s *session) bool) int {
	return p.countOnLoops(func(l *poolcore.Loop) (n int) {
		for s := range p.sessions[l.Index()] {
			if !s.done && match(s) {
				s.kill(adminShutdown)
				n++
			}
		}
		return n
	})
}

func (c console) Kill(db string) error {
	if db == "" || IsConsoleDB(db) {
		return &admin.Error{Code: sqlstate.InvalidParameterValue, Message: "KILL needs a database other than the console"}
	}
	if err := c.checkDB(db); err != nil {
		return err
	}
	c.p.pools.Pause(db) // new clients wait for RESUME, as in PgBouncer
	n := c.p.killClients(func(s *session) bool { return s.con == nil && s.key.Database == db })
	c.p.pools.CloseServers(db)
	c.p.log.Info("killed", "database", db, "clients", n)
	return nil
}

func (c console) KillClient(id string) error {
	if c.p.killClients(func(s *session) bool { return ptr(s) == id }) == 0 {
		return &admin.Error{Code: sqlstate.UndefinedObject, Message: "no such client: " + id}
	}
	return nil
}

func (c console) Reload() error {
	if c.p.cfg.Settings == nil {
		return &admin.Error{Code: sqlstate.FeatureNotSupported, Message: "belay was started without a configuration file: nothing to reload"}
	}
	return asAdminError(c.p.cfg.Settings.Reload())
}

func (c console) Set(key, value string) error {
	if c.p.cfg.Settings == nil {
		return &admin.Error{Code: sqlstate.FeatureNotSupported, Message: "belay was started without a configuration file: SET has nothing to change"}
	}
	return asAdminError(c.p.cfg.Settings.Set(key, value))
}

// asAdminError gives a configuration error its SQLSTATE: the value was wrong.
func asAdminError(err error) error {
	if err == nil {
		return nil
	}
	return &admin.Error{Code: sqlstate.InvalidParameterValue, Message: err.Error()}
}

// switchoverWait bounds the console's wait for a switchover.
const switchoverWait = time.Minute

func (c console) Switchover(node string, done func(string, error)) {
	f := c.p.cfg.Switchover
	if f == nil {
		done("", &admin.Error{Code: sqlstate.FeatureNotSupported, Message: "SWITCHOVER needs a cluster in etcd (belay proxy --etcd)"})
		return
	}
	c.p.log.Info("switchover asked on the console", "node", node)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), switchoverWait)
		defer cancel()
		outcome, err := f(ctx, node)
		if err != nil {
			done("", &admin.Error{Code: sqlstate.ObjectNotInPrerequisiteState, Message: err.Error()})
			return
		}
		done(outcome, nil)
	}()
}

func (c console) Shutdown(mode string) error {
	m := ShutdownImmediate
	switch mode {
	case "WAIT_FOR_SERVERS":
		m = ShutdownWaitForServers
	case "WAIT_FOR_CLIENTS":
		m = ShutdownWaitForClients
	}
	c.p.log.Info("shutdown asked on the console", "mode", mode)
	c.p.Shutdown(m)
	return nil
}
