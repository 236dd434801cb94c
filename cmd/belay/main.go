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
	"strings"
	"syscall"
	"time"

	"github.com/belaydb/belay/loop"
	"github.com/belaydb/belay/poolcore"
)

const usage = `belay: a horizontal-scaling layer for PostgreSQL

Usage:
  belay up      [flags]   start a local cluster (Postgres + proxy) under ./.belay
  belay proxy   [flags]   run the proxy (gateway and pooler in one process)
  belay bench   [flags]   benchmark direct Postgres, PgBouncer and belay side by side

Run 'belay COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = runUp(os.Args[2:])
	case "proxy":
		err = runProxy(os.Args[2:])
	case "bench":
		err = runBench(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "belay: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "belay:", err)
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

func runProxy(args []string) error {
	fs := flag.NewFlagSet("belay proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:6432", "TCP address(es) to accept clients on, comma-separated")
	server := fs.String("server", "127.0.0.1:5432", "Postgres server host:port")
	poolSize := fs.Int("pool-size", loop.DefaultPoolSize, "server connections per (database, user) pool")
	authType := fs.String("auth-type", "trust", "client authentication: trust (more come with TLS and auth)")
	unixDir := fs.String("unix-socket-dir", "", "also accept clients on DIR/.s.PGSQL.<port>")
	maxClients := fs.Int("max-client-conn", 0, "most clients served at once (0: no limit)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	maxMsg := fs.Int("max-message-size", loop.DefaultMaxMessageSize, "largest client message held whole (Query, Parse, ...), bytes")
	maxBuf := fs.Int("max-buffered-bytes", loop.DefaultMaxBufferedBytes, "bytes buffered for one connection before belay stops reading its peer")
	lifetime := fs.Duration("server-lifetime", time.Hour, "close a server connection after this long (0: never)")
	idle := fs.Duration("server-idle-timeout", 10*time.Minute, "close a server connection idle this long (0: never)")
	connTimeout := fs.Duration("server-connect-timeout", 15*time.Second, "bound on one login to Postgres")
	passFile := fs.String("passfile", "", "libpq .pgpass file with passwords for md5/SCRAM servers (default: $PGPASSFILE, ~/.pgpass)")
	srvTLSMode := fs.String("server-tls-mode", "disable", "TLS to Postgres (libpq sslmode): disable, allow, prefer, require, verify-ca or verify-full")
	srvTLSCA := fs.String("server-tls-ca-file", "", "CA certificates that verify Postgres (verify-ca, verify-full; default: the system roots)")
	srvTLSCert := fs.String("server-tls-cert-file", "", "client certificate for Postgres's cert authentication (PEM)")
	srvTLSKey := fs.String("server-tls-key-file", "", "its private key (PEM)")
	queryWait := fs.Duration("query-wait-timeout", 0, "fail a client that waited this long for a server connection (0: never)")
	loops := fs.Int("event-loops", 0, "gnet event loops (0: one per two cores)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to FILE (for flame graphs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := (poolcore.Options{Server: *server, ServerTLSMode: *srvTLSMode, ServerTLSCAFile: *srvTLSCA,
		ServerTLSCertFile: *srvTLSCert, ServerTLSKeyFile: *srvTLSKey}).Check(); err != nil {
		return err
	}
	p, err := loop.Start(loop.Config{
		Listen:               strings.Split(*listen, ","),
		UnixSocketDir:        *unixDir,
		Server:               *server,
		PoolSize:             *poolSize,
		MaxClientConn:        *maxClients,
		AuthType:             *authType,
		MaxMessageSize:       *maxMsg,
		MaxBufferedBytes:     *maxBuf,
		ServerLifetime:       *lifetime,
		ServerIdleTimeout:    *idle,
		ServerConnectTimeout: *connTimeout,
		PassFile:             *passFile,
		ServerTLSMode:        *srvTLSMode,
		ServerTLSCAFile:      *srvTLSCA,
		ServerTLSCertFile:    *srvTLSCert,
		ServerTLSKeyFile:     *srvTLSKey,
		QueryWaitTimeout:     *queryWait,
		EventLoops:           *loops,
		Logger:               logger,
	})
	if err != nil {
		return err
	}
	logger.Info("belay proxy listening", "listen", *listen, "server", *server, "pool_size", *poolSize)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Stop(ctx)
}
