package bench

import (
	"math"
	"sort"
	"time"
)

// RunResult is one run of one scenario against one target.
type RunResult struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Round    int    `json:"round"`
	// NA, when set, says why this target was not run (the other fields are zero).
	NA string `json:"na,omitempty"`

	TPS          float64  `json:"tps"`
	Transactions int64    `json:"transactions"`
	Failed       int64    `json:"failed"`          // failed transactions (pgbench)
	Aborted      int      `json:"aborted_clients"` // clients pgbench aborted
	ConnFails    int      `json:"connection_failures"`
	Hung         bool     `json:"hung,omitempty"` // pgbench outlived its deadline and was killed
	Errors       []string `json:"errors,omitempty"`
	P50          float64  `json:"p50_ms"`
	P99          float64  `json:"p99_ms"`
	P999         float64  `json:"p999_ms"`
	CPUSeconds   float64  `json:"proxy_cpu_s"`
	// CPUPer1k is the proxy's CPU seconds per 1,000 transactions; -1 when
	// there is no proxy or no transaction.
	CPUPer1k float64 `json:"proxy_cpu_s_per_1k_tx"`
	Seconds  float64 `json:"seconds"`
	// PlanHits and PlanMisses are belay's plan cache lookups during the run
	// (from its /metrics; zero for the other targets).
	PlanHits   uint64 `json:"plan_cache_hits,omitempty"`
	PlanMisses uint64 `json:"plan_cache_misses,omitempty"`

	// Idle connections (KindIdle).
	IdleWanted     int     `json:"idle_wanted,omitempty"`
	IdleOpened     int     `json:"idle_opened,omitempty"`
	IdleOpenSecs   float64 `json:"idle_open_seconds,omitempty"`
	RSSBefore      int64   `json:"rss_before,omitempty"`
	RSSIdle        int64   `json:"rss_with_idle,omitempty"`
	RSSPerIdle     float64 `json:"rss_per_idle_client,omitempty"`
	IdleStillOpen  int     `json:"idle_still_open_after,omitempty"`
	IdleOpenErrors int     `json:"idle_open_errors,omitempty"`

	// Slow client (KindSlow).
	BytesRead       int64       `json:"bytes_read,omitempty"`
	ReadRate        float64     `json:"read_rate_bytes_per_s,omitempty"`
	RSSBase         int64       `json:"rss_base,omitempty"`
	RSSPeak         int64       `json:"rss_peak,omitempty"`
	RSSSamples      []RSSSample `json:"rss_samples,omitempty"`
	ServerReleaseMs float64     `json:"server_query_ended_ms,omitempty"` // after the client left; -1: still running
	StillServes     bool        `json:"still_serves,omitempty"`

	lat []float64 // sorted latencies, µs
}

// RSSSample is the proxy's resident memory at a moment of a slow-client run.
type RSSSample struct {
	T   float64 `json:"t"` // seconds since the query was sent
	RSS int64   `json:"rss"`
}

// setLatencies sorts lat (µs) into r and fills the percentiles (ms).
func (r *RunResult) setLatencies(lat []float64) {
	sort.Float64s(lat)
	r.lat = lat
	r.P50 = Percentile(lat, 0.50) / 1000
	r.P99 = Percentile(lat, 0.99) / 1000
	r.P999 = Percentile(lat, 0.999) / 1000
}

// Row is one target of one scenario, aggregated over rounds: medians of the
// rounds' figures, sums of their errors.
type Row struct {
	Target string      `json:"target"`
	Label  string      `json:"label"`
	NA     string      `json:"na,omitempty"`
	Runs   []RunResult `json:"runs"`

	TPS        float64  `json:"tps"`
	P50        float64  `json:"p50_ms"`
	P99        float64  `json:"p99_ms"`
	P999       float64  `json:"p999_ms"`
	CPUPer1k   float64  `json:"proxy_cpu_s_per_1k_tx"` // -1: n/a
	Failed     int64    `json:"failed"`
	Aborted    int      `json:"aborted_clients"`
	ConnFails  int      `json:"connection_failures"`
	Hung       int      `json:"hung_runs,omitempty"`
	Errors     []string `json:"errors,omitempty"`
	RSSPerIdle float64  `json:"rss_per_idle_client,omitempty"`
	RSSBefore  int64    `json:"rss_before,omitempty"`
	RSSIdle    int64    `json:"rss_with_idle,omitempty"`
	IdleOpened int      `json:"idle_opened,omitempty"`
	IdleErrors int      `json:"idle_open_errors,omitempty"`
	BytesRead  int64    `json:"bytes_read,omitempty"`
	ReadRate   float64  `json:"read_rate_bytes_per_s,omitempty"`
	RSSBase    int64    `json:"rss_base,omitempty"`
	RSSPeak    int64    `json:"rss_peak,omitempty"`
	ReleaseMs  float64  `json:"server_query_ended_ms,omitempty"`
	Serves     bool     `json:"still_serves,omitempty"`
}

// ErrorCount is what the report shows as errors: failed transactions,
// aborted clients and connection failures.
// A hung run counts as one.
func (r Row) ErrorCount() int64 {
	return r.Failed + int64(r.Aborted) + int64(r.ConnFails) + int64(r.IdleErrors) + int64(r.Hung)
}

// Latencies returns the latencies (µs) of every round, sorted.
func (r Row) Latencies() []float64 {
	var all []float64
	for _, run := range r.Runs {
		all = append(all, run.lat...)
	}
	sort.Float64s(all)
	return all
}

// aggregate folds the runs of one target into a Row.
func aggregate(target, label string, runs []RunResult) Row {
	row := Row{Target: target, Label: label, Runs: runs, CPUPer1k: -1}
	var tps, p50, p99, p999, cpu, perIdle, rate []float64
	var rssBefore, rssIdle, base, bytes []float64
	seen := map[string]bool{}
	release := -2.0
	row.Serves = true
	for _, r := range runs {
		if r.NA != "" {
			row.NA = r.NA
			continue
		}
		tps = append(tps, r.TPS)
		if len(r.lat) > 0 || r.P50 > 0 {
			p50 = append(p50, r.P50)
			p99 = append(p99, r.P99)
			p999 = append(p999, r.P999)
		}
		if r.CPUPer1k >= 0 {
			cpu = append(cpu, r.CPUPer1k)
		}
		row.Failed += r.Failed
		row.Aborted += r.Aborted
		row.ConnFails += r.ConnFails
		row.IdleErrors += r.IdleOpenErrors
		if r.Hung {
			row.Hung++
		}
		for _, e := range r.Errors {
			if !seen[e] && len(row.Errors) < maxErrors {
				seen[e] = true
				row.Errors = append(row.Errors, e)
			}
		}
		if r.IdleWanted > 0 {
			perIdle = append(perIdle, r.RSSPerIdle)
			rssBefore = append(rssBefore, float64(r.RSSBefore))
			rssIdle = append(rssIdle, float64(r.RSSIdle))
			if r.IdleOpened > row.IdleOpened {
				row.IdleOpened = r.IdleOpened
			}
		}
		if r.RSSPeak > 0 || r.BytesRead > 0 {
			bytes = append(bytes, float64(r.BytesRead))
			rate = append(rate, r.ReadRate)
			base = append(base, float64(r.RSSBase))
			row.RSSPeak = max(row.RSSPeak, r.RSSPeak)
			if r.ServerReleaseMs < 0 || release == -1 {
				release = -1
			} else {
				release = math.Max(release, r.ServerReleaseMs)
			}
			row.Serves = row.Serves && r.StillServes
		}
	}
	if len(tps) > 0 {
		row.NA = ""
	}
	row.TPS = Median(tps)
	row.P50, row.P99, row.P999 = Median(p50), Median(p99), Median(p999)
	if len(cpu) > 0 {
		row.CPUPer1k = Median(cpu)
	}
	row.RSSPerIdle = Median(perIdle)
	row.RSSBefore, row.RSSIdle = int64(Median(rssBefore)), int64(Median(rssIdle))
	row.BytesRead, row.ReadRate, row.RSSBase = int64(Median(bytes)), Median(rate), int64(Median(base))
	if release != -2 {
		row.ReleaseMs = release
	}
	return row
}

// ScenarioResult is one scenario's rows, in target order.
type ScenarioResult struct {
	Scenario Scenario `json:"scenario"`
	Rows     []Row    `json:"rows"`
}

// Row returns the row of target, or nil.
func (s *ScenarioResult) Row(target string) *Row {
	for i := range s.Rows {
		if s.Rows[i].Target == target {
			return &s.Rows[i]
		}
	}
	return nil
}

// Reference is the row ratios are taken to: PgBouncer, or PgBouncer in
// session mode for the scenarios that have that row.
func (s *ScenarioResult) Reference() *Row {
	if s.Scenario.SessionRow {
		if r := s.Row(PgBouncerSession); r != nil {
			return r
		}
	}
	return s.Row(PgBouncer)
}

// Meta describes the run: machine, versions, settings.
type Meta struct {
	Command          string    `json:"command"`
	Started          time.Time `json:"started"`
	WallSeconds      float64   `json:"wall_seconds"`
	Quick            bool      `json:"quick"`
	Rounds           int       `json:"rounds"`
	Duration         float64   `json:"duration_s"`
	PoolSize         int       `json:"pool_size"`
	Scale            int       `json:"scale"`
	Cores            int       `json:"cores"`
	CPUModel         string    `json:"cpu_model"`
	Memory           string    `json:"memory"`
	Kernel           string    `json:"kernel"`
	PostgresVersion  string    `json:"postgres_version"`
	PgbenchVersion   string    `json:"pgbench_version"`
	PgBouncerVersion string    `json:"pgbouncer_version"`
	BelayCommit      string    `json:"belay_commit"`
	GoVersion        string    `json:"go_version"`
	PostgresSettings string    `json:"postgres_settings"`
	SlowReadRate     int64     `json:"slow_read_rate"`
	LoadStart        string    `json:"load_average_start"`
	LoadEnd          string    `json:"load_average_end"`
	Notes            []string  `json:"notes,omitempty"`
}

// Report is everything a run produced.
type Report struct {
	Meta      Meta             `json:"meta"`
	Scenarios []ScenarioResult `json:"scenarios"`
}

// targetLabel is a target's name in the report.
func targetLabel(name string) string {
	switch name {
	case Direct:
		return "direct"
	case PgBouncer:
		return "PgBouncer"
	case PgBouncerSession:
		return "PgBouncer (session mode)"
	case Belay:
		return "belay"
	}
	return name
}
