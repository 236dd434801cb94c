package poolcore

import (
	"sync/atomic"
	"time"

	"github.com/belaydb/belay/fairness"
)

// Totals are a pool's counters since it was created, as PgBouncer's SHOW STATS counts them.
type Totals struct {
	Xacts, Queries                uint64 // transactions and queries (ReadyForQuery) served
	Received, Sent                uint64 // bytes from clients to servers, and from servers to clients
	XactTime, QueryTime, WaitTime time.Duration
}

// Clients counts a pool's clients now, by state, as PgBouncer's SHOW POOLS
// does. There is no cl_waiting_cancel_req: belay sends a cancel to Postgres
// the moment it arrives.
type Clients struct {
	Active  int // logged in, holding a server or idle between transactions (cl_active)
	Waiting int // queued for a server (cl_waiting)
	// ActiveCancelReq counts cancel requests of the pool's clients sent to
	// Postgres and not yet answered (cl_active_cancel_req).
	ActiveCancelReq int
}

// DurationBuckets are the upper bounds of the pool's duration histograms
// (Histograms): a duration d counts in the first bucket with d ≤ bound, or
// above them all.
var DurationBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
}

// Histogram counts durations by DurationBuckets: Counts[i] those in bucket
// i (above DurationBuckets[i-1], at most DurationBuckets[i]), the last
// those above every bound. Not cumulative.
type Histogram struct {
	Counts [len(DurationBuckets) + 1]uint64
}

// Count is the number of durations counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// histogram is Histogram's per-loop counterpart: written by its loop, read
// anywhere.
type histogram [len(DurationBuckets) + 1]atomic.Uint64

// observe counts d. Durations are mostly short: the scan stops early.
func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(DurationBuckets) && d > DurationBuckets[i] {
		i++
	}
	h[i].Add(1)
}

func (h *histogram) addTo(out *Histogram) {
	for i := range h {
		out.Counts[i] += h[i].Load()
	}
}

// LoopStats are a pool's counters on one event loop. Only that loop writes
// them (the sessions of the pool's clients on it, and the pool's own
// hand-offs to waiters); they are atomics so that Totals and Histograms can
// sum them from any goroutine, and sit on cache lines of their own, so that
// counting a query never invalidates what other loops read to place servers.
// The methods that count must run on the loop.
type LoopStats struct {
	_                   [64]byte
	xacts, queries      atomic.Uint64
	received, sent      atomic.Uint64
	xactNanos, qryNanos atomic.Int64
	execNanos           atomic.Int64 // qryNanos, each query clamped to fairness.MaxQuerySample (limit.go)
	pinned              atomic.Int64 // clients of the pool on this loop pinned to their server now
	// waiters served, and the time they waited in all (nanoseconds)
	served, waitedNanos atomic.Int64
	xactHist, qryHist   histogram
	waitHist            histogram
	_                   [64]byte
}

// LoopStats returns the counters of p on l, for its clients on l to write.
// Safe for concurrent use; keep the pointer rather than call it per message.
func (p *Pool) LoopStats(l *Loop) *LoopStats { return &p.perLoop[l.idx].stats }

// Query counts a query (a ReadyForQuery forwarded to a client) that took d.
// On the loop.
func (s *LoopStats) Query(d time.Duration) {
	s.queries.Add(1)
	s.qryNanos.Add(int64(d))
	s.execNanos.Add(int64(min(d, fairness.MaxQuerySample)))
	s.qryHist.observe(d)
}

// Xact counts a transaction (a ReadyForQuery that leaves the client idle)
// that took d. On the loop.
func (s *LoopStats) Xact(d time.Duration) {
	s.xacts.Add(1)
	s.xactNanos.Add(int64(d))
	s.xactHist.observe(d)
}

// Received counts n bytes forwarded from a client to its server. On the loop.
func (s *LoopStats) Received(n int) { s.received.Add(uint64(n)) }

// Sent counts n bytes sent to a client. On the loop.
func (s *LoopStats) Sent(n int) { s.sent.Add(uint64(n)) }

// Pinned counts a client pinned to its server (delta 1) or released (-1).
// On the loop.
func (s *LoopStats) Pinned(delta int) { s.pinned.Add(int64(delta)) }

// waited counts a waiter served after waiting d. On the loop.
func (s *LoopStats) waited(d time.Duration) {
	s.served.Add(1)
	s.waitedNanos.Add(int64(d))
	s.waitHist.observe(d)
}

// Totals sums the pool's counters over its loops. Safe for concurrent use;
// the counters are read one by one, not as one snapshot.
func (p *Pool) Totals() Totals {
	var t Totals
	for i := range p.perLoop {
		s := &p.perLoop[i].stats
		t.Xacts += s.xacts.Load()
		t.Queries += s.queries.Load()
		t.Received += s.received.Load()
		t.Sent += s.sent.Load()
		t.XactTime += time.Duration(s.xactNanos.Load())
		t.QueryTime += time.Duration(s.qryNanos.Load())
		t.WaitTime += time.Duration(s.waitedNanos.Load())
	}
	return t
}

// Histograms returns the pool's histograms of query, transaction and wait
// times. Safe for concurrent use.
func (p *Pool) Histograms() (query, xact, wait Histogram) {
	for i := range p.perLoop {
		s := &p.perLoop[i].stats
		s.qryHist.addTo(&query)
		s.xactHist.addTo(&xact)
		s.waitHist.addTo(&wait)
	}
	return query, xact, wait
}

// Pins counts the pool's clients pinned to their server now. Safe for
// concurrent use.
func (p *Pool) Pins() int64 {
	var n int64
	for i := range p.perLoop {
		n += p.perLoop[i].stats.pinned.Load()
	}
	return n
}

// Clients counts the pool's clients now by state. Safe for concurrent use.
func (p *Pool) Clients() Clients {
	var all, waiting int
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		all += int(lp.clients.Load())
		waiting += int(lp.nWait.Load())
	}
	// The counts are read one by one: a client that just queued may show
	// in waiting before its Join shows in all.
	return Clients{Active: max(all-waiting, 0), Waiting: waiting, ActiveCancelReq: int(p.cancels.Load())}
}

// OldestWait is how long the pool's oldest waiter has waited (0: none
// waits), PgBouncer's maxwait. Safe for concurrent use.
func (p *Pool) OldestWait() time.Duration {
	now, oldest := p.m.now(), int64(0)
	for i := range p.perLoop {
		if hs := p.perLoop[i].headSince.Load(); hs != 0 && now-hs > oldest {
			oldest = now - hs
		}
	}
	return time.Duration(oldest)
}

// Add is t + u, field by field.
func (t Totals) Add(u Totals) Totals {
	return Totals{t.Xacts + u.Xacts, t.Queries + u.Queries, t.Received + u.Received, t.Sent + u.Sent,
		t.XactTime + u.XactTime, t.QueryTime + u.QueryTime, t.WaitTime + u.WaitTime}
}
