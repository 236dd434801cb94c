package poolcore

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestTotalsSumLoops(t *testing.T) {
	p, ls := testPool(t, 2, 2)
	a, b := p.LoopStats(ls[0]), p.LoopStats(ls[1])
	a.Query(2 * time.Millisecond)
	a.Xact(3 * time.Millisecond)
	a.Received(10)
	b.Query(time.Millisecond)
	b.Query(time.Hour) // above every bucket
	b.Sent(7)
	a.Pinned(1)
	b.Pinned(1)
	b.Pinned(-1)
	want := Totals{Xacts: 1, Queries: 3, Received: 10, Sent: 7,
		XactTime: 3 * time.Millisecond, QueryTime: time.Hour + 3*time.Millisecond}
	if got := p.Totals(); got != want {
		t.Errorf("Totals = %+v, want %+v", got, want)
	}
	if n := p.Pins(); n != 1 {
		t.Errorf("Pins = %d, want 1", n)
	}
	q, x, w := p.Histograms()
	// 1 ms is in the bucket bounded by 1 ms (le), 2 ms in the 2.5 ms one.
	var wantQ Histogram
	wantQ.Counts[3], wantQ.Counts[4], wantQ.Counts[len(DurationBuckets)] = 1, 1, 1
	if q != wantQ || x.Count() != 1 || x.Counts[5] != 1 || w.Count() != 0 {
		t.Errorf("histograms %v %v %v", q, x, w)
	}
}

func TestWaitCounted(t *testing.T) {
	p, ls := testPool(t, 1, 1)
	sc := idleServer(p, ls[0])
	c1, c2 := &fakeClient{}, &fakeClient{}
	p.Join(ls[0])
	p.Join(ls[0])
	p.Acquire(ls[0], c1, "")
	if p.Acquire(ls[0], c2, "") != nil {
		t.Fatal("c2 got a server of a full pool")
	}
	if c := p.Clients(); c != (Clients{Active: 1, Waiting: 1}) {
		t.Errorf("Clients = %+v, want 1 active, 1 waiting", c)
	}
	for p.OldestWait() == 0 {
		time.Sleep(time.Microsecond) // the clock must move
	}
	p.Release(sc) // to c2
	if c2.got != sc {
		t.Fatal("c2 was not handed the server")
	}
	tot, st := p.Totals(), p.Stats()
	if st.Served != 1 || tot.WaitTime <= 0 || tot.WaitTime != st.Waited || p.OldestWait() != 0 {
		t.Errorf("after the wait: totals %+v, stats %+v, oldest wait %v", tot, st, p.OldestWait())
	}
	if _, _, w := p.Histograms(); w.Count() != 1 {
		t.Errorf("wait histogram counts %d, want 1", w.Count())
	}
}

// BenchmarkCountTransaction is what a one-query transaction costs the
// counters: a query, a transaction, the bytes each way (belay reads the
// clock twice more, in the session). Compare BenchmarkHistogramUpdate.
func BenchmarkCountTransaction(b *testing.B) {
	p, ls := testPool(b, 2, 2)
	s := p.LoopStats(ls[0])
	b.ReportAllocs()
	for b.Loop() {
		s.Received(40)
		s.Query(180 * time.Microsecond)
		s.Xact(180 * time.Microsecond)
		s.Sent(64)
	}
}

// BenchmarkHistogramUpdate compares the per-loop histogram (no lock, one
// atomic add, a short scan of the bounds) with VictoriaMetrics's
// histograms, each one per pool and shared by the loops (a mutex; vm's
// Histogram also takes a Log10). parallel is two loops writing one pool's.
func BenchmarkHistogramUpdate(b *testing.B) {
	const d = 180 * time.Microsecond
	b.Run("perloop", func(b *testing.B) {
		var h histogram
		for b.Loop() {
			h.observe(d)
		}
	})
	b.Run("perloop/parallel", func(b *testing.B) {
		p, ls := testPool(b, 2, 2)
		var next = make(chan int, 2)
		next <- 0
		next <- 1
		b.RunParallel(func(pb *testing.PB) {
			s := p.LoopStats(ls[<-next%2])
			for pb.Next() {
				s.qryHist.observe(d)
			}
		})
	})
	b.Run("prometheus", func(b *testing.B) {
		h := metrics.NewSet().NewPrometheusHistogram("x")
		for b.Loop() {
			h.Update(d.Seconds())
		}
	})
	b.Run("prometheus/parallel", func(b *testing.B) {
		h := metrics.NewSet().NewPrometheusHistogram("x")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Update(d.Seconds())
			}
		})
	})
	b.Run("vm", func(b *testing.B) {
		h := metrics.NewSet().NewHistogram("x")
		for b.Loop() {
			h.Update(d.Seconds())
		}
	})
	b.Run("vm/parallel", func(b *testing.B) {
		h := metrics.NewSet().NewHistogram("x")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Update(d.Seconds())
			}
		})
	})
}
