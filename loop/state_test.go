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
