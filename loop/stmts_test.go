package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestStatementsOutliveTheirServer: a client's prepared statements (pgx's
// statement cache, a SQL PREPARE, an EXECUTE sent through Parse) live in
// belay, not on a server, so when every server connection is killed they
// are prepared again on the next one, and the client never notices.
func TestStatementsOutliveTheirServer(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 1, 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := connectMode(t, pg.ConnString("postgres", "postgres"), pgx.QueryExecModeExec)
	c := connect(t, p.connString("postgres", "postgres")) // statement cache: named protocol statements
	if _, err := c.Exec(ctx, "PREPARE sq(int) AS SELECT $1 + 100", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	check := func(round int) {
		t.Helper()
		var a, b, e int
		if err := c.QueryRow(ctx, "SELECT $1::int * 2", round).Scan(&a); err != nil || a != 2*round {
			t.Fatalf("round %d: protocol statement = %d, %v", round, a, err)
		}
		if err := c.QueryRow(ctx, "EXECUTE sq(1)", pgx.QueryExecModeSimpleProtocol).Scan(&b); err != nil || b != 101 {
			t.Fatalf("round %d: SQL EXECUTE = %d, %v", round, b, err)
		}
		if err := c.QueryRow(ctx, "EXECUTE sq(2)").Scan(&e); err != nil || e != 102 { // through Parse
			t.Fatalf("round %d: EXECUTE through Parse = %d, %v", round, e, err)
		}
	}
	for round := 1; round <= 3; round++ {
		check(round)
		// Kill the pool's server; belay notices and logs in a new one.
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name = ''"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the dead server to leave the pool", func() bool {
			for _, pool := range p.Pools().Pools() {
				if pool.Stats().Open != 0 {
					return false
				}
			}
			return true
		})
	}
	check(4)
}

// TestVanishInsideABatch: a client that leaves in the middle of an
// extended-protocol batch, after belay slipped messages of its own into it,
// leaves a clean server behind for the next client.
func TestVanishInsideABatch(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops, c.MaxPreparedStatements = 1, 1, 1 })
	host, port, _ := net.SplitHostPort(p.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		func() {
			f, conn := openRaw(t, ctx, host, port, "")
			defer conn.Close()
			// Two statements on a server that keeps one: the second Bind
			// makes belay close one and prepare the other in front of it.
			f.Send(parse("v1", "SELECT 1"))
			f.Send(parse("v2", "SELECT pg_sleep(0.2)"))
			f.Send(&pgproto3.Sync{})
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			for m, err := f.Receive(); ; m, err = f.Receive() {
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			f.Send(bind("v1"))
			f.Send(execute())
			f.Send(bind("v2"))
			f.Send(execute())
			if err := f.Flush(); err != nil { // no Sync: the batch is open
				t.Fatal(err)
			}
		}()
	}
	checkPoolClean(t, p, pg, "postgres", 1)
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeCacheStatement)
	var n int
	if err := c.QueryRow(ctx, "SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("next client: %d, %v", n, err)
	}
}
