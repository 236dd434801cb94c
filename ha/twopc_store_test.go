package ha

import (
	"sync"
	"testing"

	"github.com/belaydb/belay/twopc"
)

// TestStoreDecision: a decision is written once: a coordinator's Commit
// and a resolver's Abort racing for one transaction both get the same
// answer, the first writer's; a transaction without a record has None;
// Forget deletes it.
func TestStoreDecision(t *testing.T) {
	ctx := testCtx(t)
	s, _ := newStore(t)
	for i := range 20 {
		tx := twopc.TxID{byte(i), 1}
		if d, err := s.Decision(ctx, tx); d != twopc.None || err != nil {
			t.Fatalf("no record: %v, %v", d, err)
		}
		var got [2]twopc.Decision
		var wg sync.WaitGroup
		for j, d := range []twopc.Decision{twopc.Commit, twopc.Abort} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if got[j], err = s.RecordDecision(ctx, tx, d, []int{0, 1}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		stored, err := s.Decision(ctx, tx)
		if err != nil || got[0] != got[1] || got[0] != stored || stored == twopc.None {
			t.Fatalf("race %d: the coordinator got %v, the resolver %v, the record holds %v (%v)", i, got[0], got[1], stored, err)
		}
		if err := s.ForgetDecision(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Decision(ctx, tx); d != twopc.None {
			t.Fatalf("after Forget: %v", d)
		}
	}
	if _, err := s.RecordDecision(ctx, twopc.TxID{}, twopc.None, nil); err == nil {
		t.Error("None recorded")
	}
}
