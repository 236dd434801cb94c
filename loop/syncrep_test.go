package loop

import (
	"context"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestQueryTimeoutSyncRep (issue H, item 5): a commit waiting for a
// synchronous standby that never comes is cancelled by query_timeout;
// Postgres then reports it complete (it committed locally), belay answers
// 08007, for an autocommit write and for a COMMIT. A query that is not
// committing still gets Postgres's 57014, and the client stays connected.
func TestQueryTimeoutSyncRep(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.New(t, pginstance.Options{Settings: map[string]string{"synchronous_commit": "on"}})
	adm := connect(t, pg.ConnString("postgres", "postgres"))
	if _, err := adm.Exec(ctx, "CREATE TABLE ksr (v int)"); err != nil {
		t.Fatal(err)
	}
	// From now on every commit that wrote waits for a standby named nobody.
	if _, err := adm.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the setting to reach new sessions", func() bool {
		c, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		var v string
		_ = c.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&v)
		return v == "nobody"
	})
	p := startProxy(t, pg, func(c *Config) { c.QueryTimeout = 300 * time.Millisecond })
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		c := connectMode(t, p.connString("postgres", "postgres"), mode)
		start := time.Now()
		_, err := c.Exec(ctx, "INSERT INTO ksr VALUES ($1)", 1)
		t.Logf("%v: the autocommit write: %v after %v", mode, err, time.Since(start).Round(time.Millisecond))
		if sqlstateOf(err) != "08007" {
			t.Fatalf("%v: an autocommit write whose sync wait query_timeout cut got %v, want 08007", mode, err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO ksr VALUES ($1)", 2); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); sqlstateOf(err) != "08007" {
			t.Fatalf("%v: a COMMIT whose sync wait query_timeout cut got %v, want 08007", mode, err)
		}
		if _, err := c.Exec(ctx, "SELECT pg_sleep(5)"); sqlstateOf(err) != "57014" {
			t.Fatalf("%v: a long query got %v, want 57014", mode, err)
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("%v: the client after: %v", mode, err)
		}
	}
	// Why it cannot be a success: the rows are there, committed locally.
	var n int
	if err := adm.QueryRow(ctx, "SELECT count(*) FROM ksr").Scan(&n); err != nil || n != 4 {
		t.Fatalf("rows committed locally: %d, %v; want 4", n, err)
	}
	if _, err := adm.Exec(ctx, "ALTER SYSTEM RESET synchronous_standby_names"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
}
