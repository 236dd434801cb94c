package loop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// rawConn is a hand-driven client for inputs no driver would send.
type rawConn struct {
	t   *testing.T
	c   net.Conn
	buf []byte
}

func dialRaw(t *testing.T, p *Proxy) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// next reads one backend message; io.EOF when the proxy closed.
func (r *rawConn) next() (codec.Frame, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, n, err := codec.ReadFrame(r.buf, 1<<30)
		if err == nil {
			r.buf = r.buf[n:]
			return codec.Frame{Type: f.Type, Body: append([]byte(nil), f.Body...)}, nil
		}
		if err != codec.ErrShortBuffer {
			return codec.Frame{}, err
		}
		var tmp [64 << 10]byte
		m, err := r.c.Read(tmp[:])
		r.buf = append(r.buf, tmp[:m]...)
		if err != nil && m == 0 {
			return codec.Frame{}, err
		}
	}
}

// login sends a StartupMessage and reads up to ReadyForQuery.
func (r *rawConn) login(user string) {
	r.t.Helper()
	r.send(codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", user, "database", "postgres"))
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("login: %v", err)
		}
		if f.Type == codec.MsgErrorResponse {
			e, _ := codec.ParseErrorFields(f.Body)
			r.t.Fatalf("login: %s", e.Message)
		}
		if f.Type == codec.MsgReadyForQuery {
			return
		}
	}
}

// expectFatal reads a FATAL ErrorResponse with code, then EOF.
func (r *rawConn) expectFatal(code sqlstate.Code, msgPart string) {
	r.t.Helper()
	f, err := r.next()
	if err != nil {
		r.t.Fatalf("want FATAL %s, got %v", code, err)
	}
	if f.Type != codec.MsgErrorResponse {
		r.t.Fatalf("want ErrorResponse, got %q", f.Type)
	}
	e, err := codec.ParseErrorFields(f.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	if string(e.Severity) != "FATAL" || sqlstate.Code(e.Code) != code || !strings.Contains(string(e.Message), msgPart) {
		r.t.Fatalf("got %s %s %q, want FATAL %s containing %q", e.Severity, e.Code, e.Message, code, msgPart)
	}
	if f, err := r.next(); !errors.Is(err, io.EOF) && !isReset(err) {
		r.t.Fatalf("after FATAL: %q %v, want the connection closed", f.Type, err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed"))
}

// stillServes checks that a well-behaved client is served.
func stillServes(t *testing.T, p *Proxy) {
	t.Helper()
	c := connect(t, p.connString("postgres", "postgres"))
	var one int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("belay stopped serving: %v", err)
	}
	c.Close(context.Background())
}

func startupPacket(code uint32, kv ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], code)
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestHostileInput(t *testing.T) {
	pg := pgtest.Shared(t)
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP ROLE IF EXISTS hostile; CREATE ROLE hostile LOGIN SUPERUSER")
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 2; c.MaxMessageSize = 1 << 20 })

	t.Run("random bytes", func(t *testing.T) {
		b := make([]byte, 256)
		rand.New(rand.NewSource(1)).Read(b)
		b[0] = 0xde // a length no startup packet has
		r := dialRaw(t, p)
		r.send(b)
		r.expectFatal(sqlstate.ProtocolViolation, "invalid length of startup packet")
		stillServes(t, p)
	})
	t.Run("absurd startup length", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send([]byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0})
		r.expectFatal(sqlstate.ProtocolViolation, "invalid length of startup packet")
		stillServes(t, p)
	})
	t.Run("unknown protocol version", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(startupPacket(4<<16, "user", "hostile"))
		r.expectFatal(sqlstate.FeatureNotSupported, "unsupported frontend protocol 4.0")
		stillServes(t, p)
	})
	t.Run("newer 3.x minor negotiates", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(startupPacket(3<<16|2, "user", "hostile", "database", "postgres", "_pq_.nothing", "1"))
		f, err := r.next()
		if err != nil || f.Type != codec.MsgNegotiateProtocolVersion {
			t.Fatalf("want NegotiateProtocolVersion, got %q %v", f.Type, err)
		}
		minor, opts, err := codec.ParseNegotiateProtocolVersion(f.Body)
		if err != nil || minor != 0 || len(opts) != 1 || string(opts[0]) != "_pq_.nothing" {
			t.Fatalf("negotiate: %d %q %v", minor, opts, err)
		}
		for f.Type != codec.MsgReadyForQuery {
			if f, err = r.next(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("SSL and GSS encryption requests are declined", func(t *testing.T) {
		r := dialRaw(t, p)
		request := func(code uint32) []byte {
			b := make([]byte, 8)
			binary.BigEndian.PutUint32(b, 8)
			binary.BigEndian.PutUint32(b[4:], code)
			return b
		}
		for _, code := range []uint32{codec.GSSENCRequestCode, codec.SSLRequestCode} {
			r.send(request(code))
			var b [1]byte
			_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(r.c, b[:]); err != nil || b[0] != 'N' {
				t.Fatalf("request %d: answer %q %v, want 'N'", code, b[0], err)
			}
		}
		r.login("hostile")
		r.send(request(codec.SSLRequestCode)) // after the startup: not a message
		r.expectFatal(sqlstate.ProtocolViolation, "invalid frontend message type 0")
	})
	t.Run("startup without user", func(t *testing.T) {
		r := dialRaw(t, p)
		r.send(startupPacket(codec.ProtocolVersion30, "database", "postgres"))
		r.expectFatal(sqlstate.InvalidAuthorizationSpecification, "no PostgreSQL user name specified in startup packet")
		stillServes(t, p)
	})
	t.Run("query claiming 2 GB", func(t *testing.T) {
		r := dialRaw(t, p)
		r.login("hostile")
		r.send([]byte{'Q', 0x7f, 0xff, 0xff, 0xff, 'S', 'E', 'L'})
		r.expectFatal(sqlstate.ProtocolViolation, "invalid message length")
		stillServes(t, p)
	})
	t.Run("query over the configured maximum", func(t *testing.T) {
		r := dialRaw(t, p)
		r.login("hostile")
		r.send(codec.AppendQuery(nil, "SELECT '"+strings.Repeat("x", 2<<20)+"'"))
		r.expectFatal(sqlstate.ProgramLimitExceeded, "exceeds the maximum")
		stillServes(t, p)
	})
	t.Run("unknown message type", func(t *testing.T) {
		r := dialRaw(t, p)
		r.login("hostile")
		r.send([]byte{'!', 0, 0, 0, 4})
		r.expectFatal(sqlstate.ProtocolViolation, "invalid frontend message type 33")
		stillServes(t, p)
	})
	t.Run("truncated frame then EOF", func(t *testing.T) {
		r := dialRaw(t, p)
		r.login("hostile")
		q := codec.AppendQuery(nil, "SELECT 'never finished'")
		r.send(q[:len(q)-5])
		r.c.(*net.TCPConn).CloseWrite()
		if _, err := r.next(); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("want the connection closed, got %v", err)
		}
		stillServes(t, p)
		checkPoolClean(t, p, pg, "hostile", 2)
	})
	t.Run("client vanishes mid-transaction", func(t *testing.T) {
		mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP TABLE IF EXISTS vanish; CREATE TABLE vanish (x int)")
		r := dialRaw(t, p)
		r.login("hostile")
		r.send(codec.AppendQuery(nil, "BEGIN; INSERT INTO vanish VALUES (1)"))
		for {
			f, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			if f.Type == codec.MsgReadyForQuery {
				if f.Body[0] != 'T' {
					t.Fatalf("status %q, want T", f.Body[0])
				}
				break
			}
		}
		r.c.Close() // gone, with a transaction open
		checkPoolClean(t, p, pg, "hostile", 2)
		var n int
		c := connect(t, p.connString("postgres", "postgres"))
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM vanish").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the vanished client's insert is visible (%d rows, %v): not rolled back", n, err)
		}
	})
	t.Run("client vanishes mid-query", func(t *testing.T) {
		r := dialRaw(t, p)
		r.login("hostile")
		r.send(codec.AppendQuery(nil, "SELECT pg_sleep(60)"))
		time.Sleep(100 * time.Millisecond)
		r.c.Close()
		// The query is cancelled and the server comes back well before 60 s.
		checkPoolClean(t, p, pg, "hostile", 2)
	})
	t.Run("client vanishes inside COPY FROM STDIN", func(t *testing.T) {
		mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP TABLE IF EXISTS vanish_copy; CREATE TABLE vanish_copy (x int)")
		r := dialRaw(t, p)
		r.login("hostile")
		r.send(codec.AppendQuery(nil, "COPY vanish_copy FROM STDIN"))
		if f, err := r.next(); err != nil || f.Type != codec.MsgCopyInResponse {
			t.Fatalf("want CopyInResponse, got %q %v", f.Type, err)
		}
		r.send(codec.AppendFrame(nil, codec.MsgCopyData, []byte("1\n2\n")))
		r.c.Close()
		checkPoolClean(t, p, pg, "hostile", 2)
		var n int
		c := connect(t, p.connString("postgres", "postgres"))
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM vanish_copy").Scan(&n); err != nil || n != 0 {
			t.Fatalf("half a COPY was committed: %d rows, %v", n, err)
		}
	})
}

// checkPoolClean waits until user's pool has no active server and no waiter,
// holds at most size servers, and Postgres shows no backend of user in a
// transaction or running a query and at most size backends of user in all (a
// leaked server would stay; the backend of one just closed leaves soon).
func checkPoolClean(t *testing.T, p *Proxy, pg *pginstance.Instance, user string, size int) {
	t.Helper()
	var last string
	defer func() {
		if t.Failed() {
			t.Log("last state:", last)
		}
	}()
	eventually(t, 10*time.Second, "the pool to be clean", func() bool {
		for _, pool := range p.Pools().Pools() {
			if pool.Key().User == user {
				s := pool.Stats()
				last = fmt.Sprintf("pool %+v", s)
				if s.Active != 0 || s.Waiting != 0 || s.Open > size {
					return false
				}
			}
		}
		c, err := pgx.Connect(context.Background(), pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var busy, all int
		if err := c.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE state <> 'idle'), count(*) FROM pg_stat_activity
			WHERE usename = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`, user).Scan(&busy, &all); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(context.Background())
		last += fmt.Sprintf(", %d busy backends", busy)
		// Backends of servers closed a moment ago (by an earlier test's
		// proxy, or a slot move) take a while to leave pg_stat_activity.
		return busy == 0 && all <= size
	})
}
