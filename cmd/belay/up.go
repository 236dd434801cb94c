package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/loop"
)

// runUp is `belay up`: a local PostgreSQL (initdb on first run, data kept in
// DIR/pg across runs) with the proxy in front of it, until SIGINT or SIGTERM.
func runUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", "./.belay", "directory for the local cluster: PostgreSQL data in DIR/pg (kept across runs), proxy socket in DIR/sock")
	port := fs.Int("port", 6432, "proxy port on 127.0.0.1; if it is busy a free one is picked")
	poolSize := fs.Int("pool-size", 20, "most server connections per (database, user) pool")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: belay up [flags]\n\nStarts PostgreSQL and the belay proxy on this machine; Ctrl-C stops both.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("belay up: unexpected arguments %q", fs.Args())
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("belay up: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("belay up: %w", err)
	}
	binDir, err := pginstance.FindBinDir()
	if err != nil {
		return errors.New("belay up needs the PostgreSQL server programs (initdb, postgres), and found them neither on PATH\n" +
			"nor under /usr/lib/postgresql/*/bin. Install PostgreSQL, e.g. on Debian or Ubuntu:\n\n" +
			"    sudo apt-get install postgresql postgresql-contrib     (or: make deps)\n\n" +
			"or put the directory holding initdb and postgres on PATH")
	}

	// Ctrl-C during startup stops what has started so far.
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	pgDir := filepath.Join(root, "pg")
	fmt.Fprintf(os.Stderr, "belay up: starting PostgreSQL (%s) in %s ...\n", binDir, pgDir)
	pg, err := pginstance.Start(ctx, pginstance.Options{Dir: pgDir, BinDir: binDir})
	if err != nil {
		return fmt.Errorf("belay up: %w", err)
	}

	proxy, err := startProxy(root, *port, pg, *poolSize, logger)
	if err != nil {
		if serr := pg.Stop(); serr != nil {
			logger.Error("stopping PostgreSQL", "err", serr)
		}
		return fmt.Errorf("belay up: starting the proxy: %w", err)
	}

	printBanner(proxy.Addr(), pg)

	var runErr error
	select {
	case <-ctx.Done():
	case <-pg.Done():
		runErr = fmt.Errorf("belay up: PostgreSQL exited unexpectedly (%v); log: %s\n%s", pg.ExitErr(), pg.LogPath, pg.LogTail())
	}
	stopSignals() // from now on a second Ctrl-C ends belay at once (Postgres then stops through its parent-death signal)
	fmt.Fprintln(os.Stderr, "\nbelay up: stopping the proxy and PostgreSQL ...")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := proxy.Stop(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("belay up: stopping the proxy: %w", err))
	}
	if err := pg.Stop(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("belay up: stopping PostgreSQL: %w", err))
	}
	if runErr == nil {
		fmt.Fprintln(os.Stderr, "belay up: stopped.")
	}
	return runErr
}

// startProxy starts the proxy on 127.0.0.1:port (or a free port if that one
// is busy) with a Unix socket in root/sock, in front of pg.
func startProxy(root string, port int, pg *pginstance.Instance, poolSize int, logger *slog.Logger) (*loop.Proxy, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err != nil {
		l, err2 := net.Listen("tcp", "127.0.0.1:0")
		if err2 != nil {
			return nil, err
		}
		addr = l.Addr().String()
		l.Close()
		fmt.Fprintf(os.Stderr, "belay up: port %d is busy (%v); using %s\n", port, err, addr)
	} else {
		l.Close()
	}

	sockDir := filepath.Join(root, "sock")
	if len(sockDir)+len("/.s.PGSQL.65535") > 103 { // longer than a Unix socket path may be
		fmt.Fprintf(os.Stderr, "belay up: %s is too long a path for a Unix socket; TCP only\n", sockDir)
		sockDir = ""
	} else if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return nil, err
	}

	return loop.Start(loop.Config{
		Listen:        []string{addr},
		UnixSocketDir: sockDir,
		Server:        pg.Addr(),
		PoolSize:      poolSize,
		AuthType:      "trust",
		Logger:        logger,
	})
}

func printBanner(proxyAddr string, pg *pginstance.Instance) {
	host, port, err := net.SplitHostPort(proxyAddr)
	if err != nil {
		host, port = "127.0.0.1", proxyAddr
	}
	user := pg.Superuser
	url := fmt.Sprintf("postgres://%s@%s/postgres", user, net.JoinHostPort(host, port))
	fmt.Printf(`
belay is up.

  Connection string:  %[1]s

  psql:
    psql "%[1]s"

  pgbench:
    pgbench -h %[2]s -p %[3]s -U %[4]s -i -s 10 postgres
    pgbench -h %[2]s -p %[3]s -U %[4]s -S -c 10 -T 10 postgres

  PostgreSQL itself: %[5]s (data %[6]s, log %[7]s)

Press Ctrl-C to stop.
`, url, host, port, user, pg.Addr(), pg.DataDir, pg.LogPath)
}
