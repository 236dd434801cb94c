package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
)

// Real PostgreSQL 15: what it stores, and logging in to it.

type pgEnv struct {
	inst *pginstance.Instance
	su   *pgconn.PgConn
	ctx  context.Context
}

func newPG(t *testing.T) *pgEnv {
	t.Helper()
	inst := pgtest.New(t, pginstance.Options{HBA: []string{
		"host all md5_user 127.0.0.1/32 md5",
		"host all all 127.0.0.1/32 scram-sha-256",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	su, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable", inst.SocketDir, inst.Port, inst.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Close(context.Background()) })
	return &pgEnv{inst: inst, su: su, ctx: ctx}
}

func (e *pgEnv) exec(t *testing.T, sql string) []*pgconn.Result {
	t.Helper()
	res, err := e.su.Exec(e.ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

func (e *pgEnv) rolpassword(t *testing.T, role string) string {
	t.Helper()
	res := e.exec(t, "select rolpassword from pg_authid where rolname = '"+role+"'")
	if len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("no pg_authid row for %s", role)
	}
	return string(res[0].Rows[0][0])
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestPostgresSecrets: ParseSecret classifies what PostgreSQL stores, and
// NewVerifier reproduces its SCRAM verifiers bit for bit, SASLprep included.
func TestPostgresSecrets(t *testing.T) {
	e := newPG(t)
	passwords := []string{
		"sekret", "with space", "I\u00ADX", "\u2168", "caf\u00e9", "cafe\u0301", "a\u00A0b", "a\u200Bb",
		"\u0627\u0031", "a\u0340", "\u00AD", "\u0007ctl", "\u0221x", "\U000E0001x", "\u05D0\u05D1", "\uFB2A",
		"\u1E9B\u0323", "\u0627abc\u0628", "\uFF21\uFF22", strings.Repeat("long", 100),
	}
	for i, pw := range passwords {
		role := fmt.Sprintf("scram_%d", i)
		e.exec(t, "set password_encryption = 'scram-sha-256'; create role "+role+" login password "+quoteLit(pw))
		stored := e.rolpassword(t, role)
		s := ParseSecret(stored)
		if s.Kind != SecretSCRAM || s.SCRAM.String() != stored {
			t.Fatalf("%q: ParseSecret(%q) = %+v", pw, stored, s)
		}
		v := NewVerifier(pw, s.SCRAM.Salt, s.SCRAM.Iterations)
		if v.String() != stored {
			p, ok := saslprep(pw)
			t.Errorf("%q (saslprep %q, %v): NewVerifier = %s, PostgreSQL stored %s", pw, p, ok, v, stored)
		}
		if !CheckPassword(s, role, pw) {
			t.Errorf("%q: CheckPassword failed", pw)
		}
	}
	e.exec(t, "set password_encryption = 'md5'; create role md5_user login password 'md5 pw'")
	stored := e.rolpassword(t, "md5_user")
	if s := ParseSecret(stored); s.Kind != SecretMD5 || stored != MD5Hash("md5_user", "md5 pw") {
		t.Fatalf("md5: stored %q, MD5Hash %q", stored, MD5Hash("md5_user", "md5 pw"))
	}
}

// TestPostgresClassification: PostgreSQL stores a password that
// get_password_type says is already MD5 or SCRAM as it is, and hashes a
// plain one; so storing candidates tells how PostgreSQL classifies them.
func TestPostgresClassification(t *testing.T) {
	e := newPG(t)
	e.exec(t, "create role classify")
	key := "Vy6hFOmpXb3sM4xgDc0MXV0v/u/pQtJEFhWdpc+Dv3c="
	for _, c := range []string{
		"md5" + strings.Repeat("a", 32), "md5" + strings.Repeat("A", 32), "md5" + strings.Repeat("a", 31),
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:$" + key + ":" + key,
		"$SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$:" + key + ":" + key,
		"SCRAM-SHA-256$ +4096:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$-1:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4294967297:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096 :c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$99999999999999999999:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA=$" + key + ":" + key,
		"SCRAM-SHA-256$4096:YQ==YWJj$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key[:40],
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + "::" + key,
		"SCRAM-SHA-256$$4096:c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096::c2FsdA==$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$$" + key + ":" + key,
		"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key + "$",
		"SCRAM-SHA-1$4096:c2FsdA==$" + key + ":" + key,
	} {
		e.exec(t, "set password_encryption = 'scram-sha-256'; alter role classify password "+quoteLit(c))
		stored := e.rolpassword(t, "classify")
		pgKind := SecretPlain
		if stored == c {
			pgKind = SecretMD5
			if strings.Contains(c, "SCRAM") {
				pgKind = SecretSCRAM
			}
		}
		if got := ParseSecret(c).Kind; got != pgKind {
			t.Errorf("%q: ParseSecret says %v, PostgreSQL 15 %v", c, got, pgKind)
		}
	}
}

// pgLogin logs in to PostgreSQL over TCP with pgproto3, answering SASL with
// c or MD5 with md5 (a function of the salt).
func pgLogin(t *testing.T, addr, user string, c *ScramClient, md5 func([4]byte) string) error {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": user, "database": "postgres"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: c.First()})
		case *pgproto3.AuthenticationSASLContinue:
			final, err := c.Final(m.Data)
			if err != nil {
				return err
			}
			fe.Send(&pgproto3.SASLResponse{Data: final})
		case *pgproto3.AuthenticationSASLFinal:
			if err := c.Verify(m.Data); err != nil {
				return err
			}
			continue
		case *pgproto3.AuthenticationMD5Password:
			fe.Send(&pgproto3.PasswordMessage{Password: md5(m.Salt)})
		case *pgproto3.AuthenticationOk, *pgproto3.ParameterStatus, *pgproto3.BackendKeyData:
			continue
		case *pgproto3.ReadyForQuery:
			return nil
		case *pgproto3.ErrorResponse:
			return &pgconn.PgError{Code: m.Code, Message: m.Message}
		default:
			return fmt.Errorf("unexpected %T", msg)
		}
		if err := fe.Flush(); err != nil {
			return err
		}
	}
}

// TestPostgresLogin: the SCRAM client logs in to PostgreSQL with a password
// and, through SCRAM passthrough, with the ClientKey a real client proved to
// ScramServer; MD5Response logs in to an md5 server.
func TestPostgresLogin(t *testing.T) {
	e := newPG(t)
	const pw = "pass\u2168word"
	e.exec(t, "set password_encryption = 'scram-sha-256'; create role scram_login login password "+quoteLit(pw))
	e.exec(t, "set password_encryption = 'md5'; create role md5_user login password 'md5 pw'")
	addr := e.inst.Addr()

	if err := pgLogin(t, addr, "scram_login", NewScramClient(pw, rand.Reader), nil); err != nil {
		t.Fatalf("password login: %v", err)
	}
	var pgErr *pgconn.PgError
	if err := pgLogin(t, addr, "scram_login", NewScramClient("wrong", rand.Reader), nil); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("wrong password: %v", err)
	}

	// Passthrough: a client proves the password to belay's ScramServer
	// holding the role's verifier (as read from pg_authid); belay logs in
	// to PostgreSQL with the recovered ClientKey.
	v := ParseSecret(e.rolpassword(t, "scram_login")).SCRAM
	ck, err := exchange(t, NewScramClient(pw, rand.Reader), NewScramServer(v, rand.Reader))
	if err != nil {
		t.Fatal(err)
	}
	if err := pgLogin(t, addr, "scram_login", NewScramClientFromKeys(v, ck, rand.Reader), nil); err != nil {
		t.Fatalf("passthrough login: %v", err)
	}
	// With a verifier of the same password but another salt, passthrough
	// cannot work and says why.
	v2 := NewVerifier(pw, []byte("another salt 123"), 4096)
	ck2, err := exchange(t, NewScramClient(pw, rand.Reader), NewScramServer(v2, rand.Reader))
	if err != nil {
		t.Fatal(err)
	}
	var ae *Error
	if err := pgLogin(t, addr, "scram_login", NewScramClientFromKeys(v2, ck2, rand.Reader), nil); !errors.As(err, &ae) || !strings.Contains(ae.Message, "differs") {
		t.Fatalf("passthrough with another verifier: %v", err)
	}

	md5hash := MD5Hash("md5_user", "md5 pw")
	if err := pgLogin(t, addr, "md5_user", nil, func(salt [4]byte) string { return MD5Response(md5hash, salt) }); err != nil {
		t.Fatalf("md5 login: %v", err)
	}
	if err := pgLogin(t, addr, "md5_user", nil, func(salt [4]byte) string { return MD5Response(MD5Hash("md5_user", "x"), salt) }); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("md5 wrong password: %v", err)
	}
}
