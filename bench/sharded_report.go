package bench

import (
	"fmt"
	"math"
	"strings"
)

// ShardedResult is a sharded scenario's setup and summary: tps and belay's
// CPU by shard count.
type ShardedResult struct {
	// Skipped, when set, says why the scenario did not run (no cgroups).
	Skipped string `json:"skipped,omitempty"`
	// Cgroup says which cgroup interface limited the nodes, and where.
	Cgroup string `json:"cgroup,omitempty"`
	// NodeCPU is each node's CPU quota in cores: QuotaUs per PeriodUs.
	NodeCPU  float64 `json:"node_cpu_cores,omitempty"`
	QuotaUs  int64   `json:"quota_us,omitempty"`
	PeriodUs int64   `json:"period_us,omitempty"`
	// Settings are the nodes' PostgreSQL settings that matter here.
	Settings string `json:"settings,omitempty"`
	Scale    int    `json:"scale,omitempty"`
	Clients  int    `json:"clients,omitempty"`
	// DirectTPS is the baseline: pgbench directly against one PostgreSQL
	// holding every row, with the same quota.
	DirectTPS float64        `json:"direct_tps"`
	Points    []ShardedPoint `json:"points"`
}

// ShardedPoint is one shard count: medians across rounds.
type ShardedPoint struct {
	Shards   int     `json:"shards"`
	TPS      float64 `json:"tps"`
	Min, Max float64 `json:"-"`
	Spread   string  `json:"tps_spread"` // "min–max" of the rounds
	// Scale is TPS over the 1-shard TPS (0: n/a).
	Scale float64 `json:"over_1_shard"`
	// belay's CPU in ms per 1,000 transactions: its gateway's, its
	// poolers' together (each process's median of the rounds), and their
	// sum (else the median of the rounds' totals; -1: n/a).
	GatewayMs float64 `json:"gateway_cpu_ms_per_1k_tx"`
	PoolersMs float64 `json:"poolers_cpu_ms_per_1k_tx"`
	BelayMs   float64 `json:"belay_cpu_ms_per_1k_tx"`
	Errors    int64   `json:"errors"`
}

// shardedPoints folds a sharded scenario's rows into one point per shard
// count, in the order of the rows. Pure.
func shardedPoints(s *ScenarioResult) []ShardedPoint {
	var pts []ShardedPoint
	var one float64
	for i := range s.Rows {
		r := &s.Rows[i]
		n, ok := parseShardedTarget(r.Target)
		if !ok {
			continue
		}
		p := ShardedPoint{Shards: n, Spread: "n/a", GatewayMs: -1, PoolersMs: -1, BelayMs: -1}
		if r.NA == "" {
			p.TPS, p.Errors = r.TPS, r.ErrorCount()
			first := true
			for _, run := range r.Runs {
				if run.NA != "" {
					continue
				}
				if first {
					p.Min, p.Max, first = run.TPS, run.TPS, false
				}
				p.Min, p.Max = math.Min(p.Min, run.TPS), math.Max(p.Max, run.TPS)
			}
			p.Spread = tpsText(p.Min) + "–" + tpsText(p.Max)
			if r.CPUPer1k >= 0 {
				p.BelayMs = r.CPUPer1k * 1000
			}
			for _, tc := range r.TierCPUPer1k {
				switch {
				case tc.Tier == "gateway":
					p.GatewayMs = tc.Per1k * 1000
				case strings.HasPrefix(tc.Tier, "pooler"):
					p.PoolersMs = math.Max(p.PoolersMs, 0) + tc.Per1k*1000
				}
			}
			if p.GatewayMs >= 0 && p.PoolersMs >= 0 {
				p.BelayMs = p.GatewayMs + p.PoolersMs // the medians of each process, added
			}
		}
		if n == 1 {
			one = p.TPS
		}
		if one > 0 {
			p.Scale = p.TPS / one
		}
		pts = append(pts, p)
	}
	return pts
}

// cpuMsText is a CPU time in ms per 1,000 transactions, "n/a" for < 0.
func cpuMsText(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}

// renderSharded is a sharded scenario's section of report.md.
func renderSharded(b *strings.Builder, s *ScenarioResult) {
	info := s.Sharded
	if info == nil {
		info = &ShardedResult{}
	}
	if info.Skipped != "" {
		fmt.Fprintf(b, "Skipped: %s\n", info.Skipped)
		return
	}
	fmt.Fprintf(b, "pgbench's tables at scale %d: `pgbench_accounts` and `pgbench_history` sharded by `aid`, `pgbench_branches` and "+
		"`pgbench_tellers` reference tables, each shard loaded directly with its own rows (placed by `satisfies_hash_partition`, "+
		"PostgreSQL's hash partitioning, which belay's hash is). Each shard is one PostgreSQL primary limited to %.2g core of CPU by a "+
		"cgroup of its own (%s: %d µs per %d µs period); pgbench and belay run outside those cgroups. belay as `belay up` runs it: "+
		"a `belay gateway` in front of a `belay pooler` beside each node. Per round, alternating: pgbench (%d clients, the script "+
		"below, `-M simple`) directly against one PostgreSQL holding every row (the baseline, same quota), then through belay over "+
		"1, 2 and 4 shards. belay's CPU is its processes' (the gateway's and the poolers' utime+stime) per 1,000 transactions, in ms.\n\n",
		info.Scale, info.NodeCPU, info.Cgroup, info.QuotaUs, info.PeriodUs, info.Clients)
	if info.Settings != "" {
		fmt.Fprintf(b, "The nodes' settings: %s.\n\n", info.Settings)
	}
	fmt.Fprintf(b, "```text\n%s```\n\n", s.Scenario.Script)
	b.WriteString("| shards | tps (rounds: min–max) | ÷ 1 shard | belay CPU ms / 1k tx: gateway + poolers = total | errors |\n")
	b.WriteString("|--:|--:|--:|--:|--:|\n")
	if info.DirectTPS > 0 {
		fmt.Fprintf(b, "| direct, 1 PostgreSQL | %s | | | |\n", tpsText(info.DirectTPS))
	}
	for _, p := range info.Points {
		fmt.Fprintf(b, "| %d | %s (%s) | %s | %s + %s = %s | %s |\n", p.Shards, tpsText(p.TPS), p.Spread, ratioText(p.Scale),
			cpuMsText(p.GatewayMs), cpuMsText(p.PoolersMs), cpuMsText(p.BelayMs), thousands(p.Errors))
	}
	b.WriteString("\nEach target, medians across rounds; *nodes' CPU* is the CPU each node used, in cores (node0 first), and " +
		"*throttled* the share of the CFS periods in which a node used up its quota:\n\n")
	b.WriteString("| target | tps | p50 ms | p99 ms | belay CPU ms / 1k tx | nodes' CPU, cores | throttled | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		cpu := medianNodeFigures(r, func(f *ReadScaleRun) []float64 { return f.NodeCPU })
		thr := medianNodeFigures(r, func(f *ReadScaleRun) []float64 { return f.Throttled })
		belay := -1.0
		if r.CPUPer1k >= 0 {
			belay = r.CPUPer1k * 1000
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, tpsText(r.TPS), ms(r.P50), ms(r.P99),
			cpuMsText(belay), coresText(cpu), percentsText(thr), errText(r))
	}
}

// renderShardedSummary is the summary's table of the sharded scenarios of
// rep ("" when there is none).
func renderShardedSummary(rep *Report) string {
	var b strings.Builder
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		if s.Scenario.Kind != KindSharded || s.Sharded == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nSharding (a primary per shard, each CPU-limited; tps, medians across rounds; belay's CPU in ms per 1,000 transactions):\n\n")
			b.WriteString("| scenario | direct, 1 PostgreSQL | 1 shard | 2 shards | 4 shards | 4 shards ÷ 1 | belay CPU: 1 / 2 / 4 shards |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
		}
		if s.Sharded.Skipped != "" {
			fmt.Fprintf(&b, "| %s | | | | | | skipped: %s |\n", s.Scenario.ID, s.Sharded.Skipped)
			continue
		}
		by := map[int]ShardedPoint{}
		for _, p := range s.Sharded.Points {
			by[p.Shards] = p
		}
		tps := func(n int) string {
			if p, ok := by[n]; ok {
				return tpsText(p.TPS)
			}
			return "n/a"
		}
		cpu := func(n int) string {
			if p, ok := by[n]; ok {
				return cpuMsText(p.BelayMs)
			}
			return "n/a"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s / %s / %s |\n", s.Scenario.ID, tpsText(s.Sharded.DirectTPS),
			tps(1), tps(2), tps(4), ratioText(by[4].Scale), cpu(1), cpu(2), cpu(4))
	}
	return b.String()
}
