package poolcore

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// fakeLoop stands in for a gnet event loop where no I/O happens.
type fakeLoop struct{ id int }

func (*fakeLoop) Register(context.Context, net.Addr) (<-chan gnet.RegisteredResult, error) {
	return nil, nil
}
func (*fakeLoop) Enroll(context.Context, net.Conn) (<-chan gnet.RegisteredResult, error) {
	return nil, nil
}
func (*fakeLoop) Execute(context.Context, gnet.Runnable) error                 { return nil }
func (*fakeLoop) Schedule(context.Context, gnet.Runnable, time.Duration) error { return nil }
func (*fakeLoop) Close(gnet.Conn) error                                        { return nil }

// fakeConn is a server connection that is never written to here.
type fakeConn struct{ gnet.Conn }

type fakeClient struct{ got *Server }

func (c *fakeClient) ServerReady(sc *Server)                       { c.got = sc }
func (c *fakeClient) ServerFailed(error)                           {}
func (c *fakeClient) ServerTraffic(*Server, gnet.Conn) gnet.Action { return gnet.None }
func (c *fakeClient) ServerLost(*Server, error)                    {}

func testPool(t testing.TB, loops, size int) (*Pool, []*Loop) {
	m := NewManager(Options{Server: "127.0.0.1:1", PoolSize: size, NumLoops: loops})
	ls := make([]*Loop, loops)
	for i := range ls {
		ls[i] = m.LoopFor(&fakeLoop{id: i})
	}
	p, err := m.Pool(Key{Database: "db", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	return p, ls
}

// idleServer puts a logged-in server on l's idle stack, as arrived would.
func idleServer(p *Pool, l *Loop) *Server {
	p.open.Add(1)
	p.perLoop[l.idx].held.Add(1)
	sc := &Server{pool: p, loop: l, conn: fakeConn{}, TxStatus: 'I', parkedFD: -1, born: time.Now()}
	l.servers[sc] = struct{}{}
	p.finishRelease(sc)
	return sc
}

func TestAcquireReleaseSameLoop(t *testing.T) {
	p, ls := testPool(t, 2, 2)
	sc := idleServer(p, ls[0])
	c := &fakeClient{}
	got := p.Acquire(ls[0], c, "")
	if got != sc {
		t.Fatalf("Acquire = %p, want the idle server %p", got, sc)
	}
	if s := p.Stats(); s.Active != 1 || s.Idle != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A second client of the same loop waits (pool of 2: it dials, but the
	// release comes first and it gets this server).
	c2 := &fakeClient{}
	p.open.Store(2) // budget used up: no dial
	if p.Acquire(ls[0], c2, "") != nil {
		t.Fatal("got a server with none idle")
	}
	p.Release(sc)
	if c2.got != sc {
		t.Fatal("the waiter did not get the released server")
	}
	p.Release(sc)
	if s := p.Stats(); s.Active != 0 || s.Idle != 1 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAcquirePrefersMatchingSignature(t *testing.T) {
	p, ls := testPool(t, 1, 3)
	a := idleServer(p, ls[0])
	a.AppliedSig = "SET a"
	b := idleServer(p, ls[0])
	b.AppliedSig = "SET b"
	if got := p.Acquire(ls[0], &fakeClient{}, "SET a"); got != a {
		t.Fatal("did not prefer the server with the client's parameters applied")
	}
}

// TestPickLoop is the slot-placement rule as a table: counters in, decision out.
func TestPickLoop(t *testing.T) {
	type loopState struct {
		clients, held, nWait, dialing int32
		waitMs                        int64 // age of the oldest waiter; 0 none
	}
	cases := []struct {
		name  string
		size  int32
		open  int32
		loops [2]loopState
		want  int
	}{
		{"nobody waits: idle", 10, 10, [2]loopState{{clients: 5, held: 5}, {clients: 5, held: 5}}, -1},
		{"local waiter", 10, 10, [2]loopState{{clients: 5, held: 5, nWait: 1, waitMs: 1}, {clients: 5, held: 5}}, 0},
		{"other waits, pool not full: it dials its own", 10, 8, [2]loopState{{clients: 5, held: 4}, {clients: 5, held: 4, nWait: 3, waitMs: 1}}, -1},
		{"balanced: stays", 10, 10, [2]loopState{{clients: 5, held: 5, nWait: 2, waitMs: 2}, {clients: 5, held: 5, nWait: 3, waitMs: 3}}, 0},
		{"off by one: stays (a move costs a login)", 10, 10, [2]loopState{{clients: 5, held: 6, nWait: 2, waitMs: 2}, {clients: 5, held: 4, nWait: 3, waitMs: 3}}, 0},
		{"unbalanced: moves", 10, 10, [2]loopState{{clients: 5, held: 8, nWait: 2, waitMs: 2}, {clients: 5, held: 2, nWait: 3, waitMs: 3}}, 1},
		{"unbalanced, local idle: moves", 10, 10, [2]loopState{{clients: 5, held: 8}, {clients: 5, held: 2, nWait: 3, waitMs: 3}}, 1},
		{"starving other loop", 3, 3, [2]loopState{{clients: 5, held: 2, nWait: 4, waitMs: 10}, {clients: 5, held: 1, nWait: 4, waitMs: 80}}, 1},
		{"starving, but local would be left with less: stays", 2, 2, [2]loopState{{clients: 5, held: 1, nWait: 4, waitMs: 10}, {clients: 5, held: 1, nWait: 4, waitMs: 80}}, 0},
		{"starving, local idle: moves", 2, 2, [2]loopState{{clients: 5, held: 1}, {clients: 5, held: 1, nWait: 4, waitMs: 80}}, 1},
		{"starving but a login is on its way", 2, 2, [2]loopState{{clients: 5, held: 1, nWait: 4, waitMs: 10}, {clients: 5, held: 1, nWait: 4, dialing: 1, waitMs: 80}}, 0},
		{"other's waiters all have logins coming", 10, 10, [2]loopState{{clients: 5, held: 8}, {clients: 5, held: 2, nWait: 2, dialing: 2, waitMs: 100}}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := testPool(t, 2, int(c.size))
			p.open.Store(c.open)
			now := p.m.now()
			for i, s := range c.loops {
				lp := &p.perLoop[i]
				lp.clients.Store(s.clients)
				lp.held.Store(s.held)
				lp.nWait.Store(s.nWait)
				lp.dialing.Store(s.dialing)
				if s.waitMs > 0 {
					lp.headSince.Store(now - s.waitMs*int64(time.Millisecond))
				}
			}
			if got := p.pickLoop(0, p.m.now()); got != c.want {
				t.Fatalf("pickLoop(0) = %d, want %d", got, c.want)
			}
		})
	}
}

// BenchmarkAcquireReleaseLocal is the common path of transaction pooling: a
// client takes an idle server of its own loop and gives it back. It must not
// lock or allocate.
func BenchmarkAcquireReleaseLocal(b *testing.B) {
	p, ls := testPool(b, 2, 20)
	idleServer(p, ls[0])
	c := &fakeClient{}
	b.ReportAllocs()
	for b.Loop() {
		sc := p.Acquire(ls[0], c, "")
		p.Release(sc)
	}
}

// BenchmarkHandoffToWaiter is the path under load: the released server goes
// straight to the next waiter of the same loop.
func BenchmarkHandoffToWaiter(b *testing.B) {
	p, ls := testPool(b, 2, 1)
	sc := idleServer(p, ls[0])
	c1, c2 := &fakeClient{}, &fakeClient{}
	p.Acquire(ls[0], c1, "")
	b.ReportAllocs()
	for b.Loop() {
		p.Acquire(ls[0], c2, "") // waits: the pool of 1 is in use
		p.Release(sc)            // to c2
		p.Acquire(ls[0], c1, "")
		p.Release(sc) // to c1
	}
}

// TestClosedIdleServerIsNeverHandedOut: an idle server that breaks (it sent
// a FATAL, or garbage) leaves the idle stack at once.
func TestClosedIdleServerIsNeverHandedOut(t *testing.T) {
	p, ls := testPool(t, 1, 2)
	a := idleServer(p, ls[0])
	b := idleServer(p, ls[0])
	a.markClosed() // what broken() does from a's callback
	for i := 0; i < 2; i++ {
		got := p.Acquire(ls[0], &fakeClient{}, "")
		if got == a {
			t.Fatal("a broken idle server was handed out")
		}
		if i == 0 && got != b {
			t.Fatalf("Acquire = %p, want the healthy server", got)
		}
	}
}

// BenchmarkReleaseContended is a release while the node's budget is
// contended and this pool holds no more than its share: the node's lock is
// taken, the loads reported, and the allocator lets the pool keep its server.
func BenchmarkReleaseContended(b *testing.B) {
	p, ls := testPool(b, 2, 20)
	if _, err := p.m.Pool(Key{Database: "db", User: "other"}); err != nil {
		b.Fatal(err)
	}
	idleServer(p, ls[0])
	c := &fakeClient{}
	b.ReportAllocs()
	for b.Loop() {
		sc := p.Acquire(ls[0], c, "")
		p.n.contended.Store(true)
		p.Release(sc)
	}
}

// TestCommonPathTakesNoLock holds the Manager's and the node's locks while
// a client takes an idle server of its own loop, gives it back, and hands
// it to a waiter of the same loop: none of it may wait for them.
func TestCommonPathTakesNoLock(t *testing.T) {
	p, ls := testPool(t, 2, 1)
	sc := idleServer(p, ls[0])
	p.m.mu.Lock()
	p.n.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c1, c2 := &fakeClient{}, &fakeClient{}
		for range 100 {
			p.Acquire(ls[0], c1, "")
			p.Acquire(ls[0], c2, "") // waits; the pool is at its size
			p.Release(sc)            // to c2
			p.Release(sc)            // idle
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the common path waits for a lock")
	}
	p.n.mu.Unlock()
	p.m.mu.Unlock()
}
