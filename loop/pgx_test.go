package loop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgx runs pgx/v5 through belay in each query execution mode: CRUD,
// transactions, COPY both ways, a large result, and errors with their SQLSTATE.
func TestPgx(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, nil)
	ctx := context.Background()
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := connectMode(t, p.connString("postgres", "postgres"), mode)
			table := "pgx_" + strings.ReplaceAll(mode.String(), " ", "_")
			mustExec(t, c, "DROP TABLE IF EXISTS "+table)
			mustExec(t, c, "CREATE TABLE "+table+" (id int PRIMARY KEY, name text, n numeric)")

			// CRUD
			for i := 0; i < 20; i++ {
				mustExec(t, c, "INSERT INTO "+table+" VALUES ($1, $2, $3)", i, fmt.Sprintf("name-%d", i), i*10)
			}
			mustExec(t, c, "UPDATE "+table+" SET name = $1 WHERE id = $2", "changed", 3)
			mustExec(t, c, "DELETE FROM "+table+" WHERE id >= $1", 15)
			var name string
			if err := c.QueryRow(ctx, "SELECT name FROM "+table+" WHERE id = $1", 3).Scan(&name); err != nil || name != "changed" {
				t.Fatalf("read back: %q %v", name, err)
			}
			var count int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&count); err != nil || count != 15 {
				t.Fatalf("count = %d, %v", count, err)
			}

			// Transactions: rollback undoes, commit keeps.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+table); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&count); err != nil || count != 15 {
				t.Fatalf("after rollback count = %d, %v", count, err)
			}
			err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (100, 'tx', 1)")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			// COPY in and out.
			rows := make([][]any, 1000)
			for i := range rows {
				rows[i] = []any{1000 + i, fmt.Sprintf("copy-%d", i), nil}
			}
			n, err := c.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "name", "n"}, pgx.CopyFromRows(rows))
			if err != nil || n != 1000 {
				t.Fatalf("CopyFrom = %d, %v", n, err)
			}
			var out strings.Builder
			tag, err := c.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, name FROM "+table+" WHERE id >= 1000 ORDER BY id) TO STDOUT")
			if err != nil || tag.RowsAffected() != 1000 || !strings.HasPrefix(out.String(), "1000\tcopy-0\n") {
				t.Fatalf("CopyTo: %v %v %q", tag, err, out.String()[:min(40, out.Len())])
			}

			// A large result: 200k rows of 100 bytes.
			r, err := c.Query(ctx, "SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g")
			if err != nil {
				t.Fatal(err)
			}
			var got, sum int
			for r.Next() {
				var g int
				var s string
				if err := r.Scan(&g, &s); err != nil {
					t.Fatal(err)
				}
				got++
				sum += len(s)
			}
			if r.Err() != nil || got != 200000 || sum != 200000*100 {
				t.Fatalf("large result: rows %d bytes %d err %v", got, sum, r.Err())
			}

			// Errors carry their SQLSTATE; the connection stays usable.
			checkCode(t, execErr(c, "INSERT INTO "+table+" VALUES (1, 'dup', 0)"), "23505")
			checkCode(t, execErr(c, "SELECT * FROM no_such_table"), "42P01")
			checkCode(t, execErr(c, "SELECT 1/0"), "22012")
			tx, err = c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "SELECT 1/0")
			checkCode(t, err, "22012")
			_, err = tx.Exec(ctx, "SELECT 1")
			checkCode(t, err, "25P02") // in failed transaction
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var one int
			if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("after errors: %v", err)
			}
			mustExec(t, c, "DROP TABLE "+table)
		})
	}
}

func mustExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func execErr(c *pgx.Conn, sql string) error {
	_, err := c.Exec(context.Background(), sql)
	return err
}

func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %s (%s)", code, pe.Code, pe.Message)
	}
}

// TestTransactionPooling: 30 clients share 2 server connections; each
// transaction stays on one server; nothing leaks between clients.
func TestTransactionPooling(t *testing.T) {
	pg := pgtest.Shared(t)
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP ROLE IF EXISTS pooled; CREATE ROLE pooled LOGIN SUPERUSER")
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 2 })
	ctx := context.Background()
	const clients, rounds = 30, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cfg, _ := pgx.ParseConfig(p.connString("postgres", "pooled"))
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // unnamed statements: no pin
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for r := 0; r < rounds; r++ {
				tx, err := c.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				var pid1, pid2 int
				if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
					errs <- err
					return
				}
				if _, err := tx.Exec(ctx, "SELECT pg_sleep(0.001)"); err != nil {
					errs <- err
					return
				}
				if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
					errs <- err
					return
				}
				if pid1 != pid2 {
					errs <- fmt.Errorf("transaction moved from backend %d to %d", pid1, pid2)
					return
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := serverConns(t, pg, "pooled"); n > 2 {
		t.Fatalf("%d server connections for a pool of 2", n)
	}
	st := p.Pools().Pools()
	for _, pool := range st {
		if pool.Key().User == "pooled" {
			if s := pool.Stats(); s.Open > 2 || s.Active != 0 || s.Waiting != 0 {
				t.Fatalf("pool stats after the run: %+v", s)
			}
		}
	}
}

// TestPinning: session state pins a client to its server, stays invisible
// to others, and is reset before the server serves anyone else.
func TestPinning(t *testing.T) {
	pg := pgtest.Shared(t)
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP ROLE IF EXISTS pinner; CREATE ROLE pinner LOGIN SUPERUSER")
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 1 })
	ctx := context.Background()
	simple := func() *pgx.Conn {
		return connectMode(t, p.connString("postgres", "pinner"), pgx.QueryExecModeSimpleProtocol)
	}
	a := simple()
	mustExec(t, a, "SET work_mem = '7MB'")
	mustExec(t, a, "PREPARE p AS SELECT 42")
	mustExec(t, a, "CREATE TEMP TABLE tmp_a (x int)")
	if p.Stats().Pinned != 1 {
		t.Fatalf("pinned = %d, want 1", p.Stats().Pinned)
	}
	for i := 0; i < 3; i++ {
		var wm string
		var v int
		if err := a.QueryRow(ctx, "SHOW work_mem").Scan(&wm); err != nil || wm != "7MB" {
			t.Fatalf("pinned client lost its SET: %q %v", wm, err)
		}
		if err := a.QueryRow(ctx, "EXECUTE p").Scan(&v); err != nil || v != 42 {
			t.Fatalf("EXECUTE p: %d %v", v, err)
		}
	}
	// The pool has one server, held by a: another client waits for it.
	done := make(chan error, 1)
	go func() {
		// Not simple(): t.Fatal and t.Cleanup belong to the test goroutine.
		cfg, _ := pgx.ParseConfig(p.connString("postgres", "pinner"))
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		b, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			done <- err
			return
		}
		defer b.Close(ctx)
		var wm string
		if err := b.QueryRow(ctx, "SHOW work_mem").Scan(&wm); err != nil {
			done <- err
			return
		}
		if wm == "7MB" {
			done <- fmt.Errorf("another client sees the pinned client's SET")
			return
		}
		_, err = b.Exec(ctx, "EXECUTE p")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "26000" {
			done <- fmt.Errorf("EXECUTE p from a fresh client: %v, want 26000", err)
			return
		}
		_, err = b.Exec(ctx, "SELECT * FROM tmp_a")
		if !errors.As(err, &pe) || pe.Code != "42P01" {
			done <- fmt.Errorf("temp table visible to a fresh client: %v", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		t.Fatalf("second client ran while the only server was pinned: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	a.Close(ctx)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("second client never got the server back")
	}
	eventually(t, 5*time.Second, "pins released", func() bool { return p.Stats().Pinned == 0 })
}

func mustExecDirect(t *testing.T, connString, sql string) {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), connString)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
