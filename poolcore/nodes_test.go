package poolcore

import (
	"strconv"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
)

// TestNodes: a Manager's pools log in to the node their key names; a node
// pointed at another address serves with new servers only, and a removed
// node gets no pool and keeps no server.
func TestNodes(t *testing.T) {
	pg := pgtest.Shared(t)
	e := startEngine(t, Options{Server: pg.Addr(), PoolSize: 2})
	if err := e.m.SetNode("r1", pg.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Pool(Key{Node: "nope", Database: "postgres", User: pg.Superuser}); err == nil {
		t.Fatal("a pool on a node that does not exist")
	}
	p, err := e.m.Pool(Key{Node: "r1", Database: "postgres", User: pg.Superuser})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(e)
	sc := c.acquire(t, p, 10*time.Second)
	pid := sc.PID
	c.release(p, sc)
	if got, ok := e.m.NodeStatsOf("r1"); !ok || got.Open != 1 {
		t.Fatalf("node r1: %+v %v", got, ok)
	}
	// The same server again while the node stays where it is.
	sc = c.acquire(t, p, 10*time.Second)
	if sc.PID != pid {
		t.Fatalf("a new server %d, want the idle %d", sc.PID, pid)
	}
	// Pointed elsewhere (the Unix socket of the same Postgres), the node
	// closes the server it had once released.
	if err := e.m.SetNode("r1", pg.SocketDir+":"+strconv.Itoa(pg.Port)); err != nil {
		t.Fatal(err)
	}
	c.release(p, sc)
	sc = c.acquire(t, p, 10*time.Second)
	if sc.PID == pid || sc.addr != pg.SocketDir+":"+strconv.Itoa(pg.Port) {
		t.Fatalf("after the move: server %d at %s, want a new one at the socket", sc.PID, sc.addr)
	}
	c.release(p, sc)
	e.m.RemoveNode("r1")
	if _, err := e.m.Pool(Key{Node: "r1", Database: "postgres", User: pg.Superuser}); err == nil {
		t.Fatal("a pool on a removed node")
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.stats(p).Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the removed node keeps servers: %+v", e.stats(p))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
