package ha

import (
	"errors"
	"strings"
	"testing"
)

// twoShards: shard 0 (term 3, primary pg1; pg0 up, pg1 up, pg2 down),
// shard 1 (term 1, primary pg3).
func twoShards() *Topology {
	return Build("c", 10,
		map[string]ShardRecord{"0": {Term: 3, Primary: "pg1"}, "1": {Term: 1, Primary: "pg3"}},
		map[string]NodeRecord{
			"pg0": {Shard: "0", Addr: "127.0.0.1:1"},
			"pg1": {Shard: "0", Addr: "127.0.0.1:2", State: StateUp},
			"pg2": {Shard: "0", Addr: "127.0.0.1:3", State: StateDown},
			"pg3": {Shard: "1", Addr: "127.0.0.1:4"},
		})
}

func TestChangePrimary(t *testing.T) {
	for _, tc := range []struct {
		shard   string
		term    uint64
		primary string
		want    ShardRecord
		wantErr error // nil: want; else errors.Is
		errText string
	}{
		{shard: "0", term: 3, primary: "pg0", want: ShardRecord{Term: 4, Primary: "pg0"}},
		{shard: "0", term: 3, primary: "pg1", want: ShardRecord{Term: 4, Primary: "pg1"}}, // re-affirmed: a new term
		{shard: "0", term: 2, primary: "pg0", wantErr: ErrStaleTerm},
		{shard: "0", term: 4, primary: "pg0", wantErr: ErrStaleTerm},
		{shard: "0", term: 3, primary: "pg3", wantErr: ErrNoNode}, // another shard's node
		{shard: "0", term: 3, primary: "pg9", wantErr: ErrNoNode},
		{shard: "0", term: 3, primary: "pg2", errText: "is down"},
		{shard: "7", term: 1, primary: "pg0", wantErr: ErrNoShard},
	} {
		got, err := twoShards().ChangePrimary(tc.shard, tc.term, tc.primary)
		switch {
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ChangePrimary(%s, %d, %s) = %v, %v; want %v", tc.shard, tc.term, tc.primary, got, err, tc.wantErr)
			}
		case tc.errText != "":
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("ChangePrimary(%s, %d, %s) = %v, %v; want an error saying %q", tc.shard, tc.term, tc.primary, got, err, tc.errText)
			}
		case err != nil || got != tc.want:
			t.Errorf("ChangePrimary(%s, %d, %s) = %v, %v; want %v", tc.shard, tc.term, tc.primary, got, err, tc.want)
		}
	}
}

func TestCheckRemove(t *testing.T) {
	top := twoShards()
	if err := top.CheckRemove("pg1"); !errors.Is(err, ErrIsPrimary) {
		t.Errorf("removing shard 0's primary: %v, want ErrIsPrimary", err)
	}
	for _, n := range []string{"pg0", "pg2", "nobody"} {
		if err := top.CheckRemove(n); err != nil {
			t.Errorf("removing %s: %v", n, err)
		}
	}
}

func TestCheckSuccessor(t *testing.T) {
	prev := twoShards()
	back := Build("c", 11, map[string]ShardRecord{"0": {Term: 2, Primary: "pg0"}},
		map[string]NodeRecord{"pg0": {Shard: "0", Addr: "a"}})
	if err := CheckSuccessor(prev, back); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("a term going back: %v, want ErrStaleTerm", err)
	}
	fwd := Build("c", 11, map[string]ShardRecord{"0": {Term: 4, Primary: "pg0"}},
		map[string]NodeRecord{"pg0": {Shard: "0", Addr: "a"}})
	if err := CheckSuccessor(prev, fwd); err != nil {
		t.Errorf("a term going forward, shard 1 gone: %v", err)
	}
	if err := CheckSuccessor(nil, back); err != nil {
		t.Errorf("no previous snapshot: %v", err)
	}
}

func TestValidate(t *testing.T) {
	if err := twoShards().Validate(); err != nil {
		t.Fatalf("a good topology: %v", err)
	}
	for name, top := range map[string]*Topology{
		"primary not a node": Build("c", 1, map[string]ShardRecord{"0": {Term: 1, Primary: "pg9"}},
			map[string]NodeRecord{"pg0": {Shard: "0", Addr: "a"}}),
		"no address": Build("c", 1, nil, map[string]NodeRecord{"pg0": {Shard: "0"}}),
		"no shard":   Build("c", 1, nil, map[string]NodeRecord{"pg0": {Addr: "a"}}),
		"bad state":  Build("c", 1, nil, map[string]NodeRecord{"pg0": {Shard: "0", Addr: "a", State: "sideways"}}),
	} {
		if err := top.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

func TestDecodeRecords(t *testing.T) {
	kvs := map[string][]byte{
		"/belay/c/shards/0":      []byte(`{"term":2,"primary":"pg0"}`),
		"/belay/c/nodes/pg0":     []byte(`{"shard":"0","addr":"127.0.0.1:5","state":"up"}`),
		"/belay/c/schema/x":      []byte(`not json: a later version's key`),
		"/belay/c/nodes/a/b":     []byte(`deeper keys are not nodes`),
		"/belay/other/nodes/pg1": []byte(`{"shard":"0","addr":"x"}`),
	}
	top, err := snapshot("c", 9, kvs)
	if err != nil {
		t.Fatal(err)
	}
	if top.Revision != 9 || len(top.Shards) != 1 || top.Shards[0].Term != 2 || len(top.Shards[0].Nodes) != 1 ||
		top.Shards[0].Nodes[0].Role != RolePrimary || top.Shards[0].Nodes[0].Addr != "127.0.0.1:5" {
		t.Errorf("snapshot: %+v", top)
	}
	kvs["/belay/c/nodes/pg1"] = []byte(`{"shard":`)
	if _, err := snapshot("c", 9, kvs); err == nil || !strings.Contains(err.Error(), "/belay/c/nodes/pg1") {
		t.Errorf("a record that does not decode: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"0", "pg1", "local", "a.b-c_d"} {
		if err := CheckName("node", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "a b", "a\x00", strings.Repeat("x", 64)} {
		if err := CheckName("node", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
