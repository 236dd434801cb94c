package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
)

// This machine's layout (cgroup v1 beside an empty v2) and two others.
const (
	mountinfoHybrid = `22 1 0:20 / /sys rw - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	mountinfoV2 = `25 22 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
`
	mountinfoCoMounted = `33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
35 25 0:31 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset
`
)

func TestFindCPUHierarchy(t *testing.T) {
	ctl := func(m map[string]string) func(string) (string, error) {
		return func(mount string) (string, error) {
			if c, ok := m[mount]; ok {
				return c, nil
			}
			return "", os.ErrNotExist
		}
	}
	for _, c := range []struct {
		name, mountinfo string
		controllers     map[string]string
		want            cpuHierarchy
		why             string
	}{
		{"hybrid: v1 has cpu, v2 none", mountinfoHybrid, map[string]string{"/sys/fs/cgroup/unified": "hugetlb\n"},
			cpuHierarchy{cgroupV1, "/sys/fs/cgroup/cpu"}, ""},
		{"pure v2 with cpu", mountinfoV2, map[string]string{"/sys/fs/cgroup": "cpuset cpu io memory pids\n"},
			cpuHierarchy{cgroupV2, "/sys/fs/cgroup"}, ""},
		{"v2 wins when it has cpu", mountinfoHybrid, map[string]string{"/sys/fs/cgroup/unified": "cpu"},
			cpuHierarchy{cgroupV2, "/sys/fs/cgroup/unified"}, ""},
		{"v1 cpu co-mounted with cpuacct", mountinfoCoMounted, nil, cpuHierarchy{cgroupV1, "/sys/fs/cgroup/cpu,cpuacct"}, ""},
		{"v2 without cpu and no v1", mountinfoV2, map[string]string{"/sys/fs/cgroup": "memory pids"}, cpuHierarchy{}, "lacks cpu"},
		{"no cgroup at all", "22 1 0:20 / /sys rw - sysfs sysfs rw\n", nil, cpuHierarchy{}, "no cgroup file system"},
		{"cpuset is not cpu", "35 25 0:31 / /x rw - cgroup cgroup rw,cpuset\n", nil, cpuHierarchy{}, "no cgroup file system"},
	} {
		h, why := findCPUHierarchy(c.mountinfo, ctl(c.controllers))
		if h != c.want || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("%s: got %+v %q, want %+v %q", c.name, h, why, c.want, c.why)
		}
	}
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Errorf("unescapeMount: %q", got)
	}
}

func TestCPUQuota(t *testing.T) {
	for _, c := range []struct {
		cores float64
		want  int64
	}{{0.4, 40000}, {1, 100000}, {1.5, 150000}, {0.33333, 33333}, {0.01, 1000}} {
		if got, err := cpuQuotaUs(c.cores, cpuPeriodUs); err != nil || got != c.want {
			t.Errorf("cpuQuotaUs(%g) = %d, %v; want %d", c.cores, got, err, c.want)
		}
	}
	for _, bad := range []float64{0, -1, 0.005} {
		if q, err := cpuQuotaUs(bad, cpuPeriodUs); err == nil {
			t.Errorf("cpuQuotaUs(%g) = %d, no error", bad, q)
		}
	}
	for _, c := range []struct {
		v     cgroupVersion
		quota int64
		want  []cgroupSetting
	}{
		{cgroupV1, 40000, []cgroupSetting{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "40000"}}},
		{cgroupV1, -1, []cgroupSetting{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "-1"}}},
		{cgroupV2, 40000, []cgroupSetting{{"cpu.max", "40000 100000"}}},
		{cgroupV2, -1, []cgroupSetting{{"cpu.max", "max 100000"}}},
	} {
		got := cpuLimitSettings(c.v, c.quota, cpuPeriodUs)
		if len(got) != len(c.want) {
			t.Errorf("%s %d: %v", c.v, c.quota, got)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s %d: %v, want %v", c.v, c.quota, got, c.want)
			}
		}
	}
	// Each set of node cgroups of a run has a base of its own, and those
	// of a run that is gone are recognized as stale.
	if a, b := baseCgroupName(42, 1), baseCgroupName(42, 3); a != "belay-bench-42" || b != "belay-bench-42-3" {
		t.Errorf("baseCgroupName: %q, %q", a, b)
	}
	for name, want := range map[string]string{"belay-bench-42": "42", "belay-bench-42-3": "42", "belay-bench-x": "", "belay-bench-42-": ""} {
		m := staleCgroup.FindStringSubmatch(name)
		if (m == nil) != (want == "") || (m != nil && m[1] != want) {
			t.Errorf("staleCgroup on %q: %q, want pid %q", name, m, want)
		}
	}
	v1 := parseCPUStat("nr_periods 120\nnr_throttled 30\nthrottled_time 123456\n")
	v2 := parseCPUStat("usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\nnr_periods 200\nnr_throttled 50\nthrottled_usec 9\n")
	if v1 != (cpuStat{Periods: 120, Throttled: 30}) || v2 != (cpuStat{Periods: 200, Throttled: 50, UsageUs: 5000000, HasUsage: true}) {
		t.Errorf("parseCPUStat: v1 %+v, v2 %+v", v1, v2)
	}
	// A run of 10 s: 2 s then 6 s of CPU on two nodes, 100 periods each.
	f := nodeFigures([]float64{1, 10}, []float64{3, 16}, []cpuStat{{Periods: 0}, {Periods: 100, Throttled: 10}},
		[]cpuStat{{Periods: 100, Throttled: 25}, {Periods: 200, Throttled: 110}}, 10)
	if coresText(f.NodeCPU) != "0.20 / 0.60" || percentsText(f.Throttled) != "25% / 100%" {
		t.Errorf("nodeFigures: %v %v", f.NodeCPU, f.Throttled)
	}
}

func TestParseProcStatChildren(t *testing.T) {
	line := "77 (postgres) S 1 70 70 0 -1 4194560 1234 0 0 0 11 22 33 44 20 0 9 0 123456 1000000 2000 18446744073709551615\n"
	st, err := ParseProcStat([]byte(line))
	if err != nil || st.UTimeTicks != 11 || st.STimeTicks != 22 || st.CUTimeTicks != 33 || st.CSTimeTicks != 44 || st.PPid != 1 {
		t.Fatalf("%+v, %v", st, err)
	}
}

func TestPgpoolConf(t *testing.T) {
	conf, err := pgpoolConf(pgpoolSpec{Dir: "/w/pgpool-3", Port: 7001, PCPPort: 7002, Children: 20, DelayThreshold: 1 << 24,
		Backends: []string{"127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"}})
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			if _, dup := lines[k]; dup {
				t.Errorf("%s set twice", k)
			}
			lines[k] = v
		} else if l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("not a setting nor a comment: %q", l)
		}
	}
	for k, v := range map[string]string{
		"backend_clustering_mode": "'streaming_replication'", "port": "7001", "pcp_port": "7002",
		"backend_hostname0": "'127.0.0.1'", "backend_port0": "5001", "backend_port2": "5003", "backend_weight1": "1",
		"num_init_children": "20", "load_balance_mode": "on", "statement_level_load_balance": "on",
		"sr_check_user": "'postgres'", "delay_threshold": "16777216", "use_watchdog": "off",
		"pid_file_name": "'/w/pgpool-3/pgpool.pid'", "socket_dir": "'/w/pgpool-3'",
	} {
		if lines[k] != v {
			t.Errorf("%s = %q, want %q", k, lines[k], v)
		}
	}
	if _, ok := lines["backend_port3"]; ok {
		t.Error("a fourth backend")
	}
	sum := pgpoolSummary(conf)
	if !strings.Contains(sum, "statement_level_load_balance = on") || strings.Contains(sum, "port") || strings.Contains(sum, "/w/") {
		t.Errorf("summary: %s", sum)
	}
	one, _ := pgpoolConf(pgpoolSpec{Dir: "/w", Backends: []string{"127.0.0.1:5001"}, SessionBalance: true})
	if !strings.Contains(one, "statement_level_load_balance = off\n") || strings.Contains(one, "backend_port1") {
		t.Errorf("one node, session balance:\n%s", one)
	}
	for _, bad := range [][]string{nil, {"nohostport"}} {
		if _, err := pgpoolConf(pgpoolSpec{Backends: bad}); err == nil {
			t.Errorf("backends %q: no error", bad)
		}
	}
}

// readScaleResult is a read-scaling scenario's result as runReadScale
// makes it, from each target's tps per round (nil: not run).
func readScaleResult(tps map[string][]float64, failed map[string]int64) ScenarioResult {
	sc := readScaleScenarios()[1]
	res := ScenarioResult{Scenario: sc, ReadScale: &ReadScaleResult{Cgroup: "cgroup v1 (test)", NodeCPU: 0.4, QuotaUs: 40000, PeriodUs: 100000, Pgpool: "pgpool-II 4.3.5"}}
	for _, name := range readScaleTargets(sc.Nodes) {
		var runs []RunResult
		for i, v := range tps[name] {
			runs = append(runs, RunResult{Target: name, Round: i + 1, TPS: v, Failed: failed[name], CPUPer1k: -1,
				ReadScale: &ReadScaleRun{NodeCPU: []float64{0.4, 0.1 * float64(i), 0}, Throttled: []float64{0.9, 0, 0}}})
			runs[i].setLatencies([]float64{2000, 1000, 3000})
		}
		if runs == nil {
			runs = []RunResult{{Target: name, NA: "not run"}}
		}
		res.Rows = append(res.Rows, aggregate(name, readScaleLabel(name), runs))
	}
	res.ReadScale.DirectTPS = res.Row(Direct).TPS
	res.ReadScale.Points = readScalePoints(&res, sc.Nodes)
	return res
}

func TestReadScaleRows(t *testing.T) {
	want := []string{"direct", "pgpool-1", "belay-1", "pgpool-2", "belay-2", "pgpool-3", "belay-3"}
	if got := readScaleTargets(3); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for name, label := range map[string]string{"direct": "direct to the primary", "pgpool-1": "pgpool-II, 1 node", "belay-3": "belay, 3 nodes"} {
		if got := readScaleLabel(name); got != label {
			t.Errorf("label of %s: %q", name, got)
		}
	}
	if _, _, ok := parseReadScaleTarget("pgbouncer-session"); ok {
		t.Error("pgbouncer-session parsed as a read-scaling target")
	}
	res := readScaleResult(map[string][]float64{
		Direct:     {1000, 1100, 900},
		"pgpool-1": {800, 1000, 900}, "belay-1": {950, 1000, 900},
		"pgpool-2": {1800, 1500, 1600}, "belay-2": {1000, 1100, 900},
		"belay-3": {3000, 2600, 2800},
	}, map[string]int64{"belay-2": 2})
	pts := res.ReadScale.Points
	if len(pts) != 3 {
		t.Fatalf("%d points", len(pts))
	}
	p1, p2, p3 := pts[0], pts[1], pts[2]
	if res.ReadScale.DirectTPS != 1000 || p1.PgpoolTPS != 900 || p1.BelayTPS != 950 || p2.PgpoolTPS != 1600 || p3.BelayTPS != 2800 {
		t.Errorf("medians: direct %v, %+v %+v %+v", res.ReadScale.DirectTPS, p1, p2, p3)
	}
	if ratioText(p1.Ratio) != "1.06" || ratioText(p2.Ratio) != "0.62" || p3.Ratio != 0 || ratioText(p3.BelayScale) != "2.95" ||
		ratioText(p2.PgpoolScale) != "1.78" || p1.PgpoolScale != 1 {
		t.Errorf("ratios: %+v %+v %+v", p1, p2, p3)
	}
	if p2.PgpoolSpread != "1,500–1,800" || p3.PgpoolSpread != "n/a" || p2.BelayErrors != 6 || p2.PgpoolErrors != 0 {
		t.Errorf("spreads, errors: %+v %+v", p2, p3)
	}
	var b strings.Builder
	renderReadScale(&b, &res)
	md := b.String()
	for _, s := range []string{
		"| 1 | 1,000 | 900 (800–1,000) | 950 (900–1,000) | 1.06 | 1.00 | 1.00 | 0 / 0 |",
		"| 2 |  | 1,600 (1,500–1,800) | 1,000 (900–1,100) | 0.62 | 1.78 | 1.05 | 0 / 6 |",
		"| 3 |  | 0 (n/a) | 2,800 (2,600–3,000) | n/a | n/a | 2.95 | 0 / 0 |",
		"| pgpool-II, 3 nodes | n/a |", "| belay, 1 node | 950 |", "0.40 / 0.10 / 0.00 | 90% / 0% / 0% |",
		"cgroup v1 (test): 40000 µs per 100000 µs period", "pgpool-II 4.3.5",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	rep := &Report{Scenarios: []ScenarioResult{res}}
	sum := RenderSummary(rep)
	if !strings.Contains(sum, "| readscale-mix | 2 |  | 1,600 | 1,000 | 0.62 |") || strings.Contains(sum, "| readscale-mix | n/a") {
		t.Errorf("summary:\n%s", sum)
	}
	skipped := ScenarioResult{Scenario: res.Scenario, ReadScale: &ReadScaleResult{Skipped: "pgpool-II is not available: x"}}
	b.Reset()
	renderReadScale(&b, &skipped)
	if !strings.Contains(b.String(), "Skipped: pgpool-II is not available") ||
		!strings.Contains(RenderSummary(&Report{Scenarios: []ScenarioResult{skipped}}), "skipped: pgpool-II") {
		t.Errorf("skipped: %s", b.String())
	}
	if files, err := readScaleCharts(t.TempDir(), &res); err != nil || len(files) != 2 {
		t.Errorf("charts %v, %v", files, err)
	}
}

// TestReadScaleEndToEnd runs the read-mostly scenario once, briefly: the
// cluster in cgroups, etcd, pgpool-II (installed with apt-get if missing
// and possible) and belay (this test binary as proxy) in front of 1 to 3
// nodes. Where pgpool-II or cgroups cannot be had, the scenario must say
// so and the test is skipped; as root with apt-get (CI) it must run.
func TestReadScaleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a PostgreSQL cluster, etcd, pgpool-II and belay")
	}
	if _, err := pginstance.FindBinDir(); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("", "belay-bench-readscale-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	sc := readScaleScenarios()[1]
	sc.Clients = 4
	o := Options{
		Out: t.TempDir(), WorkDir: work, Duration: time.Second, Rounds: 1, Scale: 1, PoolSize: 4, Jobs: 2, WarmUp: -1,
		BelayExe: os.Args[0], BelayEnv: []string{proxyEnv + "=1"}, NoPgBouncer: true, InstallPgpool: true,
		Command: "go test ./bench -run TestReadScaleEndToEnd", Scenarios: []Scenario{sc},
	}
	rep := runLogged(t, o)
	res := rep.Scenarios[0]
	if s := res.ReadScale.Skipped; s != "" {
		_, aptErr := exec.LookPath("apt-get")
		if os.Geteuid() == 0 && aptErr == nil {
			t.Fatalf("skipped as root with apt-get at hand: %s", s)
		}
		t.Skipf("the scenario was skipped: %s", s)
	}
	for _, r := range res.Rows {
		if r.NA != "" || r.TPS <= 0 || r.ErrorCount() > 0 || len(r.Runs) != 1 || r.Runs[0].ReadScale == nil || len(r.Runs[0].ReadScale.NodeCPU) != 3 {
			t.Errorf("%s: n/a %q, tps %v, errors %d %q", r.Label, r.NA, r.TPS, r.ErrorCount(), r.Errors)
		}
		if r.Target != Direct && r.CPUPer1k <= 0 {
			t.Errorf("%s: no proxy CPU figure", r.Label)
		}
	}
	if len(res.ReadScale.Points) != 3 || res.ReadScale.Points[2].Ratio <= 0 || res.ReadScale.DirectTPS <= 0 {
		t.Errorf("points %+v, direct %v", res.ReadScale.Points, res.ReadScale.DirectTPS)
	}
	// belay in front of 2 nodes sends the reads to the replica, pg1: the
	// most CPU of the three nodes (the primary has the writes, a tenth).
	if cpu := res.Row("belay-2").Runs[0].ReadScale.NodeCPU; cpu[1] <= cpu[2] {
		t.Errorf("belay, 2 nodes: nodes' CPU %v: pg1 served no more than pg2, which is not behind it", cpu)
	}
	for _, f := range []string{"report.md", "results.json", sc.ID + "-scaling.png"} {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			t.Error(err)
		}
	}
	for n := 1; n <= 3; n++ {
		if log, _ := os.ReadFile(filepath.Join(work, "readscale", fmt.Sprintf("belay-%d.log", n))); bytes.Contains(log, []byte("DATA RACE")) || bytes.Contains(log, []byte("panic:")) {
			t.Errorf("belay in front of %d nodes reported a data race or panicked:\n%s", n, log)
		}
	}
	// The node cgroups are gone.
	for _, pattern := range []string{"/sys/fs/cgroup/*/", "/sys/fs/cgroup/"} {
		if m, _ := filepath.Glob(pattern + cgroupPrefix + strconv.Itoa(os.Getpid())); len(m) > 0 {
			t.Errorf("cgroup %s left behind", m)
		}
	}
}
