package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/loop"
	"golang.org/x/sys/unix"
)

// runUp is `belay up`: a local PostgreSQL (initdb on first run, data kept in
// DIR/pg across runs) with the proxy in front of it, until SIGINT or SIGTERM.
func runUp(args []string) error {
	fs := newFlagSet("belay up", "belay up [flags]",
		"Starts PostgreSQL and the belay proxy on this machine; Ctrl-C stops both: the proxy first, as\n"+
			"`belay proxy` stops on SIGINT (each client closed once its transaction is over), then PostgreSQL.")
	dir := fs.String("dir", "./.belay", "directory for the local cluster: PostgreSQL data in DIR/pg (kept across runs), proxy socket in DIR/sock")
	port := fs.Int("port", 6432, "proxy port on 127.0.0.1; if it is busy a free one is picked")
	poolSize := fs.Int("pool-size", 20, "most server connections per (database, user) pool")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	stopWait := fs.Duration("stop-timeout", 10*time.Second, "how long Ctrl-C lets running transactions finish before their clients are closed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	level, err := parseLogLevel(*logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	binDir, err := pginstance.FindBinDir()
	if err != nil {
		return errors.New("needs the PostgreSQL server programs (initdb, postgres), and found them neither on PATH\n" +
			"nor under /usr/lib/postgresql/*/bin. Install PostgreSQL, e.g. on Debian or Ubuntu:\n\n" +
			"    sudo apt-get install postgresql postgresql-contrib     (or: make deps)\n\n" +
			"or put the directory holding initdb and postgres on PATH")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(root)
	if err != nil {
		return err
	}
	defer unlock()

	// Ctrl-C during startup stops what has started so far.
	ctx, stopStartSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopStartSignals()
	c := &cluster{root: root, log: logger}
	if err := c.startPostgres(ctx, binDir); err != nil {
		return err
	}
	if err := c.startProxy(*port, *poolSize); err != nil {
		return errors.Join(fmt.Errorf("starting the proxy: %w", err), c.stopPostgres())
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	interrupted := ctx.Err() != nil // a signal came while the proxy started
	stopStartSignals()              // (cancels ctx)
	if interrupted {
		sig <- os.Interrupt
	} else {
		printBanner(c.proxy.Addr(), c.pg)
	}
	return c.run(sig, *stopWait)
}

// cluster is what `belay up` runs: PostgreSQL and the proxy in front of it.
// Its methods run on runUp's goroutine.
type cluster struct {
	root  string
	log   *slog.Logger
	pg    *pginstance.Instance
	proxy *loop.Proxy
}

// startPostgres starts PostgreSQL in root/pg, on the port it had the last
// time (root/pg/port) when that port is free, else on a free one, which is
// kept for the next time.
func (c *cluster) startPostgres(ctx context.Context, binDir string) error {
	pgDir := filepath.Join(c.root, "pg")
	portFile := filepath.Join(pgDir, "port")
	kept := 0
	if b, err := os.ReadFile(portFile); err == nil {
		kept, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	fmt.Fprintf(os.Stderr, "belay up: starting PostgreSQL (%s) in %s ...\n", binDir, pgDir)
	pg, err := pginstance.Start(ctx, pginstance.Options{Dir: pgDir, BinDir: binDir, PreferPort: kept})
	if err != nil {
		return err
	}
	c.pg = pg
	if pg.Port != kept {
		if kept != 0 {
			fmt.Fprintf(os.Stderr, "belay up: PostgreSQL's port %d is taken; it listens on %d from now on\n", kept, pg.Port)
		}
		if err := os.WriteFile(portFile, []byte(strconv.Itoa(pg.Port)+"\n"), 0o644); err != nil {
			c.log.Warn("cannot keep PostgreSQL's port for the next run", "err", err)
		}
	}
	return nil
}

// startProxy starts the proxy on 127.0.0.1:port (or a free port if that one
// is busy) with a Unix socket in root/sock, in front of PostgreSQL. Its
// superuser is an admin of the console (database belay or pgbouncer).
func (c *cluster) startProxy(port, poolSize int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if l, err := net.Listen("tcp", addr); err != nil {
		l, err2 := net.Listen("tcp", "127.0.0.1:0")
		if err2 != nil {
			return err
		}
		addr = l.Addr().String()
		l.Close()
		fmt.Fprintf(os.Stderr, "belay up: port %d is busy (%v); using %s\n", port, err, addr)
	} else {
		l.Close()
	}

	sockDir := filepath.Join(c.root, "sock")
	if len(sockDir)+len("/.s.PGSQL.65535") > 103 { // longer than a Unix socket path may be
		fmt.Fprintf(os.Stderr, "belay up: %s is too long a path for a Unix socket; TCP only\n", sockDir)
		sockDir = ""
	} else if err := os.MkdirAll(sockDir, 0o755); err != nil {
		return err
	}

	p, err := loop.Start(loop.Config{
		Listen:        []string{addr},
		UnixSocketDir: sockDir,
		Server:        c.pg.Addr(),
		PoolSize:      poolSize,
		AuthType:      "trust",
		AdminUsers:    []string{c.pg.Superuser},
		Logger:        c.log,
	})
	c.proxy = p
	return err
}

// run serves until a signal (or PostgreSQL's death), then stops the proxy
// and PostgreSQL.
func (c *cluster) run(sig <-chan os.Signal, stopWait time.Duration) error {
	var runErr error
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "\nbelay up: %v: stopping the proxy (clients are closed once their transactions end; Ctrl-C again to close them now), then PostgreSQL ...\n", s)
		c.stopProxy(sig, stopWait)
	case <-c.pg.Done():
		runErr = fmt.Errorf("PostgreSQL exited unexpectedly (%v); log: %s\n%s", c.pg.ExitErr(), c.pg.LogPath, c.pg.LogTail())
		c.proxy.Shutdown(loop.ShutdownImmediate)
		<-c.proxy.Done()
	}
	runErr = errors.Join(runErr, c.stopPostgres())
	if runErr == nil {
		fmt.Fprintln(os.Stderr, "belay up: stopped.")
	}
	return runErr
}

// stopProxy stops the proxy as `belay proxy` stops on SIGINT (SHUTDOWN
// WAIT_FOR_SERVERS): it accepts no new client and closes each one with
// FATAL 57P01 once it is between transactions. Clients still in a
// transaction after stopWait, or at another signal, are closed at once.
func (c *cluster) stopProxy(sig <-chan os.Signal, stopWait time.Duration) {
	p := c.proxy
	p.Shutdown(loop.ShutdownWaitForServers)
	t := time.NewTimer(stopWait)
	defer t.Stop()
	select {
	case <-p.Done():
		return
	case s := <-sig:
		c.log.Info("stopping now: closing every client", "signal", s.String(), "clients", p.Stats().Clients)
	case <-t.C:
		c.log.Warn("clients still in a transaction after the stop timeout: closing them", "timeout", stopWait, "clients", p.Stats().Clients)
	}
	p.Shutdown(loop.ShutdownImmediate)
	<-p.Done()
}

func (c *cluster) stopPostgres() error {
	if err := c.pg.Stop(); err != nil {
		return fmt.Errorf("stopping PostgreSQL: %w", err)
	}
	return nil
}

// lockDir makes sure one `belay up` at a time uses root: it holds an
// exclusive flock on root/up.lock (which records its PID) until unlock.
// The kernel drops the lock when the process dies, so a crash leaves
// nothing to clean up; the file itself stays.
func lockDir(root string) (unlock func(), err error) {
	path := filepath.Join(root, "up.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			return nil, fmt.Errorf("already running in %s (pid %s): stop that one with Ctrl-C, or give this one another --dir", root, pid)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { _ = f.Close() }, nil
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

  admin console (SHOW POOLS|CLIENTS|SERVERS|STATS|HELP, ...):
    psql -h %[2]s -p %[3]s -U %[4]s belay -c 'SHOW POOLS'

  PostgreSQL itself: %[5]s (data %[6]s, log %[7]s)

Press Ctrl-C to stop.
`, url, host, port, user, pg.Addr(), pg.DataDir, pg.LogPath)
}
