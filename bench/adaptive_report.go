package bench

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What issue Q wants of belay's adaptive limit (the verdicts of the
// adaptive-limit scenarios).
const (
	// wantOverBestFixed: belay adaptive's tps at least this share of the
	// best fixed budget's.
	wantOverBestFixed = 0.9
	// wantQuietShare: the quiet user's share of the transactions.
	wantQuietShare = 0.3
	// wantP99Ratio: the quiet user's p99 with the noisy one at most this
	// many times its p99 alone.
	wantP99Ratio = 2
)

// nodeLimit is what belay's /metrics say of a node's adaptive limit.
type nodeLimit struct {
	Limit float64 // belay_node_limit
	// Changes and Probes are belay_node_limit_changes_total (changes of
	// the limit's course) and belay_node_limit_probes_total (moves into a
	// probe or a check of the queue, and back); HasChanges says whether
	// the former was there.
	Changes, Probes float64
	HasChanges      bool
	// Reason is the reason label of belay_node_limit_reason: the kind of
	// the last decision (steady, shrink, grow, probe, check, probed, ...).
	Reason string
}

// probing says whether the limit was lowered for a probe or a check of
// the queue when it was read: a moment's measure, not its course.
func (n nodeLimit) probing() bool { return n.Reason == "probe" || n.Reason == "check" }

// parseNodeLimit reads belay's adaptive limit from its Prometheus text:
// the belay_node_limit series of the first node labelled role="primary"
// (else of the first node). ok is false when there is no belay_node_limit.
func parseNodeLimit(body string) (nodeLimit, bool) {
	type series struct {
		node    string // the labels but reason
		primary bool
	}
	var nodes []series
	values := map[string]map[string]float64{} // metric → node labels → value
	reasons := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		name, rest, found := strings.Cut(line, "{")
		if !found || !strings.HasPrefix(name, "belay_node_limit") {
			continue
		}
		labels, v, found := strings.Cut(rest, "} ")
		if !found {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		node := labels
		if name == "belay_node_limit_reason" {
			i := strings.Index(labels, `,reason="`)
			if i < 0 {
				continue
			}
			node = labels[:i]
			reasons[node] = strings.TrimSuffix(labels[i+len(`,reason="`):], `"`)
			continue
		}
		if name == "belay_node_limit" {
			nodes = append(nodes, series{node, strings.Contains(labels, `role="primary"`)})
		}
		if values[name] == nil {
			values[name] = map[string]float64{}
		}
		values[name][node] = f
	}
	if len(nodes) == 0 {
		return nodeLimit{}, false
	}
	node := nodes[0].node
	for _, n := range nodes {
		if n.primary {
			node = n.node
			break
		}
	}
	nl := nodeLimit{Limit: values["belay_node_limit"][node], Reason: reasons[node],
		Changes: values["belay_node_limit_changes_total"][node], Probes: values["belay_node_limit_probes_total"][node]}
	_, nl.HasChanges = values["belay_node_limit_changes_total"][node]
	return nl, true
}

// LimitFigures are belay's adaptive limit (belay_node_limit, read every
// limitSampleEvery) over a window: of one run, or in a Row the medians
// across rounds (Min and Max: the least and most of any round; the sample
// counts summed). The limit's figures are those of its course: the
// samples read during a probe or a check of the queue (a window at a
// lower limit, see nodeLimit.probing) are left out of them, and counted.
type LimitFigures struct {
	Samples      int     `json:"samples"`
	ProbeSamples int     `json:"probe_samples"`
	Median       float64 `json:"median"`
	// Settled is the median of the samples of the window's second half:
	// where the limit settled.
	Settled float64 `json:"settled"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	// Changes is how often the limit's course changed in the window: the
	// increase of belay_node_limit_changes_total from the window's first
	// sample to its last (without that counter, the changes seen from
	// sample to sample). Probes is the increase of
	// belay_node_limit_probes_total: moves into a probe or a check and
	// back.
	Changes float64 `json:"changes"`
	Probes  float64 `json:"probes"`
}

// limitFigures folds the samples in [from, to] into LimitFigures; nil
// when none is in it.
func limitFigures(samples []limitSample, from, to time.Time) *LimitFigures {
	mid := from.Add(to.Sub(from) / 2)
	var in []limitSample
	course := 0
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) {
			in = append(in, s)
			if !s.probing() {
				course++
			}
		}
	}
	if len(in) == 0 {
		return nil
	}
	f := &LimitFigures{Samples: len(in)}
	var all, late []float64
	seen, prev := 0.0, -1.0
	for _, s := range in {
		if s.probing() && course > 0 {
			f.ProbeSamples++
			continue
		}
		if prev >= 0 && s.Limit != prev {
			seen++
		}
		prev = s.Limit
		all = append(all, s.Limit)
		if !s.At.Before(mid) {
			late = append(late, s.Limit)
		}
	}
	f.Median, f.Settled, f.Min, f.Max = Median(all), Median(late), all[0], all[0]
	if len(late) == 0 {
		f.Settled = all[len(all)-1]
	}
	for _, v := range all {
		f.Min, f.Max = math.Min(f.Min, v), math.Max(f.Max, v)
	}
	first, last := in[0], in[len(in)-1]
	f.Changes, f.Probes = seen, last.Probes-first.Probes
	if last.HasChanges {
		f.Changes = last.Changes - first.Changes
	}
	return f
}

// aggregateLimit folds the limit figures of several rounds; nil for none.
func aggregateLimit(figs []*LimitFigures) *LimitFigures {
	var med, settled, changes, probes []float64
	var f *LimitFigures
	for _, g := range figs {
		if g == nil {
			continue
		}
		if f == nil {
			f = &LimitFigures{Min: g.Min, Max: g.Max}
		}
		f.Samples += g.Samples
		f.ProbeSamples += g.ProbeSamples
		f.Min, f.Max = math.Min(f.Min, g.Min), math.Max(f.Max, g.Max)
		med, settled = append(med, g.Median), append(settled, g.Settled)
		changes, probes = append(changes, g.Changes), append(probes, g.Probes)
	}
	if f != nil {
		f.Median, f.Settled, f.Changes, f.Probes = Median(med), Median(settled), Median(changes), Median(probes)
	}
	return f
}

// limitText is "12 (settled 10; 8–20), 14 changes, 2 probes", or "n/a".
func limitText(l *LimitFigures) string {
	if l == nil {
		return "n/a"
	}
	return fmt.Sprintf("%g (settled %g; %g–%g), %s, %s", l.Median, l.Settled, l.Min, l.Max, plural(l.Changes, "change"), plural(l.Probes, "probe"))
}

// plural is "1 change", "3 changes", "0.5 changes".
func plural(n float64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%g %ss", n, what)
}

// QuotaInfo is the quota-halved scenario's setup.
type QuotaInfo struct {
	// Skipped, when set, says why the scenario did not run (no cgroups).
	Skipped string `json:"skipped,omitempty"`
	// Cgroup says which cgroup interface limited the node, and where.
	Cgroup string `json:"cgroup,omitempty"`
	// The node's CPU quota before and after the halving, in cores and in
	// µs per PeriodUs.
	CoresBefore   float64 `json:"cores_before"`
	CoresAfter    float64 `json:"cores_after"`
	QuotaBeforeUs int64   `json:"quota_before_us"`
	QuotaAfterUs  int64   `json:"quota_after_us"`
	PeriodUs      int64   `json:"period_us"`
	// Seconds is each run's length (pgbench's -T); HalvedAt when the quota
	// was halved, seconds after pgbench started.
	Seconds  float64 `json:"seconds"`
	HalvedAt float64 `json:"halved_at_s"`
	Scale    int     `json:"scale"`
}

// QuotaRun is what one run of the quota-halved scenario measured, or in a
// Row the medians across rounds (FollowS over the rounds where the limit
// reached its new level; Seconds second by second).
type QuotaRun struct {
	// Window is the length, in seconds, of the three windows compared:
	// the Window s before the halving, the first Window s after it, and
	// the run's last Window s (5 s, or less in a short run).
	Window float64 `json:"window_s"`
	// LimitBefore and LimitAfter are the medians of the limit's samples
	// in the window before the halving and in the last one.
	LimitBefore float64 `json:"limit_before"`
	LimitAfter  float64 `json:"limit_after"`
	// FollowS is the time from the halving to the first sample at the new
	// level (at or below LimitAfter when it fell, at or above when it
	// rose); -1 when the limit did not move (LimitAfter == LimitBefore).
	FollowS float64 `json:"follow_s"`
	// Changes is how often the limit's course changed after the halving,
	// Probes how often it moved into a probe or a check and back (the
	// limit's figures leave the samples read during those out).
	Changes float64 `json:"changes_after"`
	Probes  float64 `json:"probes_after"`
	// tps and p99 (ms) of the transactions that completed in each window.
	TPSBefore float64 `json:"tps_before"`
	TPSFirst  float64 `json:"tps_first_after"`
	TPSLast   float64 `json:"tps_last"`
	P99Before float64 `json:"p99_before_ms"`
	P99First  float64 `json:"p99_first_after_ms"`
	P99Last   float64 `json:"p99_last_ms"`
	// The node's throttled share of CFS periods before and after the
	// halving (the cgroup's cpu.stat).
	ThrottledBefore float64 `json:"throttled_before"`
	ThrottledAfter  float64 `json:"throttled_after"`
	// Seconds are the run's whole seconds, numbered from the halving.
	Seconds []QuotaSecond `json:"seconds"`
}

// QuotaSecond is one second of a quota-halved run: [T, T+1) s from the
// halving.
type QuotaSecond struct {
	T   int     `json:"t"`
	TPS float64 `json:"tps"`    // transactions completed in it
	P99 float64 `json:"p99_ms"` // of those transactions; 0: none
	// Limit is the median of the limit's samples in it; 0: none.
	Limit float64 `json:"limit"`
}

// quotaFigures computes a quota-halved run's figures from pgbench's
// per-transaction log, the limit's samples, and when the run started, the
// quota was halved and the run ended (as the harness saw them; the run is
// narrowed to the transactions' first and last completion).
func quotaFigures(log LogStats, samples []limitSample, start, halved, end time.Time) *QuotaRun {
	h := halved.UnixMicro()
	s0, s1 := start.UnixMicro(), end.UnixMicro()
	if len(log.Ends) > 0 {
		lo, hi := log.Ends[0], log.Ends[0]
		for _, t := range log.Ends {
			lo, hi = min(lo, t), max(hi, t)
		}
		s0, s1 = max(s0, lo), min(s1, hi)
	}
	const sec = int64(time.Second / time.Microsecond)
	w := min(5*sec, max(0, s1-h)/2, max(0, h-s0)/2)
	q := &QuotaRun{Window: float64(w) / float64(sec), FollowS: -1}
	window := func(from, to int64) (tps, p99 float64) {
		var lat []float64
		for i, t := range log.Ends {
			if t >= from && t < to {
				lat = append(lat, log.Latencies[i])
			}
		}
		if to <= from {
			return 0, 0
		}
		sort.Float64s(lat)
		return float64(len(lat)) / (float64(to-from) / float64(sec)), Percentile(lat, 0.99) / 1000
	}
	q.TPSBefore, q.P99Before = window(h-w, h)
	q.TPSFirst, q.P99First = window(h, h+w)
	q.TPSLast, q.P99Last = window(s1-w, s1+1)

	var course []limitSample // the limit's course: probes and checks left out
	for _, s := range samples {
		if !s.probing() {
			course = append(course, s)
		}
	}
	limits := func(from, to int64) []float64 {
		var v []float64
		for _, s := range course {
			if t := s.At.UnixMicro(); t >= from && t < to {
				v = append(v, s.Limit)
			}
		}
		return v
	}
	q.LimitBefore, q.LimitAfter = Median(limits(h-w, h)), Median(limits(s1-w, s1+1))
	for _, s := range course {
		if s.At.UnixMicro() >= h && q.FollowS < 0 && q.LimitAfter != q.LimitBefore &&
			((q.LimitAfter < q.LimitBefore && s.Limit <= q.LimitAfter) || (q.LimitAfter > q.LimitBefore && s.Limit >= q.LimitAfter)) {
			q.FollowS = float64(s.At.UnixMicro()-h) / float64(sec)
		}
	}
	// The counters: from the last sample before the halving (so that a
	// change between it and the first one after counts) to the last.
	var base, last *limitSample
	for i := range samples {
		if base == nil || samples[i].At.UnixMicro() < h {
			base = &samples[i]
		}
		last = &samples[i]
	}
	if last != nil && last.At.UnixMicro() >= h {
		q.Changes, q.Probes = last.Changes-base.Changes, last.Probes-base.Probes
	}

	kmin := -int((h - s0) / sec)
	kmax := int((s1-h)/sec) - 1
	for k := kmin; k <= kmax; k++ {
		from := h + int64(k)*sec
		tps, p99 := window(from, from+sec)
		q.Seconds = append(q.Seconds, QuotaSecond{T: k, TPS: tps, P99: p99, Limit: Median(limits(from, from+sec))})
	}
	return q
}

// aggregateQuota folds the quota-halved figures of runs; nil when no run
// has any.
func aggregateQuota(runs []RunResult) *QuotaRun {
	var qs []*QuotaRun
	for _, r := range runs {
		if r.Quota != nil {
			qs = append(qs, r.Quota)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	med := func(get func(*QuotaRun) float64) float64 {
		v := make([]float64, len(qs))
		for i, q := range qs {
			v[i] = get(q)
		}
		return Median(v)
	}
	q := &QuotaRun{
		Window:          med(func(q *QuotaRun) float64 { return q.Window }),
		LimitBefore:     med(func(q *QuotaRun) float64 { return q.LimitBefore }),
		LimitAfter:      med(func(q *QuotaRun) float64 { return q.LimitAfter }),
		Changes:         med(func(q *QuotaRun) float64 { return q.Changes }),
		Probes:          med(func(q *QuotaRun) float64 { return q.Probes }),
		TPSBefore:       med(func(q *QuotaRun) float64 { return q.TPSBefore }),
		TPSFirst:        med(func(q *QuotaRun) float64 { return q.TPSFirst }),
		TPSLast:         med(func(q *QuotaRun) float64 { return q.TPSLast }),
		P99Before:       med(func(q *QuotaRun) float64 { return q.P99Before }),
		P99First:        med(func(q *QuotaRun) float64 { return q.P99First }),
		P99Last:         med(func(q *QuotaRun) float64 { return q.P99Last }),
		ThrottledBefore: med(func(q *QuotaRun) float64 { return q.ThrottledBefore }),
		ThrottledAfter:  med(func(q *QuotaRun) float64 { return q.ThrottledAfter }),
		FollowS:         -1,
	}
	var follow []float64
	by := map[int][]QuotaSecond{}
	for _, r := range qs {
		if r.FollowS >= 0 {
			follow = append(follow, r.FollowS)
		}
		for _, s := range r.Seconds {
			by[s.T] = append(by[s.T], s)
		}
	}
	if len(follow) > 0 {
		q.FollowS = Median(follow)
	}
	var ts []int
	for t := range by {
		ts = append(ts, t)
	}
	sort.Ints(ts)
	for _, t := range ts {
		var tps, p99, lim []float64
		for _, s := range by[t] {
			tps = append(tps, s.TPS)
			if s.P99 > 0 {
				p99 = append(p99, s.P99)
			}
			if s.Limit > 0 {
				lim = append(lim, s.Limit)
			}
		}
		q.Seconds = append(q.Seconds, QuotaSecond{T: t, TPS: Median(tps), P99: Median(p99), Limit: Median(lim)})
	}
	return q
}

// followText is how long the limit took to reach its new level.
func followText(q *QuotaRun) string {
	switch {
	case q.LimitAfter == q.LimitBefore:
		return "did not move"
	case q.FollowS < 0:
		return "never"
	}
	return fmt.Sprintf("%.2f s", q.FollowS)
}

// quotaLine is a quota-halved run's progress line.
func quotaLine(r RunResult) string {
	q := r.Quota
	if q == nil {
		return fmt.Sprintf("%8.0f tps", r.TPS)
	}
	s := fmt.Sprintf("%6.0f tps; limit %g -> %g (to the new level: %s); p99 %s / %s / %s ms before / first %.1f s after / last %.1f s",
		r.TPS, q.LimitBefore, q.LimitAfter, followText(q), ms(q.P99Before), ms(q.P99First), ms(q.P99Last), q.Window, q.Window)
	if errs := r.Failed + int64(r.Aborted) + int64(r.ConnFails); errs > 0 || len(r.Errors) > 0 {
		s += fmt.Sprintf("  errors %d", errs)
		if len(r.Errors) > 0 {
			s += ": " + trunc(r.Errors[0], 120)
		}
	}
	return s
}

// variantOf is the variant of s called name.
func variantOf(s *ScenarioResult, name string) (BelayVariant, bool) {
	for _, v := range s.Scenario.Variants {
		if v.Name == name {
			return v, true
		}
	}
	return BelayVariant{}, false
}

// bestFixed is the row of s's fixed budgets with the highest of(row),
// among those that ran; nil when none did.
func bestFixed(s *ScenarioResult, of func(Row) float64) *Row {
	var best *Row
	for i := range s.Rows {
		r := &s.Rows[i]
		if v, ok := variantOf(s, r.Target); !ok || !v.Fixed || r.NA != "" {
			continue
		}
		if best == nil || of(*r) > of(*best) {
			best = r
		}
	}
	return best
}

// adaptiveRow is s's row of belay adaptive (the variant that is not
// fixed), or nil.
func adaptiveRow(s *ScenarioResult) *Row {
	for _, v := range s.Scenario.Variants {
		if !v.Fixed {
			return s.Row(v.Name)
		}
	}
	return nil
}

// noisyTotal is a noisy-neighbour row's total tps: the quiet and the
// noisy user's together, while both ran.
func noisyTotal(r Row) float64 { return noisyOf(r).TotalTPS }

// quotient is a ÷ b with two decimals, "n/a" when either is missing.
func quotient(a, b float64) string {
	if a == 0 || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// verdict is "met" or "**not met**" for ok.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// rowRan says whether r is a row with figures.
func rowRan(r *Row) bool { return r != nil && r.NA == "" }

// renderVariantsIntro says how each belay of an adaptive scenario ran.
func renderVariantsIntro(b *strings.Builder, s *ScenarioResult, m Meta) {
	var parts []string
	for _, v := range s.Scenario.Variants {
		parts = append(parts, fmt.Sprintf("%s: %s", v.Label, v.flagsText(m.PoolSize)))
	}
	fmt.Fprintf(b, "Each belay is a `belay proxy` of its own, started afresh for each run (for each phase of a noisy-neighbour run) "+
		"and stopped after it: %s. With `--adaptive-limit` on, `--max-db-connections` is only the ceiling of the limit on the "+
		"queries the node runs at once; with it off the budget is exactly `--max-db-connections`. belay's limit "+
		"(`belay_node_limit` of its `/metrics`) is read every %s while it is measured: *limit* is the median of those "+
		"samples (*settled*: of the second half of the window; the least and the most), leaving out those read while belay "+
		"probed or checked its queue (`belay_node_limit_reason` probe or check: a window at a lower limit); *changes* is the "+
		"increase of `belay_node_limit_changes_total` over the window (changes of the limit's course), *probes* that of "+
		"`belay_node_limit_probes_total`.\n\n", strings.Join(parts, "; "), limitSampleEvery)
}

// renderNoisySweep is the section of a noisy-neighbour scenario with belay
// variants: each target's figures, then the verdicts of belay adaptive.
func renderNoisySweep(b *strings.Builder, s *ScenarioResult, m Meta) {
	sc := s.Scenario
	renderVariantsIntro(b, s, m)
	jobs := sc.NoisyJobs
	if jobs <= 0 {
		jobs = m.Jobs
	}
	fmt.Fprintf(b, "PgBouncer: `max_db_connections = %d` on the database, `default_pool_size = %d` per user, as in the noisy-neighbour "+
		"scenario. The pools of every proxy log in as the client's own user.\n\n", sc.Budget, m.PoolSize)
	fmt.Fprintf(b, "- **together**: user `noisy` runs %d pgbench clients (`-j %d`); %s later user `quiet` runs %d (`-j %d`) for %g s; "+
		"both are counted while both ran, from the start of the quiet run (connecting included) to its exit or the noisy run's "+
		"last transaction, by the completion times in pgbench's logs; quiet's latencies are those of its transactions in that "+
		"window. *total* is quiet's and noisy's tps together; *÷ best fixed* is a target's total over that of the fixed budget "+
		"with the highest total.\n",
		sc.Clients, jobs, noisyLead, sc.QuietClients, min(m.Jobs, sc.QuietClients), m.Duration)
	fmt.Fprintf(b, "- **alone**: the quiet user's %d clients with nothing else running; *(×)* is quiet's p99 with noisy over its p99 alone.\n",
		sc.QuietClients)
	fmt.Fprintf(b, "- **arrivals** (PgBouncer and belay adaptive only; the fixed budgets skip them): while `noisy` runs flat out, %d fresh "+
		"users arrive one every %s, each on a connection of its own: it connects, logs in, runs `SELECT 1` and leaves; the time "+
		"is from its TCP connect to the result (nearest-rank percentiles).\n", sc.Arrivals, arrivalGap)
	b.WriteString("- **servers held**: backends of each user in `pg_stat_activity`, sampled every 250 ms: medians over the window, " +
		"and the most of all users at once (a belay started afresh begins at its ceiling).\n\n")
	best := bestFixed(s, noisyTotal)
	b.WriteString("| target | quiet tps | noisy tps | total tps | ÷ best fixed | quiet's share | quiet p99 ms: alone / with noisy (×) " +
		"| belay's limit together: median (settled; least–most), changes, probes | servers held: noisy / quiet (most in all) " +
		"| arrival → first result ms: median / p99 (n) | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		f := r.Noisy
		if r.NA != "" || f == nil {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		rel := "n/a"
		if best != nil {
			rel = quotient(f.TotalTPS, noisyTotal(*best))
		}
		arr := "–"
		if f.Arrivals > 0 {
			ge := atLeast(*f)
			arr = fmt.Sprintf("%s / %s%s (%d)", ms(f.ArrivalP50), ge, ms(f.ArrivalP99), f.Arrivals)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %.2f | %s / %s (%s) | %s | %g / %g (%g) | %s | %s |\n", r.Label,
			tpsText(f.QuietTPS), tpsText(f.NoisyTPS), tpsText(f.TotalTPS), rel, f.QuietShare,
			ms(f.QuietAloneP99), ms(f.QuietP99), quotient(f.QuietP99, f.QuietAloneP99),
			limitText(f.Limit), f.NoisyServers, f.QuietServers, f.MaxServers, arr, errText(r))
	}
	renderNoisyVerdicts(b, s)
}

// renderNoisyVerdicts are belay adaptive's figures against issue Q's
// wants, in a noisy-neighbour scenario with variants.
func renderNoisyVerdicts(b *strings.Builder, s *ScenarioResult) {
	a := adaptiveRow(s)
	if !rowRan(a) || a.Noisy == nil {
		b.WriteString("\nNo verdict: belay adaptive did not run.\n")
		return
	}
	f := a.Noisy
	fmt.Fprintf(b, "\n**%s**, medians across rounds (the ratios are of the medians):\n\n", a.Label)
	if best := bestFixed(s, noisyTotal); best != nil && noisyTotal(*best) > 0 {
		r := f.TotalTPS / noisyTotal(*best)
		fmt.Fprintf(b, "- total tps ÷ the best fixed budget's (%s, %s tps): %.2f — wanted ≥ %g: %s\n",
			best.Label, tpsText(noisyTotal(*best)), r, wantOverBestFixed, verdict(r >= wantOverBestFixed))
	} else {
		b.WriteString("- total tps ÷ the best fixed budget's: n/a (no fixed budget ran)\n")
	}
	if pb := s.Row(PgBouncer); rowRan(pb) && noisyTotal(*pb) > 0 {
		r := f.TotalTPS / noisyTotal(*pb)
		fmt.Fprintf(b, "- total tps ÷ PgBouncer's (%s tps): %.2f — wanted ≥ 1: %s\n", tpsText(noisyTotal(*pb)), r, verdict(r >= 1))
	} else {
		b.WriteString("- total tps ÷ PgBouncer's: n/a (PgBouncer did not run)\n")
	}
	fmt.Fprintf(b, "- quiet's share of the transactions: %.2f — wanted ≥ %g: %s\n", f.QuietShare, wantQuietShare, verdict(f.QuietShare >= wantQuietShare))
	if f.QuietAloneP99 > 0 && f.QuietP99 > 0 {
		r := f.QuietP99 / f.QuietAloneP99
		fmt.Fprintf(b, "- quiet's p99 with noisy ÷ alone: %s ms ÷ %s ms = %.2f — wanted ≤ %g: %s\n",
			ms(f.QuietP99), ms(f.QuietAloneP99), r, float64(wantP99Ratio), verdict(r <= wantP99Ratio))
	} else {
		b.WriteString("- quiet's p99 with noisy ÷ alone: n/a\n")
	}
	fmt.Fprintf(b, "- belay's limit while both users ran: %s\n", limitText(f.Limit))
}

// renderSweep is the section of a pgbench scenario with belay variants:
// tps of each target, belay adaptive's over the best fixed budget's, and
// the limit it settled at.
func renderSweep(b *strings.Builder, s *ScenarioResult, m Meta) {
	renderVariantsIntro(b, s, m)
	fmt.Fprintf(b, "pgbench runs %d clients (`-j %d`) for %g s against each target in turn, round by round; PgBouncer with "+
		"`default_pool_size = %d`; direct is PostgreSQL without a proxy. *÷ best fixed* is a target's tps over that of the fixed "+
		"pool with the highest.\n\n", s.Scenario.Clients, m.Jobs, m.Duration, m.PoolSize)
	best := bestFixed(s, func(r Row) float64 { return r.TPS })
	ref := s.Reference()
	b.WriteString("| target | tps | ÷ best fixed | ratio to PgBouncer | p50 ms | p99 ms | proxy CPU s / 1k tx " +
		"| belay's limit: median (settled; least–most), changes, probes | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		rel := "n/a"
		if best != nil {
			rel = quotient(r.TPS, best.TPS)
		}
		lim := "–"
		if _, ok := variantOf(s, r.Target); ok {
			lim = limitText(r.Limit)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, tpsText(r.TPS), rel, ratio(r.TPS, ref),
			ms(r.P50), ms(r.P99), cpuText(r.CPUPer1k), lim, errText(r))
	}
	a := adaptiveRow(s)
	if !rowRan(a) {
		b.WriteString("\nNo verdict: belay adaptive did not run.\n")
		return
	}
	fmt.Fprintf(b, "\n**%s**, medians across rounds: ", a.Label)
	if best != nil && best.TPS > 0 {
		r := a.TPS / best.TPS
		fmt.Fprintf(b, "tps ÷ the best fixed pool's (%s, %s tps): %.2f — wanted ≥ %g: %s; ", best.Label, tpsText(best.TPS), r,
			wantOverBestFixed, verdict(r >= wantOverBestFixed))
	} else {
		b.WriteString("tps ÷ the best fixed pool's: n/a (no fixed pool ran); ")
	}
	if a.Limit != nil {
		fmt.Fprintf(b, "the limit settled at %g (median of the samples of the runs' second halves; over the whole runs %g, %g–%g, %s, %s).\n",
			a.Limit.Settled, a.Limit.Median, a.Limit.Min, a.Limit.Max, plural(a.Limit.Changes, "change"), plural(a.Limit.Probes, "probe"))
	} else {
		b.WriteString("its limit was not read (no `belay_node_limit` in its /metrics).\n")
	}
}

// pgbenchArgsText is sc's pgbench flags as the report shows them: its
// script as "-f script.sql".
func pgbenchArgsText(sc Scenario) string {
	args := strings.Join(sc.PgbenchArgs, " ")
	if sc.Script != "" {
		args = strings.TrimSpace("-f script.sql " + args)
	}
	return args
}

// renderQuota is the quota-halved scenario's section.
func renderQuota(b *strings.Builder, s *ScenarioResult, m Meta) {
	info := s.Quota
	if info == nil {
		info = &QuotaInfo{}
	}
	if info.Skipped != "" {
		fmt.Fprintf(b, "Skipped: %s\n", info.Skipped)
		return
	}
	renderVariantsIntro(b, s, m)
	window := 5.0
	for _, r := range s.Rows {
		if r.Quota != nil {
			window = r.Quota.Window
			break
		}
	}
	fmt.Fprintf(b, "The node is a PostgreSQL of its own (pgbench's tables at scale %d, the bench's settings) in a cgroup of its own, %s, with a CPU "+
		"quota of %.2g core (%d µs per %d µs period); pgbench and belay run outside it. Each run: the node given its full quota, "+
		"belay started afresh in front of it, pgbench (%d clients, `-j %d`, `%s`) for %g s, and %g s after pgbench started the quota "+
		"halved to %.2g core (%d µs per period). *Before* is the %.1f s before the halving, *first after* the %.1f s after it, *last* "+
		"the run's last %.1f s (5 s, or less in a short run); tps and p99 are of the transactions completed in each, by the completion "+
		"times in pgbench's per-transaction log (`-l`). *Limit before* and *after* are the medians of the limit's samples in the "+
		"before and last windows; *to the new level* is the time from the halving to the first sample at or below the new level "+
		"(at or above, had it risen); the samples read while belay probed or checked its queue (a window at a lower limit, "+
		"`belay_node_limit_reason` probe or check) are left out of these, and counted apart (`belay_node_limit_probes_total`). "+
		"*Throttled* is the share of the node's CFS periods in which it used up its quota.\n\n",
		info.Scale, info.Cgroup, info.CoresBefore, info.QuotaBeforeUs, info.PeriodUs, s.Scenario.Clients, m.Jobs,
		pgbenchArgsText(s.Scenario), info.Seconds, info.HalvedAt, info.CoresAfter, info.QuotaAfterUs,
		window, window, window)
	if s.Scenario.Script != "" {
		fmt.Fprintf(b, "The script:\n\n```text\n%s```\n\n", s.Scenario.Script)
	}
	b.WriteString("| target | tps | limit before → after | to the new level | after the halving: changes, probes | tps: before / first after / last " +
		"| p99 ms: before / first after / last | throttled: before / after | proxy CPU s / 1k tx | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		q := r.Quota
		if r.NA != "" || q == nil {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %g → %g | %s | %g, %g | %s / %s / %s | %s / %s / %s | %.0f%% / %.0f%% | %s | %s |\n", r.Label,
			tpsText(r.TPS), q.LimitBefore, q.LimitAfter, followText(q), q.Changes, q.Probes,
			tpsText(q.TPSBefore), tpsText(q.TPSFirst), tpsText(q.TPSLast), ms(q.P99Before), ms(q.P99First), ms(q.P99Last),
			100*q.ThrottledBefore, 100*q.ThrottledAfter, cpuText(r.CPUPer1k), errText(r))
	}
	renderQuotaSeconds(b, s)
}

// renderQuotaSeconds is the second-by-second table of the quota-halved
// scenario: each target's tps, p99 and limit, medians across rounds.
func renderQuotaSeconds(b *strings.Builder, s *ScenarioResult) {
	var rows []Row
	ts := map[int]bool{}
	for _, r := range s.Rows {
		if r.NA == "" && r.Quota != nil {
			rows = append(rows, r)
			for _, sec := range r.Quota.Seconds {
				ts[sec.T] = true
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	var order []int
	for t := range ts {
		order = append(order, t)
	}
	sort.Ints(order)
	b.WriteString("\nSecond by second (medians across rounds; second 0 begins at the halving; p99 of the transactions completed in " +
		"the second; limit: the median of its samples in the second):\n\n| s |")
	for _, r := range rows {
		fmt.Fprintf(b, " %s: tps | p99 ms | limit |", r.Label)
	}
	b.WriteString("\n|--:|")
	for range rows {
		b.WriteString("--:|--:|--:|")
	}
	b.WriteString("\n")
	for _, t := range order {
		fmt.Fprintf(b, "| %d |", t)
		for _, r := range rows {
			var sec *QuotaSecond
			for i := range r.Quota.Seconds {
				if r.Quota.Seconds[i].T == t {
					sec = &r.Quota.Seconds[i]
				}
			}
			if sec == nil {
				b.WriteString(" | | |")
				continue
			}
			lim := "–"
			if sec.Limit > 0 {
				lim = fmt.Sprintf("%g", sec.Limit)
			}
			fmt.Fprintf(b, " %s | %s | %s |", tpsText(sec.TPS), ms(sec.P99), lim)
		}
		b.WriteString("\n")
	}
}

// renderAdaptiveSummary is the summary's tables of the adaptive-limit
// scenarios of rep ("" when there is none).
func renderAdaptiveSummary(rep *Report) string {
	var b, q strings.Builder
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		if len(s.Scenario.Variants) == 0 {
			continue
		}
		if s.Scenario.Kind == KindQuota {
			if q.Len() == 0 {
				q.WriteString("\nA node's CPU quota halved mid-run (the limit's medians before and at the end; p99 ms before / " +
					"in the first seconds after / in the last seconds):\n\n")
				q.WriteString("| scenario | target | limit before → after | to the new level | p99 ms: before / first after / last | tps: before / last |\n")
				q.WriteString("|---|---|--:|--:|--:|--:|\n")
			}
			if s.Quota != nil && s.Quota.Skipped != "" {
				fmt.Fprintf(&q, "| %s | | | | | skipped: %s |\n", s.Scenario.ID, s.Quota.Skipped)
				continue
			}
			for _, r := range s.Rows {
				if r.NA != "" || r.Quota == nil {
					continue
				}
				f := r.Quota
				fmt.Fprintf(&q, "| %s | %s | %g → %g | %s | %s / %s / %s | %s / %s |\n", s.Scenario.ID, r.Label, f.LimitBefore, f.LimitAfter,
					followText(f), ms(f.P99Before), ms(f.P99First), ms(f.P99Last), tpsText(f.TPSBefore), tpsText(f.TPSLast))
			}
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "\nAdaptive limit (issue Q): belay adaptive against the best of the fixed budgets and PgBouncer, medians across "+
				"rounds; tps is the total of both users in the noisy-neighbour scenarios. Wanted: ≥ %g× the best fixed, ≥ PgBouncer, "+
				"quiet's share ≥ %g, quiet's p99 with noisy ≤ %g× alone.\n\n", wantOverBestFixed, wantQuietShare, float64(wantP99Ratio))
			b.WriteString("| scenario | belay adaptive tps | best fixed: tps | PgBouncer tps | adaptive ÷ best fixed | adaptive ÷ PgBouncer " +
				"| quiet's share | quiet's p99 with noisy ÷ alone | belay's limit: median (settled), changes, probes |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		}
		tps := func(r Row) float64 { return r.TPS }
		if s.Scenario.Kind == KindNoisy {
			tps = noisyTotal
		}
		val := func(r *Row) float64 {
			if !rowRan(r) {
				return 0
			}
			return tps(*r)
		}
		a, best, pb := adaptiveRow(s), bestFixed(s, tps), s.Row(PgBouncer)
		bestText := "n/a"
		if best != nil {
			bestText = fmt.Sprintf("%s: %s", best.Label, tpsText(tps(*best)))
		}
		share, p99, lim := "", "", "n/a"
		if rowRan(a) {
			l := a.Limit
			if s.Scenario.Kind == KindNoisy && a.Noisy != nil {
				f := a.Noisy
				share, p99, l = fmt.Sprintf("%.2f", f.QuietShare), quotient(f.QuietP99, f.QuietAloneP99), f.Limit
			}
			if l != nil {
				lim = fmt.Sprintf("%g (%g), %g, %g", l.Median, l.Settled, l.Changes, l.Probes)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Scenario.ID, cellTPS(val(a)), bestText, cellTPS(val(pb)),
			quotient(val(a), val(best)), quotient(val(a), val(pb)), share, p99, lim)
	}
	return b.String() + q.String()
}

// cellTPS is tps, "n/a" for 0.
func cellTPS(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return tpsText(v)
}
