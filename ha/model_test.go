package ha

import (
	"fmt"
	"testing"
)

// TestBuildManyShards: every node lands in its own shard, whatever the
// number of shards (a shard added after another must not move it).
func TestBuildManyShards(t *testing.T) {
	shards := map[string]ShardRecord{}
	nodes := map[string]NodeRecord{}
	for s := range 9 {
		name := fmt.Sprint(s)
		shards[name] = ShardRecord{Term: uint64(s + 1), Primary: "n" + name + "a"}
		for _, suffix := range []string{"a", "b"} {
			nodes["n"+name+suffix] = NodeRecord{Shard: name, Addr: "127.0.0.1:1"}
		}
	}
	nodes["orphan"] = NodeRecord{Shard: "x", Addr: "127.0.0.1:2"} // a shard without a record
	top := Build("c", 1, shards, nodes)
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(top.Shards) != 10 {
		t.Fatalf("%d shards", len(top.Shards))
	}
	for _, s := range top.Shards[:9] {
		if len(s.Nodes) != 2 || s.Nodes[0].Name != "n"+s.Name+"a" || s.Nodes[0].Role != RolePrimary ||
			s.Nodes[1].Name != "n"+s.Name+"b" || s.Nodes[1].Role != RoleReplica || s.Term != shards[s.Name].Term {
			t.Errorf("shard %s: %+v", s.Name, s)
		}
	}
	if x := top.Shard("x"); x == nil || x.Term != 0 || x.Primary != "" || len(x.Nodes) != 1 || x.Nodes[0].Role != RoleReplica {
		t.Errorf("shard x: %+v", x)
	}
}
