package ha

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStore is a store of cluster "c" on an etcd of t's own.
func newStore(t *testing.T) (*Store, *clientv3.Client) {
	t.Helper()
	cli := etcdtest.Client(t, etcdtest.New(t))
	s, err := NewStore(cli, "c")
	if err != nil {
		t.Fatal(err)
	}
	return s, cli
}

// register writes shard 0 (term 1, primary pg0) and nodes pg0..pg(n-1).
func register(t *testing.T, ctx context.Context, s *Store, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.PutNode(ctx, fmt.Sprintf("pg%d", i), NodeRecord{Shard: "0", Addr: fmt.Sprintf("127.0.0.1:%d", 5000+i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, created, err := s.CreateShard(ctx, "0", ShardRecord{Term: 1, Primary: "pg0"}); err != nil || !created {
		t.Fatalf("CreateShard: created %v, %v", created, err)
	}
}

func TestStoreRegister(t *testing.T) {
	ctx := testCtx(t)
	s, cli := newStore(t)
	register(t, ctx, s, 2)

	// A second CreateShard leaves the first record.
	got, created, err := s.CreateShard(ctx, "0", ShardRecord{Term: 1, Primary: "pg1"})
	if err != nil || created || got != (ShardRecord{Term: 1, Primary: "pg0"}) {
		t.Errorf("CreateShard of an existing shard = %v, %v, %v; want the existing record, not created", got, created, err)
	}
	top, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sh := top.Shard("0")
	if top.Cluster != "c" || top.Revision == 0 || sh == nil || sh.Term != 1 || sh.Primary != "pg0" || len(sh.Nodes) != 2 ||
		sh.Nodes[0] != (Node{Name: "pg0", Shard: "0", Role: RolePrimary, Addr: "127.0.0.1:5000", State: StateUp}) ||
		sh.Nodes[1] != (Node{Name: "pg1", Shard: "0", Role: RoleReplica, Addr: "127.0.0.1:5001", State: StateUp}) {
		t.Fatalf("loaded %+v", top)
	}
	// The values are those of doc.go.
	resp, err := cli.Get(ctx, "/belay/c/nodes/pg1")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"shard":"0","addr":"127.0.0.1:5001","state":"up"}` {
		t.Errorf("/belay/c/nodes/pg1: %v %v", resp, err)
	}
	if resp, err = cli.Get(ctx, "/belay/c/shards/0"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"term":1,"primary":"pg0"}` {
		t.Errorf("/belay/c/shards/0: %v %v", resp, err)
	}

	// Update.
	if _, err := s.PutNode(ctx, "pg1", NodeRecord{Shard: "0", Addr: "127.0.0.1:6001", State: StateDown}); err != nil {
		t.Fatal(err)
	}
	if top, err = s.Load(ctx); err != nil || top.Node("pg1").Addr != "127.0.0.1:6001" || top.Node("pg1").State != StateDown {
		t.Errorf("after the update: %+v, %v", top.Node("pg1"), err)
	}

	// Remove: never the primary.
	if err := s.RemoveNode(ctx, "pg0"); !errors.Is(err, ErrIsPrimary) {
		t.Errorf("removing the primary: %v, want ErrIsPrimary", err)
	}
	if err := s.RemoveNode(ctx, "pg1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(ctx, "pg1"); err != nil {
		t.Errorf("removing a node twice: %v", err)
	}
	if top, err = s.Load(ctx); err != nil || top.Node("pg1") != nil || top.Node("pg0") == nil {
		t.Errorf("after removing pg1: %+v, %v", top, err)
	}

	// Bad input is refused before it reaches etcd.
	for _, bad := range []NodeRecord{{Shard: "0"}, {Addr: "a"}, {Shard: "0", Addr: "a", State: "sideways"}, {Shard: "a/b", Addr: "a"}} {
		if _, err := s.PutNode(ctx, "pg5", bad); err == nil {
			t.Errorf("PutNode(%+v) accepted", bad)
		}
	}
	if _, err := s.PutNode(ctx, "a/b", NodeRecord{Shard: "0", Addr: "a"}); err == nil {
		t.Error("a node named a/b accepted")
	}
	if _, _, err := s.CreateShard(ctx, "1", ShardRecord{Primary: "pg0"}); err == nil {
		t.Error("a shard at term 0 accepted")
	}
	if _, err := NewStore(cli, ""); err == nil {
		t.Error("a cluster without a name accepted")
	}
}

// TestSetPrimaryCAS: the primary changes only from the current term; of
// several deciders acting on one term at once, exactly one wins.
func TestSetPrimaryCAS(t *testing.T) {
	ctx := testCtx(t)
	s, _ := newStore(t)
	register(t, ctx, s, 6)

	got, err := s.SetPrimary(ctx, "0", 1, "pg1")
	if err != nil || got != (ShardRecord{Term: 2, Primary: "pg1"}) {
		t.Fatalf("SetPrimary(0, 1, pg1) = %v, %v", got, err)
	}
	if _, err := s.SetPrimary(ctx, "0", 1, "pg2"); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("SetPrimary on a stale term: %v, want ErrStaleTerm", err)
	}
	if _, err := s.SetPrimary(ctx, "0", 2, "pg9"); !errors.Is(err, ErrNoNode) {
		t.Errorf("SetPrimary to a node without a record: %v, want ErrNoNode", err)
	}
	if _, err := s.SetPrimary(ctx, "1", 1, "pg0"); !errors.Is(err, ErrNoShard) {
		t.Errorf("SetPrimary of a shard without a record: %v, want ErrNoShard", err)
	}
	top, err := s.Load(ctx)
	if err != nil || top.Shard("0").Term != 2 || top.Shard("0").Primary != "pg1" || top.Node("pg1").Role != RolePrimary || top.Node("pg0").Role != RoleReplica {
		t.Fatalf("after the refusals: %+v, %v", top, err)
	}

	// Five deciders, one term.
	var wg sync.WaitGroup
	results := make([]error, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.SetPrimary(ctx, "0", 2, fmt.Sprintf("pg%d", i+1))
		}()
	}
	wg.Wait()
	winner := ""
	for i, err := range results {
		switch {
		case err == nil:
			if winner != "" {
				t.Errorf("both %s and pg%d won term 2", winner, i+1)
			}
			winner = fmt.Sprintf("pg%d", i+1)
		case !errors.Is(err, ErrStaleTerm):
			t.Errorf("pg%d: %v, want ErrStaleTerm", i+1, err)
		}
	}
	top, err = s.Load(ctx)
	if err != nil || winner == "" || top.Shard("0").Term != 3 || top.Shard("0").Primary != winner {
		t.Errorf("after the race: winner %q, shard %+v, %v", winner, top.Shard("0"), err)
	}
}

// TestSetPrimaryRepairs: SetPrimary decides on the records as they are,
// so it can repair a shard whose primary lost its record.
func TestSetPrimaryRepairs(t *testing.T) {
	ctx := testCtx(t)
	s, cli := newStore(t)
	register(t, ctx, s, 2)
	if _, err := cli.Delete(ctx, NodeKey("c", "pg0")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err == nil {
		t.Fatal("Load accepted a shard whose primary has no record")
	}
	if _, err := s.SetPrimary(ctx, "0", 1, "pg1"); err != nil {
		t.Fatal(err)
	}
	if top, err := s.Load(ctx); err != nil || top.Shard("0").Primary != "pg1" {
		t.Errorf("after the repair: %+v, %v", top, err)
	}
}
