package loop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestSessionStateFollows is issue C's proof: 30 clients over 2 server
// connections each keep their own settings, their own SQL PREPARE p with a
// different body, their own protocol-level statements and their temporary
// tables across many transactions, while belay moves them between servers; a
// fresh client sees none of it; LISTEN/NOTIFY is delivered.
func TestSessionStateFollows(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const clients, rounds = 30, 20
	simple := pgx.QueryExecModeSimpleProtocol

	client := func(i int) error {
		c, err := pgx.Connect(ctx, p.connString("postgres", "postgres"))
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		workMem := strconv.Itoa(2000+i) + "kB" // never a whole MB, which SHOW would print as such
		for _, q := range []string{
			"SET work_mem = '" + workMem + "'",
			"SET myapp.id = '" + strconv.Itoa(i) + "'",
			"SET search_path = s" + strconv.Itoa(i) + ", public",
			fmt.Sprintf("PREPARE p AS SELECT %d::int", i),
		} {
			if _, err := c.Exec(ctx, q, simple); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		for r := 0; r < rounds; r++ {
			var mem, id, path string
			var got, sum int
			if err := c.QueryRow(ctx, "SELECT current_setting('work_mem'), current_setting('myapp.id'), current_setting('search_path')").Scan(&mem, &id, &path); err != nil {
				return err
			}
			if mem != workMem || id != strconv.Itoa(i) || path != "s"+strconv.Itoa(i)+", public" {
				return fmt.Errorf("round %d: settings %q %q %q", r, mem, id, path)
			}
			if err := c.QueryRow(ctx, "EXECUTE p", simple).Scan(&got); err != nil || got != i {
				return fmt.Errorf("round %d: EXECUTE p = %d, %v", r, got, err)
			}
			// pgx's statement cache: a named protocol-level statement whose
			// body differs per client.
			if err := c.QueryRow(ctx, fmt.Sprintf("SELECT $1::int + %d", i), r).Scan(&sum); err != nil || sum != r+i {
				return fmt.Errorf("round %d: protocol statement = %d, %v", r, sum, err)
			}
			if r%5 == 0 { // a temporary table pins the client while it lives
				for _, q := range []string{"CREATE TEMP TABLE tt (x int)", "INSERT INTO tt VALUES (" + strconv.Itoa(i) + ")"} {
					if _, err := c.Exec(ctx, q); err != nil {
						return fmt.Errorf("%s: %w", q, err)
					}
				}
				if err := c.QueryRow(ctx, "SELECT x FROM tt").Scan(&got); err != nil || got != i {
					return fmt.Errorf("round %d: temp table has %d, %v", r, got, err)
				}
				if _, err := c.Exec(ctx, "DROP TABLE tt"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client(i); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// A fresh client sees none of it.
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	_, err := c.Exec(ctx, "EXECUTE p", simple)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "26000" {
		t.Fatalf("fresh client EXECUTE p: %v, want SQLSTATE 26000", err)
	}
	var mem string
	var id *string
	if err := c.QueryRow(ctx, "SELECT current_setting('work_mem'), current_setting('myapp.id', true)").Scan(&mem, &id); err != nil {
		t.Fatal(err)
	}
	// A custom setting once set on a backend exists there (empty) for good:
	// NULL and "" both mean the fresh client has no value.
	if mem != "4MB" || (id != nil && *id != "") {
		t.Fatalf("fresh client sees work_mem %q, myapp.id %v", mem, *id)
	}

	// LISTEN/NOTIFY across clients.
	listener := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	mustExec(t, listener, "LISTEN belay_chan")
	notifier := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	mustExec(t, notifier, "NOTIFY belay_chan, 'hello'")
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Channel != "belay_chan" || n.Payload != "hello" {
		t.Fatalf("notification %+v, %v", n, err)
	}
	if st := p.Stats(); st.Pinned != 1 {
		t.Fatalf("%d clients pinned, want the listener alone", st.Pinned)
	}
	mustExec(t, listener, "UNLISTEN *")
	eventually(t, 5*time.Second, "the listener to be unpinned", func() bool { return p.Stats().Pinned == 0 })
	for _, pool := range p.Pools().Pools() {
		if s := pool.Stats(); s.Open > 2 {
			t.Fatalf("pool %v opened %d servers, budget 2", pool.Key(), s.Open)
		}
	}
}

// TestPins: each kind of state that cannot move pins the client to its
// server (and counts in belay_pins_total) until the statement that releases
// it; meanwhile another client gets the other server and never sees it.
func TestPins(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 2, 1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := connectMode(t, pg.ConnString("postgres", "postgres"), pgx.QueryExecModeExec)
	mustExec(t, admin, "DROP ROLE IF EXISTS belay_pin_role")
	mustExec(t, admin, "CREATE ROLE belay_pin_role")
	cases := []struct {
		name, pin, check, release string
	}{
		{"listen", "LISTEN belay_pin", "SELECT count(*)::text FROM pg_listening_channels()", "UNLISTEN *"},
		{"temp table", "CREATE TEMP TABLE pin_t (x int)", "SELECT count(*)::text FROM pg_class WHERE relname = 'pin_t' AND relnamespace = pg_my_temp_schema()", "DROP TABLE pin_t"},
		{"held cursor", "DECLARE pin_c CURSOR WITH HOLD FOR SELECT 1", "SELECT count(*)::text FROM pg_cursors WHERE name = 'pin_c'", "CLOSE pin_c"},
		{"advisory lock", "SELECT pg_advisory_lock(4242)", "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = pg_backend_pid()", "SELECT pg_advisory_unlock(4242)"},
		{"role", "SET ROLE belay_pin_role", "SELECT (current_user = 'belay_pin_role')::int::text", "RESET ROLE"},
		{"discard", "CREATE TEMP TABLE pin_d (x int); LISTEN belay_pin2", "SELECT count(*)::text FROM pg_listening_channels()", "DISCARD ALL"},
	}
	pinsBefore := p.metrics.pins.Get()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
			b := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
			mustExec(t, a, c.pin)
			if st := p.Stats(); st.Pinned != 1 {
				t.Fatalf("%d clients pinned after %q, want 1", st.Pinned, c.pin)
			}
			for i := 0; i < 5; i++ { // a keeps its state across transactions
				var got string
				if err := a.QueryRow(ctx, c.check).Scan(&got); err != nil || got != "1" {
					t.Fatalf("pinned client sees %q, %v", got, err)
				}
				// b, on the other server, sees none of it
				if err := b.QueryRow(ctx, c.check).Scan(&got); err != nil || got != "0" {
					t.Fatalf("other client sees %q, %v", got, err)
				}
			}
			mustExec(t, a, c.release)
			eventually(t, 5*time.Second, "the pin to end", func() bool { return p.Stats().Pinned == 0 })
			var got string
			if err := a.QueryRow(ctx, c.check).Scan(&got); err != nil || got != "0" {
				t.Fatalf("after %q the client still sees %q, %v", c.release, got, err)
			}
		})
	}
	if n := p.metrics.pins.Get() - pinsBefore; n != uint64(len(cases)) {
		t.Fatalf("belay_pins_total grew by %d, want %d", n, len(cases))
	}
}
