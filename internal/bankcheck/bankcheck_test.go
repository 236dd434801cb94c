package bankcheck

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestChecker runs the clients against one Postgres with no fault: every
// transfer acknowledged, nothing lost, the sums right. Then it makes the
// checker see what it exists to catch: an acknowledged id deleted is lost,
// an id never attempted is a phantom, a changed balance is a bad sum.
func TestChecker(t *testing.T) {
	pg := pgtest.New(t, pginstance.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{ConnString: pg.ConnString("postgres", "postgres"), Clients: 3}
	conn, err := pgx.Connect(ctx, o.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := Setup(ctx, conn, o); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithTimeout(ctx, time.Second)
	r := Run(rctx, o)
	stop()
	res, err := r.Check(ctx, conn, time.Time{}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	// The run's end cancels the operations in flight: those are its only
	// failures or ambiguities.
	if !res.OK() || res.Acked == 0 || res.Reads == 0 || res.Failed+res.Ambiguous > o.Clients {
		t.Fatalf("a run without a fault: %s", res)
	}
	// An old timeline: the same ids are no divergence; an acknowledged id
	// that only the old primary has is an acknowledged write lost.
	ids, err := IDs(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if ot := r.CheckOldTimeline(ids, ids); !ot.OK() || len(ot.Beyond) != 0 {
		t.Fatalf("the same ids on both timelines: %s", ot)
	}
	cur := maps.Clone(ids)
	var gone int64
	for id := range cur {
		gone = id
		break
	}
	delete(cur, gone)
	if ot := r.CheckOldTimeline(ids, cur); ot.OK() || !slices.Equal(ot.Acked, []int64{gone}) || !slices.Equal(ot.Beyond, []int64{gone}) {
		t.Fatalf("an acknowledged id on the old timeline only: %s", ot)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM bank_ids WHERE id = (SELECT min(id) FROM bank_ids);
		INSERT INTO bank_ids VALUES (7); UPDATE bank_accounts SET balance = balance + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	res, err = r.Check(ctx, conn, time.Time{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || len(res.Lost) != 1 || len(res.Phantom) != 1 || len(res.BadSums) != 1 {
		t.Fatalf("after a lost id, a phantom and a changed balance: %s", res)
	}
}

// TestLiveFigures: FirstAckAfter and AckedBetween read what was recorded
// so far; reads, failures and transfers started before the fault do not
// count as writes resumed.
func TestLiveFigures(t *testing.T) {
	at := time.Unix(1000, 0)
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	r := &Recorder{ops: []Op{
		{Start: ms(-10), End: ms(50), ID: 1, Outcome: Acked},  // started before the fault
		{Start: ms(10), End: ms(20), Outcome: Acked},          // a read
		{Start: ms(30), End: ms(40), ID: 2, Outcome: Failed},  // failed
		{Start: ms(60), End: ms(900), ID: 3, Outcome: Acked},  // the second after the fault
		{Start: ms(100), End: ms(700), ID: 4, Outcome: Acked}, // the first
		{Start: ms(110), End: ms(800), ID: 5, Outcome: Ambiguous},
	}}
	if got := r.FirstAckAfter(at); got != 700*time.Millisecond {
		t.Errorf("FirstAckAfter = %v, want 700ms", got)
	}
	if got := r.FirstAckAfter(ms(200)); got != 0 {
		t.Errorf("FirstAckAfter with no transfer started after = %v, want 0", got)
	}
	if got := r.AckedBetween(ms(50), ms(900)); got != 2 { // ids 1 and 4; 3 ends at the bound
		t.Errorf("AckedBetween = %d, want 2", got)
	}
}
