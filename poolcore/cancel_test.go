package poolcore

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
)

// cancelRelay stands between belay and Postgres for CancelRequests (fault
// injection: it delays them). Each request is held until gate is closed,
// then forwarded, and its connection closed once Postgres closed its own.
// With forward false, requests are held for ever (an unanswered cancel).
type cancelRelay struct {
	ln      net.Listener
	got     chan struct{}
	gate    chan struct{}
	done    chan struct{}
	target  string
	forward bool
}

func newCancelRelay(t *testing.T, target string, forward bool) *cancelRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cancelRelay{ln: ln, got: make(chan struct{}, 8), gate: make(chan struct{}),
		done: make(chan struct{}, 8), target: target, forward: forward}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *cancelRelay) serve(c net.Conn) {
	defer c.Close()
	req := make([]byte, 16)
	if _, err := io.ReadFull(c, req); err != nil {
		return
	}
	r.got <- struct{}{}
	if !r.forward {
		_, _ = io.Copy(io.Discard, c) // until belay gives up
		return
	}
	<-r.gate
	pg, err := net.Dial("tcp", r.target)
	if err == nil {
		_, _ = pg.Write(req)
		_, _ = io.Copy(io.Discard, pg) // Postgres closes once it signalled the backend
		_ = pg.Close()
	}
	r.done <- struct{}{}
}

func (e *engine) stats(p *Pool) (s Stats) {
	e.onLoop(func() { s = p.Stats() })
	return s
}

// TestLateCancelHoldsServer: a server released while a cancel of its query
// is still on its way is handed to nobody until the cancel finished, so the
// cancel cannot hit the next client's query (pgbouncer issue #245).
func TestLateCancelHoldsServer(t *testing.T) {
	pg := pgtest.Shared(t)
	relay := newCancelRelay(t, pg.Addr(), true)
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1})
	e.m.cancelAddr = relay.ln.Addr().String()
	p := e.pool(t, pg.Superuser, "postgres")

	c1, c2 := newClient(e), newClient(e)
	sc := c1.acquire(t, p, 30*time.Second)
	pid := sc.PID
	c1.send(sc, "SELECT pg_sleep(0.3)")
	e.onLoop(sc.Cancel)
	<-relay.got // the cancel is in flight, held by the relay
	if got := c2.acquire(t, p, 50*time.Millisecond); got != nil {
		t.Fatal("the second client got a server from a full pool")
	}
	if r := c1.wait(t); r.err != nil || r.netErr != nil {
		t.Fatalf("query: %v %v (the cancel was not forwarded yet)", r.err, r.netErr)
	}
	c1.release(p, sc)
	if s := e.stats(p); s.CancelWait != 1 || s.Idle != 0 || s.Waiting != 1 {
		t.Fatalf("after release: %+v, want the server in cancel wait and the client waiting", s)
	}
	select {
	case <-c2.ready:
		t.Fatal("the server was handed to a waiter while its cancel was in flight")
	case <-time.After(300 * time.Millisecond):
	}

	close(relay.gate) // Postgres gets the cancel now, while the backend is idle
	<-relay.done
	var sc2 *Server
	select {
	case sc2 = <-c2.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the server after the cancel finished")
	}
	if sc2.PID != pid {
		t.Fatalf("waiter got server %d, want the released %d", sc2.PID, pid)
	}
	if s := e.stats(p); s.CancelWait != 0 {
		t.Fatalf("stats %+v", s)
	}
	if r := c2.query(t, sc2, "SELECT pg_sleep(0.3)"); r.err != nil || r.netErr != nil {
		t.Fatalf("the next client's query: %v %v", r.err, r.netErr)
	}
	c2.release(p, sc2)
	if s := e.stats(p); s.Idle != 1 || s.Open != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCancelCancels: a cancel reaches the running query, and the server
// serves the next client afterwards.
func TestCancelCancels(t *testing.T) {
	pg := pgtest.Shared(t)
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1})
	p := e.pool(t, pg.Superuser, "postgres")
	c := newClient(e)
	sc := c.acquire(t, p, 30*time.Second)
	c.send(sc, "SELECT pg_sleep(30)")
	time.Sleep(100 * time.Millisecond)
	e.onLoop(sc.Cancel)
	if r := c.wait(t); r.err == nil || r.err.Code != "57014" {
		t.Fatalf("got %+v, want 57014", r)
	}
	c.release(p, sc)
	sc2 := c.acquire(t, p, 10*time.Second)
	if sc2 != sc {
		t.Fatal("a server whose cancel finished was not reused")
	}
	if got := c.one(t, sc2, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
	c.release(p, sc2)
}

// TestUnansweredCancelClosesServer: a cancel whose connection Postgres never
// closed (timeout) may still land; the server is closed instead of reused.
func TestUnansweredCancelClosesServer(t *testing.T) {
	pg := pgtest.Shared(t)
	relay := newCancelRelay(t, pg.Addr(), false)
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1, ConnectTimeout: time.Second})
	e.m.cancelAddr = relay.ln.Addr().String()
	p := e.pool(t, pg.Superuser, "postgres")
	c1, c2 := newClient(e), newClient(e)
	sc := c1.acquire(t, p, 30*time.Second)
	c1.send(sc, "SELECT 1")
	e.onLoop(sc.Cancel)
	<-relay.got
	c1.wait(t)
	c1.release(p, sc)
	if got := c2.acquire(t, p, 50*time.Millisecond); got != nil {
		t.Fatal("got a server while the cancel was in flight")
	}
	var sc2 *Server
	select {
	case sc2 = <-c2.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no server after the cancel timed out")
	}
	if sc2 == sc || sc2.PID == sc.PID {
		t.Fatal("the server of an unanswered cancel was reused")
	}
	if got := c2.one(t, sc2, "SELECT 1"); got != "1" {
		t.Fatal(got)
	}
	c2.release(p, sc2)
}

func TestQueryWaitTimeout(t *testing.T) {
	pg := pgtest.Shared(t)
	const qwt = 500 * time.Millisecond
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1, QueryWaitTimeout: qwt})
	p := e.pool(t, pg.Superuser, "postgres")
	c1, c2, c3 := newClient(e), newClient(e), newClient(e)
	sc := c1.acquire(t, p, 30*time.Second)
	start := time.Now()
	if c2.acquire(t, p, 0) != nil {
		t.Fatal("got a server from a full pool")
	}
	time.Sleep(300 * time.Millisecond)
	if c3.acquire(t, p, 0) != nil {
		t.Fatal("got a server from a full pool")
	}
	var err error
	select {
	case err = <-c2.failed:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was never failed")
	}
	waited := time.Since(start)
	if !errors.Is(err, ErrQueryWaitTimeout) {
		t.Fatalf("err = %v", err)
	}
	if waited < qwt || waited > qwt+time.Second {
		t.Fatalf("failed after %v, want about %v", waited, qwt)
	}
	// c3 came later: still waiting, and it gets the server when c1 is done.
	if s := e.stats(p); s.Waiting != 1 {
		t.Fatalf("stats %+v", s)
	}
	c1.release(p, sc)
	select {
	case got := <-c3.ready:
		c3.release(p, got)
	case err := <-c3.failed:
		t.Fatalf("c3: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("c3 never got the server")
	}
	if s := e.stats(p); s.Waiting != 0 || s.Idle != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSlowCancelFreesTheSlot: a server whose cancel Postgres is slow to
// take (the relay never forwards it) is not held from the pool's clients
// for longer than cancelHoldMax: it is closed, and a waiter gets a server
// logged in in its slot.
func TestSlowCancelFreesTheSlot(t *testing.T) {
	pg := pgtest.Shared(t)
	relay := newCancelRelay(t, pg.Addr(), false)
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 1, ConnectTimeout: 30 * time.Second})
	e.m.cancelAddr = relay.ln.Addr().String()
	p := e.pool(t, pg.Superuser, "postgres")

	c1, c2 := newClient(e), newClient(e)
	sc := c1.acquire(t, p, 30*time.Second)
	pid := sc.PID
	c1.send(sc, "SELECT 1")
	e.onLoop(sc.Cancel)
	<-relay.got
	if r := c1.wait(t); r.err != nil || r.netErr != nil {
		t.Fatalf("query: %v %v", r.err, r.netErr)
	}
	c1.release(p, sc)
	start := time.Now()
	sc2 := c2.acquire(t, p, 10*time.Second)
	if sc2 == nil {
		t.Fatal("the waiter got no server")
	}
	waited := time.Since(start)
	if sc2.PID == pid {
		t.Fatal("the waiter got the server whose cancel is still in flight")
	}
	if waited < cancelHoldMax/2 {
		t.Fatalf("the slot was freed after %v, before the hold", waited)
	}
	t.Logf("a new server after %v", waited.Round(time.Millisecond))
	c2.release(p, sc2)
}
