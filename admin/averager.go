package admin

import (
	"time"

	"github.com/belaydb/belay/poolcore"
)

// Averager turns counters into PgBouncer's averages over a stats period:
// transactions, queries, bytes and wait time per second, and transaction
// and query time per transaction and per query. It is pure (the caller
// passes the time) and not safe for concurrent use.
type Averager struct {
	period time.Duration
	at     time.Time                  // when the period under way began
	start  map[string]poolcore.Totals // counters then
	avg    map[string]poolcore.Totals // of the last whole period
}

// NewAverager averages over period (PgBouncer's stats_period, 60 s by default).
func NewAverager(period time.Duration) *Averager {
	if period <= 0 {
		period = time.Minute
	}
	return &Averager{period: period, avg: map[string]poolcore.Totals{}}
}

// SetPeriod changes the period from the next one on.
func (a *Averager) SetPeriod(d time.Duration) {
	if d > 0 {
		a.period = d
	}
}

// Observe takes the counters at now; once a period has passed since the
// last whole one began, the averages become those of the period that
// ended. It reports whether they did.
func (a *Averager) Observe(now time.Time, totals map[string]poolcore.Totals) bool {
	if a.start == nil {
		a.at, a.start = now, totals
		return false
	}
	dur := now.Sub(a.at)
	if dur < a.period {
		return false
	}
	avg := make(map[string]poolcore.Totals, len(totals))
	for db, cur := range totals {
		old := a.start[db]
		d := sub(cur, old)
		perSec := func(v uint64) uint64 { return uint64(float64(v) * float64(time.Second) / float64(dur)) }
		r := poolcore.Totals{
			Xacts: perSec(d.Xacts), Queries: perSec(d.Queries),
			Received: perSec(d.Received), Sent: perSec(d.Sent),
			WaitTime: time.Duration(float64(d.WaitTime) * float64(time.Second) / float64(dur)),
		}
		if d.Xacts > 0 {
			r.XactTime = d.XactTime / time.Duration(d.Xacts)
		}
		if d.Queries > 0 {
			r.QueryTime = d.QueryTime / time.Duration(d.Queries)
		}
		avg[db] = r
	}
	a.avg, a.at, a.start = avg, now, totals
	return true
}

// Average is db's average over the last whole period (zero before one ended).
func (a *Averager) Average(db string) poolcore.Totals { return a.avg[db] }

// sub is cur - old, where a counter that went backwards (a pool dropped and
// made again) counts from zero.
func sub(cur, old poolcore.Totals) poolcore.Totals {
	d := func(c, o uint64) uint64 {
		if c < o {
			return c
		}
		return c - o
	}
	dt := func(c, o time.Duration) time.Duration {
		if c < o {
			return c
		}
		return c - o
	}
	return poolcore.Totals{Xacts: d(cur.Xacts, old.Xacts), Queries: d(cur.Queries, old.Queries),
		Received: d(cur.Received, old.Received), Sent: d(cur.Sent, old.Sent), XactTime: dt(cur.XactTime, old.XactTime),
		QueryTime: dt(cur.QueryTime, old.QueryTime), WaitTime: dt(cur.WaitTime, old.WaitTime)}
}
