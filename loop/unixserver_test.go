package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestServerOverUnixSocket: belay in front of a PostgreSQL that listens on
// its Unix socket only (listen_addresses empty), as Config.Server "/dir:port"
// (--server /dir, host=/dir in [databases]): the server connections log in
// over the socket (inet_client_addr() is NULL there), with SCRAM and a
// .pgpass line for localhost as libpq and pgx write it for a socket; a
// cancel reaches the backend over the socket too; and in a host list an
// unreachable socket directory is skipped for the next host.
func TestServerOverUnixSocket(t *testing.T) {
	pg := pgtest.New(t, pginstance.Options{
		Settings: map[string]string{"listen_addresses": ""},
		HBA:      []string{"local all alice scram-sha-256"},
	})
	if pg.SocketDir == "" {
		t.Fatal("pgtest's instance has no Unix socket (its directory's path is too long)")
	}
	admin, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", pg.SocketDir, pg.Port))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(context.Background(), "SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 'wonderland'"); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(context.Background())
	pass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pass, fmt.Appendf(nil, "localhost:%d:*:alice:wonderland\n", pg.Port), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := fmt.Sprintf("%s:%d", pg.SocketDir, pg.Port)

	for _, server := range []string{sock, filepath.Join(t.TempDir(), "nobody") + fmt.Sprintf(":%d,", pg.Port) + sock} {
		t.Run(server, func(t *testing.T) {
			p := startProxy(t, pg, func(c *Config) { c.Server, c.PassFile = server, pass })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			c := connect(t, p.connString("postgres", "postgres"))
			var unix bool
			if err := c.QueryRow(ctx, "SELECT inet_client_addr() IS NULL").Scan(&unix); err != nil || !unix {
				t.Fatalf("server connection over the Unix socket: %v, %v", unix, err)
			}
			a := connect(t, p.connString("postgres", "alice"))
			var who string
			if err := a.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "alice" {
				t.Fatalf("alice's login (SCRAM, .pgpass): %q, %v", who, err)
			}

			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(ctx, "SELECT pg_sleep(20)")
				done <- err
			}()
			time.Sleep(300 * time.Millisecond) // the query is on its server
			start := time.Now()
			if err := c.PgConn().CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
			err := <-done
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != string(sqlstate.QueryCanceled) || time.Since(start) > 10*time.Second {
				t.Fatalf("cancelled query: %v after %v; want 57014 at once", err, time.Since(start))
			}
			if err := c.QueryRow(ctx, "SELECT inet_client_addr() IS NULL").Scan(&unix); err != nil {
				t.Fatalf("after the cancel: %v", err)
			}
		})
	}
}
