package loop

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgBouncerPoolSettings checks, against real Postgres, PgBouncer's pool
// settings belay honours: each one's effect is seen on the server.
func TestPgBouncerPoolSettings(t *testing.T) {
	pg := pgtest.Shared(t)
	ctx := context.Background()
	createRoles(t, pg, "keys_hosts", "keys_check", "keys_reset", "keys_min", "keys_reserve", "keys_idle", "keys_session", "keys_ignore")
	admin := connect(t, pg.ConnString("postgres", "postgres"))
	for _, q := range []string{
		"CREATE SEQUENCE IF NOT EXISTS keys_checks", "CREATE SEQUENCE IF NOT EXISTS keys_resets",
		"GRANT USAGE, SELECT, UPDATE ON SEQUENCE keys_checks, keys_resets TO PUBLIC",
		// Called once, so that last_value counts every later call.
		"SELECT nextval('keys_checks'), nextval('keys_resets')",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	seq := func(name string) int64 {
		var n int64
		if err := admin.QueryRow(ctx, "SELECT last_value FROM "+name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("server_check_query with server_check_delay 0 runs before every hand-out", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) {
			c.ServerCheckQuery, c.ServerCheckDelay, c.EventLoops = "SELECT nextval('keys_checks')", 0, 1
		})
		c := connect(t, p.connString("postgres", "keys_check"))
		before := seq("keys_checks")
		for range 5 {
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		if got := seq("keys_checks") - before; got < 5 {
			t.Fatalf("the check ran %d times for 5 transactions on an idle server", got)
		}
	})

	t.Run("server_reset_query runs on a server a client left state on", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.ServerResetQuery = "SELECT nextval('keys_resets')" })
		before := seq("keys_resets")
		c := connect(t, p.connString("postgres", "keys_reset"))
		if _, err := c.Exec(ctx, "LISTEN keys_channel"); err != nil { // pins the client; its server is dirty
			t.Fatal(err)
		}
		c.Close(ctx)
		eventually(t, 10*time.Second, "the reset query ran", func() bool { return seq("keys_resets") > before })
	})

	t.Run("min_pool_size keeps servers open", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.MinPoolSize = 3 })
		c := connect(t, p.connString("postgres", "keys_min"))
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "3 servers open for one client", func() bool { return serverConns(t, pg, "keys_min") == 3 })
	})

	t.Run("reserve_pool_size opens past the pool once a client waited", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) {
			c.PoolSize, c.ReservePoolSize, c.ReservePoolTimeout = 1, 1, 200*time.Millisecond
		})
		a := connect(t, p.connString("postgres", "keys_reserve"))
		b := connect(t, p.connString("postgres", "keys_reserve"))
		tx, err := a.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		// b keeps the reserve's server in a transaction while the servers
		// are counted: released, it would close as soon as the reserve does
		// (the next sweep once nobody waits), maybe before the count.
		btx, err := b.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer btx.Rollback(ctx)
		var one int
		if err := btx.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil { // waits, then gets the reserve
			t.Fatal(err)
		}
		if n := serverConns(t, pg, "keys_reserve"); n != 2 {
			t.Fatalf("%d servers, want the pool's 1 and the reserve's 1", n)
		}
	})

	t.Run("client_idle_timeout closes idle clients only", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.ClientIdleTimeout = 300 * time.Millisecond })
		idle := connect(t, p.connString("postgres", "keys_idle"))
		busy := connect(t, p.connString("postgres", "keys_idle"))
		tx, err := busy.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // well past the timeout, whatever the sweep's phase
		_, err = idle.Exec(ctx, "SELECT 1")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P05" {
			// The FATAL may arrive before the query; pgx then reports the
			// closed connection.
			if err == nil {
				t.Fatal("an idle client survived client_idle_timeout")
			}
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("a client in a transaction was closed: %v", err)
		}
		_ = tx.Commit(ctx)
	})

	t.Run("query_timeout cancels a long query, the client stays", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.QueryTimeout = 200 * time.Millisecond })
		c := connect(t, p.connString("postgres", "keys_idle"))
		_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("a query past query_timeout: %v, want 57014", err)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("the client after its query was cancelled: %v", err)
		}
	})

	t.Run("pool_mode session keeps a client on its server", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.PoolMode = "session"; c.PoolSize = 2 })
		a := connect(t, p.connString("postgres", "keys_session"))
		b := connect(t, p.connString("postgres", "keys_session"))
		pid := func(c *pgx.Conn) int {
			var n int
			if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		pa, pb := pid(a), pid(b)
		for range 5 {
			if pid(a) != pa || pid(b) != pb {
				t.Fatal("a session-mode client changed server")
			}
		}
		if pa == pb {
			t.Fatal("two session-mode clients share a server")
		}
	})

	t.Run("a host list: hosts in turn, an unreachable one skipped", func(t *testing.T) {
		dead := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
		relay, relayed := tcpRelay(t, pg.Addr())         // a second "host" of the same server
		p := startProxy(t, pg, func(c *Config) {
			c.Server = dead + "," + relay + "," + pg.Addr()
			c.PoolSize, c.EventLoops = 6, 1
		})
		var txs []pgx.Tx
		for range 6 { // six transactions at once: six servers
			c := connect(t, p.connString("postgres", "keys_hosts"))
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatalf("a login through the host list: %v", err)
			}
			if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			txs = append(txs, tx)
		}
		total, viaRelay := serverConns(t, pg, "keys_hosts"), int(relayed.Load())
		for _, tx := range txs {
			_ = tx.Commit(ctx)
		}
		if total != 6 || viaRelay == 0 || viaRelay == total {
			t.Fatalf("%d servers, %d through the second host: want 6 spread over both reachable hosts", total, viaRelay)
		}
	})

	t.Run("ignore_startup_parameters drops them", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) { c.IgnoreStartupParameters = []string{"application_name"} })
		c := connect(t, p.connString("postgres", "keys_ignore")+" application_name=ignored_app")
		var name string
		if err := c.QueryRow(ctx, "SHOW application_name").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name == "ignored_app" {
			t.Fatal("an ignored startup parameter was applied")
		}
	})
}

// tcpRelay forwards connections to target, counting them: a second address
// of the same server.
func tcpRelay(t *testing.T, target string) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	return ln.Addr().String(), &n
}
