package loop

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/belaydb/belay/fairness"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/twopc"
)

// Config is what the proxy needs to start. cmd/belay fills it from flags
// (and, later, from a pgbouncer.ini); nothing here reads files or flags.
type Config struct {
	// Listen is a list of TCP addresses ("127.0.0.1:6432").
	Listen []string
	// UnixSocketDir, when set, adds a Unix socket listener at
	// DIR/.s.PGSQL.<port of the first TCP listener>, as Postgres and PgBouncer name it.
	UnixSocketDir string
	// Server is the Postgres server "host:port" every pool connects to.
	// With Cluster, it is ignored: the cluster's nodes are the servers.
	Server string
	// Cluster, when set, is the cluster the proxy serves (cluster.go): its
	// topology, read at every tick; reads go to replicas, the rest to the
	// primary.
	Cluster ClusterSource
	// ClusterShard is the shard served ("": the first).
	ClusterShard string
	// HealthDial opens the connection the health checks of a node run
	// over (cmd/belay builds it with a user and credentials). Required with
	// Cluster.
	HealthDial func(ctx context.Context, addr string) (*pgx.Conn, error)
	// MaxReplicaLagBytes and MaxReplicaLag keep reads from replicas that
	// far behind (0: no bound).
	MaxReplicaLagBytes uint64
	MaxReplicaLag      time.Duration
	// FailoverHold bounds how long work for a lost primary waits for a
	// new one (failover.go): 0 means ha.DefaultHoldBound (10 s), negative
	// never holds (such work fails at once). A waiting client that keeps
	// sending is parked past MaxBufferedBytes, as one waiting for a server.
	FailoverHold time.Duration
	// Switchover, if not nil, carries out the console's SWITCHOVER [node]:
	// a planned switchover of the served shard's primary to node ("": the
	// orchestrator's choice), waited for until ctx ends; it returns the
	// outcome in a sentence. Called off the event loops.
	Switchover func(ctx context.Context, node string) (string, error)
	// RecordDecision, with a sharded Cluster, records the decision of a
	// two-phase commit (twopc) durably unless one is recorded, and returns
	// the decision recorded afterwards (cmd/belay: ha.Store.RecordDecision
	// in etcd). Called off the event loops. Without it, nothing runs on
	// several shards at once (spread.go).
	RecordDecision func(ctx context.Context, tx twopc.TxID, d twopc.Decision, shards []int) (twopc.Decision, error)
	// ForgetDecision, if set, deletes a decision once every shard carried
	// it out (ha.Store.ForgetDecision), so that the records do not pile
	// up. Called off the event loops.
	ForgetDecision func(ctx context.Context, tx twopc.TxID) error
	// Eventual turns read-your-writes off for every session (a session's
	// SET belay.consistency = eventual turns it off for that session).
	Eventual bool
	// PoolSize is the most server connections one (database, user) pool may hold open.
	PoolSize int
	// MaxDBConnections is the node's budget of server connections, shared
	// fairly between the pools (package fairness). 0 means what the
	// server's max_connections leaves after its reserved slots, read at
	// the first login; -1 means no budget but PoolSize.
	MaxDBConnections int
	// AdaptiveLimit adapts each node's budget, under MaxDBConnections, to
	// the queries its Postgres runs best at once (fairness.Limiter, fed by
	// the queries served); the fair shares are cut from it.
	// AdaptiveLimitMin is the least limit (0: fairness.DefaultLimitMin).
	// Without a budget (MaxDBConnections -1) there is nothing to adapt.
	AdaptiveLimit    bool
	AdaptiveLimitMin int
	// UserLimits gives users a weight, a guaranteed minimum and a maximum
	// of the budget; users not named get weight 1, no minimum, PoolSize.
	UserLimits map[string]fairness.Limits
	// FairnessWindow is how long a user's peak demand holds its share of
	// the budget up after the demand fell (0: fairness.DefaultWindow).
	FairnessWindow time.Duration
	// MaxClientConn is the most client connections served at once; 0 means no limit.
	MaxClientConn int
	// AuthType is the client authentication method: scram-sha-256 (the
	// default), md5, password, trust, cert, or hba (AuthHBAFile decides per
	// connection).
	AuthType string
	// AuthFile is a PgBouncer userlist ("user" "secret" per line, the secret
	// plaintext, md5... or SCRAM-SHA-256$...).
	AuthFile string
	// AuthHBAFile is a pg_hba.conf-format file, used when AuthType is "hba".
	AuthHBAFile string
	// AuthUser, when set, looks up the secrets of users missing from AuthFile
	// by running AuthQuery as this user (its own password from AuthFile or
	// PassFile), as PgBouncer's auth_user does.
	AuthUser string
	// AuthQuery is the lookup; $1 is the user name. Empty means DefaultAuthQuery.
	AuthQuery string
	// AuthDatabase is where AuthQuery runs; empty means the client's database.
	AuthDatabase string

	// TLSMode is PgBouncer's client_tls_sslmode: disable, allow, prefer,
	// require, verify-ca or verify-full. Empty means prefer when a
	// certificate is configured, else disable.
	TLSMode string
	// TLSCertFile and TLSKeyFile are belay's certificate for clients.
	TLSCertFile, TLSKeyFile string
	// TLSCAFile verifies client certificates (verify-ca, verify-full, cert auth).
	TLSCAFile string

	// ClientLoginTimeout closes a client that has not finished startup,
	// TLS and authentication in this time (0: DefaultClientLoginTimeout).
	ClientLoginTimeout time.Duration
	// QueryWaitTimeout fails a client that waited this long for a server
	// (PgBouncer's query_wait_timeout; 0: it waits for ever).
	QueryWaitTimeout time.Duration
	// IdleTransactionTimeout closes a client that sits idle inside a
	// transaction for this long, rolling the transaction back (0: never).
	IdleTransactionTimeout time.Duration

	// PeerID and Peers let several belay processes share one port
	// (SO_REUSEPORT): each issues cancel keys that carry its PeerID, and a
	// CancelRequest that lands on the wrong process is forwarded to the
	// address Peers gives for the key's peer. PeerID 0 means no peers.
	PeerID int
	Peers  map[int]string
	// PeerAddr, if not nil, finds the peers Peers does not name (belay
	// gateways registered in etcd). Any goroutine.
	PeerAddr func(id int) (addr string, ok bool)
	// CloseUnusedServers closes a pool's idle servers once it has no
	// client on their loop (poolcore.Options.CloseUnused): a gateway's,
	// whose servers are poolers.
	CloseUnusedServers bool
	// PoolerServers: the servers are belay poolers (a gateway's). A unit
	// of work is kept until its pooler answers it, and one the pooler
	// says never reached its node (FATAL 08001, or 57P03 from a login to
	// it) is routed again: it waits out a failover rather than failing.
	PoolerServers bool
	// ReusePort sets SO_REUSEPORT on the listeners.
	ReusePort bool
	// MaxMessageSize bounds a client message belay must hold whole to inspect (Query, Parse, ...).
	MaxMessageSize int
	// MaxBufferedBytes bounds what belay buffers for one connection before it stops reading its peer.
	MaxBufferedBytes int
	// ServerLifetime closes a server connection released after it has lived this long (0: never).
	ServerLifetime time.Duration
	// ServerIdleTimeout closes a server connection idle for this long (0: never).
	ServerIdleTimeout time.Duration
	// ServerConnectTimeout bounds one login to Postgres.
	ServerConnectTimeout time.Duration
	// PassFile is a libpq .pgpass file with the passwords belay logs in to Postgres with
	// (md5 and SCRAM-SHA-256 servers); empty means the libpq defaults (PGPASSFILE, ~/.pgpass).
	PassFile string
	// ServerTLSMode is libpq's sslmode for connections to Postgres: disable
	// (the default), allow, prefer, require, verify-ca or verify-full.
	ServerTLSMode string
	// ServerTLSCAFile verifies Postgres's certificate ("" = the system roots).
	ServerTLSCAFile string
	// ServerTLSCertFile and ServerTLSKeyFile are belay's client certificate
	// for Postgres's cert authentication (optional).
	ServerTLSCertFile, ServerTLSKeyFile string
	// MaxPreparedStatements bounds the prepared statements belay keeps on
	// each server connection (0: poolcore.DefaultMaxStatements).
	MaxPreparedStatements int
	// PlanCacheBytes bounds the plan cache (shared out between the event
	// loops; 0: DefaultPlanCacheBytes).
	PlanCacheBytes int
	// EventLoops is the number of gnet event loops; 0 means DefaultEventLoops.
	EventLoops int
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger

	// AdminUsers and StatsUsers may log in to the admin console, the virtual
	// databases "pgbouncer" and "belay" (package admin): admins run every
	// command, stats users SHOW.
	AdminUsers, StatsUsers []string
	// StatsPeriod is the period of SHOW STATS_AVERAGES and of the stats log
	// lines (PgBouncer's stats_period; 0: a minute).
	StatsPeriod time.Duration
	// PoolMode is PgBouncer's pool_mode: "transaction" (or "") shares
	// servers between transactions, session state following the client;
	// "session" gives a client its first server until it disconnects.
	PoolMode string
	// MaxUserConnections bounds the servers of a pool whose user has no
	// max of its own in UserLimits (0: PoolSize).
	MaxUserConnections int
	// ServerResetQuery, ServerCheckQuery, ServerCheckDelay, MinPoolSize,
	// ReservePoolSize and ReservePoolTimeout are PgBouncer's settings of
	// those names (see poolcore.Tunables).
	ServerResetQuery, ServerCheckQuery string
	ServerCheckDelay                   time.Duration
	MinPoolSize, ReservePoolSize       int
	ReservePoolTimeout                 time.Duration
	// ClientIdleTimeout closes a client idle (outside a transaction) this
	// long (0: never).
	ClientIdleTimeout time.Duration
	// QueryTimeout cancels a query that has run this long on its server
	// (PgBouncer's query_timeout; checked every 100 ms; 0: never).
	QueryTimeout time.Duration
	// IgnoreStartupParameters are startup parameters dropped rather than
	// applied to the client's session (PgBouncer's ignore_startup_parameters).
	IgnoreStartupParameters []string
	// Databases are the databases the configuration names, for SHOW
	// DATABASES (clients may use others: every database is on Server).
	Databases []string
	// Settings serve the console's SHOW CONFIG, SET and RELOAD; nil when
	// belay runs without a configuration file.
	Settings Settings
}

// tunables are the settings of the pools a reload may change.
func (c *Config) tunables() poolcore.Tunables {
	return poolcore.Tunables{PoolSize: c.PoolSize, MaxDBConnections: c.MaxDBConnections, MaxUserConnections: c.MaxUserConnections,
		AdaptiveLimit: c.AdaptiveLimit, LimitMin: c.AdaptiveLimitMin,
		UserLimits: c.UserLimits, Lifetime: c.ServerLifetime, IdleTimeout: c.ServerIdleTimeout,
		ConnectTimeout: c.ServerConnectTimeout, QueryWaitTimeout: c.QueryWaitTimeout,
		ResetQuery: c.ServerResetQuery, CheckQuery: c.ServerCheckQuery, CheckDelay: c.ServerCheckDelay,
		MinPoolSize: c.MinPoolSize, ReservePoolSize: c.ReservePoolSize, ReservePoolTimeout: c.ReservePoolTimeout}
}

// fillDefaults gives the zero values of c their defaults.
func (c *Config) fillDefaults() {
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.PlanCacheBytes <= 0 {
		c.PlanCacheBytes = DefaultPlanCacheBytes
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClientLoginTimeout <= 0 {
		c.ClientLoginTimeout = DefaultClientLoginTimeout
	}
	if c.ServerConnectTimeout <= 0 {
		c.ServerConnectTimeout = 15 * time.Second
	}
	if c.StatsPeriod <= 0 {
		c.StatsPeriod = time.Minute
	}
}
