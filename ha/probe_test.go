package ha

import (
	"context"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestProbeStaleStream (issue H): a standby whose primary is frozen (as a
// partition leaves it) stops counting as streaming once it heard nothing
// for half of wal_receiver_timeout and half a second, while its WAL
// receiver still says 'streaming' (it gives up only at the timeout); a live
// primary that writes nothing keeps it streaming past that bound (the
// receiver's ping is answered).
func TestProbeStaleStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary and a standby")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// 10 s: the probe's bound is 5.5 s, the receiver gives up at 10 s.
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 1, Settings: map[string]string{"wal_receiver_timeout": "10s"}})
	c, err := pgx.Connect(ctx, cl.Replicas()[0].ConnString("postgres", cl.Superuser()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	streaming := func() (probed bool, status string) {
		t.Helper()
		v, _, err := probe(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')").Scan(&status); err != nil {
			t.Fatal(err)
		}
		return v.Streaming, status
	}
	idleUntil := time.Now().Add(7 * time.Second)
	for time.Now().Before(idleUntil) {
		if ok, status := streaming(); !ok {
			t.Fatalf("a standby of a live, idle primary is not streaming (receiver %s)", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	thaw, err := cl.Primary().Freeze()
	if err != nil {
		t.Fatal(err)
	}
	defer thaw()
	frozen := time.Now()
	for {
		ok, status := streaming()
		if !ok {
			if status != "streaming" {
				t.Fatalf("not streaming only once the receiver gave up (%s) after %v", status, time.Since(frozen))
			}
			t.Logf("a frozen primary's standby stopped streaming after %v, its receiver still %s", time.Since(frozen).Round(time.Millisecond), status)
			return
		}
		if time.Since(frozen) > 9*time.Second {
			t.Fatalf("still streaming %v after the primary froze", time.Since(frozen))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
