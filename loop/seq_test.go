package loop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCurrvalFollowsTheClient (issue K.7): an INSERT into a serial column,
// then, in a later transaction, currval and lastval report the id it made,
// as directly, though other clients hold or use the server meanwhile; when
// another client's INSERT ran on that server in between, the client gets
// Postgres's 55000, never the other client's id.
func TestCurrvalFollowsTheClient(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 3, 1 })
	ctx := context.Background()
	admin := connect(t, pg.ConnString("postgres", "postgres"))
	if _, err := admin.Exec(ctx, "DROP TABLE IF EXISTS kseq; CREATE TABLE kseq (id serial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			a := connectMode(t, p.connString("postgres", "postgres"), mode)
			b := connectMode(t, p.connString("postgres", "postgres"), mode)
			insert := func(c *pgx.Conn) int64 {
				var id int64
				if err := c.QueryRow(ctx, "INSERT INTO kseq (v) VALUES ('x') RETURNING id").Scan(&id); err != nil {
					t.Fatal(err)
				}
				return id
			}
			// b takes the server a just used (the idle stack's top) and
			// keeps it for a while in a transaction that writes nothing.
			hold := func(write bool, d time.Duration) chan error {
				done := make(chan error, 1)
				tx, err := b.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sql := "SELECT 1"
				if write {
					sql = "INSERT INTO kseq (v) VALUES ('b')"
				}
				if _, err := tx.Exec(ctx, sql); err != nil {
					t.Fatal(err)
				}
				go func() {
					time.Sleep(d)
					done <- tx.Commit(ctx)
				}()
				return done
			}

			id := insert(a)
			done := hold(false, 300*time.Millisecond)
			var cur, last int64
			start := time.Now()
			if err := a.QueryRow(ctx, "SELECT currval('kseq_id_seq'), lastval()").Scan(&cur, &last); err != nil {
				t.Fatalf("currval after the client's INSERT: %v", err)
			}
			waited := time.Since(start)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if cur != id || last != id {
				t.Fatalf("currval %d, lastval %d; the INSERT made %d", cur, last, id)
			}
			t.Logf("currval %d after waiting %v for the server another client held", cur, waited.Round(time.Millisecond))

			// A later read-only transaction keeps them.
			if err := a.QueryRow(ctx, "SELECT lastval()").Scan(&last); err != nil || last != id {
				t.Fatalf("lastval again: %d, %v", last, err)
			}

			// Another client's INSERT on that server in between: 55000.
			id = insert(a)
			if err := <-hold(true, 0); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"SELECT currval('kseq_id_seq')", "SELECT lastval()"} {
				var v int64
				err := a.QueryRow(ctx, q).Scan(&v)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != string(sqlstate.ObjectNotInPrerequisiteState) {
					t.Fatalf("%s after another client's INSERT on the server: %d, %v; want 55000 (the client's id was %d)", q, v, err, id)
				}
			}
			// Its next INSERT makes it work again; DISCARD SEQUENCES forgets.
			id = insert(a)
			if err := a.QueryRow(ctx, "SELECT currval('kseq_id_seq')").Scan(&cur); err != nil || cur != id {
				t.Fatalf("currval: %d, %v; want %d", cur, err, id)
			}
			if _, err := a.Exec(ctx, "DISCARD SEQUENCES"); err != nil {
				t.Fatal(err)
			}
			err := a.QueryRow(ctx, "SELECT lastval()").Scan(&last)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != string(sqlstate.ObjectNotInPrerequisiteState) {
				t.Fatalf("lastval after DISCARD SEQUENCES: %d, %v", last, err)
			}
		})
	}
	checkPoolClean(t, p, pg, "postgres", 3)
	if _, err := admin.Exec(ctx, "DROP TABLE kseq"); err != nil {
		t.Fatal(err)
	}
}

// TestReservedPrefixSetting (issue K.6): a custom setting made on a server
// where plpgsql was not loaded (a placeholder) cannot be applied once
// another client loaded plpgsql there: the client keeps working, and gets
// the WARNING Postgres gives when the library loads in a session with such
// a placeholder.
func TestReservedPrefixSetting(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 1, 1 })
	ctx := context.Background()
	var notices []*pgconn.Notice
	cfg, err := pgx.ParseConfig(p.connString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
	a, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b := connect(t, p.connString("postgres", "postgres"))
	if _, err := a.Exec(ctx, "SET plpgsql.extra_k6_warnings = 'x'"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Exec(ctx, "DO $$ BEGIN END $$"); err != nil { // loads plpgsql on the one server
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT count(*) FROM pg_settings WHERE name = 'plpgsql.extra_k6_warnings'").Scan(&n); err != nil {
		t.Fatalf("the client lost its session: %v", err)
	}
	if n != 0 || len(notices) != 1 || notices[0].Code != string(sqlstate.InvalidName) || notices[0].Severity != "WARNING" {
		t.Fatalf("setting still there: %d; notices %+v; want one WARNING 42602", n, notices)
	}
	t.Logf("%s: %s (%s)", notices[0].Severity, notices[0].Message, notices[0].Detail)
}
