package ha

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestChecker checks a real Postgres and an address nobody answers on: the
// first is up with its WAL position, the second down within the timeout; a
// suspected node is down until its next check answers; Stop ends every
// check.
func TestChecker(t *testing.T) {
	pg := pgtest.New(t, pginstance.Options{})
	dead, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	c := NewChecker(CheckerOptions{Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond,
		Dial: func(ctx context.Context, addr string) (*pgx.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			return pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable")
		}})
	defer c.Stop()
	top := Build("t", 0, map[string]ShardRecord{"0": {Term: 1, Primary: "p"}},
		map[string]NodeRecord{"p": {Shard: "0", Addr: pg.Addr()}, "r": {Shard: "0", Addr: dead.Addr().String()}})
	c.Update(top)
	p, r := c.Health("p"), c.Health("r")
	eventuallyHealth(t, "the primary's first check", func() bool { h := p.Current(); return h != nil && h.Up })
	eventuallyHealth(t, "the dead node's first check", func() bool { return r.Current() != nil })
	if h := r.Current(); h.Up || h.Err == "" {
		t.Fatalf("a node that never answers: %+v", h)
	}
	h := p.Current()
	if h.InRecovery || h.LSN == 0 {
		t.Fatalf("primary: %+v", h)
	}
	p.Suspect("login failed")
	if p.Current().Up {
		t.Fatal("suspected but up")
	}
	eventuallyHealth(t, "the primary to be up again", func() bool { return p.Current().Up })
	// A node removed from the topology is no longer checked.
	c.Update(Build("t", 0, map[string]ShardRecord{"0": {Term: 1, Primary: "p"}}, map[string]NodeRecord{"p": {Shard: "0", Addr: pg.Addr()}}))
	if c.Health("r") != nil {
		t.Fatal("a removed node is still checked")
	}
}

func eventuallyHealth(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
