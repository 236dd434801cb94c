package loop

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// dialled connects with pgx over a TCP connection opened earlier: a client
// that reached the listener before a shutdown and logs in after it.
func dialled(t *testing.T, connString string, raw net.Conn) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return raw, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("log in over a connection accepted before the shutdown: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// refused waits until new clients are turned away: the listener closed
// (belay's own, with ReusePort) or, with gnet's listeners, a login answered
// with Postgres's 57P03 "the database system is shutting down".
func refused(t *testing.T, p *Proxy) {
	t.Helper()
	eventually(t, 10*time.Second, "new clients to be refused", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.connString("postgres", "postgres"))
		if err == nil {
			c.Close(ctx)
			return false
		}
		var pe *pgconn.PgError
		return !errors.As(err, &pe) || pe.Code == "57P03"
	})
}

// stopped waits for Done (the bound only keeps a broken test from hanging).
func stopped(t *testing.T, p *Proxy) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the proxy did not stop; %d clients left", p.conns.Load())
	}
}

func stillRunning(t *testing.T, p *Proxy) {
	t.Helper()
	select {
	case <-p.Done():
		t.Fatal("the proxy stopped while clients were connected")
	default:
	}
}

// TestShutdownWaitForClients: after Shutdown(WaitForClients) nobody new gets
// in, but the clients already there (one idle, one inside a transaction, one
// that had only connected) are served until they leave; then the proxy stops
// and leaves no server connection behind.
// It runs with gnet's listeners (new clients get 57P03) and with belay's
// own (ReusePort: the listener closes).
func TestShutdownWaitForClients(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "gnet listeners", true: "own listeners"}[reuse], func(t *testing.T) {
			shutdownWaitForClients(t, reuse)
		})
	}
}

func shutdownWaitForClients(t *testing.T, reusePort bool) {
	pg := pgtest.Shared(t)
	createRoles(t, pg, "shut_clients")
	p := startProxy(t, pg, func(c *Config) { c.ReusePort = reusePort })
	cs := p.connString("postgres", "shut_clients")
	ctx := context.Background()

	idle := connect(t, cs)
	inTx := connect(t, cs)
	tx, err := inTx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the raw connection's session", func() bool { return p.conns.Load() == 3 })

	p.Shutdown(ShutdownWaitForClients)
	refused(t, p)
	late := dialled(t, cs, raw)

	for _, c := range []*pgx.Conn{idle, late} {
		var n int
		if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("query during the shutdown: %d, %v", n, err)
		}
	}
	if _, err := tx.Exec(ctx, "SELECT 2"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during the shutdown: %v", err)
	}
	stillRunning(t, p)

	idle.Close(ctx)
	inTx.Close(ctx)
	stillRunning(t, p) // late is still connected
	late.Close(ctx)
	stopped(t, p)
	eventually(t, 10*time.Second, "the server connections to close", func() bool { return serverConns(t, pg, "shut_clients") == 0 })
}

// TestShutdownWaitForServers: after Shutdown(WaitForServers) an idle client
// is closed with 57P01, as Postgres closes its backends on a fast shutdown; a
// client inside a transaction finishes it (COMMIT succeeds and is durable)
// and is closed at its ReadyForQuery; a client that had only connected can
// still log in.
func TestShutdownWaitForServers(t *testing.T) {
	pg := pgtest.Shared(t)
	createRoles(t, pg, "shut_servers")
	admin := connect(t, pg.ConnString("postgres", "postgres"))
	ctx := context.Background()
	for _, q := range []string{
		"DROP TABLE IF EXISTS shutdown_durable",
		"CREATE TABLE shutdown_durable (v int)",
		"GRANT ALL ON shutdown_durable TO shut_servers",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p := startProxy(t, pg, nil)
	cs := p.connString("postgres", "shut_servers")

	idle := connect(t, cs)
	if err := idle.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	inTx := connect(t, cs)
	tx, err := inTx.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO shutdown_durable VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the raw connection's session", func() bool { return p.conns.Load() == 3 })

	p.Shutdown(ShutdownWaitForServers)
	refused(t, p)
	_ = dialled(t, cs, raw) // logs in; closed once idle, like the others

	// The idle client goes; the one in a transaction stays.
	eventually(t, 10*time.Second, "the idle clients to be closed", func() bool { return p.Stats().Clients == 1 })
	var pe *pgconn.PgError
	if err := idle.Ping(ctx); !errors.As(err, &pe) || pe.Code != string(sqlstate.AdminShutdown) {
		t.Fatalf("idle client after the shutdown began: %v, want 57P01", err)
	}

	if _, err := tx.Exec(ctx, "INSERT INTO shutdown_durable VALUES (2)"); err != nil {
		t.Fatalf("inside the transaction during the shutdown: %v", err)
	}
	stillRunning(t, p)
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during the shutdown: %v", err)
	}
	stopped(t, p)
	if err := inTx.Ping(ctx); err == nil {
		t.Fatal("the client was not closed after its transaction")
	}
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM shutdown_durable").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows committed: %d, %v; want 2", n, err)
	}
	eventually(t, 10*time.Second, "the server connections to close", func() bool { return serverConns(t, pg, "shut_servers") == 0 })
}

// TestShutdownUpgrade: Immediate ends a WaitForClients shutdown at once; a
// weaker mode after a stronger one changes nothing.
func TestShutdownUpgrade(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, nil)
	c := connect(t, p.connString("postgres", "postgres"))
	p.Shutdown(ShutdownWaitForClients)
	refused(t, p)
	stillRunning(t, p)
	p.Shutdown(ShutdownImmediate)
	stopped(t, p)
	p.Shutdown(ShutdownWaitForClients) // no effect, no panic
	if err := c.Ping(context.Background()); err == nil {
		t.Fatal("a client survived ShutdownImmediate")
	}
}
