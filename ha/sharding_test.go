package ha

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/belaydb/belay/shard"
)

// TestStoreSharding: no schema at first; one written is read back by
// Sharding and in every snapshot (Load); concurrent changes through
// UpdateSharding are all kept (none overwrites another); a change that
// fails writes nothing; nil deletes the record.
func TestStoreSharding(t *testing.T) {
	ctx := testCtx(t)
	s, _ := newStore(t)
	register(t, ctx, s, 1)
	if sc, rev, err := s.Sharding(ctx); sc != nil || rev != 0 || err != nil {
		t.Fatalf("a new cluster's schema: %v, %d, %v", sc, rev, err)
	}
	if _, err := s.UpdateSharding(ctx, func(cur *shard.Schema) (*shard.Schema, error) {
		if cur != nil {
			t.Errorf("the current schema of a new cluster: %v", cur)
		}
		return shard.New(2)
	}); err != nil {
		t.Fatal(err)
	}
	// Eight tables added at once: each change sees the others'.
	var wg sync.WaitGroup
	var written atomic.Int32
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.UpdateSharding(ctx, func(cur *shard.Schema) (*shard.Schema, error) {
				return cur.With(shard.ShardedTable(shard.TableName{Name: n}, "id", shard.KeyInteger))
			}); err == nil {
				written.Add(1)
			} else if !errors.Is(err, ErrShardingChanged) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sc, rev, err := s.Sharding(ctx)
	if err != nil || rev == 0 {
		t.Fatal(rev, err)
	}
	// Every table a change reported written is there (a change may give up
	// after casRetries conflicts, never be lost once written).
	if sc.Shards() != 2 || sc.Len() != int(written.Load()) || written.Load() == 0 {
		t.Fatalf("after concurrent changes: %d shards, %d tables, %d written", sc.Shards(), sc.Len(), written.Load())
	}
	top, err := s.Load(ctx)
	if err != nil || top.Sharding == nil || !top.Sharding.Equal(sc) {
		t.Fatalf("Load's schema %v, want %v (%v)", top.Sharding, sc, err)
	}
	// A failed change writes nothing.
	boom := errors.New("boom")
	if _, err := s.UpdateSharding(ctx, func(*shard.Schema) (*shard.Schema, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("a failing change: %v", err)
	}
	if _, rev2, _ := s.Sharding(ctx); rev2 != rev {
		t.Fatalf("a failing change wrote (revision %d -> %d)", rev, rev2)
	}
	if _, err := s.UpdateSharding(ctx, func(*shard.Schema) (*shard.Schema, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if sc, _, err := s.Sharding(ctx); sc != nil || err != nil {
		t.Fatalf("after deleting: %v, %v", sc, err)
	}
}
