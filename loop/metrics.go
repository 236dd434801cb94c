package loop

import (
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
)

// proxyMetrics are the proxy's metrics, in a set of its own so that several
// proxies (tests) can live in one process; cmd/belay exposes the set.
type proxyMetrics struct {
	set  *metrics.Set
	pins *metrics.Counter // clients ever pinned to a server
	// plan cache counters per loop, copied from the loop's Cache at each
	// sweep (the cache itself is the loop's alone)
	plans []planCounters
}

type planCounters struct{ hits, misses, evictions, bytes, entries atomic.Uint64 }

func newProxyMetrics(p *Proxy, loops int) *proxyMetrics {
	m := &proxyMetrics{set: metrics.NewSet(), plans: make([]planCounters, loops)}
	m.pins = m.set.NewCounter("belay_pins_total")
	m.set.NewGauge("belay_clients_pinned", func() float64 { return float64(p.pins.Load()) })
	m.set.NewGauge("belay_clients", func() float64 { return float64(p.clients.Load()) })
	sum := func(f func(c *planCounters) *atomic.Uint64) func() float64 {
		return func() float64 {
			var n uint64
			for i := range m.plans {
				n += f(&m.plans[i]).Load()
			}
			return float64(n)
		}
	}
	m.set.NewGauge("belay_plan_cache_hits_total", sum(func(c *planCounters) *atomic.Uint64 { return &c.hits }))
	m.set.NewGauge("belay_plan_cache_misses_total", sum(func(c *planCounters) *atomic.Uint64 { return &c.misses }))
	m.set.NewGauge("belay_plan_cache_evictions_total", sum(func(c *planCounters) *atomic.Uint64 { return &c.evictions }))
	m.set.NewGauge("belay_plan_cache_bytes", sum(func(c *planCounters) *atomic.Uint64 { return &c.bytes }))
	m.set.NewGauge("belay_plan_cache_entries", sum(func(c *planCounters) *atomic.Uint64 { return &c.entries }))
	return m
}

// notePlans copies loop l's plan cache counters where other goroutines can
// read them. On loop l.
func (p *Proxy) notePlans(l *poolcore.Loop) {
	st := p.plans[l.Index()].Stats()
	c := &p.metrics.plans[l.Index()]
	c.hits.Store(st.Hits)
	c.misses.Store(st.Misses)
	c.evictions.Store(st.Evictions)
	c.bytes.Store(uint64(st.Bytes))
	c.entries.Store(uint64(st.Entries))
}

// Metrics is the proxy's metric set (Prometheus text with WritePrometheus).
func (p *Proxy) Metrics() *metrics.Set { return p.metrics.set }

var _ = planner.NewCache
