package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// scramListener is just enough of a PostgreSQL server to run a ScramServer
// against a real client (pgconn): StartupMessage, AuthenticationSASL,
// SASLContinue, SASLFinal, AuthenticationOk, ReadyForQuery. It records what
// it saw for seeding the fuzz corpus.
type scramListener struct {
	ln  net.Listener
	v   Verifier
	got chan [2][]byte // client-first, client-final of each exchange
}

func startScramListener(t *testing.T, v Verifier) *scramListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &scramListener{ln: ln, v: v, got: make(chan [2][]byte, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(c)
		}
	}()
	return l
}

func (l *scramListener) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	fail := func(err error) {
		var ae *Error
		if errors.As(err, &ae) {
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: string(ae.Code), Message: ae.Message, Detail: ae.Detail})
		} else {
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "XX000", Message: err.Error()})
		}
		be.Flush()
	}
	s := NewScramServer(l.v, rand.Reader)
	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	be.Flush()
	be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := be.Receive()
	if err != nil {
		return
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != "SCRAM-SHA-256" {
		fail(fmt.Errorf("unexpected %T", msg))
		return
	}
	first := append([]byte(nil), init.Data...) // the backend reuses its buffer
	sf, err := s.ClientFirst(first)
	if err != nil {
		fail(err)
		return
	}
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: sf})
	be.Flush()
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	msg, err = be.Receive()
	if err != nil {
		return
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		fail(fmt.Errorf("unexpected %T", msg))
		return
	}
	select {
	case l.got <- [2][]byte{first, append([]byte(nil), resp.Data...)}:
	default:
	}
	fin, _, err := s.ClientFinal(resp.Data)
	if err != nil {
		fail(err)
		return
	}
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: fin})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	be.Flush()
	be.Receive() // Terminate
}

// TestScramServerWithPgx: pgconn logs in to a ScramServer; a wrong password
// gets 28P01.
func TestScramServerWithPgx(t *testing.T) {
	const pw = "pgx pass\u00A0word"
	l := startScramListener(t, NewVerifier(pw, []byte("pgx salt 0123456"), 4096))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "host=127.0.0.1 port=" + fmt.Sprint(l.ln.Addr().(*net.TCPAddr).Port) + " user=u dbname=d sslmode=disable"

	conn, err := pgconn.Connect(ctx, base+" password='"+pw+"'")
	if err != nil {
		t.Fatalf("pgx login: %v", err)
	}
	conn.Close(ctx)
	ex := <-l.got
	t.Logf("pgx client-first %q client-final %q", ex[0], ex[1])

	_, err = pgconn.Connect(ctx, base+" password=wrong")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("wrong password: want 28P01, got %v", err)
	}
}
