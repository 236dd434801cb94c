package loop

import (
	"log/slog"
	"time"
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
	Server string
	// PoolSize is the most server connections one (database, user) pool may hold open.
	PoolSize int
	// MaxClientConn is the most client connections served at once; 0 means no limit.
	MaxClientConn int
	// AuthType is the client authentication method; only "trust" exists until issue B.
	AuthType string
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
	// QueryWaitTimeout fails a client that waited this long for a server
	// connection (0: it waits for ever).
	QueryWaitTimeout time.Duration
	// EventLoops is the number of gnet event loops; 0 means DefaultEventLoops.
	EventLoops int
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}
