package bench

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
)

func TestAdaptiveScenarios(t *testing.T) {
	ids := []string{"adaptive-noisy-j1", "adaptive-noisy-j2", "adaptive-sweep-readonly-c100", "adaptive-sweep-tpc-b-c100", "adaptive-quota-halved", "adaptive-quota-halved-heavy"}
	full, quick := DefaultScenarios(false, 10000), DefaultScenarios(true, 1000)
	var selected []string
	for _, sc := range full {
		if matchScenario(full, sc.ID, "adaptive") {
			selected = append(selected, sc.ID)
		}
	}
	if !slices.Equal(selected, ids) {
		t.Fatalf("--scenarios adaptive selects %q, want %q", selected, ids)
	}
	for _, sc := range quick {
		if strings.HasPrefix(sc.ID, "adaptive") {
			t.Errorf("quick runs include %s", sc.ID)
		}
	}
	byID := map[string]Scenario{}
	for _, sc := range full {
		byID[sc.ID] = sc
	}
	// The noisy neighbour keeps its meaning: belay proxy at the budget.
	if nn := byID["noisy-neighbour"]; len(nn.Variants) > 0 || nn.NoisyJobs != 0 || nn.Budget != 10 {
		t.Errorf("noisy-neighbour changed: %+v", nn)
	}
	fixed := []string{"belay-fixed-3", "belay-fixed-5", "belay-fixed-8", "belay-fixed-10", "belay-fixed-20"}
	for _, c := range []struct {
		id      string
		targets []string
		jobs    int
	}{
		{"adaptive-noisy-j1", append([]string{PgBouncer, "belay-adaptive"}, fixed...), 1},
		{"adaptive-noisy-j2", append([]string{PgBouncer, "belay-adaptive"}, fixed...), 2},
		{"adaptive-sweep-readonly-c100", append([]string{Direct, PgBouncer, "belay-adaptive"}, fixed...), 0},
		{"adaptive-sweep-tpc-b-c100", append([]string{Direct, PgBouncer, "belay-adaptive"}, fixed...), 0},
	} {
		sc := byID[c.id]
		if got := targetsFor(sc, true, true); !slices.Equal(got, c.targets) {
			t.Errorf("%s: targets %q, want %q", c.id, got, c.targets)
		}
		if sc.NoisyJobs != c.jobs || sc.Clients != 100 {
			t.Errorf("%s: noisy jobs %d, clients %d", c.id, sc.NoisyJobs, sc.Clients)
		}
	}
	if nj := byID["adaptive-noisy-j1"]; nj.Kind != KindNoisy || nj.Budget != 10 || nj.QuietClients != 4 || nj.label("belay-fixed-5") != "belay fixed 5" || nj.label(PgBouncer) != "PgBouncer" {
		t.Errorf("adaptive-noisy-j1: %+v", nj)
	}
	// The flags of each belay: the noisy sweep's fixed budgets keep the
	// pool of 20, the pgbench sweep's pools are their budgets.
	flags := func(id string) []string {
		var f []string
		for _, v := range byID[id].Variants {
			f = append(f, v.Label+": "+v.flagsText(20))
		}
		return f
	}
	if got := flags("adaptive-noisy-j2"); got[0] != "belay adaptive (ceiling 20): `--adaptive-limit=true --pool-size 20 --max-db-connections 20`" ||
		got[2] != "belay fixed 5: `--adaptive-limit=false --pool-size 20 --max-db-connections 5`" {
		t.Errorf("noisy sweep's flags: %q", got)
	}
	if got := flags("adaptive-sweep-tpc-b-c100"); got[2] != "belay fixed 5: `--adaptive-limit=false --pool-size 5 --max-db-connections 5`" {
		t.Errorf("pgbench sweep's flags: %q", got)
	}
	q := byID["adaptive-quota-halved"]
	if q.Kind != KindQuota || len(q.Variants) != 2 || q.Variants[0].Fixed || !q.Variants[1].Fixed || q.Variants[1].MaxDB != 20 {
		t.Errorf("adaptive-quota-halved: %+v", q)
	}
	if h := byID["adaptive-quota-halved-heavy"]; h.Kind != KindQuota || h.QuotaCores != 2 || !strings.Contains(h.Script, ":scale") ||
		pgbenchArgsText(h) != "-f script.sql -M simple" || pgbenchArgsText(q) != "-S -M simple" {
		t.Errorf("adaptive-quota-halved-heavy: %+v", h)
	}
	if needsSingleNode([]Scenario{q}) || !needsSingleNode([]Scenario{q, byID["adaptive-noisy-j1"]}) {
		t.Error("the quota-halved scenario alone needs no single node; the others do")
	}
	if budgetsText([]int{3, 5, 8}) != "3, 5 and 8" || budgetsText([]int{7}) != "7" {
		t.Errorf("budgetsText: %q", budgetsText([]int{3, 5, 8}))
	}
}

func TestParseNodeLimit(t *testing.T) {
	body := `# HELP x
belay_node_limit_ceiling{node="pg1",role="replica"} 20
belay_node_limit{node="pg1",role="replica"} 4
belay_node_limit_changes_total{node="pg1",role="replica"} 2
belay_node_limit_reason{node="pg1",role="replica",reason="grow"} 1
belay_node_limit{node="pg0",role="primary"} 7
belay_node_limit_changes_total{node="pg0",role="primary"} 13
belay_node_limit_probes_total{node="pg0",role="primary"} 4
belay_node_limit_reason{node="pg0",role="primary",reason="check"} 1
belay_server_budget 9
`
	nl, ok := parseNodeLimit(body)
	if want := (nodeLimit{Limit: 7, Changes: 13, Probes: 4, HasChanges: true, Reason: "check"}); !ok || nl != want || !nl.probing() {
		t.Errorf("primary: %+v %v, want %+v", nl, ok, want)
	}
	// One node of another role: its figures.
	nl, ok = parseNodeLimit("belay_node_limit{node=\"\",role=\"replica\"} 5\nbelay_node_limit_reason{node=\"\",role=\"replica\",reason=\"steady\"} 1\n")
	if want := (nodeLimit{Limit: 5, Reason: "steady"}); !ok || nl != want || nl.probing() {
		t.Errorf("single replica: %+v %v, want %+v", nl, ok, want)
	}
	if _, ok := parseNodeLimit("belay_server_budget 9\nbelay_node_limit_ceiling{node=\"\"} 20\n"); ok {
		t.Error("no belay_node_limit: ok")
	}
}

// limitAt is a sample s seconds after t0.
func limitAt(t0 time.Time, s, limit, changes float64) limitSample {
	return limitSample{At: t0.Add(time.Duration(s * float64(time.Second))),
		nodeLimit: nodeLimit{Limit: limit, Changes: changes, HasChanges: true, Reason: "steady"}}
}

// probeAt is a sample s seconds after t0 during a probe.
func probeAt(t0 time.Time, s, limit, changes, probes float64) limitSample {
	l := limitAt(t0, s, limit, changes)
	l.Probes, l.Reason = probes, "probe"
	return l
}

func TestLimitFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []limitSample
	// 20 at first, 10 from 3 s, 8 from 6 s; belay counted one change more
	// between samples (4 in all by 6 s).
	for s := 0.0; s < 10; s += 0.5 {
		l, c := 20.0, 0.0
		switch {
		case s >= 6:
			l, c = 8, 4
		case s >= 3:
			l, c = 10, 2
		}
		samples = append(samples, limitAt(t0, s, l, c))
	}
	// A probe at 7 s: two samples at 2, not the limit's course; probes
	// counted from then.
	samples[14], samples[15] = probeAt(t0, 7, 2, 4, 1), probeAt(t0, 7.5, 2, 4, 1)
	for i := 16; i < len(samples); i++ {
		samples[i].Probes = 2
	}
	f := limitFigures(samples, t0.Add(2*time.Second), t0.Add(8*time.Second))
	// In [2, 8]: 20 20 10×6 8×3 (and 2 probe samples); second half from
	// 5 s: 10 10 8×3.
	if want := (LimitFigures{Samples: 13, ProbeSamples: 2, Median: 10, Settled: 8, Min: 8, Max: 20, Changes: 4, Probes: 2}); f == nil || *f != want {
		t.Fatalf("limitFigures = %+v, want %+v", f, want)
	}
	// Without the changes counter: the changes seen from sample to
	// sample of the course.
	for i := range samples {
		samples[i].Changes, samples[i].HasChanges = 0, false
	}
	if f := limitFigures(samples, t0, t0.Add(10*time.Second)); f.Changes != 2 {
		t.Errorf("changes seen between samples: %v, want 2", f.Changes)
	}
	// Only probe samples: they are the figures.
	if f := limitFigures(samples[14:16], t0, t0.Add(10*time.Second)); f == nil || f.Median != 2 || f.ProbeSamples != 0 {
		t.Errorf("probe samples only: %+v", f)
	}
	if limitFigures(samples, t0.Add(time.Hour), t0.Add(2*time.Hour)) != nil {
		t.Error("no sample in the window: not nil")
	}
	agg := aggregateLimit([]*LimitFigures{
		{Samples: 10, ProbeSamples: 1, Median: 10, Settled: 8, Min: 8, Max: 20, Changes: 4, Probes: 2},
		nil,
		{Samples: 12, Median: 12, Settled: 9, Min: 3, Max: 12, Changes: 2},
		{Samples: 11, Median: 14, Settled: 10, Min: 9, Max: 14, Changes: 9, Probes: 4},
	})
	if want := (LimitFigures{Samples: 33, ProbeSamples: 1, Median: 12, Settled: 9, Min: 3, Max: 20, Changes: 4, Probes: 2}); agg == nil || *agg != want {
		t.Errorf("aggregateLimit = %+v, want %+v", agg, want)
	}
	if aggregateLimit([]*LimitFigures{nil}) != nil {
		t.Error("aggregateLimit of nothing: not nil")
	}
	if got := limitText(agg); got != "12 (settled 9; 3–20), 4 changes, 2 probes" {
		t.Errorf("limitText = %q", got)
	}
	if got := limitText(&LimitFigures{Median: 5, Settled: 5, Min: 5, Max: 5, Changes: 1, Probes: 1}); got != "5 (settled 5; 5–5), 1 change, 1 probe" || limitText(nil) != "n/a" {
		t.Errorf("limitText = %q", got)
	}
}

// quotaLog is a run's per-transaction log: a transaction completed every
// 10 ms from t0-2 s to t0+22 s, of 1 ms before t0+10 s and 4 ms after,
// but every 50th ten times that.
func quotaLog(t0 time.Time) LogStats {
	var st LogStats
	for i := -199; i < 2200; i++ {
		lat := 1000.0
		if i >= 1000 {
			lat = 4000
		}
		if i%50 == 0 {
			lat *= 10
		}
		st.Latencies = append(st.Latencies, lat)
		st.Ends = append(st.Ends, t0.UnixMicro()+int64(i)*10_000)
	}
	return st
}

func TestQuotaFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	halved, end := t0.Add(10*time.Second), t0.Add(21*time.Second)
	var samples []limitSample
	// 20 until the halving, 12 from 1.5 s after it, 8 from 3 s after it,
	// 9 for a moment at 6 s.
	for s := 0.25; s < 20.5; s += 0.25 {
		l, c := 20.0, 0.0
		switch {
		case s >= 16 && s < 16.5:
			l, c = 9, 3
		case s >= 16.5:
			l, c = 8, 4
		case s >= 13:
			l, c = 8, 2
		case s >= 11.5:
			l, c = 12, 1
		}
		samples = append(samples, limitAt(t0, s, l, c))
	}
	// A probe at 11 s, down to 2: not the new level.
	samples[43], samples[44] = probeAt(t0, 11, 2, 0, 1), probeAt(t0, 11.25, 2, 0, 1)
	for i := 45; i < len(samples); i++ {
		samples[i].Probes = 2
	}
	q := quotaFigures(quotaLog(t0), samples, t0, halved, end)
	// The run is from t0 to t0+21 s (its transactions go on longer); the
	// windows are 5 s.
	if q.Window != 5 || q.LimitBefore != 20 || q.LimitAfter != 8 || q.FollowS != 3 || q.Changes != 4 || q.Probes != 2 {
		t.Fatalf("limits: %+v", q)
	}
	if q.TPSBefore != 100 || q.TPSFirst != 100 || math.Abs(q.TPSLast-100) > 0.5 || q.P99Before != 10 || q.P99First != 40 || q.P99Last != 40 {
		t.Errorf("windows: tps %v / %v / %v, p99 %v / %v / %v", q.TPSBefore, q.TPSFirst, q.TPSLast, q.P99Before, q.P99First, q.P99Last)
	}
	if n := len(q.Seconds); n != 21 || q.Seconds[0].T != -10 || q.Seconds[n-1].T != 10 {
		t.Fatalf("seconds: %+v", q.Seconds)
	}
	at := func(k int) QuotaSecond { return q.Seconds[k+10] }
	if s := at(-1); s.TPS != 100 || s.P99 != 10 || s.Limit != 20 {
		t.Errorf("second -1: %+v", s)
	}
	if s := at(1); s.TPS != 100 || s.P99 != 40 || s.Limit != 12 { // (2 2) 12 12
		t.Errorf("second 1: %+v", s)
	}
	if s := at(6); s.Limit != 8.5 { // 9 9 8 8
		t.Errorf("second 6: %+v", s)
	}
	if followText(q) != "3.00 s" {
		t.Errorf("followText = %q", followText(q))
	}
	// A fixed limit does not move.
	for i := range samples {
		samples[i].Limit, samples[i].Changes, samples[i].Probes, samples[i].Reason = 20, 0, 0, "fixed"
	}
	fixed := quotaFigures(quotaLog(t0), samples, t0, halved, end)
	if fixed.FollowS != -1 || fixed.LimitAfter != 20 || fixed.Changes != 0 || followText(fixed) != "did not move" {
		t.Errorf("fixed: %+v", fixed)
	}
	// A short run: windows of half the shorter part; the run narrowed to
	// its transactions.
	log := quotaLog(t0)
	log.Ends, log.Latencies = log.Ends[400:], log.Latencies[400:] // from t0+2.01 s
	short := quotaFigures(log, nil, t0, t0.Add(4*time.Second), t0.Add(5*time.Second))
	if short.Window != 0.5 || short.FollowS != -1 || short.LimitBefore != 0 || len(short.Seconds) != 2 || short.Seconds[0].T != -1 {
		t.Errorf("short run: window %v, %+v", short.Window, short)
	}
	agg := aggregateQuota([]RunResult{{Quota: q}, {}, {Quota: fixed}, {Quota: &QuotaRun{FollowS: 5, LimitBefore: 10, LimitAfter: 6,
		Seconds: []QuotaSecond{{T: 1, TPS: 50, P99: 20, Limit: 6}, {T: 12, TPS: 1}}}}})
	if agg.FollowS != 4 || agg.LimitBefore != 20 || agg.LimitAfter != 8 {
		t.Errorf("aggregateQuota: %+v", agg)
	}
	if n := len(agg.Seconds); n != 22 || agg.Seconds[11].T != 1 || agg.Seconds[11].TPS != 100 || agg.Seconds[11].Limit != 12 || agg.Seconds[n-1].T != 12 {
		t.Errorf("aggregateQuota's seconds: %+v", agg.Seconds)
	}
	if aggregateQuota([]RunResult{{}}) != nil {
		t.Error("aggregateQuota of nothing: not nil")
	}
}

// adaptiveReport is a report of the adaptive-limit scenarios as Run
// builds it, without running anything.
func adaptiveReport() *Report {
	byID := map[string]Scenario{}
	for _, sc := range adaptiveScenarios() {
		byID[sc.ID] = sc
	}
	row := func(sc Scenario, name string, runs ...RunResult) Row {
		for i := range runs {
			runs[i].Target = name
		}
		return aggregate(name, sc.label(name), runs)
	}
	// The pgbench sweep: fixed 8 is the best, adaptive 0.95 of it.
	sweep := byID["adaptive-sweep-readonly-c100"]
	pg := func(tps, limit float64) RunResult {
		r := RunResult{TPS: tps, CPUPer1k: 0.02}
		r.setLatencies([]float64{1000, 2000, 3000})
		if limit > 0 {
			r.Limit = &LimitFigures{Samples: 80, Median: limit, Settled: limit, Min: limit, Max: limit}
		}
		return r
	}
	adaptive := pg(19000, 0)
	adaptive.Limit = &LimitFigures{Samples: 80, Median: 9, Settled: 8, Min: 2, Max: 20, Changes: 6, Probes: 3}
	direct := pg(24000, 0)
	direct.CPUPer1k = -1
	sweepRes := ScenarioResult{Scenario: sweep, Rows: []Row{
		row(sweep, Direct, direct), row(sweep, PgBouncer, pg(20000, 0)), row(sweep, "belay-adaptive", adaptive),
		row(sweep, "belay-fixed-3", pg(15000, 3)), row(sweep, "belay-fixed-5", pg(18000, 5)), row(sweep, "belay-fixed-8", pg(20000, 8)),
		row(sweep, "belay-fixed-10", pg(19500, 10)), row(sweep, "belay-fixed-20", pg(17000, 20)),
	}}
	// The noisy sweep: adaptive's total 0.8 of fixed 10's.
	noisy := byID["adaptive-noisy-j1"]
	nr := func(quiet, noisy, alone, with float64, limit *LimitFigures) RunResult {
		f := &NoisyFigures{QuietTPS: quiet, NoisyTPS: noisy, TotalTPS: quiet + noisy, QuietShare: quiet / (quiet + noisy),
			QuietAloneP99: alone, QuietP99: with, NoisyServers: 6, QuietServers: 4, MaxServers: 10, Limit: limit}
		return RunResult{TPS: quiet, CPUPer1k: -1, Noisy: f}
	}
	noisyRes := ScenarioResult{Scenario: noisy, Rows: []Row{
		row(noisy, PgBouncer, nr(300, 25000, 0.7, 27, nil)),
		row(noisy, "belay-adaptive", nr(6000, 14000, 0.5, 1.2, &LimitFigures{Samples: 20, Median: 9, Settled: 9, Min: 9, Max: 20, Changes: 1})),
		row(noisy, "belay-fixed-3", nr(5000, 10000, 0.7, 2, nil)), row(noisy, "belay-fixed-5", nr(5000, 15000, 0.7, 2, nil)),
		row(noisy, "belay-fixed-8", nr(5000, 18000, 0.7, 2, nil)), row(noisy, "belay-fixed-10", nr(5000, 20000, 0.7, 2, nil)),
		row(noisy, "belay-fixed-20", nr(2000, 17000, 0.7, 7, nil)),
	}}
	quota := byID["adaptive-quota-halved"]
	qr := func(q *QuotaRun) RunResult {
		r := RunResult{TPS: 12000, CPUPer1k: 0.02, Quota: q}
		r.setLatencies([]float64{1000, 2000, 3000})
		return r
	}
	quotaRes := ScenarioResult{Scenario: quota, Quota: &QuotaInfo{Cgroup: "cgroup v1", CoresBefore: 1, CoresAfter: 0.5, QuotaBeforeUs: 10000,
		QuotaAfterUs: 5000, PeriodUs: 10000, Seconds: 30, HalvedAt: 15, Scale: 10}, Rows: []Row{
		row(quota, "belay-adaptive", qr(&QuotaRun{Window: 5, LimitBefore: 12, LimitAfter: 7, FollowS: 2.25, Changes: 3, Probes: 1, TPSBefore: 16000,
			TPSFirst: 10000, TPSLast: 10500, P99Before: 10, P99First: 36, P99Last: 21, ThrottledBefore: 0.4, ThrottledAfter: 1,
			Seconds: []QuotaSecond{{T: -1, TPS: 16000, P99: 10, Limit: 12}, {T: 0, TPS: 10000, P99: 36, Limit: 12}, {T: 1, TPS: 10000, P99: 30, Limit: 7}}})),
		row(quota, "belay-fixed-20", qr(&QuotaRun{Window: 5, LimitBefore: 20, LimitAfter: 20, FollowS: -1, TPSBefore: 15000,
			TPSFirst: 9600, TPSLast: 9500, P99Before: 11, P99First: 50, P99Last: 58,
			Seconds: []QuotaSecond{{T: -1, TPS: 15000, P99: 11, Limit: 20}, {T: 0, TPS: 9000, P99: 50, Limit: 20}}})),
	}}
	return &Report{
		Meta:      Meta{Command: "belay bench --scenarios adaptive", Rounds: 1, Duration: 20, PoolSize: 20, Jobs: 2, Scale: 10, Cores: 2},
		Scenarios: []ScenarioResult{noisyRes, sweepRes, quotaRes},
	}
}

func TestRenderAdaptive(t *testing.T) {
	rep := adaptiveReport()
	noisy, sweep := &rep.Scenarios[0], &rep.Scenarios[1]
	if b := bestFixed(sweep, func(r Row) float64 { return r.TPS }); b == nil || b.Target != "belay-fixed-8" {
		t.Errorf("best fixed pool: %+v", b)
	}
	if b := bestFixed(noisy, noisyTotal); b == nil || b.Target != "belay-fixed-10" {
		t.Errorf("best fixed budget: %+v", b)
	}
	if a := adaptiveRow(sweep); a == nil || a.Target != "belay-adaptive" {
		t.Errorf("adaptive row: %+v", a)
	}
	md := RenderMarkdown(rep, nil)
	for _, want := range []string{
		// The summary.
		"| adaptive-noisy-j1 | 20,000 | belay fixed 10: 25,000 | 25,300 | 0.80 | 0.79 | 0.30 | 2.40 | 9 (9), 1, 0 |",
		"| adaptive-sweep-readonly-c100 | 19,000 | belay fixed 8: 20,000 | 20,000 | 0.95 | 0.95 |  |  | 9 (8), 6, 3 |",
		"| adaptive-quota-halved | belay adaptive (ceiling 20) | 12 → 7 | 2.25 s | 10.00 / 36.00 / 21.00 | 16,000 / 10,500 |",
		"| adaptive-quota-halved | belay fixed 20 | 20 → 20 | did not move | 11.00 / 50.00 / 58.00 | 15,000 / 9,500 |",
		// The noisy sweep.
		"belay fixed 5: `--adaptive-limit=false --pool-size 20 --max-db-connections 5`",
		"user `noisy` runs 100 pgbench clients (`-j 1`)",
		"| PgBouncer | 300 | 25,000 | 25,300 | 1.01 | 0.01 | 0.700 / 27.00 (38.57) | n/a | 6 / 4 (10) | – | 0 |",
		"| belay adaptive (ceiling 20) | 6,000 | 14,000 | 20,000 | 0.80 | 0.30 | 0.500 / 1.200 (2.40) | 9 (settled 9; 9–20), 1 change, 0 probes | 6 / 4 (10) | – | 0 |",
		"- total tps ÷ the best fixed budget's (belay fixed 10, 25,000 tps): 0.80 — wanted ≥ 0.9: **not met**",
		"- total tps ÷ PgBouncer's (25,300 tps): 0.79 — wanted ≥ 1: **not met**",
		"- quiet's share of the transactions: 0.30 — wanted ≥ 0.3: met",
		"- quiet's p99 with noisy ÷ alone: 1.200 ms ÷ 0.500 ms = 2.40 — wanted ≤ 2: **not met**",
		// The pgbench sweep.
		"belay fixed 5: `--adaptive-limit=false --pool-size 5 --max-db-connections 5`",
		"| direct | 24,000 | 1.20 | 1.20 | 2.000 | 3.000 | n/a | – | 0 |",
		"| belay adaptive (ceiling 20) | 19,000 | 0.95 | 0.95 | 2.000 | 3.000 | 0.020 | 9 (settled 8; 2–20), 6 changes, 3 probes | 0 |",
		"| belay fixed 8 | 20,000 | 1.00 | 1.00 |",
		"tps ÷ the best fixed pool's (belay fixed 8, 20,000 tps): 0.95 — wanted ≥ 0.9: met; the limit settled at 8",
		// The quota halved.
		"halved to 0.5 core (5000 µs per period)",
		"| belay adaptive (ceiling 20) | 12,000 | 12 → 7 | 2.25 s | 3, 1 | 16,000 / 10,000 / 10,500 | 10.00 / 36.00 / 21.00 | 40% / 100% | 0.020 | 0 |",
		"| s | belay adaptive (ceiling 20): tps | p99 ms | limit | belay fixed 20: tps | p99 ms | limit |",
		"| 0 | 10,000 | 36.00 | 12 | 9,000 | 50.00 | 20 |",
		"| 1 | 10,000 | 30.00 | 7 | | | |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The main summary table has no row for them (no belay proxy ran).
	if strings.Contains(RenderSummary(rep), "| scenario | direct | PgBouncer | belay |") {
		t.Error("the summary's main table is there without a scenario of its own")
	}
	if t.Failed() {
		t.Log(md)
	}
	charts, err := WriteCharts(t.TempDir(), rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(charts["adaptive-quota-halved"]) != 2 || len(charts["adaptive-sweep-readonly-c100"]) != 2 {
		t.Errorf("charts: %v", charts)
	}
	// Skipped where there are no cgroups.
	skipped := ScenarioResult{Scenario: rep.Scenarios[2].Scenario, Quota: &QuotaInfo{Skipped: "no cgroup file system"},
		Rows: []Row{{Target: "belay-adaptive", Label: "belay adaptive (ceiling 20)", NA: "skipped: no cgroup file system"}}}
	md = RenderMarkdown(&Report{Scenarios: []ScenarioResult{skipped}}, nil)
	if !strings.Contains(md, "Skipped: no cgroup file system") || !strings.Contains(md, "| adaptive-quota-halved | | | | | skipped: no cgroup file system |") {
		t.Errorf("skipped quota scenario:\n%s", md)
	}
}

// TestAdaptiveEndToEnd runs the adaptive-limit scenarios in small:
// PostgreSQL, belay variants (this test binary as proxy, adaptive at a
// ceiling of 4 and fixed at 2), one second per run, a pgbench sweep, a
// noisy neighbour and, where cgroups can limit CPU, the quota halved.
func TestAdaptiveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end bench starts PostgreSQL and proxies")
	}
	if _, err := pginstance.FindBinDir(); err != nil {
		t.Fatal(err) // CI installs PostgreSQL (make deps): never skip silently
	}
	ad := BelayVariant{Name: adaptiveVariantName, Label: "belay adaptive (ceiling 4)", PoolSize: 4, MaxDB: 4}
	variants := []BelayVariant{ad, fixedVariant(2, 4)}
	sel := []string{"-S", "-M", "simple"}
	o := Options{
		Out: t.TempDir(), Duration: time.Second, Rounds: 1, Scale: 1, PoolSize: 4, Jobs: 2, WarmUp: -1,
		BelayExe: os.Args[0], BelayEnv: []string{proxyEnv + "=1"}, NoPgBouncer: true, NoTiers: true,
		QuotaDuration: 4 * time.Second, Command: "go test ./bench -run TestAdaptiveEndToEnd",
		Scenarios: []Scenario{
			{ID: "adaptive-sweep-c8", Title: "adaptive sweep", PgbenchArgs: sel, Clients: 8, Variants: variants},
			{ID: "adaptive-noisy", Title: "adaptive noisy neighbour", Kind: KindNoisy, PgbenchArgs: sel, Clients: 8, QuietClients: 2,
				Budget: 3, Arrivals: 3, NoisyJobs: 1, DirectNA: "n/a", Variants: variants},
			{ID: "adaptive-quota", Title: "adaptive quota halved", Kind: KindQuota, PgbenchArgs: sel, Clients: 8,
				Variants: []BelayVariant{ad, fixedVariant(4, 4)}},
		},
	}
	work, err := os.MkdirTemp("", "belay-bench-adaptive-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	o.WorkDir = work
	rep := runLogged(t, o)
	logs, _ := filepath.Glob(filepath.Join(work, "variants", "*", "belay.log"))
	if len(logs) != 3 {
		t.Errorf("variants' logs: %q", logs)
	}
	for _, l := range logs {
		if b, _ := os.ReadFile(l); bytes.Contains(b, []byte("DATA RACE")) || bytes.Contains(b, []byte("panic:")) {
			t.Errorf("%s: a data race or a panic:\n%s", l, b)
		}
	}
	ran := func(s *ScenarioResult, name string) *Row {
		t.Helper()
		r := s.Row(name)
		if r == nil || r.NA != "" || r.ErrorCount() > 0 {
			t.Fatalf("%s %s: %+v", s.Scenario.ID, name, r)
		}
		return r
	}
	sweep, noisy, quota := &rep.Scenarios[0], &rep.Scenarios[1], &rep.Scenarios[2]
	if got := []string{sweep.Rows[0].Target, sweep.Rows[1].Target, sweep.Rows[2].Target, sweep.Rows[3].Target}; !slices.Equal(got,
		[]string{Direct, PgBouncer, adaptiveVariantName, "belay-fixed-2"}) {
		t.Errorf("sweep's rows: %q", got)
	}
	a, f := ran(sweep, adaptiveVariantName), ran(sweep, "belay-fixed-2")
	if a.TPS <= 0 || a.Limit == nil || a.Limit.Samples == 0 || a.Limit.Max > 4 || a.CPUPer1k < 0 {
		t.Errorf("sweep, adaptive: tps %v, limit %+v", a.TPS, a.Limit)
	}
	if f.TPS <= 0 || f.Limit == nil || f.Limit.Min != 2 || f.Limit.Max != 2 || f.Limit.Changes != 0 {
		t.Errorf("sweep, fixed 2: tps %v, limit %+v", f.TPS, f.Limit)
	}
	if na := noisy.Row(Direct); na != nil {
		t.Errorf("noisy: a direct row without figures: %+v", na)
	}
	na, nf := ran(noisy, adaptiveVariantName).Noisy, ran(noisy, "belay-fixed-2").Noisy
	if na == nil || na.NoisyTx == 0 || na.TotalTPS <= 0 || na.Limit == nil || na.Arrivals != 3 || na.QuietAloneP99 <= 0 {
		t.Errorf("noisy, adaptive: %+v", na)
	}
	if nf == nil || nf.NoisyTx == 0 || nf.Limit == nil || nf.Limit.Median != 2 || nf.Arrivals != 0 || nf.CalmArrivals != 0 || nf.MaxServers > 2 {
		t.Errorf("noisy, fixed 2 (no arrivals): %+v", nf)
	}
	if quota.Quota == nil {
		t.Fatal("quota: no setup")
	}
	if quota.Quota.Skipped != "" {
		t.Logf("quota halved skipped: %s", quota.Quota.Skipped)
	} else {
		qa, qf := ran(quota, adaptiveVariantName).Quota, ran(quota, "belay-fixed-4").Quota
		if qa == nil || len(qa.Seconds) < 3 || qa.TPSBefore <= 0 || qa.TPSLast <= 0 || qa.LimitBefore == 0 {
			t.Errorf("quota, adaptive: %+v", qa)
		}
		if qf == nil || qf.LimitBefore != 4 || qf.LimitAfter != 4 || qf.FollowS != -1 || qf.ThrottledAfter <= 0 {
			t.Errorf("quota, fixed 4: %+v", qf)
		}
		// The node cgroups are gone.
		for _, pattern := range []string{"/sys/fs/cgroup/*/", "/sys/fs/cgroup/"} {
			if m, _ := filepath.Glob(pattern + cgroupPrefix + strconv.Itoa(os.Getpid()) + "*"); len(m) > 0 {
				t.Errorf("cgroup %s left behind", m)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range o.Scenarios {
		if !bytes.Contains(md, []byte("## "+sc.Title)) {
			t.Errorf("report.md lacks the section of %s", sc.ID)
		}
	}
}
