package loop

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestMistypedDatabaseIsForgotten: a login to a database that does not
// exist leaves a pool behind; once its client is gone the pool is
// forgotten, and SHOW POOLS, DATABASES, FAIRNESS and the metrics stop
// listing the typo. A pool that logged in stays listed.
func TestMistypedDatabaseIsForgotten(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, nil)
	ctx := context.Background()
	c := connect(t, p.connString("postgres", "postgres"))
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	listed := func(db string) (where []string) {
		for _, r := range p.console.Pools() {
			if r.Database == db {
				where = append(where, "POOLS")
			}
		}
		for _, r := range p.console.Databases() {
			if r.Name == db {
				where = append(where, "DATABASES")
			}
		}
		for _, r := range p.console.Fairness() {
			if r.Database == db {
				where = append(where, "FAIRNESS")
			}
		}
		var m bytes.Buffer
		p.Metrics().WritePrometheus(&m)
		if bytes.Contains(m.Bytes(), []byte(`database="`+db+`"`)) {
			where = append(where, "metrics")
		}
		return where
	}
	for round := range 2 { // the second time, the pool takes the forgotten one's place in the allocator
		_, err := pgx.Connect(ctx, p.connString("postgress", "postgres"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != string(sqlstate.InvalidCatalogName) {
			t.Fatalf("round %d: login to a database that does not exist: %v, want 3D000", round, err)
		}
		if w := listed("postgress"); len(w) != 4 {
			t.Fatalf("round %d: the failed login's pool is listed in %v only, want POOLS, DATABASES, FAIRNESS and metrics", round, w)
		}
		eventually(t, 10*time.Second, "the mistyped database's pool to be forgotten", func() bool { return len(listed("postgress")) == 0 })
		if w := listed("postgres"); len(w) != 4 {
			t.Fatalf("round %d: the pool that logged in is listed in %v only", round, w)
		}
	}
	// The pool that logged in still serves.
	c = connect(t, p.connString("postgres", "postgres"))
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	_ = c.Close(ctx)
}
