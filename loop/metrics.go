package loop

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/belaydb/belay/admin"
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
	m.set.RegisterMetricsWriter(func(w io.Writer) {
		writeHistograms(w, pools.Pools())
		nodes := p.nodes()
		writeNodes(w, nodes)
		writeLimits(w, nodes, p.Limit)
	})
	return m
}

// poolLabels are a pool's labels: database and user, and its node in a
// cluster.
func poolLabels(k poolcore.Key) string {
	l := `database="` + promEscape(k.Database) + `",user="` + promEscape(k.User) + `"`
	if k.Node != "" {
		l += `,node="` + promEscape(k.Node) + `"`
	}
	return l
}

// writeNodes writes the nodes' series (SHOW NODES as metrics), labelled
// with the node and its role: belay_node_up, belay_node_lag_bytes,
// belay_node_lag_seconds, belay_node_in_flight, belay_node_servers_open,
// belay_node_reads_total, belay_node_writes_total.
func writeNodes(w io.Writer, nodes []admin.Node) {
	up := func(n admin.Node) float64 {
		if n.State == "up" {
			return 1
		}
		return 0
	}
	series := []struct {
		name string
		f    func(n admin.Node) float64
	}{
		{"belay_node_up", up},
		{"belay_node_lag_bytes", func(n admin.Node) float64 { return float64(n.LagBytes) }},
		{"belay_node_lag_seconds", func(n admin.Node) float64 { return float64(n.LagMs) / 1000 }},
		{"belay_node_in_flight", func(n admin.Node) float64 { return float64(n.InFlight) }},
		{"belay_node_servers_open", func(n admin.Node) float64 { return float64(n.ServersOpen) }},
		{"belay_node_reads_total", func(n admin.Node) float64 { return float64(n.Reads) }},
		{"belay_node_writes_total", func(n admin.Node) float64 { return float64(n.Writes) }},
	}
	for _, s := range series {
		for _, n := range nodes {
			fmt.Fprintf(w, "%s{node=\"%s\",role=\"%s\"} %g\n", s.name, promEscape(n.Node), n.Role, s.f(n))
		}
	}
}

// writeLimits writes the nodes' adaptive limits (poolcore's limit.go),
// labelled as writeNodes does: belay_node_limit (queries running at once;
// max_db_connections when the limit is off), belay_node_limit_ceiling,
// belay_node_limit_changes_total, belay_node_limit_probes_total (moves
// into a probe or a check and back), belay_node_limit_queue and
// belay_node_limit_capacity (the last window's measure, in queries), and
// belay_node_limit_reason, 1 with the kind of the last decision as its
// reason label (start, steady, shrink, shrink fast, grow, probe, probed,
// ceiling, fixed).
func writeLimits(w io.Writer, nodes []admin.Node, limitOf func(node string) poolcore.LimitStats) {
	for _, n := range nodes {
		l := limitOf(n.Node)
		labels := fmt.Sprintf("node=\"%s\",role=\"%s\"", promEscape(n.Node), n.Role)
		fmt.Fprintf(w, "belay_node_limit{%s} %d\n", labels, l.Limit)
		fmt.Fprintf(w, "belay_node_limit_ceiling{%s} %d\n", labels, l.Ceiling)
		fmt.Fprintf(w, "belay_node_limit_changes_total{%s} %d\n", labels, l.Changes)
		fmt.Fprintf(w, "belay_node_limit_probes_total{%s} %d\n", labels, l.Probes)
		fmt.Fprintf(w, "belay_node_limit_queue{%s} %g\n", labels, l.Last.Queue)
		fmt.Fprintf(w, "belay_node_limit_capacity{%s} %g\n", labels, l.Last.Capacity)
		fmt.Fprintf(w, "belay_node_limit_reason{%s,reason=\"%s\"} 1\n", labels, promEscape(limitKind(limitReason(l))))
	}
}

// limitKind is the kind of a limit's reason: its words before the colon.
func limitKind(reason string) string {
	kind, _, _ := strings.Cut(reason, ":")
	return kind
}

// addPool registers the metrics of a new pool, labelled with its database
// and user: its clients waiting, its servers by state, its fair share of
// the budget and its demand, and the waits it served.
func (m *proxyMetrics) addPool(p *poolcore.Pool) {
	poolGauges(p, func(name string, f func() float64) { m.set.GetOrCreateGauge(name, f) })
}

// removePool unregisters the metrics of a pool the Manager forgot.
func (m *proxyMetrics) removePool(p *poolcore.Pool) {
	poolGauges(p, func(name string, _ func() float64) { m.set.UnregisterMetric(name) })
}

// poolGauges calls each with the name and the function of each of p's gauges.
func poolGauges(p *poolcore.Pool, each func(name string, f func() float64)) {
	labels := poolLabels(p.Key())
	stat := func(f func(s poolcore.Stats) float64) func() float64 {
		return func() float64 { return f(p.Stats()) }
	}
	gauge := func(name, extra string, f func() float64) {
		each(name+"{"+labels+extra+"}", f)
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
	// What it served, as PgBouncer's SHOW STATS counts it (Pool.Totals).
	clients := func(f func(c poolcore.Clients) int) func() float64 {
		return func() float64 { return float64(f(p.Clients())) }
	}
	gauge("belay_pool_clients", `,state="active"`, clients(func(c poolcore.Clients) int { return c.Active }))
	gauge("belay_pool_clients", `,state="waiting"`, clients(func(c poolcore.Clients) int { return c.Waiting }))
	gauge("belay_pool_pinned_clients", "", func() float64 { return float64(p.Pins()) })
	total := func(f func(t poolcore.Totals) uint64) func() float64 {
		return func() float64 { return float64(f(p.Totals())) }
	}
	gauge("belay_pool_transactions_total", "", total(func(t poolcore.Totals) uint64 { return t.Xacts }))
	gauge("belay_pool_queries_total", "", total(func(t poolcore.Totals) uint64 { return t.Queries }))
	gauge("belay_pool_received_bytes_total", "", total(func(t poolcore.Totals) uint64 { return t.Received }))
	gauge("belay_pool_sent_bytes_total", "", total(func(t poolcore.Totals) uint64 { return t.Sent }))
}

// bucketBounds are poolcore.DurationBuckets in seconds, as le labels.
var bucketBounds = func() []string {
	out := make([]string, len(poolcore.DurationBuckets))
	for i, d := range poolcore.DurationBuckets {
		out[i] = strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
	}
	return out
}()

// writeHistograms writes the pools' histograms of query, transaction and
// wait time in Prometheus's text format, each family in one group. The
// buckets are counted per loop in poolcore, with no lock on the data path
// (see poolcore.LoopStats), and summed here at each scrape; their sums are
// the times of Pool.Totals.
func writeHistograms(w io.Writer, pools []*poolcore.Pool) {
	slices.SortFunc(pools, func(a, b *poolcore.Pool) int {
		ka, kb := a.Key(), b.Key()
		if c := strings.Compare(ka.Database, kb.Database); c != 0 {
			return c
		}
		return strings.Compare(ka.User, kb.User)
	})
	type hists struct {
		labels            string
		t                 poolcore.Totals
		query, xact, wait poolcore.Histogram
	}
	hs := make([]hists, len(pools))
	for i, p := range pools {
		k := p.Key()
		hs[i].labels = poolLabels(k)
		hs[i].t = p.Totals()
		hs[i].query, hs[i].xact, hs[i].wait = p.Histograms()
	}
	family := func(name string, get func(h *hists) (*poolcore.Histogram, float64)) {
		if len(hs) == 0 {
			return
		}
		metrics.WriteMetadataIfNeeded(w, name, "histogram")
		for i := range hs {
			h, sum := get(&hs[i])
			var cum uint64
			for j, le := range bucketBounds {
				cum += h.Counts[j]
				fmt.Fprintf(w, "%s_bucket{%s,le=\"%s\"} %d\n", name, hs[i].labels, le, cum)
			}
			cum += h.Counts[len(bucketBounds)]
			fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, hs[i].labels, cum)
			fmt.Fprintf(w, "%s_sum{%s} %g\n", name, hs[i].labels, sum)
			fmt.Fprintf(w, "%s_count{%s} %d\n", name, hs[i].labels, cum)
		}
	}
	family("belay_pool_query_duration_seconds", func(h *hists) (*poolcore.Histogram, float64) {
		return &h.query, h.t.QueryTime.Seconds()
	})
	family("belay_pool_transaction_duration_seconds", func(h *hists) (*poolcore.Histogram, float64) {
		return &h.xact, h.t.XactTime.Seconds()
	})
	family("belay_pool_wait_duration_seconds", func(h *hists) (*poolcore.Histogram, float64) {
		return &h.wait, h.t.WaitTime.Seconds()
	})
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
