package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/belaydb/belay/fairness"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/loop"
	"github.com/belaydb/belay/poolcore"
)

const usage = `belay: a horizontal-scaling layer for PostgreSQL

Usage:
  belay up      [flags]   start a local cluster (etcd, a primary, replicas, proxy) under ./.belay
  belay proxy   [flags] [pgbouncer.ini]
                          run the proxy (gateway and pooler in one process); flags
                          go before the file and win over it
  belay pooler  [flags]   run the pooler beside one Postgres node of a cluster in etcd
  belay gateway [flags]   run a stateless gateway of a cluster in etcd (its work goes to the poolers)
  belay orch    [flags]   run a failover orchestrator of a cluster in etcd (several may run; one leads)
  belay switchover [flags] [NODE]
                          a planned switchover of a cluster's primary (through its orchestrator)
  belay shard   [flags] COMMAND
                          show or change a cluster's sharding schema (init, table, reference, drop, show)
  belay bench   [flags]   benchmark direct Postgres, PgBouncer and belay side by side
  belay version           print belay's version (also: belay --version)

Run 'belay COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd := os.Args[1]
	var err error
	switch cmd {
	case "up":
		err = runUp(os.Args[2:])
	case "proxy":
		err = runProxy(os.Args[2:])
	case "pooler":
		err = runTier(tierPooler, os.Args[2:])
	case "gateway":
		err = runTier(tierGateway, os.Args[2:])
	case "orch":
		err = runOrch(os.Args[2:])
	case "switchover":
		err = runSwitchover(os.Args[2:])
	case "shard":
		err = runShard(os.Args[2:])
	case "bench":
		err = runBench(os.Args[2:])
	case "version", "--version", "-version", "-v":
		fmt.Println(version())
		return
	case "-h", "--help", "-help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "belay: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	var usageErr errUsage
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usageErr):
		os.Exit(2) // the flag package printed it, with the usage
	default:
		fmt.Fprintf(os.Stderr, "belay %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// parseLogLevel maps --log-level to slog.
func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	if err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// proxyOptions are the flags of belay proxy.
type proxyOptions struct {
	listen       *string
	server       *string
	poolSize     *int
	maxDB        *int
	authType     *string
	authFile     *string
	authHBA      *string
	authUser     *string
	authQuery    *string
	authDB       *string
	tlsMode      *string
	tlsCert      *string
	tlsKey       *string
	tlsCA        *string
	loginTimeout *time.Duration
	idleTx       *time.Duration
	peerID       *int
	peers        *string
	reusePort    *bool
	unixDir      *string
	maxClients   *int
	logLevel     *string
	logFormat    *string
	maxMsg       *int
	maxBuf       *int
	lifetime     *time.Duration
	idle         *time.Duration
	connTimeout  *time.Duration
	passFile     *string
	srvTLSMode   *string
	srvTLSCA     *string
	srvTLSCert   *string
	srvTLSKey    *string
	queryWait    *time.Duration
	loops        *int
	maxPrepared  *int
	planCache    *int
	metricsAddr  *string
	cpuProfile   *string
	userLimits   userLimitsFlag
	adminUsers   *string
	statsUsers   *string
	statsPeriod  *time.Duration
	poolMode     *string
	maxUserConns *int
	adaptive     *bool
	adaptiveMin  *int
	pidFile      *string
	logFile      *string
	resetQuery   *string
	checkQuery   *string
	checkDelay   *time.Duration
	minPool      *int
	reservePool  *int
	reserveWait  *time.Duration
	clientIdle   *time.Duration
	ignoreParams *string
	queryTimeout *time.Duration
	cluster      clusterOptions
	tier         tierOptions
}

// config is the proxy's configuration from the flags.
func (o *proxyOptions) config(peers map[int]string, logger *slog.Logger) loop.Config {
	return loop.Config{
		Listen:                  strings.Split(*o.listen, ","),
		UnixSocketDir:           *o.unixDir,
		Server:                  serverAddr(*o.server),
		PoolSize:                *o.poolSize,
		MaxDBConnections:        *o.maxDB,
		MaxUserConnections:      *o.maxUserConns,
		AdaptiveLimit:           *o.adaptive,
		AdaptiveLimitMin:        *o.adaptiveMin,
		UserLimits:              o.userLimits.m,
		MaxClientConn:           *o.maxClients,
		AuthType:                *o.authType,
		AuthFile:                *o.authFile,
		AuthHBAFile:             *o.authHBA,
		AuthUser:                *o.authUser,
		AuthQuery:               *o.authQuery,
		AuthDatabase:            *o.authDB,
		TLSMode:                 *o.tlsMode,
		TLSCertFile:             *o.tlsCert,
		TLSKeyFile:              *o.tlsKey,
		TLSCAFile:               *o.tlsCA,
		ClientLoginTimeout:      *o.loginTimeout,
		IdleTransactionTimeout:  *o.idleTx,
		PeerID:                  *o.peerID,
		Peers:                   peers,
		ReusePort:               *o.reusePort,
		MaxMessageSize:          *o.maxMsg,
		MaxBufferedBytes:        *o.maxBuf,
		ServerLifetime:          *o.lifetime,
		ServerIdleTimeout:       *o.idle,
		ServerConnectTimeout:    *o.connTimeout,
		PassFile:                *o.passFile,
		ServerTLSMode:           *o.srvTLSMode,
		ServerTLSCAFile:         *o.srvTLSCA,
		ServerTLSCertFile:       *o.srvTLSCert,
		ServerTLSKeyFile:        *o.srvTLSKey,
		QueryWaitTimeout:        *o.queryWait,
		EventLoops:              *o.loops,
		MaxPreparedStatements:   *o.maxPrepared,
		PlanCacheBytes:          *o.planCache,
		Logger:                  logger,
		AdminUsers:              splitList(*o.adminUsers),
		StatsUsers:              splitList(*o.statsUsers),
		StatsPeriod:             *o.statsPeriod,
		PoolMode:                *o.poolMode,
		ServerResetQuery:        *o.resetQuery,
		ServerCheckQuery:        *o.checkQuery,
		ServerCheckDelay:        *o.checkDelay,
		MinPoolSize:             *o.minPool,
		ReservePoolSize:         *o.reservePool,
		ReservePoolTimeout:      *o.reserveWait,
		ClientIdleTimeout:       *o.clientIdle,
		IgnoreStartupParameters: splitList(*o.ignoreParams),
		QueryTimeout:            *o.queryTimeout,
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// proxyFlagSet defines belay proxy's flags.
func proxyFlagSet() (*flag.FlagSet, *proxyOptions) { return tierFlagSet(tierProxy) }

// tierFlagSet defines the flags of belay proxy, pooler or gateway: the
// proxy's, and those of the tier's own.
func tierFlagSet(t tier) (*flag.FlagSet, *proxyOptions) {
	o := &proxyOptions{}
	fs := newFlagSet("belay "+t.String(), t.synopsis(), t.about())
	o.listen = fs.String("listen", "127.0.0.1:6432", "TCP address(es) to accept clients on, comma-separated")
	o.server = fs.String("server", "127.0.0.1:5432", "Postgres server host:port, or its Unix socket directory (/run/postgresql, or /dir:port); several, comma-separated, are taken in turn")
	o.poolSize = fs.Int("pool-size", loop.DefaultPoolSize, "server connections per (database, user) pool")
	o.maxDB = fs.Int("max-db-connections", 0, "the node's budget of server connections, shared fairly between users (0: what the server's max_connections leaves after reserved slots; -1: none)")
	fs.Var(&o.userLimits, "user-weight", "a user's share of the budget: NAME=WEIGHT[:MIN[:MAX]], comma-separated or repeated (e.g. batch=1:0:4,web=3:2)")
	o.authType = fs.String("auth-type", "scram-sha-256", "client authentication: scram-sha-256, md5, password, trust, cert, or hba (per --auth-hba-file)")
	o.authFile = fs.String("auth-file", "", "PgBouncer userlist: \"user\" \"password | md5... | SCRAM-SHA-256$...\" per line")
	o.authHBA = fs.String("auth-hba-file", "", "pg_hba.conf-format rules, used with --auth-type hba")
	o.authUser = fs.String("auth-user", "", "look up users missing from --auth-file by running --auth-query as this user")
	o.authQuery = fs.String("auth-query", loop.DefaultAuthQuery, "the lookup run as --auth-user; $1 is the user name")
	o.authDB = fs.String("auth-dbname", "", "database --auth-query runs in (default: the client's)")
	o.tlsMode = fs.String("tls-mode", "", "client TLS: disable, allow, prefer, require, verify-ca or verify-full (default: prefer with a certificate, else disable)")
	o.tlsCert = fs.String("tls-cert", "", "belay's TLS certificate for clients (PEM)")
	o.tlsKey = fs.String("tls-key", "", "its private key (PEM)")
	o.tlsCA = fs.String("tls-ca", "", "CA that verifies client certificates (verify-ca, verify-full, cert auth)")
	o.loginTimeout = fs.Duration("client-login-timeout", loop.DefaultClientLoginTimeout, "close clients that have not logged in after this long")
	o.idleTx = fs.Duration("idle-transaction-timeout", 0, "close clients idle inside a transaction this long, rolling it back (0: never)")
	o.peerID = fs.Int("peer-id", 0, "this process's id among belays sharing a port (1-32767; 0: none)")
	o.peers = fs.String("peers", "", "the other belays: id=host:port or id=/unix/socket, comma-separated (cancel requests are forwarded there)")
	o.reusePort = fs.Bool("reuse-port", false, "listen with SO_REUSEPORT so several belays can share the port")
	o.unixDir = fs.String("unix-socket-dir", "", "also accept clients on DIR/.s.PGSQL.<port>")
	o.maxClients = fs.Int("max-client-conn", 0, "most clients served at once (0: no limit)")
	o.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	o.logFormat = fs.String("log-format", "text", "log lines as text (key=value) or json")
	o.maxMsg = fs.Int("max-message-size", loop.DefaultMaxMessageSize, "largest client message held whole (Query, Parse, ...), bytes")
	o.maxBuf = fs.Int("max-buffered-bytes", loop.DefaultMaxBufferedBytes, "bytes buffered for one connection before belay stops reading its peer")
	o.lifetime = fs.Duration("server-lifetime", time.Hour, "close a server connection after this long (0: never)")
	o.idle = fs.Duration("server-idle-timeout", 10*time.Minute, "close a server connection idle this long (0: never)")
	o.connTimeout = fs.Duration("server-connect-timeout", 15*time.Second, "bound on one login to Postgres")
	o.passFile = fs.String("passfile", "", "libpq .pgpass file with passwords for md5/SCRAM servers (default: $PGPASSFILE, ~/.pgpass)")
	o.srvTLSMode = fs.String("server-tls-mode", "disable", "TLS to Postgres (libpq sslmode): disable, allow, prefer, require, verify-ca or verify-full")
	o.srvTLSCA = fs.String("server-tls-ca-file", "", "CA certificates that verify Postgres (verify-ca, verify-full; default: the system roots)")
	o.srvTLSCert = fs.String("server-tls-cert-file", "", "client certificate for Postgres's cert authentication (PEM)")
	o.srvTLSKey = fs.String("server-tls-key-file", "", "its private key (PEM)")
	o.queryWait = fs.Duration("query-wait-timeout", 0, "fail a client that waited this long for a server connection (0: never)")
	o.loops = fs.Int("event-loops", 0, "gnet event loops (0: one per two cores)")
	o.maxPrepared = fs.Int("max-prepared-statements", poolcore.DefaultMaxStatements, "prepared statements belay keeps per server connection (the least recently used is deallocated)")
	o.planCache = fs.Int("plan-cache-bytes", loop.DefaultPlanCacheBytes, "memory bound of the plan cache, bytes")
	o.metricsAddr = fs.String("metrics-listen", "", "serve Prometheus metrics on http://ADDR/metrics and Go's profiles on /debug/pprof/ (empty: off)")
	o.cpuProfile = fs.String("cpu-profile", "", "write a CPU profile of the whole run to FILE (for flame graphs)")
	o.adminUsers = fs.String("admin-users", "", "users who may run every admin console command (database pgbouncer or belay), comma-separated")
	o.statsUsers = fs.String("stats-users", "", "users who may run the admin console's SHOW commands, comma-separated")
	o.statsPeriod = fs.Duration("stats-period", time.Minute, "period of SHOW STATS_AVERAGES and of the stats log lines")
	o.poolMode = fs.String("pool-mode", "transaction", "transaction (servers shared between transactions; session state follows the client) or session (a client keeps its server until it disconnects)")
	o.maxUserConns = fs.Int("max-user-connections", 0, "the most server connections of one user's pool (0: --pool-size)")
	o.adaptive = fs.Bool("adaptive-limit", true, "adapt each node's budget, under --max-db-connections, to the queries its Postgres runs best at once, measured as it serves (false: the budget is --max-db-connections); a gateway leaves it to the poolers")
	o.adaptiveMin = fs.Int("adaptive-limit-min", fairness.DefaultLimitMin, "the least limit the adaptive limit sets on a node's queries running at once")
	o.pidFile = fs.String("pidfile", "", "write the process ID to FILE (removed at exit)")
	o.logFile = fs.String("logfile", "", "also write the log to FILE (appended)")
	o.resetQuery = fs.String("server-reset-query", "DISCARD ALL", "run on a server a client left session state on, before belay's own DISCARD ALL")
	o.checkQuery = fs.String("server-check-query", "select 1", "run on a server idle longer than --server-check-delay before a client gets it (empty: never)")
	o.checkDelay = fs.Duration("server-check-delay", 30*time.Second, "see --server-check-query (0: check every time)")
	o.minPool = fs.Int("min-pool-size", 0, "keep this many servers open in each pool that has clients")
	o.reservePool = fs.Int("reserve-pool-size", 0, "more servers a pool may open once a client waited --reserve-pool-timeout")
	o.reserveWait = fs.Duration("reserve-pool-timeout", 5*time.Second, "see --reserve-pool-size")
	o.clientIdle = fs.Duration("client-idle-timeout", 0, "close clients idle outside a transaction this long (0: never)")
	o.queryTimeout = fs.Duration("query-timeout", 0, "cancel a query that has run this long on its server (0: never)")
	o.ignoreParams = fs.String("ignore-startup-parameters", "", "startup parameters to drop rather than apply, comma-separated (e.g. extra_float_digits)")
	o.cluster.define(fs)
	o.tier.define(fs, t)
	return fs, o
}

func runProxy(args []string) error { return runTier(tierProxy, args) }

// runTier runs belay proxy, pooler or gateway until it stops.
func runTier(t tier, args []string) error {
	fs, o := tierFlagSet(t)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := t.check(fs, o); err != nil {
		return err
	}
	var iniWarnings []string
	var st *settings // with a file: RELOAD, SET and SHOW CONFIG
	switch fs.NArg() {
	case 0:
	case 1:
		if t != tierProxy {
			return fmt.Errorf("a configuration file is belay proxy's; give belay %s flags", t)
		}
		// belay proxy pgbouncer.ini: the file sets what the flags did not.
		st = &settings{args: args}
		var err error
		if fs, o, iniWarnings, err = st.build(true); err != nil {
			return err
		}
	default:
		return fmt.Errorf("one configuration file at most, got %q", fs.Args())
	}
	level, err := parseLogLevel(*o.logLevel)
	if err != nil {
		return err
	}
	if _, err := poolMode(*o.poolMode); err != nil {
		return fmt.Errorf("--pool-mode: %w", err)
	}
	peerMap, err := parsePeers(*o.peers)
	if err != nil {
		return err
	}
	logOut, closeLog, err := logWriter(*o.logFile)
	if err != nil {
		return err
	}
	defer closeLog()
	logger, err := newLogger(logOut, *o.logFormat, level)
	if err != nil {
		return err
	}
	for _, w := range iniWarnings {
		logger.Warn(w)
	}
	if *o.cpuProfile != "" {
		f, err := os.Create(*o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := (poolcore.Options{Server: serverAddr(*o.server), ServerTLSMode: *o.srvTLSMode, ServerTLSCAFile: *o.srvTLSCA,
		ServerTLSCertFile: *o.srvTLSCert, ServerTLSKeyFile: *o.srvTLSKey}).Check(); err != nil {
		return err
	}
	cfg := o.config(peerMap, logger)
	if st != nil {
		cfg.Settings = st
		cfg.Databases = st.databases()
	}
	stopCluster := func() {}
	if t != tierPooler { // a pooler serves its node, and registers in the cluster (below)
		if stopCluster, err = o.cluster.apply(context.Background(), &cfg, *o.passFile, logger); err != nil {
			return err
		}
	}
	defer stopCluster()
	if t == tierGateway {
		cfg.Cluster = ha.NewPoolerView(cfg.Cluster)
		cfg.CloseUnusedServers, cfg.PoolerServers = true, true
		// A node's concurrency is its pooler's to adapt, from all the
		// gateways' work; a gateway adapting too would measure the
		// pooler's queue as its own and halve what the pooler allows.
		cfg.AdaptiveLimit = false
		stopPeering, err := o.tier.peering(context.Background(), o, &cfg, logger)
		if err != nil {
			return err
		}
		defer stopPeering()
	}
	p, err := loop.Start(cfg)
	if err != nil {
		return err
	}
	o.cluster.proxy.started(p)
	if t == tierPooler {
		stop, err := o.tier.register(context.Background(), o, &cfg, p, logger)
		if err != nil {
			_ = p.Stop(context.Background())
			return err
		}
		defer stop()
	}
	if st != nil {
		st.started(p, peerMap, logger)
	}
	if *o.pidFile != "" {
		removePID, err := writePIDFile(*o.pidFile)
		if err != nil {
			_ = p.Stop(context.Background())
			return err
		}
		defer removePID()
	}
	if *o.metricsAddr != "" {
		stop, err := serveMetrics(*o.metricsAddr, p.Metrics().WritePrometheus, p.Ready)
		if err != nil {
			_ = p.Stop(context.Background())
			return err
		}
		defer stop()
	}
	if cfg.Cluster != nil {
		logger.Info("belay "+t.String()+" listening", "listen", *o.listen, "etcd", *o.cluster.etcd, "cluster", *o.cluster.cluster, "pool_size", *o.poolSize)
	} else {
		logger.Info("belay "+t.String()+" listening", "listen", *o.listen, "server", *o.server, "pool_size", *o.poolSize)
	}
	var reload func() error
	if st != nil {
		reload = st.Reload
	}
	handleSignals(p, reload, logger)
	return nil
}

// handleSignals runs the proxy's signals until it has stopped, as PgBouncer
// (≥ 1.23) reads them:
//   - SIGTERM: stop accepting, serve every connected client until it leaves,
//     then exit (SHUTDOWN WAIT_FOR_CLIENTS; the old process of a rolling
//     restart);
//   - SIGINT: stop accepting, close each client once it is between
//     transactions, then exit (SHUTDOWN WAIT_FOR_SERVERS);
//   - a second SIGINT or SIGTERM during a shutdown: close everything now;
//   - SIGHUP: reload the configuration file (RELOAD; reload is nil without one);
//   - SIGUSR1: PAUSE; SIGUSR2: RESUME.
func handleSignals(p *loop.Proxy, reload func() error, logger *slog.Logger) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	shutting := false
	for {
		select {
		case <-p.Done():
			logger.Info("stopped")
			return
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				if reload == nil {
					logger.Warn("SIGHUP: belay was started without a configuration file; nothing to reload")
				} else {
					logger.Info("SIGHUP: reloading the configuration")
					_ = reload() // logs its outcome
				}
				continue
			case syscall.SIGUSR1:
				logger.Info("SIGUSR1: pausing")
				p.Pause("")
				continue
			case syscall.SIGUSR2:
				logger.Info("SIGUSR2: resuming")
				p.Resume("")
				continue
			}
			mode := loop.ShutdownWaitForClients
			switch {
			case shutting:
				mode = loop.ShutdownImmediate
			case s == syscall.SIGINT:
				mode = loop.ShutdownWaitForServers
			case s == syscall.SIGTERM:
			default:
				continue
			}
			logger.Info("shutting down", "signal", s.String(), "mode", mode.String(), "clients", p.Stats().Clients)
			shutting = true
			p.Shutdown(mode)
		}
	}
}

// parsePeers reads --peers: id=address pairs, comma-separated.
func parsePeers(s string) (map[int]string, error) {
	out := map[int]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		id, err := strconv.Atoi(k)
		if !ok || err != nil || id < 1 || id > 32767 || v == "" {
			return nil, fmt.Errorf("--peers: %q is not id=address with id 1-32767", kv)
		}
		out[id] = v
	}
	return out, nil
}

// userLimitsFlag is --user-weight: NAME=WEIGHT[:MIN[:MAX]] entries,
// comma-separated, the flag repeatable.
type userLimitsFlag struct{ m map[string]fairness.Limits }

func (f *userLimitsFlag) String() string {
	var out []string
	for name, l := range f.m {
		out = append(out, fmt.Sprintf("%s=%d:%d:%d", name, l.Weight, l.Min, l.Max))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (f *userLimitsFlag) Set(s string) error {
	for _, e := range strings.Split(s, ",") {
		name, spec, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || name == "" {
			return fmt.Errorf("%q: want NAME=WEIGHT[:MIN[:MAX]]", e)
		}
		var nums [3]int
		parts := strings.Split(spec, ":")
		if len(parts) > 3 {
			return fmt.Errorf("%q: want NAME=WEIGHT[:MIN[:MAX]]", e)
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("%q: %q is not a number", e, p)
			}
			nums[i] = n
		}
		l := fairness.Limits{Weight: nums[0], Min: nums[1], Max: nums[2]}
		if l.Weight < 1 {
			return fmt.Errorf("%q: the weight must be at least 1", e)
		}
		if err := l.Validate(); err != nil {
			return fmt.Errorf("%q: %w", e, err)
		}
		if f.m == nil {
			f.m = map[string]fairness.Limits{}
		}
		f.m[name] = l
	}
	return nil
}
