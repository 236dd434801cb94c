package poolcore

import "time"

// Totals are a pool's counters since it was created, as PgBouncer's SHOW
// STATS counts them.
type Totals struct {
	Xacts, Queries                uint64 // transactions and queries (ReadyForQuery) served
	Received, Sent                uint64 // bytes from clients to servers, and from servers to clients
	XactTime, QueryTime, WaitTime time.Duration
}

// Add is t + u, field by field.
func (t Totals) Add(u Totals) Totals {
	return Totals{t.Xacts + u.Xacts, t.Queries + u.Queries, t.Received + u.Received, t.Sent + u.Sent,
		t.XactTime + u.XactTime, t.QueryTime + u.QueryTime, t.WaitTime + u.WaitTime}
}

// Totals reads the pool's counters. TEMPORARY until the per-pool counters
// land (branch stats): zero.
func (p *Pool) Totals() Totals { return Totals{} }

// Pins is the number of the pool's clients pinned now. TEMPORARY until the
// per-pool counters land (branch stats): zero.
func (p *Pool) Pins() int64 { return 0 }
