package poolcore

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belaydb/belay/auth"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
)

// authInstance is a Postgres that asks each test role for its own method.
func authInstance(t *testing.T) *pginstance.Instance {
	t.Helper()
	inst := pgtest.New(t, pginstance.Options{HBA: []string{
		"host all u_md5      127.0.0.1/32 md5",
		"host all u_scram    127.0.0.1/32 scram-sha-256",
		"host all u_clear    127.0.0.1/32 password",
		"host all u_clearmd5 127.0.0.1/32 password",
	}})
	superExec(t, inst.SocketDir, inst.Port, inst.Superuser,
		"SET password_encryption = 'md5'",
		"CREATE ROLE u_md5 LOGIN PASSWORD 'md5 secret'",
		"CREATE ROLE u_clearmd5 LOGIN PASSWORD 'clear md5 secret'",
		"SET password_encryption = 'scram-sha-256'",
		"CREATE ROLE u_scram LOGIN PASSWORD 'scram secret'",
		"CREATE ROLE u_clear LOGIN PASSWORD 'clear secret'",
		"CREATE ROLE u_trust LOGIN",
	)
	return inst
}

func writePassFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoginMethods(t *testing.T) {
	inst := authInstance(t)
	pass := writePassFile(t,
		fmt.Sprintf("127.0.0.1:%d:*:u_md5:md5 secret", inst.Port),
		fmt.Sprintf("127.0.0.1:%d:*:u_scram:scram secret", inst.Port),
		fmt.Sprintf("127.0.0.1:%d:*:u_clear:clear secret", inst.Port),
		fmt.Sprintf("127.0.0.1:%d:*:u_wrong:nope", inst.Port),
	)
	e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 2, PassFile: pass})
	for _, tc := range []struct {
		user  string
		creds *Credentials
	}{
		{"u_trust", nil},
		{"u_md5", nil},   // md5 challenge, passfile password
		{"u_scram", nil}, // SCRAM, passfile password
		{"u_clear", nil}, // cleartext, passfile password
		{"u_clearmd5", &Credentials{Password: "clear md5 secret"}}, // cleartext, Credentials.Password
	} {
		t.Run(tc.user, func(t *testing.T) {
			got, err := loginAs(t, e, tc.user, tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.user {
				t.Fatalf("current_user = %q", got)
			}
		})
	}
	t.Run("credentials password wins over passfile", func(t *testing.T) {
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1,
			PassFile: writePassFile(t, fmt.Sprintf("127.0.0.1:%d:*:u_scram:wrong", inst.Port))})
		if _, err := loginAs(t, e, "u_scram", &Credentials{Password: "scram secret"}); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name, user string
		creds      *Credentials
	}{
		{"wrong md5", "u_md5", &Credentials{Password: "nope"}},
		{"wrong scram", "u_scram", &Credentials{Password: "nope"}},
		{"wrong cleartext", "u_clear", &Credentials{Password: "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: pass})
			_, err := loginAs(t, e, tc.user, tc.creds)
			if pe := asPgError(err); pe == nil || pe.Code != "28P01" {
				t.Fatalf("err = %v, want a PgError 28P01", err)
			}
		})
	}
	t.Run("unknown database", func(t *testing.T) {
		p := e.pool(t, "u_trust", "nosuchdb")
		err := newClient(e).acquireErr(t, p)
		if pe := asPgError(err); pe == nil || pe.Code != "3D000" {
			t.Fatalf("err = %v, want a PgError 3D000", err)
		}
	})
	// No password anywhere: a clear error naming what is missing.
	noPass := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct{ user, want string }{
		{"u_md5", "md5"}, {"u_scram", "SCRAM"}, {"u_clear", "cleartext"},
	} {
		t.Run("no password for "+tc.user, func(t *testing.T) {
			e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: noPass})
			_, err := loginAs(t, e, tc.user, nil)
			pe := asPgError(err)
			if pe == nil || pe.Code != "28P01" || !strings.Contains(pe.Message, tc.want) || !strings.Contains(pe.Message, "no password") {
				t.Fatalf("err = %v, want a PgError 28P01 saying what is missing", err)
			}
			t.Log(pe.Message)
		})
	}
}

// TestLoginPassthrough logs in with what pg_authid stores, as the loop does
// once it authenticated a client itself: no password anywhere.
func TestLoginPassthrough(t *testing.T) {
	inst := authInstance(t)
	rolpw := func(role string) string {
		return superExec(t, inst.SocketDir, inst.Port, inst.Superuser,
			"SELECT rolpassword FROM pg_authid WHERE rolname = '"+role+"'")[0]
	}
	noPass := filepath.Join(t.TempDir(), "none")

	t.Run("scram", func(t *testing.T) {
		s := auth.ParseSecret(rolpw("u_scram"))
		if s.Kind != auth.SecretSCRAM {
			t.Fatalf("rolpassword is %v", s.Kind)
		}
		v := s.SCRAM
		ck := clientKeyOf(t, v, "scram secret")
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: noPass})
		got, err := loginAs(t, e, "u_scram", &Credentials{SCRAM: &v, ClientKey: ck})
		if err != nil || got != "u_scram" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("scram keys of another salt", func(t *testing.T) {
		s := auth.ParseSecret(rolpw("u_scram"))
		other := auth.NewVerifier("scram secret", []byte("another salt 16b"), s.SCRAM.Iterations)
		ck := clientKeyOf(t, other, "scram secret")
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: noPass})
		_, err := loginAs(t, e, "u_scram", &Credentials{SCRAM: &other, ClientKey: ck})
		if pe := asPgError(err); pe == nil || !strings.HasPrefix(pe.Code, "28") {
			t.Fatalf("err = %v, want a PgError of class 28", err)
		}
		t.Log(err)
	})
	t.Run("md5", func(t *testing.T) {
		hash := rolpw("u_md5")
		if auth.ParseSecret(hash).Kind != auth.SecretMD5 {
			t.Fatalf("rolpassword %q is not an md5 hash", hash)
		}
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: noPass})
		got, err := loginAs(t, e, "u_md5", &Credentials{MD5: hash})
		if err != nil || got != "u_md5" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("md5 hash cannot answer cleartext", func(t *testing.T) {
		e := startEngine(t, Options{Server: inst.Addr(), PoolSize: 1, PassFile: noPass})
		_, err := loginAs(t, e, "u_clearmd5", &Credentials{MD5: rolpw("u_clearmd5")})
		if pe := asPgError(err); pe == nil || pe.Code != "28P01" {
			t.Fatalf("err = %v, want a PgError 28P01", err)
		}
	})
}

// clientKeyOf recovers the SCRAM ClientKey of password for v, as the loop
// does when a client authenticates against v: through a SCRAM exchange.
func clientKeyOf(t *testing.T, v auth.Verifier, password string) []byte {
	t.Helper()
	srv := auth.NewScramServer(v, rand.Reader)
	cl := auth.NewScramClient(password, rand.Reader)
	sf, err := srv.ClientFirst(cl.First())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := cl.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	_, ck, err := srv.ClientFinal(cf)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}
