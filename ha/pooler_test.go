package ha

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/etcdtest"
)

// TestViaPoolers: addresses become the poolers'; a lapsed registration
// keeps its pooler's last address; a node that never had a pooler is left
// out, and a primary left out leaves the shard without one.
func TestViaPoolers(t *testing.T) {
	top := func(poolers map[string]PoolerRecord) *Topology {
		tp := Build("c", 1, map[string]ShardRecord{"0": {Term: 3, Primary: "a"}}, map[string]NodeRecord{
			"a": {Shard: "0", Addr: "pg-a:5432"}, "b": {Shard: "0", Addr: "pg-b:5432"}})
		tp.setPoolers(poolers)
		return tp
	}
	last := map[string]string{}
	v := ViaPoolers(top(map[string]PoolerRecord{"b": {Addr: "pool-b:6432"}}), last)
	s := v.Shards[0]
	if s.Primary != "" || len(s.Nodes) != 1 || s.Nodes[0].Name != "b" || s.Nodes[0].Addr != "pool-b:6432" || s.Term != 3 {
		t.Fatalf("a primary without a pooler: %+v", s)
	}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	v = ViaPoolers(top(map[string]PoolerRecord{"a": {Addr: "pool-a:6432"}}), last)
	s = v.Shards[0]
	if s.Primary != "a" || len(s.Nodes) != 2 || s.Nodes[0].Addr != "pool-a:6432" || s.Nodes[1].Addr != "pool-b:6432" {
		t.Fatalf("b's lapsed pooler, a's new one: %+v", s)
	}
	if v.Node("a").Role != RolePrimary {
		t.Fatal("a lost its role")
	}
}

// newTestStore is a store of cluster "c" in an etcd of its own, and a
// context bounding the test.
func newTestStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	s, err := NewStore(etcdtest.Client(t, etcdtest.New(t)), "c")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return s, ctx
}

// TestRegisterPooler: the registration shows in the topology while the
// pooler runs, and goes at once when it stops.
func TestRegisterPooler(t *testing.T) {
	s, ctx := newTestStore(t)
	if _, err := s.PutNode(ctx, "a", NodeRecord{Shard: "0", Addr: "pg-a:5432"}); err != nil {
		t.Fatal(err)
	}
	stop, err := s.RegisterPooler(ctx, "a", PoolerRecord{Addr: "pool-a:6432"}, 2, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.Node("a").Pooler; got != "pool-a:6432" {
		t.Fatalf("pooler %q registered", got)
	}
	time.Sleep(3 * time.Second) // past the lease's TTL: kept alive
	if tp, err = s.Load(ctx); err != nil || tp.Node("a").Pooler == "" {
		t.Fatalf("the registration lapsed while the pooler runs: %v", err)
	}
	stop()
	if tp, err = s.Load(ctx); err != nil || tp.Node("a").Pooler != "" {
		t.Fatalf("the registration outlived its pooler: %v", err)
	}
}

// TestMustFence: a node fenced only while it runs as a primary the
// topology does not name, and surely only when the named primary is on a
// timeline at least as new as its own; one on a newer timeline is a
// promotion not yet published.
func TestMustFence(t *testing.T) {
	top := func(primary string) *Topology {
		return Build("c", 1, map[string]ShardRecord{"0": {Term: 2, Primary: primary}}, map[string]NodeRecord{
			"a": {Shard: "0", Addr: "a:1"}, "b": {Shard: "0", Addr: "b:1"}})
	}
	for _, c := range []struct {
		primary         string
		node            string
		inRecovery      bool
		tli, primaryTLI uint32
		fence, sure     bool
	}{
		{"b", "a", false, 1, 2, true, true},   // a stale primary, its successor on a newer timeline
		{"b", "a", false, 2, 2, true, true},   // a stale primary of the same timeline (a split brain)
		{"b", "a", false, 3, 2, false, false}, // promoted after b: a failover not yet published
		{"b", "a", false, 2, 0, true, false},  // b cannot be asked: the caller decides
		{"b", "a", true, 1, 2, false, false},  // rejoined as a standby
		{"a", "a", false, 1, 1, false, false}, // the primary
		{"", "a", false, 1, 0, false, false},  // held: its transactions may finish
		{"b", "x", false, 1, 2, false, false}, // not in the topology
	} {
		fence, sure, why := MustFence(top(c.primary), c.node, c.inRecovery, c.tli, c.primaryTLI)
		if fence != c.fence || sure != c.sure {
			t.Errorf("primary %q, node %s, in recovery %v, timelines %d and %d: fence %v sure %v (%s), want %v %v",
				c.primary, c.node, c.inRecovery, c.tli, c.primaryTLI, fence, sure, why, c.fence, c.sure)
		}
	}
}

// TestFenceGuard: a sure verdict fences at once; unsure ones only once they
// lasted the grace, and a verdict of no fence in between starts it again;
// a fenced node stays fenced through unsure verdicts and is unfenced by
// the first verdict of no fence.
func TestFenceGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	g := FenceGuard{Grace: 10 * time.Second}
	steps := []struct {
		at          time.Duration
		fence, sure bool
		want        bool
	}{
		{0, true, false, false},
		{9 * time.Second, true, false, false},
		{9500 * time.Millisecond, false, false, false}, // published: the run of unsure verdicts ends
		{10 * time.Second, true, false, false},         // a new run starts here
		{19 * time.Second, true, false, false},
		{20 * time.Second, true, false, true}, // lasted the grace
		{21 * time.Second, false, false, false},
		{22 * time.Second, true, true, true},  // sure: at once
		{23 * time.Second, true, false, true}, // still fenced though unsure
		{24 * time.Second, false, false, false},
	}
	for i, s := range steps {
		if got := g.Step(t0.Add(s.at), s.fence, s.sure); got != s.want {
			t.Fatalf("step %d at %v (fence %v, sure %v): fenced %v, want %v", i, s.at, s.fence, s.sure, got, s.want)
		}
	}
}

// TestPoolerLoss: a primary's pooler seen, then lapsed, is lost, with a
// standby that has a pooler to move to; a pooler never seen is not.
func TestPoolerLoss(t *testing.T) {
	top := func(poolers map[string]PoolerRecord) *Topology {
		tp := Build("c", 1, map[string]ShardRecord{"0": {Term: 1, Primary: "a"}}, map[string]NodeRecord{
			"a": {Shard: "0", Addr: "a:1"}, "b": {Shard: "0", Addr: "b:1"}, "c": {Shard: "0", Addr: "c:1"}})
		tp.setPoolers(poolers)
		return tp
	}
	var p PoolerLoss
	if l := p.Step(top(nil)); len(l) != 0 {
		t.Fatalf("poolers never seen taken as lost: %v", l)
	}
	if l := p.Step(top(map[string]PoolerRecord{"a": {Addr: "pa"}, "c": {Addr: "pc"}})); len(l) != 0 {
		t.Fatalf("registered poolers lost: %v", l)
	}
	if l := p.Step(top(map[string]PoolerRecord{"b": {Addr: "pb"}})); len(l) != 1 || l[0] != (PoolerLost{"0", "a", "b"}) {
		t.Fatalf("the primary's lapsed pooler: %v", l)
	}
	moved := Build("c", 2, map[string]ShardRecord{"0": {Term: 2, Primary: "b"}}, map[string]NodeRecord{
		"a": {Shard: "0", Addr: "a:1"}, "b": {Shard: "0", Addr: "b:1"}})
	moved.setPoolers(map[string]PoolerRecord{"b": {Addr: "pb"}})
	if l := p.Step(moved); len(l) != 0 {
		t.Fatalf("an old primary's lapsed pooler after the move: %v", l)
	}
}

// TestRegisterGateways: gateways take distinct peer ids, the lowest free
// first, and the watch follows their addresses.
func TestRegisterGateways(t *testing.T) {
	s, ctx := newTestStore(t)
	peers, err := s.WatchGateways(ctx, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer peers.Stop()
	id1, stop1, err := s.RegisterGateway(ctx, GatewayRecord{Addr: "g1:6432"}, 2, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	id2, stop2, err := s.RegisterGateway(ctx, GatewayRecord{Addr: "g2:6432"}, 2, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if id1 != 1 || id2 != 2 {
		t.Fatalf("peer ids %d and %d, want 1 and 2", id1, id2)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	waitFor("the watch to see both", func() bool {
		a1, ok1 := peers.Addr(1)
		a2, ok2 := peers.Addr(2)
		return ok1 && ok2 && a1 == "g1:6432" && a2 == "g2:6432"
	})
	stop1()
	waitFor("the watch to see the first go", func() bool { _, ok := peers.Addr(1); return !ok })
	id3, stop3, err := s.RegisterGateway(ctx, GatewayRecord{Addr: "g3:6432"}, 2, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer stop3()
	if id3 != 1 {
		t.Fatalf("peer id %d after 1 was freed", id3)
	}
}
