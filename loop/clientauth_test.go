package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/internal/testcert"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// authCluster is a Postgres that asks every role but postgres for a password,
// with roles whose secrets belay knows in different forms.
type authCluster struct {
	pg       *pginstance.Instance
	authFile string
	secrets  map[string]string // rolpassword, as Postgres stores it
}

// Roles: alice (SCRAM in Postgres, plaintext in the auth file), bob (md5 in
// both), carol (only her SCRAM verifier in the auth file), dave (in no file:
// found by auth_query).
func newAuthCluster(t *testing.T) *authCluster {
	pg := pgtest.New(t, pginstance.Options{
		Settings: map[string]string{"password_encryption": "scram-sha-256"},
		HBA: []string{
			"host all bob 127.0.0.1/32 md5",
			"host all alice,carol,dave 127.0.0.1/32 scram-sha-256",
		},
	})
	admin := pg.ConnString("postgres", "postgres")
	mustExecDirect(t, admin, "SET password_encryption = 'md5'; CREATE ROLE bob LOGIN PASSWORD 'bob pw'")
	mustExecDirect(t, admin, "CREATE ROLE alice LOGIN PASSWORD 'alice pw'; CREATE ROLE carol LOGIN PASSWORD 'carol pw'; CREATE ROLE dave LOGIN PASSWORD 'dave pw'")
	c := connect(t, admin)
	ac := &authCluster{pg: pg, secrets: map[string]string{}}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		var s string
		if err := c.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", u).Scan(&s); err != nil {
			t.Fatal(err)
		}
		ac.secrets[u] = s
	}
	ac.authFile = filepath.Join(t.TempDir(), "userlist.txt")
	list := fmt.Sprintf(";; PgBouncer userlist\n\"alice\" \"alice pw\"\n\"bob\" \"%s\"\n\"carol\" \"%s\"\n", ac.secrets["bob"], ac.secrets["carol"])
	if err := os.WriteFile(ac.authFile, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	return ac
}

// login connects as user with password and returns the connection or the error.
func login(p *Proxy, user, password, extra string) (*pgx.Conn, error) {
	cs := p.connString("postgres", user) + " password='" + password + "' " + extra
	return pgx.Connect(context.Background(), cs)
}

// whoOnServer is the role Postgres itself sees.
func whoOnServer(t *testing.T, c *pgx.Conn) string {
	t.Helper()
	var who string
	if err := c.QueryRow(context.Background(), "SELECT session_user").Scan(&who); err != nil {
		t.Fatal(err)
	}
	return who
}

func expectAuthFailed(t *testing.T, err error, user string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: want 28P01, got %v", user, err)
	}
	want := fmt.Sprintf("password authentication failed for user %q", user)
	if pe.Code != string(sqlstate.InvalidPassword) || pe.Severity != "FATAL" || pe.Message != want {
		t.Fatalf("%s: got %s %s %q, want FATAL 28P01 %q", user, pe.Severity, pe.Code, pe.Message, want)
	}
}

// TestClientAuth: belay authenticates clients itself with SCRAM, md5 and
// cleartext against an auth file and auth_query, answers a wrong password and
// an unknown user alike, and logs in to Postgres as the user without a
// password of its own (SCRAM and md5 passthrough).
func TestClientAuth(t *testing.T) {
	ac := newAuthCluster(t)
	for _, method := range []string{"scram-sha-256", "md5", "password"} {
		t.Run(method, func(t *testing.T) {
			p := startProxy(t, ac.pg, func(c *Config) {
				c.AuthType = method
				c.AuthFile = ac.authFile
				c.AuthUser = "postgres" // trusted by this Postgres
				c.PassFile = filepath.Join(t.TempDir(), "none")
			})
			users := []struct{ user, pw string }{{"alice", "alice pw"}, {"carol", "carol pw"}, {"dave", "dave pw"}}
			if method != "scram-sha-256" {
				users = append(users, struct{ user, pw string }{"bob", "bob pw"})
			}
			for _, u := range users {
				c, err := login(p, u.user, u.pw, "")
				if err != nil {
					t.Fatalf("%s: %v", u.user, err)
				}
				if who := whoOnServer(t, c); who != u.user {
					t.Fatalf("Postgres sees %q, want %q", who, u.user)
				}
				_ = c.Close(context.Background())
				_, err = login(p, u.user, "wrong", "")
				expectAuthFailed(t, err, u.user)
			}
			_, err := login(p, "nobody", "whatever", "")
			expectAuthFailed(t, err, "nobody")
			if method == "scram-sha-256" {
				// Only an md5 hash is stored for bob: SCRAM cannot succeed,
				// as in Postgres.
				_, err := login(p, "bob", "bob pw", "")
				expectAuthFailed(t, err, "bob")
			}
		})
	}

	t.Run("hba", func(t *testing.T) {
		hba := filepath.Join(t.TempDir(), "hba.conf")
		rules := "# belay's own rules\n" +
			"host all alice 127.0.0.1/32 scram-sha-256\n" +
			"host all bob 127.0.0.0/8 md5\n" +
			"host all mallory 0.0.0.0/0 reject\n" +
			"host all postgres 127.0.0.1/32 trust\n"
		if err := os.WriteFile(hba, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProxy(t, ac.pg, func(c *Config) {
			c.AuthType, c.AuthHBAFile, c.AuthFile = "hba", hba, ac.authFile
		})
		for _, u := range []struct{ user, pw string }{{"alice", "alice pw"}, {"bob", "bob pw"}, {"postgres", ""}} {
			c, err := login(p, u.user, u.pw, "")
			if err != nil {
				t.Fatalf("%s: %v", u.user, err)
			}
			_ = c.Close(context.Background())
		}
		_, err := login(p, "alice", "bob pw", "")
		expectAuthFailed(t, err, "alice")
		for user, want := range map[string]string{
			"mallory": `pg_hba.conf rejects connection for host "127.0.0.1", user "mallory", database "postgres", no encryption`,
			"carol":   `no pg_hba.conf entry for host "127.0.0.1", user "carol", database "postgres", no encryption`,
		} {
			_, err := login(p, user, "carol pw", "")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != string(sqlstate.InvalidAuthorizationSpecification) || pe.Message != want {
				t.Fatalf("%s: %v, want 28000 %q", user, err, want)
			}
		}
	})

	t.Run("psql", func(t *testing.T) {
		psql := pgtest.RequireBinary(t, "psql")
		p := startProxy(t, ac.pg, func(c *Config) { c.AuthType = "scram-sha-256"; c.AuthFile = ac.authFile })
		env := append(clientEnv(p), "PGUSER=carol", "PGPASSWORD=carol pw")
		out, err := run(t, env, "", psql, "-XAtc", "SELECT session_user")
		if err != nil || strings.TrimSpace(out) != "carol" {
			t.Fatalf("psql as carol: %v\n%s", err, out)
		}
		env = append(clientEnv(p), "PGUSER=carol", "PGPASSWORD=not hers")
		out, err = run(t, env, "", psql, "-XAtc", "SELECT 1")
		if err == nil || !strings.Contains(out, `FATAL:  password authentication failed for user "carol"`) {
			t.Fatalf("psql with a wrong password: %v\n%s", err, out)
		}
	})
}

// logSink collects a proxy's log lines. Safe for concurrent use.
type logSink struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClientAuthLogsWhy: a client whose login fails gets only Postgres's
// 28P01, but belay's log says why, with the user and the client's address.
func TestClientAuthLogsWhy(t *testing.T) {
	ac := newAuthCluster(t)
	for _, tc := range []struct {
		method, user, pw string
		authUser         bool
		why              string
	}{
		{"scram-sha-256", "nobody", "x", false, "the user is not in the auth file"},
		{"scram-sha-256", "nobody", "x", true, "auth_query returned no password for it"},
		{"scram-sha-256", "bob", "bob pw", false, "an md5 hash cannot answer a SCRAM exchange"},
		{"scram-sha-256", "carol", "not hers", false, "wrong password: the SCRAM proof does not match the stored SCRAM verifier"},
		{"scram-sha-256", "alice", "not hers", false, "wrong password: the SCRAM proof does not match the auth file's password"},
		{"md5", "bob", "not his", false, "wrong password: the md5 response does not match the stored md5 hash"},
		{"password", "alice", "not hers", false, "wrong password: the cleartext password does not match the auth file's password"},
	} {
		var log logSink
		p := startProxy(t, ac.pg, func(c *Config) {
			c.AuthType, c.AuthFile = tc.method, ac.authFile
			if tc.authUser {
				c.AuthUser = "postgres"
			}
			c.Logger = slog.New(slog.NewTextHandler(&log, nil))
		})
		_, err := login(p, tc.user, tc.pw, "")
		expectAuthFailed(t, err, tc.user)
		want := fmt.Sprintf(`msg="client authentication failed" user=%s database=postgres remote=127.0.0.1:`, tc.user)
		var line string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, want) {
				line = l
			}
		}
		if !strings.Contains(line, tc.why) {
			t.Errorf("%s as %s: the log says\n%s\nwant a line with %q and %q", tc.method, tc.user, log.String(), want, tc.why)
		}
	}
}

// TestHostileAuth: whatever a client sends during authentication or before a
// TLS handshake, it gets Postgres's FATAL and SQLSTATE where the protocol
// allows, nothing is leaked, and belay keeps serving.
func TestHostileAuth(t *testing.T) {
	ac := newAuthCluster(t)
	ca := testcert.New(t)
	srv := ca.Server(t, "belay", "127.0.0.1")
	p := startProxy(t, ac.pg, func(c *Config) {
		c.AuthType, c.AuthFile = "scram-sha-256", ac.authFile
		c.TLSMode, c.TLSCertFile, c.TLSKeyFile = "allow", srv.CertFile, srv.KeyFile
		c.ClientLoginTimeout = 2 * time.Second
	})
	startAuth := func(t *testing.T) *rawConn {
		r := dialRaw(t, p)
		r.send(codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", "alice", "database", "postgres"))
		if f, err := r.next(); err != nil || f.Type != codec.MsgAuthentication {
			t.Fatalf("want AuthenticationSASL, got %q %v", f.Type, err)
		}
		return r
	}
	sasl := func(mech, data string) []byte {
		body := append([]byte(mech+"\x00"), byte(len(data)>>24), byte(len(data)>>16), byte(len(data)>>8), byte(len(data)))
		return codec.AppendFrame(nil, codec.MsgPasswordMessage, append(body, data...))
	}
	for _, tc := range []struct {
		name string
		send []byte
		code sqlstate.Code
		msg  string
	}{
		{"a query instead of a password", codec.AppendQuery(nil, "SELECT 1"), sqlstate.ProtocolViolation, "expected password response, got message type 81"},
		{"another SASL mechanism", sasl("SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"), sqlstate.ProtocolViolation, "client selected an invalid SASL authentication mechanism"},
		{"an oversized password message", append([]byte{'p', 0, 0x10, 0, 0}, make([]byte, 64)...), sqlstate.ProtocolViolation, "invalid password packet size"},
		{"a malformed client-first-message", sasl("SCRAM-SHA-256", "garbage"), sqlstate.ProtocolViolation, "malformed SCRAM message"},
		{"channel binding not offered", sasl("SCRAM-SHA-256", "p=tls-server-end-point,,n=,r=abc"), sqlstate.ProtocolViolation, ""},
		{"a malformed SASL frame", codec.AppendFrame(nil, codec.MsgPasswordMessage, []byte("SCRAM-SHA-256\x00\x00\x00")), sqlstate.ProtocolViolation, "malformed SASL message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startAuth(t)
			r.send(tc.send)
			r.expectFatal(tc.code, tc.msg)
		})
	}
	t.Run("vanishes mid-SCRAM", func(t *testing.T) {
		r := startAuth(t)
		r.send(sasl("SCRAM-SHA-256", "n,,n=,r=rOprNGfwEbeRWgbNEkqO"))
		if f, err := r.next(); err != nil || f.Type != codec.MsgAuthentication {
			t.Fatalf("want SASLContinue, got %q %v", f.Type, err)
		}
		_ = r.c.Close()
	})
	t.Run("garbage instead of a ClientHello", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(codec.AppendSSLRequest(nil))
		b := make([]byte, 1)
		if _, err := io.ReadFull(r.c, b); err != nil || b[0] != 'S' {
			t.Fatalf("SSLRequest: %q %v", b, err)
		}
		r.send([]byte("this is not TLS\r\n\r\n"))
		if _, err := r.next(); err == nil {
			t.Fatal("a message after a failed handshake")
		}
	})
	t.Run("silent after 'S'", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(codec.AppendSSLRequest(nil))
		b := make([]byte, 1)
		if _, err := io.ReadFull(r.c, b); err != nil || b[0] != 'S' {
			t.Fatalf("SSLRequest: %q %v", b, err)
		}
		start := time.Now()
		if _, err := r.next(); err == nil { // the handshake's deadline is the login timeout
			t.Fatal("a message without a handshake")
		}
		t.Logf("closed %v after 'S'", time.Since(start).Round(time.Millisecond))
	})
	eventually(t, 10*time.Second, "every client to be gone", func() bool { return p.Stats().Clients == 0 })
	c, err := login(p, "alice", "alice pw", "sslmode=require")
	if err != nil {
		t.Fatalf("belay stopped serving: %v", err)
	}
	_ = c.Close(context.Background())
}
