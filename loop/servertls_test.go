package loop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/internal/testcert"
	"github.com/jackc/pgx/v5"
)

// tlsPostgres is a Postgres with ssl=on whose pg_hba.conf refuses plain TCP.
func tlsPostgres(t *testing.T, ca *testcert.CA) *pginstance.Instance {
	t.Helper()
	srv := ca.Server(t, "postgres", "127.0.0.1")
	return pgtest.NewTLS(t, srv.CertFile, srv.KeyFile, "", []string{
		"hostssl all all 127.0.0.1/32 trust",
		"host    all all 127.0.0.1/32 reject",
	})
}

// TestServerTLSThroughProxy: clients of belay reach a Postgres that accepts
// TLS sessions only; results, large ones included (parks with small
// buffers), come through the server's records decrypted on the loop, and
// two clients share the one server.
func TestServerTLSThroughProxy(t *testing.T) {
	ca := testcert.New(t)
	pg := tlsPostgres(t, ca)
	p := startProxy(t, pg, func(c *Config) {
		c.PoolSize = 1
		c.ServerTLSMode = "verify-full"
		c.ServerTLSCAFile = ca.CertFile
		c.MaxBufferedBytes = 64 << 10
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Unnamed statements only: a named one would pin a client to the one server.
	a := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	b := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	var ssl bool
	if err := a.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("ssl = %v, %v", ssl, err)
	}
	for i := 0; i < 3; i++ {
		rows, err := b.Query(ctx, "SELECT repeat('x', 1000) FROM generate_series(1, 6000)")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			if len(s) != 1000 || strings.Trim(s, "x") != "" {
				t.Fatalf("row %d: %q...", n, s[:min(len(s), 20)])
			}
			n++
		}
		if err := rows.Err(); err != nil || n != 6000 {
			t.Fatalf("%d rows, %v", n, err)
		}
		var one int
		if err := a.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("a: %d, %v", one, err)
		}
	}
	t.Logf("parks: %d", p.Stats().Parks)
}
