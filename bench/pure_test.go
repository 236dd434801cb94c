package bench

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/testcert"
)

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (belay (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 1500 250 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := ParseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.UTimeTicks != 1500 || st.STimeTicks != 250 {
		t.Fatalf("utime, stime = %d, %d; want 1500, 250", st.UTimeTicks, st.STimeTicks)
	}
	if got := st.CPUSeconds(); got != 17.5 {
		t.Fatalf("CPUSeconds = %v, want 17.5", got)
	}
	for _, bad := range []string{"", "12 noparen S 1", "1 (x) S 1 2 3"} {
		if _, err := ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("ParseProcStat(%q): no error", bad)
		}
	}
	// Our own process parses.
	if _, err := readProcStat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseStatm(t *testing.T) {
	rss, err := ParseStatm([]byte("52000 3000 1000 200 0 4000 0\n"), 4096)
	if err != nil || rss != 3000*4096 {
		t.Fatalf("ParseStatm = %d, %v; want %d", rss, err, 3000*4096)
	}
	if _, err := ParseStatm([]byte("52000"), 4096); err == nil {
		t.Fatal("short statm: no error")
	}
	if rss, err := readRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("readRSS(self) = %d, %v", rss, err)
	}
}

func TestParsePgbenchLogAndPercentiles(t *testing.T) {
	var b strings.Builder
	// 1000 transactions with latencies 1..1000 µs, in shuffled order, plus
	// a failed and a skipped one and a line with schedule lag and retries.
	for i := 0; i < 1000; i++ {
		v := (i*7919)%1000 + 1
		b.WriteString("3 ")
		b.WriteString(itoa(i))
		b.WriteString(" ")
		b.WriteString(itoa(v))
		b.WriteString(" 0 1700000000 123456\n")
	}
	b.WriteString("4 1 failed 0 1700000000 123456 0 1\n")
	b.WriteString("4 2 skipped 0 1700000000 123456 12\n\n")
	var st LogStats
	if err := ParsePgbenchLog(strings.NewReader(b.String()), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Latencies) != 1000 || st.Failed != 1 || st.Skipped != 1 {
		t.Fatalf("got %d latencies, %d failed, %d skipped", len(st.Latencies), st.Failed, st.Skipped)
	}
	if len(st.Ends) != len(st.Latencies) || st.Ends[0] != 1700000000123456 {
		t.Fatalf("completion times: %d for %d latencies, first %v", len(st.Ends), len(st.Latencies), st.Ends[:1])
	}
	var r RunResult
	r.setLatencies(st.Latencies)
	if r.P50 != 0.5 || r.P99 != 0.99 || r.P999 != 0.999 {
		t.Fatalf("p50/p99/p99.9 = %v/%v/%v ms; want 0.5/0.99/0.999", r.P50, r.P99, r.P999)
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Fatalf("Percentile(nil) = %v", got)
	}
	if got := Percentile([]float64{7}, 0.999); got != 7 {
		t.Fatalf("Percentile of one = %v", got)
	}
	if err := ParsePgbenchLog(strings.NewReader("1 2 abc 0 1 2\n"), &st); err == nil {
		t.Fatal("bad latency: no error")
	}
	if err := ParsePgbenchLog(strings.NewReader("1 2 3\n"), &st); err == nil {
		t.Fatal("short line: no error")
	}
	if err := ParsePgbenchLog(strings.NewReader("1 2 3 0 x 2\n"), &st); err == nil {
		t.Fatal("bad time stamp: no error")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

const pgbenchOK = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 10
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 73519
number of failed transactions: 0 (0.000%)
latency average = 0.678 ms
initial connection time = 12.345 ms
tps = 14736.123456 (without initial connection time)
`

const pgbenchAborted = `pgbench: error: client 3 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement "P0_1" does not exist
pgbench: error: client 7 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement "P0_1" does not exist
pgbench: error: client 8 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement "P0_1" already exists
pgbench: error: Run was aborted; the above results are incomplete.
`

func TestParsePgbenchOutput(t *testing.T) {
	s := ParsePgbenchOutput(pgbenchOK, "")
	if s.TPS != 14736.123456 || s.Processed != 73519 || s.Failed != 0 || s.Aborted != 0 || len(s.Errors) != 0 || s.Incomplete {
		t.Fatalf("ok run: %+v", s)
	}
	s = ParsePgbenchOutput(strings.Replace(pgbenchOK, "73519", "1200", 1), pgbenchAborted)
	if s.Aborted != 3 || !s.Incomplete || s.Processed != 1200 {
		t.Fatalf("aborted run: %+v", s)
	}
	if len(s.Errors) != 2 || !strings.Contains(s.Errors[0], `prepared statement "P0_1" does not exist`) || strings.Contains(s.Errors[0], "client 3") {
		t.Fatalf("errors not deduplicated without client numbers: %q", s.Errors)
	}
	s = ParsePgbenchOutput("", "pgbench: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n")
	if s.ConnFails != 1 || len(s.Errors) != 1 {
		t.Fatalf("connection failure: %+v", s)
	}
	s = ParsePgbenchOutput("tps = 812.5 (including reconnection times)\n", "")
	if s.TPS != 812.5 {
		t.Fatalf("-C tps: %+v", s)
	}
}

func TestAggregateMedians(t *testing.T) {
	runs := []RunResult{
		{TPS: 100, P50: 1, P99: 5, P999: 9, CPUPer1k: 0.1, Failed: 1, Errors: []string{"x"}, lat: []float64{3, 1}},
		{TPS: 300, P50: 3, P99: 7, P999: 11, CPUPer1k: 0.3, Aborted: 2, Errors: []string{"x", "y"}, lat: []float64{2}},
		{TPS: 200, P50: 2, P99: 6, P999: 10, CPUPer1k: 0.2},
	}
	row := aggregate(Belay, "belay", runs)
	if row.TPS != 200 || row.P50 != 2 || row.P99 != 6 || row.P999 != 10 || row.CPUPer1k != 0.2 {
		t.Fatalf("medians: %+v", row)
	}
	if row.ErrorCount() != 3 || len(row.Errors) != 2 {
		t.Fatalf("errors: %d %q", row.ErrorCount(), row.Errors)
	}
	if lat := row.Latencies(); len(lat) != 3 || lat[0] != 1 || lat[2] != 3 {
		t.Fatalf("latencies %v", lat)
	}
	na := aggregate(Direct, "direct", []RunResult{{NA: "no"}, {NA: "no"}})
	if na.NA != "no" || na.CPUPer1k != -1 {
		t.Fatalf("n/a row: %+v", na)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{512 << 10: "512 KiB", 3 << 20: "3.0 MiB", 3 << 30: "3.00 GiB", -(2 << 20): "-2.0 MiB"} {
		if got := mib(in); got != want {
			t.Errorf("mib(%d) = %q, want %q", in, got, want)
		}
	}
	if got := bytesText(5324.8); got != "5.2 KiB" {
		t.Errorf("bytesText = %q", got)
	}
}

func TestMatchScenario(t *testing.T) {
	all := DefaultScenarios(false, 10000)
	if !matchScenario(all, "select-simple-c10", "select-simple-c10") || matchScenario(all, "select-simple-c100", "select-simple-c10") {
		t.Fatal("an exact ID must select only itself")
	}
	if !matchScenario(all, "select-prepared-c100", "prepared") || matchScenario(all, "tpcb-c10", "prepared") {
		t.Fatal("a substring selects the IDs containing it")
	}
	ids := map[string]bool{}
	for _, s := range all {
		if ids[s.ID] {
			t.Fatalf("duplicate scenario ID %s", s.ID)
		}
		ids[s.ID] = true
	}
	for _, id := range []string{"select-simple-c4", "select-simple-c1000", "idle-10000", "slow-client", "churn-c10", "tpcb-c10"} {
		if !ids[id] {
			t.Errorf("full mode lacks %s", id)
		}
	}
	q := DefaultScenarios(true, 1000)
	if len(q) >= len(all) {
		t.Fatal("quick mode should run fewer scenarios")
	}
	for _, scs := range [][]Scenario{all, q} {
		n := 0
		for _, sc := range scs {
			if sc.ID == "noisy-neighbour" && sc.Kind == KindNoisy && sc.Budget == 10 && sc.Clients == 100 && sc.QuietClients == 4 {
				n++
			}
		}
		if n != 1 || !matchScenario(scs, "noisy-neighbour", "noisy-neighbour") {
			t.Fatalf("noisy-neighbour: %d in the defaults, want 1 selectable", n)
		}
	}
}

// sampleReport is a report as Run builds it, without running anything.
func sampleReport() *Report {
	mk := func(target string, tps float64, lat []float64, cpu float64) RunResult {
		r := RunResult{Target: target, TPS: tps, CPUPer1k: cpu, Transactions: int64(tps * 5)}
		r.setLatencies(lat)
		return r
	}
	lat := func(base float64) []float64 {
		var l []float64
		for i := 1; i <= 2000; i++ {
			l = append(l, base*float64(i)/1000)
		}
		return l
	}
	byID := func(id string) Scenario {
		for _, sc := range DefaultScenarios(true, 1000) {
			if sc.ID == id {
				return sc
			}
		}
		panic("BUG: no scenario " + id)
	}
	sel, prep, idle, slow, noisy := byID("select-simple-c10"), byID("select-prepared-c10"), byID("idle-1000"), byID("slow-client"), byID("noisy-neighbour")
	bad := mk(PgBouncer, 40, lat(500), 0.02)
	bad.Aborted, bad.Errors = 10, []string{`client aborted in command 1 (SQL) of script 0; ERROR: prepared statement "P0_1" does not exist`}
	idleRun := func(target string, per float64) RunResult {
		r := mk(target, 9000, lat(800), 0.03)
		r.IdleWanted, r.IdleOpened, r.RSSBefore, r.RSSIdle, r.RSSPerIdle = 1000, 1000, 10<<20, 15<<20, per
		return r
	}
	slowRun := func(target string, base, peak int64) RunResult {
		return RunResult{Target: target, CPUPer1k: -1, BytesRead: 5 << 20, ReadRate: 1 << 20, RSSBase: base, RSSPeak: peak,
			ServerReleaseMs: 25, StillServes: true, RSSSamples: []RSSSample{{0, base}, {0.1, peak}, {0.2, peak}}}
	}
	noisyRun := func(target string, share, arrival float64) RunResult {
		r := RunResult{Target: target, CPUPer1k: -1, aloneLat: lat(300)}
		r.setLatencies(lat(900))
		r.Noisy = &NoisyFigures{NoisyTPS: 9000, QuietTPS: 9000 * share / (1 - share), QuietShare: share, QuietFirstMs: 2.5,
			QuietP50: r.P50, QuietP99: r.P99, QuietAloneP50: 0.15, QuietAloneP99: 0.297, NoisyServers: 7, QuietServers: 3, MaxServers: 10}
		for i := 1; i <= 40; i++ {
			r.Arrivals = append(r.Arrivals, Arrival{User: arrivalUser(i), Loaded: true, LoginMs: 1, FirstMs: arrival * float64(i) / 20})
		}
		r.Arrivals = append(r.Arrivals, Arrival{User: "arrive_41", LoginMs: 1, FirstMs: 2})
		r.Noisy.setArrivals(r.Arrivals)
		r.TPS = r.Noisy.QuietTPS
		return r
	}
	starved := noisyRun(PgBouncer, 0, 4000)
	starved.Arrivals[39].TimedOut = true
	starved.Noisy.setArrivals(starved.Arrivals)
	starved.Noisy.QuietFirstMs = -1
	starved.setLatencies(nil) // no transaction while the noisy user ran
	starved.Noisy.QuietP50, starved.Noisy.QuietP99 = 0, 0
	return &Report{
		Meta: Meta{Command: "belay bench --quick", Started: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), WallSeconds: 200,
			Quick: true, Rounds: 1, Duration: 5, PoolSize: 20, Scale: 10, Cores: 2, CPUModel: "AMD EPYC", SlowReadRate: 1 << 20,
			PostgresVersion: "15.18", PgBouncerVersion: "PgBouncer 1.18.0", BelayCommit: "abc123",
			Placement: "each proxy in a session of its own"},
		Scenarios: []ScenarioResult{
			{Scenario: sel, Rows: []Row{
				aggregate(Direct, "direct", []RunResult{mk(Direct, 15000, lat(400), -1)}),
				aggregate(PgBouncer, "PgBouncer", []RunResult{mk(PgBouncer, 10000, lat(600), 0.034)}),
				aggregate(Belay, "belay", []RunResult{mk(Belay, 12000, lat(500), 0.05)}),
			}},
			{Scenario: prep, Rows: []Row{
				aggregate(Direct, "direct", []RunResult{mk(Direct, 20000, lat(300), -1)}),
				aggregate(PgBouncer, "PgBouncer", []RunResult{bad}),
				aggregate(PgBouncerSession, "PgBouncer (session mode)", []RunResult{mk(PgBouncerSession, 16000, lat(400), 0.03)}),
				aggregate(Belay, "belay", []RunResult{mk(Belay, 8000, lat(500), 0.05)}),
			}},
			{Scenario: idle, Rows: []Row{
				aggregate(Direct, "direct", []RunResult{{Target: Direct, NA: idle.DirectNA}}),
				aggregate(PgBouncer, "PgBouncer", []RunResult{idleRun(PgBouncer, 2048)}),
				aggregate(Belay, "belay", []RunResult{idleRun(Belay, 5300)}),
			}},
			{Scenario: slow, Rows: []Row{
				aggregate(Direct, "direct", []RunResult{{Target: Direct, NA: slow.DirectNA}}),
				aggregate(PgBouncer, "PgBouncer", []RunResult{slowRun(PgBouncer, 8<<20, 8<<20)}),
				aggregate(Belay, "belay", []RunResult{slowRun(Belay, 15<<20, 21<<20)}),
			}},
			{Scenario: noisy, Rows: []Row{
				aggregate(Direct, "direct", []RunResult{{Target: Direct, NA: noisy.DirectNA}}),
				aggregate(PgBouncer, "PgBouncer", []RunResult{starved}),
				aggregate(Belay, "belay", []RunResult{noisyRun(Belay, 0.375, 10)}),
			}},
		},
	}
}

func TestRenderMarkdown(t *testing.T) {
	rep := sampleReport()
	md := RenderMarkdown(rep, map[string][]string{"select-simple-c10": {"select-simple-c10-tps.png"}})
	for _, want := range []string{
		"`belay bench --quick`",
		"| machine | 2 cores (AMD EPYC)",
		"| placement | each proxy in a session of its own |",
		"## select-only, simple protocol (`-S -M simple`), 10 clients",
		"| direct | 15,000 | 1.50 |",
		"| PgBouncer | 10,000 | 1.00 |",
		"| belay | 12,000 | 1.20 | 0.500 | 0.990 | 0.999 | 0.050 | 0 |",
		"ratio to PgBouncer (session mode)",
		"| PgBouncer | 40 | 0.00 |",
		"| belay | 8,000 | 0.50 |",
		"10 clients aborted",
		`prepared statement "P0_1" does not exist`,
		"| direct | n/a |",
		"| belay | 1,000 | 10.0 MiB | 15.0 MiB | 5.2 KiB | 9,000 |",
		"| belay | 5.0 MiB | 1.0 MiB/s | 15.0 MiB | 21.0 MiB | 6.0 MiB | 25 ms | yes | 0 |",
		"![select-simple-c10-tps](select-simple-c10-tps.png)",
		"## noisy neighbour: a budget of 10 server connections",
		"PgBouncer: `max_db_connections = 10`",
		"| PgBouncer | 0.00 | 9,000 | 0 | none | 0.297 / – | 0.150 / – | 7 / 3 (10) | 4000.0 / ≥ 8000.0 / ≥ 8000.0 (40, 1 still waiting at the end) | 3999.0 / 7799.0 | 2.000 | 0 |",
		"| belay | 0.38 | 9,000 | 5,400 | 2.500 | 0.297 / 1.782 | 0.150 / 0.900 | 7 / 3 (10) | 10.00 / 20.00 / 20.00 (40) | 9.000 / 19.00 | 2.000 | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	sum := RenderSummary(rep)
	for _, want := range []string{
		"| select-simple-c10 | 15,000 | 10,000 | 12,000 | 1.20 |",
		"| select-prepared-c10 | 20,000 | 40 | 8,000 | n/a: PgBouncer failed |",
		"| select-prepared-c10 vs PgBouncer session mode | 20,000 | 16,000 | 8,000 | 0.50 |",
		"| idle-1000: proxy RSS per idle client | n/a | 2.0 KiB | 5.2 KiB | 2.59 |",
		"| slow-client: proxy peak RSS growth | n/a | +0 KiB | +6.0 MiB |",
		"| noisy-neighbour: quiet's share of transactions (quiet's p99 ms with noisy) | n/a | 0.00 | 0.38 |  | n/a / – / 1.782 | n/a / 0 / 0 |",
		"| noisy-neighbour: a new user's first result, median ms (p99 ms), budget full | n/a | 4000.0 | 10.00 | 0.00 | n/a / ≥ 8000.0 / 20.00 | |",
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestWriteCharts(t *testing.T) {
	dir := t.TempDir()
	charts, err := WriteCharts(dir, sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"select-simple-c10": 2, "select-prepared-c10": 2, "idle-1000": 2, "slow-client": 1, "noisy-neighbour": 1}
	for id, n := range want {
		if len(charts[id]) != n {
			t.Errorf("%s: charts %v, want %d", id, charts[id], n)
		}
		for _, f := range charts[id] {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
				t.Errorf("%s: not a PNG (%d bytes, %v)", f, len(b), err)
			}
		}
	}
	if pts := cdfPoints([]float64{1000, 2000, 3000}, 10); len(pts) == 0 || pts[0].Y > pts[len(pts)-1].Y || math.IsNaN(pts[0].X) {
		t.Fatalf("cdfPoints: %v", pts)
	}
}

func TestNoisyWindow(t *testing.T) {
	const s = int64(1_000_000) // µs
	quiet := LogStats{Latencies: []float64{100, 200, 300, 400}, Ends: []int64{12 * s, 11 * s, 13 * s, 30 * s}}
	noisy := LogStats{Latencies: []float64{1, 1, 1, 1, 1, 1}, Ends: []int64{9 * s, 10 * s, 11 * s, 12 * s, 14 * s, 20 * s}}
	var f NoisyFigures
	// The quiet run spans 10..40 s; the noisy one's last transaction ends
	// at 20 s, so the window is 10..20 s.
	lat := f.setWindow(quiet, noisy, 10*s, 40*s)
	if f.WindowSeconds != 10 || f.QuietTx != 3 || f.NoisyTx != 5 || f.QuietFirstMs != 1000 {
		t.Fatalf("window %v s, quiet %d, noisy %d, first %v ms", f.WindowSeconds, f.QuietTx, f.NoisyTx, f.QuietFirstMs)
	}
	if f.QuietShare != 3.0/8 || f.QuietTPS != 0.3 || f.NoisyTPS != 0.5 {
		t.Fatalf("share %v, tps %v / %v", f.QuietShare, f.QuietTPS, f.NoisyTPS)
	}
	if len(lat) != 3 || lat[0] != 100 || lat[1] != 200 || lat[2] != 300 {
		t.Fatalf("quiet latencies in the window: %v", lat)
	}
	// Starved: quiet's first transaction after the noisy run ended.
	lat = f.setWindow(LogStats{Latencies: []float64{5}, Ends: []int64{25 * s}}, noisy, 10*s, 40*s)
	if f.QuietTx != 0 || f.QuietShare != 0 || len(lat) != 0 || f.QuietFirstMs != 15000 || f.NoisyTx != 5 {
		t.Fatalf("starved: %+v, %v", f, lat)
	}
	// Nothing at all.
	lat = f.setWindow(LogStats{}, LogStats{}, 10*s, 12*s)
	if f.QuietTx != 0 || f.NoisyTx != 0 || f.QuietShare != 0 || f.QuietFirstMs != -1 || f.WindowSeconds != 2 || len(lat) != 0 {
		t.Fatalf("empty: %+v", f)
	}
}

func TestNoisyServers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []serverSample{
		{At: at(0), Noisy: 4},
		{At: at(250), Noisy: 10},
		{At: at(500), Noisy: 10, Quiet: 0},
		{At: at(750), Noisy: 7, Quiet: 3},
		{At: at(1000), Noisy: 6, Quiet: 4, Other: 1},
		{At: at(1250), Noisy: 10},
	}
	var f NoisyFigures
	f.setServers(samples, at(400), at(1000))
	if f.NoisyServersAtStart != 10 || f.NoisyServers != 7 || f.QuietServers != 3 || f.MaxServers != 11 {
		t.Fatalf("%+v", f)
	}
	if m := medianNoisy(samples, at(0), at(300)); m != 7 {
		t.Fatalf("medianNoisy = %v", m)
	}
}

func TestNoisyArrivals(t *testing.T) {
	as := []Arrival{
		{User: "arrive_6", LoginMs: 2, FirstMs: 3},                    // calm
		{User: "arrive_7", TimedOut: true, FirstMs: 10000},            // calm, timed out: a fault
		{User: "arrive_1", Loaded: true, LoginMs: 1, FirstMs: 5},      // after login: 4
		{User: "arrive_2", Loaded: true, LoginMs: 2, FirstMs: 40},     // 38
		{User: "arrive_3", Loaded: true, Err: "FATAL: no"},            // an error
		{User: "arrive_4", Loaded: true, TimedOut: true, FirstMs: 90}, // a lower bound
		{User: "arrive_5", Loaded: true, LoginMs: 3, FirstMs: 7},      // 4
	}
	var f NoisyFigures
	f.setArrivals(as)
	if f.Arrivals != 5 || f.CalmArrivals != 2 || f.ArrivalErrors != 2 || f.ArrivalTimeouts != 1 {
		t.Fatalf("counts: %+v", f)
	}
	if f.ArrivalP50 != 7 || f.ArrivalP99 != 90 || f.ArrivalMax != 90 || f.ReadyP50 != 4 || f.ReadyP99 != 38 || f.CalmP50 != 3 {
		t.Fatalf("percentiles: %+v", f)
	}
}

func TestAggregateNoisy(t *testing.T) {
	run := func(share float64, first float64, arrivalErr string) RunResult {
		return RunResult{Target: Belay, CPUPer1k: -1, TPS: 1,
			Noisy:    &NoisyFigures{QuietShare: share, QuietTx: 10, NoisyTx: 20, QuietErrors: 1},
			Arrivals: []Arrival{{User: "a", Loaded: true, FirstMs: first, Err: arrivalErr}}}
	}
	row := aggregate(Belay, "belay", []RunResult{run(0.1, 1, ""), run(0.3, 3, "x"), run(0.2, 2, "")})
	f := row.Noisy
	if f == nil || f.QuietShare != 0.2 || f.QuietTx != 30 || f.NoisyTx != 60 || f.QuietErrors != 3 {
		t.Fatalf("aggregate: %+v", f)
	}
	if f.Arrivals != 3 || f.ArrivalErrors != 1 || f.ArrivalP50 != 1 || f.ArrivalMax != 2 {
		t.Fatalf("pooled arrivals: %+v", f)
	}
	if row.ErrorCount() != 1 || errText(row) != "1 arrivals failed" {
		t.Fatalf("errors: %d %q", row.ErrorCount(), errText(row))
	}
	if aggregate(Belay, "belay", []RunResult{{TPS: 1}}).Noisy != nil {
		t.Fatal("a row without noisy figures got some")
	}
}

func TestNoisyRoles(t *testing.T) {
	if r := noisyRoles(DefaultScenarios(true, 1000)[:1]); r != nil {
		t.Fatalf("roles without a noisy scenario: %v", r)
	}
	r := noisyRoles([]Scenario{{Kind: KindNoisy, Arrivals: 3}, {Kind: KindNoisy, Arrivals: 40}})
	if len(r) != 2+40+calmArrivals || r[0] != "noisy" || r[1] != "quiet" || r[2] != "arrive_1" || r[len(r)-1] != "arrive_45" {
		t.Fatalf("roles %v", r)
	}
	if wholeSeconds(2500*time.Millisecond) != 3*time.Second || wholeSeconds(2*time.Second) != 2*time.Second {
		t.Fatal("wholeSeconds")
	}
}

func TestPgbouncerBudget(t *testing.T) {
	ini := pgbouncerIni("/d", 1, 2, 20, 100, 10, testcert.Pair{CertFile: "c", KeyFile: "k"})
	if !strings.Contains(ini, "\npgbench = host=127.0.0.1 port=2 dbname=pgbench max_db_connections=10\n") ||
		strings.Count(ini, "max_db_connections") != 1 {
		t.Fatalf("budget not on the pgbench entry alone:\n%s", ini)
	}
	if ini := pgbouncerIni("/d", 1, 2, 20, 100, 0, testcert.Pair{CertFile: "c", KeyFile: "k"}); strings.Contains(ini, "max_db_connections") {
		t.Fatalf("no budget wanted:\n%s", ini)
	}
}

// TestBelayCommit: a binary that recorded no commit (a test binary) is
// described by the checkout it ran in, and outside one as unknown.
func TestBelayCommit(t *testing.T) {
	if got := belayCommit(os.Args[0], t.TempDir()); got != "unknown" {
		t.Errorf("outside a checkout: %q", got)
	}
	if got, want := belayCommit(os.Args[0], "."), gitCommit("."); got != want {
		t.Errorf("in the checkout: %q, want git's %q", got, want)
	}
	if got := belayCommit(filepath.Join(t.TempDir(), "none"), t.TempDir()); got != "unknown" {
		t.Errorf("no binary: %q", got)
	}
}

func TestScriptArgs(t *testing.T) {
	got := scriptArgs("/w/s.sql", 10, "-M", "simple")
	if want := []string{"-f", "/w/s.sql", "-D", "scale=10", "-M", "simple"}; !slices.Equal(got, want) {
		t.Errorf("scriptArgs: %q, want %q", got, want)
	}
}
