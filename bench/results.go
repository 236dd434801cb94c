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
	// TierCPUPer1k is CPUPer1k for each process of a target of several
	// (belay's two tiers).
	TierCPUPer1k []TierCPU `json:"tier_cpu_s_per_1k_tx,omitempty"`
	Seconds      float64   `json:"seconds"`
	// PlanHits and PlanMisses are belay's plan cache lookups during the run
	// (from its /metrics; zero for the other targets).
	PlanHits   uint64 `json:"plan_cache_hits,omitempty"`
	PlanMisses uint64 `json:"plan_cache_misses,omitempty"`

	// Idle connections (KindIdle).
	IdleWanted    int     `json:"idle_wanted,omitempty"`
	IdleOpened    int     `json:"idle_opened,omitempty"`
	IdleOpenSecs  float64 `json:"idle_open_seconds,omitempty"`
	RSSBefore     int64   `json:"rss_before,omitempty"`
	RSSIdle       int64   `json:"rss_with_idle,omitempty"`
	RSSPerIdle    float64 `json:"rss_per_idle_client,omitempty"`
	IdleStillOpen int     `json:"idle_still_open_after,omitempty"`
	// The two tiers' idle run (runIdleTiers): the RSS per idle client of
	// each process (in Per1k: bytes), and the killed gateway's idle
	// clients, and how many of them were still open after its kill.
	TierRSSPerIdle        []TierCPU `json:"tier_rss_per_idle_client,omitempty"`
	KilledGatewayIdle     int       `json:"killed_gateway_idle,omitempty"`
	KilledGatewayIdleOpen int       `json:"killed_gateway_idle_still_open,omitempty"`
	IdleOpenErrors        int       `json:"idle_open_errors,omitempty"`

	// Slow client (KindSlow).
	BytesRead       int64       `json:"bytes_read,omitempty"`
	ReadRate        float64     `json:"read_rate_bytes_per_s,omitempty"`
	RSSBase         int64       `json:"rss_base,omitempty"`
	RSSPeak         int64       `json:"rss_peak,omitempty"`
	RSSSamples      []RSSSample `json:"rss_samples,omitempty"`
	ServerReleaseMs float64     `json:"server_query_ended_ms,omitempty"` // after the client left; -1: still running
	StillServes     bool        `json:"still_serves,omitempty"`

	// Noisy neighbour (KindNoisy): the generic figures above (TPS, P50,
	// ..., Transactions) are the quiet user's with the noisy one beside it;
	// the error counts add up every pgbench run of the scenario.
	Noisy *NoisyFigures `json:"noisy,omitempty"`
	// Arrivals are the fresh users' first queries, calm ones first.
	Arrivals []Arrival `json:"arrivals,omitempty"`
	// ReadScale: the nodes' figures (KindReadScale, KindSharded).
	ReadScale *ReadScaleRun `json:"read_scale,omitempty"`
	// Failover: the kill -9 of a primary and what followed (KindFailover).
	Failover *FailoverRun `json:"failover,omitempty"`
	// Limit: belay's adaptive limit during the run (a BelayVariant's
	// pgbench run; a noisy run's is in Noisy).
	Limit *LimitFigures `json:"limit,omitempty"`
	// Quota: a run of the quota-halved scenario (KindQuota).
	Quota *QuotaRun `json:"quota,omitempty"`

	lat      []float64 // sorted latencies, µs
	aloneLat []float64 // KindNoisy: the quiet user's sorted latencies alone, µs
}

// Arrival is one fresh user's first query through a proxy (KindNoisy): it
// connects, logs in, runs SELECT 1 and leaves.
type Arrival struct {
	User string `json:"user"`
	// Loaded: the noisy user held the budget meanwhile; otherwise nothing
	// else ran (a calm arrival, for comparison).
	Loaded bool `json:"loaded"`
	// LoginMs is from the start of the TCP connect to ReadyForQuery, FirstMs
	// to the result of SELECT 1 (for one that timed out, how long it had
	// waited). A proxy may make a new user wait for a server during login
	// or at its first query; FirstMs holds both.
	LoginMs float64 `json:"login_ms"`
	FirstMs float64 `json:"first_result_ms"`
	// TimedOut: no result before the noisy run ended.
	TimedOut bool   `json:"timed_out,omitempty"`
	Err      string `json:"error,omitempty"`
}

// NoisyFigures are the figures of the noisy-neighbour scenario
// (KindNoisy): of one run, or in a Row medians across rounds, with the
// counts summed and the arrival percentiles taken over every round's
// arrivals.
type NoisyFigures struct {
	// Together: the quiet user's pgbench beside the noisy user's, counted
	// over the window from the start of the quiet pgbench (its connecting
	// included) to its exit or the noisy user's last transaction, whichever
	// came first (see setWindow). The quiet user's latencies are those of
	// its transactions in the window.
	WindowSeconds float64 `json:"window_s"`
	NoisyTx       int64   `json:"noisy_transactions"`
	QuietTx       int64   `json:"quiet_transactions"`
	NoisyTPS      float64 `json:"noisy_tps"`
	QuietTPS      float64 `json:"quiet_tps"`
	// TotalTPS is QuietTPS + NoisyTPS (in a Row, the median of the
	// rounds' totals).
	TotalTPS float64 `json:"total_tps"`
	// QuietShare is QuietTx / (QuietTx + NoisyTx).
	QuietShare float64 `json:"quiet_share"`
	QuietP50   float64 `json:"quiet_p50_ms"`
	QuietP99   float64 `json:"quiet_p99_ms"`
	// QuietFirstMs is from the start of the quiet user's pgbench to its
	// first completed transaction, in or after the window; -1 if none.
	QuietFirstMs float64 `json:"quiet_first_tx_ms"`
	// NoisyErrors and QuietErrors are each pgbench's failed transactions,
	// aborted clients and failed connections.
	NoisyErrors int64 `json:"noisy_errors"`
	QuietErrors int64 `json:"quiet_errors"`
	// Backends each user held in PostgreSQL (pg_stat_activity, sampled
	// every 250 ms): the noisy user's at the last sample before the quiet
	// user started, medians over the window, and the most of all users at
	// once in the window.
	NoisyServersAtStart float64 `json:"noisy_servers_at_quiet_start"`
	NoisyServers        float64 `json:"noisy_servers"`
	QuietServers        float64 `json:"quiet_servers"`
	MaxServers          float64 `json:"max_servers"`

	// Alone: the quiet user's pgbench without the noisy one.
	QuietAloneTPS    float64 `json:"quiet_alone_tps"`
	QuietAloneP50    float64 `json:"quiet_alone_p50_ms"`
	QuietAloneP99    float64 `json:"quiet_alone_p99_ms"`
	QuietAloneErrors int64   `json:"quiet_alone_errors"`

	// Arrivals while the noisy user holds the budget: how many were
	// started, percentiles (nearest rank, ms) of FirstMs, and of the part
	// after login (FirstMs - LoginMs), over those without an error (one that
	// timed out counts with how long it had waited, a lower bound).
	Arrivals        int     `json:"arrivals"`
	ArrivalP50      float64 `json:"arrival_p50_ms"`
	ArrivalP99      float64 `json:"arrival_p99_ms"`
	ArrivalMax      float64 `json:"arrival_max_ms"`
	ReadyP50        float64 `json:"ready_to_result_p50_ms"`
	ReadyP99        float64 `json:"ready_to_result_p99_ms"`
	ArrivalTimeouts int     `json:"arrival_timeouts"`
	ArrivalErrors   int     `json:"arrival_errors"`
	// Limit is belay's adaptive limit in the window (nil for a target
	// without belay's /metrics).
	Limit *LimitFigures `json:"limit,omitempty"`
	// NoisyServersArriving is the median of the noisy user's backends while
	// the users arrived.
	NoisyServersArriving float64 `json:"noisy_servers_while_arriving"`
	// CalmArrivals with nothing else running, and their median FirstMs.
	CalmArrivals int     `json:"calm_arrivals"`
	CalmP50      float64 `json:"calm_arrival_p50_ms"`
}

// setWindow counts the transactions each user completed while both ran:
// from the start of the quiet user's pgbench (from, µs since the epoch as
// LogStats.Ends) to its exit (to), or to the noisy user's last
// transaction if that came first. It derives tps and the quiet user's
// share, and returns the quiet user's latencies in the window.
func (f *NoisyFigures) setWindow(quiet, noisy LogStats, from, to int64) []float64 {
	if len(noisy.Ends) > 0 {
		last := noisy.Ends[0]
		for _, t := range noisy.Ends {
			last = max(last, t)
		}
		to = max(from, min(to, last))
	}
	in := func(t int64) bool { return t >= from && t <= to }
	var lat []float64
	f.QuietTx, f.NoisyTx, f.QuietFirstMs = 0, 0, -1
	first := int64(-1)
	for i, t := range quiet.Ends {
		if first < 0 || t < first {
			first = t
		}
		if in(t) {
			f.QuietTx++
			lat = append(lat, quiet.Latencies[i])
		}
	}
	if first >= 0 {
		f.QuietFirstMs = float64(first-from) / 1000
	}
	for _, t := range noisy.Ends {
		if in(t) {
			f.NoisyTx++
		}
	}
	f.WindowSeconds = float64(to-from) / 1e6
	f.QuietTPS, f.NoisyTPS, f.TotalTPS, f.QuietShare = 0, 0, 0, 0
	if f.WindowSeconds > 0 {
		f.QuietTPS = float64(f.QuietTx) / f.WindowSeconds
		f.NoisyTPS = float64(f.NoisyTx) / f.WindowSeconds
		f.TotalTPS = f.QuietTPS + f.NoisyTPS
	}
	if all := f.QuietTx + f.NoisyTx; all > 0 {
		f.QuietShare = float64(f.QuietTx) / float64(all)
	}
	return lat
}

// serverSample is the backends each kind of user held at a moment.
type serverSample struct {
	At                  time.Time
	Noisy, Quiet, Other int // Other: the arriving users
}

// setServers fills the server figures of the together phase from samples;
// the window is [from, to].
func (f *NoisyFigures) setServers(samples []serverSample, from, to time.Time) {
	var noisy, quiet []float64
	f.NoisyServersAtStart, f.MaxServers = 0, 0
	for _, s := range samples {
		switch {
		case s.At.Before(from):
			f.NoisyServersAtStart = float64(s.Noisy)
		case !s.At.After(to):
			noisy = append(noisy, float64(s.Noisy))
			quiet = append(quiet, float64(s.Quiet))
			f.MaxServers = math.Max(f.MaxServers, float64(s.Noisy+s.Quiet+s.Other))
		}
	}
	f.NoisyServers, f.QuietServers = Median(noisy), Median(quiet)
}

// medianNoisy is the median of the noisy user's backends over the samples
// in [from, to].
func medianNoisy(samples []serverSample, from, to time.Time) float64 {
	var v []float64
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) {
			v = append(v, float64(s.Noisy))
		}
	}
	return Median(v)
}

// setArrivals fills the arrival figures from as, loaded and calm ones.
func (f *NoisyFigures) setArrivals(as []Arrival) {
	var first, ready, calm []float64
	f.Arrivals, f.ArrivalTimeouts, f.ArrivalErrors, f.CalmArrivals = 0, 0, 0, 0
	for _, a := range as {
		if a.Loaded {
			f.Arrivals++
		} else {
			f.CalmArrivals++
		}
		switch {
		case a.Err != "":
			f.ArrivalErrors++
			continue
		case a.TimedOut && a.Loaded:
			f.ArrivalTimeouts++
		case a.TimedOut:
			f.ArrivalErrors++ // nothing held the budget: waiting is a fault
			continue
		}
		if !a.Loaded {
			calm = append(calm, a.FirstMs)
			continue
		}
		first = append(first, a.FirstMs)
		if !a.TimedOut {
			ready = append(ready, a.FirstMs-a.LoginMs)
		}
	}
	sort.Float64s(first)
	sort.Float64s(ready)
	f.ArrivalP50, f.ArrivalP99 = Percentile(first, 0.5), Percentile(first, 0.99)
	f.ArrivalMax = 0
	if len(first) > 0 {
		f.ArrivalMax = first[len(first)-1]
	}
	f.ReadyP50, f.ReadyP99 = Percentile(ready, 0.5), Percentile(ready, 0.99)
	f.CalmP50 = Median(calm)
}

// aggregateNoisy folds the noisy-neighbour figures of runs: medians
// across rounds, counts summed, arrivals pooled. Nil when no run has any.
func aggregateNoisy(runs []RunResult) *NoisyFigures {
	var figs []*NoisyFigures
	var arrivals []Arrival
	for _, r := range runs {
		if r.Noisy != nil {
			figs = append(figs, r.Noisy)
			arrivals = append(arrivals, r.Arrivals...)
		}
	}
	if len(figs) == 0 {
		return nil
	}
	med := func(get func(*NoisyFigures) float64) float64 {
		v := make([]float64, len(figs))
		for i, f := range figs {
			v[i] = get(f)
		}
		return Median(v)
	}
	f := &NoisyFigures{
		WindowSeconds:        med(func(f *NoisyFigures) float64 { return f.WindowSeconds }),
		NoisyTPS:             med(func(f *NoisyFigures) float64 { return f.NoisyTPS }),
		QuietTPS:             med(func(f *NoisyFigures) float64 { return f.QuietTPS }),
		TotalTPS:             med(func(f *NoisyFigures) float64 { return f.TotalTPS }),
		QuietShare:           med(func(f *NoisyFigures) float64 { return f.QuietShare }),
		QuietP50:             med(func(f *NoisyFigures) float64 { return f.QuietP50 }),
		QuietP99:             med(func(f *NoisyFigures) float64 { return f.QuietP99 }),
		QuietFirstMs:         med(func(f *NoisyFigures) float64 { return f.QuietFirstMs }),
		NoisyServersAtStart:  med(func(f *NoisyFigures) float64 { return f.NoisyServersAtStart }),
		NoisyServers:         med(func(f *NoisyFigures) float64 { return f.NoisyServers }),
		QuietServers:         med(func(f *NoisyFigures) float64 { return f.QuietServers }),
		MaxServers:           med(func(f *NoisyFigures) float64 { return f.MaxServers }),
		QuietAloneTPS:        med(func(f *NoisyFigures) float64 { return f.QuietAloneTPS }),
		QuietAloneP50:        med(func(f *NoisyFigures) float64 { return f.QuietAloneP50 }),
		QuietAloneP99:        med(func(f *NoisyFigures) float64 { return f.QuietAloneP99 }),
		NoisyServersArriving: med(func(f *NoisyFigures) float64 { return f.NoisyServersArriving }),
	}
	var lims []*LimitFigures
	for _, g := range figs {
		lims = append(lims, g.Limit)
		f.NoisyTx += g.NoisyTx
		f.QuietTx += g.QuietTx
		f.NoisyErrors += g.NoisyErrors
		f.QuietErrors += g.QuietErrors
		f.QuietAloneErrors += g.QuietAloneErrors
	}
	f.Limit = aggregateLimit(lims)
	f.setArrivals(arrivals)
	return f
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

	TPS      float64 `json:"tps"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	P999     float64 `json:"p999_ms"`
	CPUPer1k float64 `json:"proxy_cpu_s_per_1k_tx"` // -1: n/a
	// TierCPUPer1k: the median CPUPer1k of each tier (belay's two tiers).
	TierCPUPer1k []TierCPU `json:"tier_cpu_s_per_1k_tx,omitempty"`
	// The two tiers' idle runs: the median RSS per idle client of each
	// process (bytes, in Per1k), and the killed gateway's idle clients
	// and those still open after its kill, summed over rounds.
	TierRSSPerIdle        []TierCPU `json:"tier_rss_per_idle_client,omitempty"`
	KilledGatewayIdle     int       `json:"killed_gateway_idle,omitempty"`
	KilledGatewayIdleOpen int       `json:"killed_gateway_idle_still_open,omitempty"`
	Failed                int64     `json:"failed"`
	Aborted               int       `json:"aborted_clients"`
	ConnFails             int       `json:"connection_failures"`
	Hung                  int       `json:"hung_runs,omitempty"`
	Errors                []string  `json:"errors,omitempty"`
	RSSPerIdle            float64   `json:"rss_per_idle_client,omitempty"`
	RSSBefore             int64     `json:"rss_before,omitempty"`
	RSSIdle               int64     `json:"rss_with_idle,omitempty"`
	IdleOpened            int       `json:"idle_opened,omitempty"`
	IdleErrors            int       `json:"idle_open_errors,omitempty"`
	BytesRead             int64     `json:"bytes_read,omitempty"`
	ReadRate              float64   `json:"read_rate_bytes_per_s,omitempty"`
	RSSBase               int64     `json:"rss_base,omitempty"`
	RSSPeak               int64     `json:"rss_peak,omitempty"`
	ReleaseMs             float64   `json:"server_query_ended_ms,omitempty"`
	Serves                bool      `json:"still_serves,omitempty"`
	// Noisy: the noisy-neighbour figures (KindNoisy); transactions summed
	// over rounds.
	Noisy *NoisyFigures `json:"noisy,omitempty"`
	// Failover: medians and worst of the failover runs (KindFailover).
	Failover *FailoverFigures `json:"failover,omitempty"`
	// Limit: belay's adaptive limit, medians across rounds (a BelayVariant's
	// pgbench runs).
	Limit *LimitFigures `json:"limit,omitempty"`
	// Quota: the quota-halved figures, medians across rounds (KindQuota).
	Quota *QuotaRun `json:"quota,omitempty"`
}

// ErrorCount is what the report shows as errors: failed transactions,
// aborted clients and connection failures, failed idle connections and
// failed arrivals. A hung run counts as one.
func (r Row) ErrorCount() int64 {
	n := r.Failed + int64(r.Aborted) + int64(r.ConnFails) + int64(r.IdleErrors) + int64(r.Hung)
	if r.Noisy != nil {
		n += int64(r.Noisy.ArrivalErrors)
	}
	return n
}

// Latencies returns the latencies (µs) of every round, sorted.
func (r Row) Latencies() []float64 {
	return r.allRounds(func(run RunResult) []float64 { return run.lat })
}

// AloneLatencies returns the quiet user's latencies without the noisy one
// (µs, KindNoisy) of every round, sorted.
func (r Row) AloneLatencies() []float64 {
	return r.allRounds(func(run RunResult) []float64 { return run.aloneLat })
}

// allRounds gathers what of returns for every round, sorted.
func (r Row) allRounds(of func(RunResult) []float64) []float64 {
	var all []float64
	for _, run := range r.Runs {
		all = append(all, of(run)...)
	}
	sort.Float64s(all)
	return all
}

// TierCPU is one tier's CPU seconds per 1,000 transactions.
type TierCPU struct {
	Tier  string  `json:"tier"`
	Per1k float64 `json:"s_per_1k_tx"`
}

// medianTiers is the median of each tier's CPU over runs, in the tiers'
// order.
func medianTiers(runs []RunResult) []TierCPU {
	return medianByTier(runs, func(r RunResult) []TierCPU { return r.TierCPUPer1k })
}

// medianByTier is the median of each tier's figure (of) over runs, in the
// tiers' order.
func medianByTier(runs []RunResult, of func(RunResult) []TierCPU) []TierCPU {
	var order []string
	by := map[string][]float64{}
	for _, r := range runs {
		for _, tc := range of(r) {
			if _, ok := by[tc.Tier]; !ok {
				order = append(order, tc.Tier)
			}
			by[tc.Tier] = append(by[tc.Tier], tc.Per1k)
		}
	}
	out := make([]TierCPU, 0, len(order))
	for _, tier := range order {
		out = append(out, TierCPU{Tier: tier, Per1k: Median(by[tier])})
	}
	return out
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
	row.TierCPUPer1k = medianTiers(runs)
	row.TierRSSPerIdle = medianByTier(runs, func(r RunResult) []TierCPU { return r.TierRSSPerIdle })
	for _, r := range runs {
		row.KilledGatewayIdle += r.KilledGatewayIdle
		row.KilledGatewayIdleOpen += r.KilledGatewayIdleOpen
	}
	row.RSSPerIdle = Median(perIdle)
	row.RSSBefore, row.RSSIdle = int64(Median(rssBefore)), int64(Median(rssIdle))
	row.BytesRead, row.ReadRate, row.RSSBase = int64(Median(bytes)), Median(rate), int64(Median(base))
	if release != -2 {
		row.ReleaseMs = release
	}
	row.Noisy = aggregateNoisy(runs)
	row.Failover = aggregateFailover(runs)
	var lims []*LimitFigures
	for _, r := range runs {
		lims = append(lims, r.Limit)
	}
	row.Limit = aggregateLimit(lims)
	row.Quota = aggregateQuota(runs)
	return row
}

// ScenarioResult is one scenario's rows, in target order.
type ScenarioResult struct {
	Scenario Scenario `json:"scenario"`
	Rows     []Row    `json:"rows"`
	// ReadScale is the tps by node count (KindReadScale).
	ReadScale *ReadScaleResult `json:"read_scale,omitempty"`
	// Failover describes the failover scenario's setup (KindFailover).
	Failover *FailoverInfo `json:"failover,omitempty"`
	// Sharded is the tps and belay's CPU by shard count (KindSharded).
	Sharded *ShardedResult `json:"sharded,omitempty"`
	// Quota describes the quota-halved scenario's node (KindQuota).
	Quota *QuotaInfo `json:"quota,omitempty"`
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
	Jobs             int       `json:"pgbench_jobs"` // pgbench's -j (Options.Jobs)
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
	Placement        string    `json:"placement"` // where the proxies ran (Placement.describe)
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
	case BelayTiers:
		return "belay gateway+pooler"
	}
	return name
}
