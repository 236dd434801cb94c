package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/shard"
)

// TestChangeSchema: each command's effect on a schema, and its refusals.
func TestChangeSchema(t *testing.T) {
	apply := func(cur *shard.Schema, args ...string) (*shard.Schema, error) { return changeSchema(cur, args) }
	if _, err := apply(nil, "table", "accounts", "aid", "integer"); err == nil {
		t.Error("a table added before init")
	}
	sc, err := apply(nil, "init", "4")
	if err != nil || sc.Shards() != 4 {
		t.Fatalf("init 4: %v, %v", sc, err)
	}
	if same, err := apply(sc, "init", "4"); err != nil || same != sc {
		t.Errorf("init again with the same count: %v", err)
	}
	if _, err := apply(sc, "init", "8"); err == nil || !strings.Contains(err.Error(), "resharding") {
		t.Errorf("init with another count: %v", err)
	}
	for _, bad := range [][]string{{"init", "x"}, {"init", "0"}, {"table", "t", "k"}, {"table", "t", "k", "float"},
		{"table", "t", "a.b", "int"}, {"nope"}, {"drop", "missing"}} {
		if _, err := apply(sc, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if sc, err = apply(sc, "table", "Accounts", "AID", "bigint"); err != nil {
		t.Fatal(err)
	}
	if sc, err = apply(sc, "table", `app."Users"`, "name", "text"); err != nil {
		t.Fatal(err)
	}
	if sc, err = apply(sc, "reference", "branches"); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(sc, "reference", "accounts"); !errors.Is(err, shard.ErrShardedAndReference) {
		t.Errorf("accounts made a reference table too: %v", err)
	}
	if tb, ok := sc.Lookup("", "accounts"); !ok || tb.Key != "aid" || tb.KeyType != shard.KeyInteger {
		t.Errorf("accounts: %+v, %v", tb, ok)
	}
	if tb, ok := sc.Lookup("app", "Users"); !ok || tb.Key != "name" || tb.KeyType != shard.KeyText {
		t.Errorf("app.Users: %+v, %v", tb, ok)
	}
	if sc, err = apply(sc, "drop", "branches"); err != nil || sc.Len() != 2 {
		t.Fatalf("drop: %v, %v", sc, err)
	}
}

// TestShardCommand: belay shard's commands against etcd: the schema is
// kept there, where a topology snapshot carries it, and printed.
func TestShardCommand(t *testing.T) {
	st, err := ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), "sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	for _, args := range [][]string{{"show"}, {"init", "2"}, {"table", "pgbench_accounts", "aid", "integer"},
		{"reference", "pgbench_branches"}, {"show"}} {
		if err := shardCommand(ctx, st, args, &out); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	got := out.String()
	for _, want := range []string{"cluster sh is not sharded", "cluster sh: 2 shard(s)",
		"public.pgbench_accounts  sharded    aid  integer", "public.pgbench_branches  reference  -    -"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	top, err := st.Load(ctx)
	if err != nil || top.Sharding == nil || top.Sharding.Len() != 2 {
		t.Fatalf("the topology's schema: %v, %v", top.Sharding, err)
	}
	if err := shardCommand(ctx, st, []string{"init", "3"}, &out); err == nil {
		t.Error("init 3 after init 2 accepted")
	}
}
