package ha

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgcluster"
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
	if h.InRecovery || h.LSN == 0 || h.Timeline != 1 {
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

// TestCheckerTimeline: a streaming standby's check gives the timeline its
// receiver streams, the primary's; after a promotion the promoted node's
// is the next one.
func TestCheckerTimeline(t *testing.T) {
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 1})
	pri, rep := cl.Primary(), cl.Replicas()[0]
	c := NewChecker(CheckerOptions{Interval: 50 * time.Millisecond, Dial: dialSuperuser})
	defer c.Stop()
	c.Update(Build("t", 0, map[string]ShardRecord{"0": {Term: 1, Primary: pri.Name}},
		map[string]NodeRecord{pri.Name: {Shard: "0", Addr: pri.Addr()}, rep.Name: {Shard: "0", Addr: rep.Addr()}}))
	ph, rh := c.Health(pri.Name), c.Health(rep.Name)
	eventuallyHealth(t, "both timelines", func() bool {
		p, r := ph.Current(), rh.Current()
		return p != nil && r != nil && p.Up && r.Up && p.Timeline == 1 && r.Timeline == 1 && r.InRecovery
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := dialSuperuser(ctx, rep.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	eventuallyHealth(t, "the promoted node's new timeline", func() bool {
		r := rh.Current()
		return r != nil && r.Up && !r.InRecovery && r.Timeline == 2
	})
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
