package loop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/internal/testcert"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestClientTLS: clients reach belay over TLS (after an SSLRequest, and
// directly as Postgres 17 allows), verify its certificate, and may log in
// with a certificate of their own; records are decrypted and encrypted on the
// loop, also for a large result.
func TestClientTLS(t *testing.T) {
	pg := pgtest.Shared(t)
	ca := testcert.New(t)
	srv := ca.Server(t, "belay", "127.0.0.1", "localhost")
	p := startProxy(t, pg, func(c *Config) {
		c.TLSMode = "require"
		c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile = srv.CertFile, srv.KeyFile, ca.CertFile
	})
	psql := pgtest.RequireBinary(t, "psql")
	base := strings.Replace(p.connString("postgres", "postgres"), "sslmode=disable", "", 1)

	t.Run("psql require", func(t *testing.T) {
		out, err := run(t, clientEnv(p), "", psql, "-X", "-d", base+" sslmode=require", "-c", `\conninfo`,
			"-Atc", "SELECT 1")
		if err != nil || !strings.Contains(out, "SSL connection (protocol: TLSv1.3") {
			t.Fatalf("psql sslmode=require: %v\n%s", err, out)
		}
	})
	t.Run("psql verify-full", func(t *testing.T) {
		out, err := run(t, clientEnv(p), "", psql, "-X", "-d", base+" sslmode=verify-full sslrootcert="+ca.CertFile,
			"-Atc", "SELECT 42")
		if err != nil || strings.TrimSpace(out) != "42" {
			t.Fatalf("psql sslmode=verify-full: %v\n%s", err, out)
		}
		other := testcert.New(t)
		out, err = run(t, clientEnv(p), "", psql, "-X", "-d", base+" sslmode=verify-full sslrootcert="+other.CertFile, "-Atc", "SELECT 1")
		if err == nil || !strings.Contains(out, "certificate verify failed") {
			t.Fatalf("psql trusting another CA: %v\n%s", err, out)
		}
	})
	t.Run("plaintext refused", func(t *testing.T) {
		_, err := pgx.Connect(context.Background(), base+" sslmode=disable")
		checkCode(t, err, string(sqlstate.InvalidAuthorizationSpecification))
	})
	t.Run("direct TLS and a large result", func(t *testing.T) {
		c := connect(t, base+" sslmode=verify-full sslnegotiation=direct sslrootcert="+ca.CertFile)
		var n int
		if err := c.QueryRow(context.Background(), "SELECT length(string_agg(repeat('x', 1000), '')) FROM generate_series(1, 20000)").Scan(&n); err != nil || n != 20_000_000 {
			t.Fatalf("20 MB over TLS: %d %v", n, err)
		}
		rows, err := c.Query(context.Background(), "SELECT i, repeat('y', 300) FROM generate_series(1, 100000) i")
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		for rows.Next() {
			count++
		}
		if rows.Err() != nil || count != 100000 {
			t.Fatalf("%d rows, %v", count, rows.Err())
		}
	})
	t.Run("unencrypted data after SSLRequest", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(append(codec.AppendSSLRequest(nil), codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", "postgres")...))
		r.expectFatal(sqlstate.ProtocolViolation, "unencrypted data after SSL request")
	})
	t.Run("hostssl rule", func(t *testing.T) {
		hba := filepath.Join(t.TempDir(), "hba.conf")
		if err := os.WriteFile(hba, []byte("hostssl all postgres 127.0.0.1/32 trust\nhost all all 0.0.0.0/0 reject\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ph := startProxy(t, pg, func(c *Config) {
			c.AuthType, c.AuthHBAFile = "hba", hba
			c.TLSMode = "allow"
			c.TLSCertFile, c.TLSKeyFile = srv.CertFile, srv.KeyFile
		})
		cs := ph.connString("postgres", "postgres")
		c := connect(t, strings.Replace(cs, "sslmode=disable", "sslmode=require", 1))
		if who := whoOnServer(t, c); who != "postgres" {
			t.Fatalf("logged in as %q", who)
		}
		_, err := pgx.Connect(context.Background(), cs)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Message != `pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", no encryption` {
			t.Fatalf("plain connection under a hostssl rule: %v", err)
		}
	})
	t.Run("cert auth", func(t *testing.T) {
		pc := startProxy(t, pg, func(c *Config) {
			c.AuthType = "cert"
			c.TLSMode = "verify-ca"
			c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile = srv.CertFile, srv.KeyFile, ca.CertFile
		})
		cs := strings.Replace(pc.connString("postgres", "postgres"), "sslmode=disable", "sslmode=verify-full sslrootcert="+ca.CertFile, 1)
		good := ca.Client(t, "postgres")
		c := connect(t, cs+" sslcert="+good.CertFile+" sslkey="+good.KeyFile)
		if who := whoOnServer(t, c); who != "postgres" {
			t.Fatalf("logged in as %q", who)
		}
		bad := ca.Client(t, "mallory")
		_, err := pgx.Connect(context.Background(), cs+" sslcert="+bad.CertFile+" sslkey="+bad.KeyFile)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != string(sqlstate.InvalidAuthorizationSpecification) ||
			pe.Message != `certificate authentication failed for user "postgres"` {
			t.Fatalf("certificate of another user: %v", err)
		}
		if _, err := pgx.Connect(context.Background(), cs); err == nil {
			t.Fatal("no client certificate, yet logged in")
		}
	})
}
