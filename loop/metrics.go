package loop

import (
	"strings"
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
	// logins counts clients that completed their login (ReadyForQuery
	// sent): which process of a rolling restart served whom
	logins *metrics.Counter
	// plan cache counters per loop, copied from the loop's Cache at each
	// sweep (the cache itself is the loop's alone)
	plans []planCounters
}

type planCounters struct{ hits, misses, evictions, bytes, entries atomic.Uint64 }

func newProxyMetrics(p *Proxy, loops int) *proxyMetrics {
	m := &proxyMetrics{set: metrics.NewSet(), plans: make([]planCounters, loops)}
	m.pins = m.set.NewCounter("belay_pins_total")
	m.logins = m.set.NewCounter("belay_client_logins_total")
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
	pools := p.pools
	node := func(f func(poolcore.NodeStats) int) func() float64 {
		return func() float64 { return float64(f(pools.NodeStats())) }
	}
	m.set.NewGauge("belay_server_budget", node(func(s poolcore.NodeStats) int { return s.Budget }))
	m.set.NewGauge("belay_server_connections", node(func(s poolcore.NodeStats) int { return s.Open }))
	counter := func(c *atomic.Int64) func() float64 { return func() float64 { return float64(c.Load()) } }
	m.set.NewGauge("belay_server_handovers_total", counter(&pools.Handovers))
	m.set.NewGauge("belay_server_slot_moves_total", counter(&pools.Transfers))
	m.set.NewGauge("belay_server_logins_total", counter(&pools.Dials))
	m.set.NewGauge("belay_server_login_retries_total", counter(&pools.LoginRetries))
	return m
}

// addPool registers the metrics of a new pool, labelled with its database
// and user: its clients waiting, its servers by state, its fair share of
// the budget and its demand, and the waits it served.
func (m *proxyMetrics) addPool(p *poolcore.Pool) {
	k := p.Key()
	labels := `database="` + promEscape(k.Database) + `",user="` + promEscape(k.User) + `"`
	stat := func(f func(s poolcore.Stats) float64) func() float64 {
		return func() float64 { return f(p.Stats()) }
	}
	gauge := func(name, extra string, f func() float64) {
		m.set.GetOrCreateGauge(name+"{"+labels+extra+"}", f)
	}
	gauge("belay_pool_clients_waiting", "", stat(func(s poolcore.Stats) float64 { return float64(s.Waiting) }))
	gauge("belay_pool_servers", `,state="active"`, stat(func(s poolcore.Stats) float64 { return float64(s.Active) }))
	gauge("belay_pool_servers", `,state="idle"`, stat(func(s poolcore.Stats) float64 { return float64(s.Idle) }))
	gauge("belay_pool_servers", `,state="login"`, stat(func(s poolcore.Stats) float64 { return float64(s.Dialing) }))
	gauge("belay_pool_servers", `,state="cancel_wait"`, stat(func(s poolcore.Stats) float64 { return float64(s.CancelWait) }))
	gauge("belay_pool_servers_open", "", stat(func(s poolcore.Stats) float64 { return float64(s.Open) }))
	gauge("belay_pool_waits_total", "", stat(func(s poolcore.Stats) float64 { return float64(s.Served) }))
	gauge("belay_pool_wait_seconds_total", "", stat(func(s poolcore.Stats) float64 { return s.Waited.Seconds() }))
	gauge("belay_pool_fair_share", "", func() float64 { _, share := p.Fairness(); return float64(share) })
	gauge("belay_pool_demand", "", func() float64 { d, _ := p.Fairness(); return float64(d) })
}

// promEscape escapes a Prometheus label value.
func promEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
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
