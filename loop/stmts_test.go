package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/planner"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/panjf2000/gnet/v2"
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

// TestVanishBeforeParseAnswered: a client that leaves before the server
// answered a Parse or an eviction's Close belay sent for it leaves the
// statement's state on the server unknown: the drain cancels the query in
// front, and Postgres skips the rest. The next clients' statements of the
// same text must work whether the skipped messages ran or not (once, belay
// answered a Parse of its own, believing the server had the statement,
// and the Describe that followed failed with 26000; or prepared a name the
// server still had, 42P05).
func TestVanishBeforeParseAnswered(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops, c.MaxPreparedStatements = 1, 1, 1 })
	host, port, _ := net.SplitHostPort(p.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vanish := func(sql string) {
		f, conn := openRaw(t, ctx, host, port, "")
		defer conn.Close()
		f.Send(parse("", "SELECT pg_sleep(5)"))
		f.Send(bind(""))
		f.Send(execute())
		f.Send(parse("mine", sql))
		f.Send(describeS("mine"))
		f.Send(&pgproto3.Sync{})
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	query := func(sql string, want int) {
		t.Helper()
		c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeCacheStatement)
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, sql).Scan(&n); err != nil || n != want {
			t.Fatalf("%s: %d, %v", sql, n, err)
		}
	}
	vanish("SELECT 42") // its Parse skipped: the server lacks the statement
	query("SELECT 42", 42)
	vanish("SELECT 43") // the Close evicting 42 skipped: the server still has it
	query("SELECT 42", 42)
	query("SELECT 43", 43)
	checkPoolClean(t, p, pg, "postgres", 1)
}

// onLoop runs f on event loop i and waits for it.
func (p *Proxy) onLoop(t *testing.T, i int, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := p.pools.Loop(i).EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		f()
		close(done)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	<-done
}

// planOn plans sql with loop i's cache, on that loop.
func (p *Proxy) planOn(t *testing.T, i int, sql string) (plan *planner.Plan) {
	p.onLoop(t, i, func() { plan = p.plans[i].Plan([]byte(sql)) })
	return plan
}

// knows says whether loop i's cache knows the volatility of every user
// function sql calls.
func (p *Proxy) knows(t *testing.T, i int, sql string) (known bool) {
	p.onLoop(t, i, func() { known = len(p.plans[i].Unknown(p.plans[i].Plan([]byte(sql)), nil)) == 0 })
	return known
}

// TestPlanCacheLearnsVolatility: the plan cache's two-step invalidation
// with the real server. A plan that calls a user function may run on a
// replica only once belay has learnt from the server that the function does
// not write; DDL on functions through belay makes it learn again.
func TestPlanCacheLearnsVolatility(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.EventLoops = 1 })
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	mustExec(t, c, "CREATE OR REPLACE FUNCTION belay_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1'")
	mustExec(t, c, "CREATE OR REPLACE FUNCTION belay_vol(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1'")
	const imm, vol = "SELECT belay_imm(1)", "SELECT belay_vol(1)"
	if p.planOn(t, 0, imm).ReplicaOK {
		t.Fatal("a plan calling an unknown user function may run on a replica")
	}
	mustExec(t, c, imm) // the client's transaction, then belay asks the server
	mustExec(t, c, vol)
	eventually(t, 5*time.Second, "belay to learn belay_imm is immutable", func() bool { return p.planOn(t, 0, imm).ReplicaOK })
	if p.planOn(t, 0, vol).ReplicaOK {
		t.Fatal("a plan calling a volatile function may run on a replica")
	}
	mustExec(t, c, "ALTER FUNCTION belay_imm(int) VOLATILE")
	if p.planOn(t, 0, imm).ReplicaOK {
		t.Fatal("after ALTER FUNCTION ... VOLATILE the plan still runs on a replica")
	}
	mustExec(t, c, imm)
	// Once belay has learnt of belay_imm again, its plan must say volatile.
	eventually(t, 5*time.Second, "belay to learn belay_imm again", func() bool { return p.knows(t, 0, imm) })
	if p.planOn(t, 0, imm).ReplicaOK {
		t.Fatal("belay learnt a volatile function is not")
	}
	mustExec(t, c, "DROP FUNCTION belay_imm(int)")
	mustExec(t, c, "DROP FUNCTION belay_vol(int)")
}
