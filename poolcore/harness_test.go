package poolcore

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// engine runs a Manager on one real gnet event loop, as the loop package
// does, without the loop package: servers are driven by testClients.
type engine struct {
	gnet.BuiltinEventEngine
	t    testing.TB
	m    *Manager
	l    *Loop
	el   gnet.EventLoop
	eng  gnet.Engine
	elCh chan gnet.EventLoop
	boot chan struct{}
}

func testLogger() *slog.Logger {
	if os.Getenv("BELAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startEngine starts a gnet engine with one loop and a Manager with o.
func startEngine(t testing.TB, o Options) *engine {
	t.Helper()
	o.NumLoops = 1
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	e := &engine{t: t, m: NewManager(o), elCh: make(chan gnet.EventLoop, 1), boot: make(chan struct{})}
	sock := filepath.Join(t.TempDir(), "e.sock")
	done := make(chan error, 1)
	go func() {
		done <- gnet.Run(e, "unix://"+sock, gnet.WithNumEventLoop(1), gnet.WithTicker(true),
			gnet.WithLogLevel(logging.ErrorLevel))
	}()
	select {
	case <-e.boot:
	case err := <-done:
		t.Fatalf("gnet: %v", err)
	}
	// A connection of our own reveals the event loop.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	e.el = <-e.elCh
	_ = c.Close()
	e.l = e.m.LoopFor(e.el)
	t.Cleanup(func() {
		e.onLoop(func() { e.m.CloseAll(e.l) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.eng.Stop(ctx)
		<-done
	})
	return e
}

func (e *engine) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng = eng
	close(e.boot)
	return gnet.None
}

func (e *engine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if sc, ok := c.Context().(*Server); ok {
		return nil, sc.Opened(c)
	}
	e.elCh <- c.EventLoop()
	return nil, gnet.Close
}

func (e *engine) OnTraffic(c gnet.Conn) gnet.Action {
	if sc, ok := c.Context().(*Server); ok {
		return sc.OnTraffic(c)
	}
	return gnet.Close
}

func (e *engine) OnClose(c gnet.Conn, err error) gnet.Action {
	if sc, ok := c.Context().(*Server); ok {
		sc.Closed(err)
	}
	return gnet.None
}

func (e *engine) OnTick() (time.Duration, gnet.Action) {
	e.m.Tick()
	return 100 * time.Millisecond, gnet.None
}

// onLoop runs fn on the event loop and waits for it.
func (e *engine) onLoop(fn func()) {
	done := make(chan struct{})
	if err := e.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		defer close(done)
		fn()
		return nil
	})); err != nil {
		e.t.Fatalf("execute: %v", err)
	}
	<-done
}

func (e *engine) pool(t testing.TB, user, db string) *Pool {
	t.Helper()
	p, err := e.m.Pool(Key{Database: db, User: user})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// result is what a query returned.
type result struct {
	rows    []string // first column of each row (kept only if keep)
	nRows   int
	nBytes  int  // of all first columns
	allX    bool // every first column made of 'x' only
	err     *PgError
	netErr  error
	txState byte
}

// testClient is a Client that runs one simple query at a time on the
// server it holds.
type testClient struct {
	e      *engine
	ready  chan *Server
	failed chan error
	lost   chan error
	done   chan result
	res    result
	keep   bool
}

func newClient(e *engine) *testClient {
	return &testClient{e: e, ready: make(chan *Server, 1), failed: make(chan error, 1),
		lost: make(chan error, 1), done: make(chan result, 1), keep: true}
}

func (c *testClient) ServerReady(sc *Server) { c.ready <- sc }
func (c *testClient) ServerFailed(err error) { c.failed <- err }
func (c *testClient) ServerLost(_ *Server, err error) {
	select {
	case c.lost <- err:
	default:
	}
	select {
	case c.done <- result{netErr: err}:
	default:
	}
}

func (c *testClient) ServerTraffic(sc *Server, conn gnet.Conn) gnet.Action {
	data := sc.Input().Bytes(conn)
	if err := sc.Input().Err(); err != nil {
		c.done <- result{netErr: err}
		return gnet.Close
	}
	off := 0
	for {
		f, n, err := codec.ReadFrame(data[off:], 64<<20)
		if err == codec.ErrShortBuffer {
			break
		}
		if err != nil {
			c.done <- result{netErr: err}
			return gnet.Close
		}
		off += n
		switch f.Type {
		case 'D':
			v := firstColumn(f.Body)
			c.res.nRows++
			c.res.nBytes += len(v)
			if strings.Trim(string(v), "x") != "" {
				c.res.allX = false
			}
			if c.keep {
				c.res.rows = append(c.res.rows, string(v))
			}
		case codec.MsgErrorResponse:
			if c.res.err == nil {
				c.res.err = ParsePgError(f.Body)
			}
		case codec.MsgReadyForQuery:
			sc.TxStatus = f.Body[0]
			c.res.txState = f.Body[0]
			c.done <- c.res
			c.res = result{}
		}
	}
	sc.Input().Consume(conn, off)
	return gnet.None
}

func firstColumn(body []byte) []byte {
	if len(body) < 6 || binary.BigEndian.Uint16(body) == 0 {
		return nil
	}
	n := int32(binary.BigEndian.Uint32(body[2:]))
	if n < 0 {
		return nil
	}
	return body[6 : 6+n]
}

// acquire asks p for a server for c; it returns it if one came within
// wait, else nil (c stays queued).
func (c *testClient) acquire(t testing.TB, p *Pool, wait time.Duration) *Server {
	t.Helper()
	c.e.onLoop(func() {
		if sc := p.Acquire(c.e.l, c, ""); sc != nil {
			c.ready <- sc
		}
	})
	select {
	case sc := <-c.ready:
		return sc
	case err := <-c.failed:
		t.Fatalf("no server: %v", err)
	case <-time.After(wait):
	}
	return nil
}

// acquireErr is acquire expecting a failure.
func (c *testClient) acquireErr(t testing.TB, p *Pool) error {
	t.Helper()
	c.e.onLoop(func() {
		if sc := p.Acquire(c.e.l, c, ""); sc != nil {
			c.ready <- sc
		}
	})
	select {
	case sc := <-c.ready:
		c.release(p, sc)
		t.Fatal("got a server, want a failure")
	case err := <-c.failed:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("neither a server nor a failure")
	}
	return nil
}

// send writes a simple query to sc (on the loop) without waiting.
func (c *testClient) send(sc *Server, sql string) {
	c.e.onLoop(func() {
		c.res = result{allX: true}
		if _, err := sc.Write(codec.AppendQuery(nil, sql)); err != nil {
			c.done <- result{netErr: err}
		}
	})
}

func (c *testClient) wait(t testing.TB) result {
	t.Helper()
	select {
	case r := <-c.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("query did not finish")
	}
	return result{}
}

// query runs sql on sc and returns its result.
func (c *testClient) query(t testing.TB, sc *Server, sql string) result {
	t.Helper()
	c.send(sc, sql)
	return c.wait(t)
}

// one runs sql, which must succeed, and returns its first column of its first row.
func (c *testClient) one(t testing.TB, sc *Server, sql string) string {
	t.Helper()
	r := c.query(t, sc, sql)
	if r.err != nil || r.netErr != nil {
		t.Fatalf("%s: %v %v", sql, r.err, r.netErr)
	}
	if len(r.rows) == 0 {
		t.Fatalf("%s: no rows", sql)
	}
	return r.rows[0]
}

func (c *testClient) release(p *Pool, sc *Server) {
	c.e.onLoop(func() { p.Release(sc) })
}

// loginAs logs in a server of user's pool and returns current_user through it.
func loginAs(t testing.TB, e *engine, user string, creds *Credentials) (string, error) {
	t.Helper()
	p := e.pool(t, user, "postgres")
	if creds != nil {
		p.SetCredentials(*creds)
	}
	c := newClient(e)
	e.onLoop(func() {
		if sc := p.Acquire(e.l, c, ""); sc != nil {
			c.ready <- sc
		}
	})
	select {
	case sc := <-c.ready:
		defer c.release(p, sc)
		return c.one(t, sc, "SELECT current_user"), nil
	case err := <-c.failed:
		return "", err
	case <-time.After(30 * time.Second):
		t.Fatal("login did not finish")
	}
	return "", nil
}

// superExec runs statements on inst as its superuser over the Unix socket.
func superExec(t testing.TB, host string, port int, user string, sqls ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgconn.ParseConfig("sslmode=disable dbname=postgres")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.User = host, uint16(port), user
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out []string
	for _, s := range sqls {
		rs, err := conn.Exec(ctx, s).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		for _, r := range rs {
			for _, row := range r.Rows {
				out = append(out, string(row[0]))
			}
		}
	}
	return out
}

func asPgError(err error) *PgError {
	var pe *PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}
