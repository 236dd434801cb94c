package poolcore

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/internal/testcert"
)

// tlsInstance is a Postgres with ssl=on whose pg_hba.conf refuses plain TCP
// sessions, and lets u_cert in by its client certificate only.
func tlsInstance(t *testing.T, ca *testcert.CA) *pginstance.Instance {
	t.Helper()
	srv := ca.Server(t, "postgres", "127.0.0.1")
	inst := pgtest.NewTLS(t, srv.CertFile, srv.KeyFile, ca.CertFile, []string{
		"hostssl all u_cert 127.0.0.1/32 cert",
		"hostssl all all    127.0.0.1/32 trust",
		"host    all all    127.0.0.1/32 reject",
	})
	superExec(t, inst.SocketDir, inst.Port, inst.Superuser, "CREATE ROLE u_cert LOGIN")
	return inst
}

func TestServerTLS(t *testing.T) {
	ca := testcert.New(t)
	inst := tlsInstance(t, ca)
	const sslQuery = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
	port := strconv.Itoa(inst.Port)

	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"require", Options{ServerTLSMode: "require"}},
		{"prefer", Options{ServerTLSMode: "prefer"}},
		{"allow", Options{ServerTLSMode: "allow"}}, // plain refused by pg_hba.conf, then TLS
		{"verify-ca", Options{ServerTLSMode: "verify-ca", ServerTLSCAFile: ca.CertFile}},
		{"verify-full", Options{ServerTLSMode: "verify-full", ServerTLSCAFile: ca.CertFile}},
		// The certificate names 127.0.0.1 only: verify-ca does not care.
		{"verify-ca other name", Options{Server: "localhost:" + port, ServerTLSMode: "verify-ca", ServerTLSCAFile: ca.CertFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.Server == "" {
				o.Server = inst.Addr()
			}
			o.PoolSize = 1
			e := startEngine(t, o)
			p := e.pool(t, inst.Superuser, "postgres")
			c := newClient(e)
			sc := c.acquire(t, p, 30e9)
			if !sc.TLS() {
				t.Fatal("server connection has no TLS layer")
			}
			if got := c.one(t, sc, sslQuery); got != "t" {
				t.Fatalf("pg_stat_ssl.ssl = %q", got)
			}
			c.release(p, sc)
			// Released and taken again: belay's own queries (none here) and
			// the next client's go through the same records.
			sc = c.acquire(t, p, 30e9)
			if got := c.one(t, sc, "SELECT 40 + 2"); got != "42" {
				t.Fatalf("got %q", got)
			}
			c.release(p, sc)
		})
	}

	t.Run("client certificate", func(t *testing.T) {
		cl := ca.Client(t, "u_cert")
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, ServerTLSMode: "verify-full",
			ServerTLSCAFile: ca.CertFile, ServerTLSCertFile: cl.CertFile, ServerTLSKeyFile: cl.KeyFile})
		got, err := loginAs(t, e, "u_cert", nil)
		if err != nil || got != "u_cert" {
			t.Fatalf("got %q, %v", got, err)
		}
	})

	failures := []struct {
		name string
		o    Options
		want string
	}{
		{"verify-full wrong CA", Options{ServerTLSMode: "verify-full", ServerTLSCAFile: testcert.New(t).CertFile}, "certificate signed by unknown authority"},
		{"verify-ca wrong CA", Options{ServerTLSMode: "verify-ca", ServerTLSCAFile: testcert.New(t).CertFile}, "certificate signed by unknown authority"},
		{"verify-full other name", Options{Server: "localhost:" + port, ServerTLSMode: "verify-full", ServerTLSCAFile: ca.CertFile}, "localhost"},
		{"require with the wrong CA checks the chain (as libpq)", Options{ServerTLSMode: "require", ServerTLSCAFile: testcert.New(t).CertFile}, "unknown authority"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if o.Server == "" {
				o.Server = inst.Addr()
			}
			o.PoolSize = 1
			e := startEngine(t, o)
			err := newClient(e).acquireErr(t, e.pool(t, inst.Superuser, "postgres"))
			if !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a TLS handshake error about %q", err, tc.want)
			}
			t.Log(err)
		})
	}
	t.Run("disable is refused by pg_hba.conf", func(t *testing.T) {
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1})
		err := newClient(e).acquireErr(t, e.pool(t, inst.Superuser, "postgres"))
		if pe := asPgError(err); pe == nil || pe.Code != "28000" {
			t.Fatalf("err = %v, want a PgError 28000", err)
		}
	})
	t.Run("large result", func(t *testing.T) {
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, ServerTLSMode: "require"})
		p := e.pool(t, inst.Superuser, "postgres")
		c := newClient(e)
		c.keep = false
		sc := c.acquire(t, p, 30e9)
		defer c.release(p, sc)
		const rows, width = 6000, 1000 // 6 MB of rows, some 370 records of 16 KiB
		r := c.query(t, sc, "SELECT repeat('x', 1000) FROM generate_series(1, 6000)")
		if r.err != nil || r.netErr != nil || r.nRows != rows || r.nBytes != rows*width || !r.allX {
			t.Fatalf("rows %d bytes %d allX %v err %v %v", r.nRows, r.nBytes, r.allX, r.err, r.netErr)
		}
		// And belay's own query over the same connection afterwards.
		done := make(chan *PgError, 1)
		e.onLoop(func() {
			sc.Exec("SET application_name = 'after'", func(_ *Server, err *PgError) { done <- err })
		})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c.keep = true
		if got := c.one(t, sc, "SHOW application_name"); got != "after" {
			t.Fatalf("application_name %q", got)
		}
	})
}

func TestOptionsCheck(t *testing.T) {
	ca := testcert.New(t)
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Server: "127.0.0.1:5432"}, ""},
		{Options{Server: "127.0.0.1:5432", ServerTLSMode: "verify-full", ServerTLSCAFile: ca.CertFile}, ""},
		{Options{Server: "127.0.0.1:5432", ServerTLSMode: "sometimes"}, "TLS mode"},
		{Options{Server: "127.0.0.1:5432", ServerTLSMode: "verify-ca", ServerTLSCAFile: "/nonexistent"}, "CA file"},
		{Options{Server: "127.0.0.1:5432", ServerTLSMode: "require", ServerTLSCertFile: ca.CertFile}, "both"},
		{Options{Server: "nohostport"}, "server address"},
	} {
		err := tc.o.Check()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestServerWithoutTLS: a server that answers SSLRequest with 'N' fails
// require and verify-*, and serves prefer and allow in plain.
func TestServerWithoutTLS(t *testing.T) {
	pg := pgtest.Shared(t) // ssl=off
	ca := testcert.New(t)
	for _, mode := range []string{"require", "verify-ca", "verify-full"} {
		t.Run(mode, func(t *testing.T) {
			e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1, ServerTLSMode: mode, ServerTLSCAFile: ca.CertFile})
			err := newClient(e).acquireErr(t, e.pool(t, pg.Superuser, "postgres"))
			if !strings.Contains(err.Error(), "does not support TLS") || !strings.Contains(err.Error(), mode) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	for _, mode := range []string{"prefer", "allow", "disable"} {
		t.Run(mode, func(t *testing.T) {
			e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1, ServerTLSMode: mode})
			p := e.pool(t, pg.Superuser, "postgres")
			c := newClient(e)
			sc := c.acquire(t, p, 30*time.Second)
			if sc.TLS() {
				t.Fatal("TLS layer on a plain connection")
			}
			if got := c.one(t, sc, "SELECT 1"); got != "1" {
				t.Fatal(got)
			}
			c.release(p, sc)
		})
	}
}
