package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"sigs.k8s.io/yaml"
)

// TestPatroniConfig parses the configuration of each setup as YAML and
// checks what Patroni reads from it: the timing settings of the setup and
// no others (Patroni's defaults stay), synchronous_mode, the node's ports
// and directories, the etcd3 host, and the PostgreSQL parameters in the
// DCS.
func TestPatroniConfig(t *testing.T) {
	n := patroniNode{Name: "pg1", Dir: "/w/it's", RestPort: 8001, PGPort: 5433}
	for _, c := range []struct {
		setup patroniSetup
		want  map[string]any // bootstrap.dcs besides synchronous_mode and postgresql
		eff   string
	}{
		{patroniSetups(false)[0], map[string]any{"primary_start_timeout": 0.0},
			"ttl 30, loop_wait 10, retry_timeout 10, primary_start_timeout 0"},
		{patroniSetups(false)[1], map[string]any{"ttl": 10.0, "loop_wait": 1.0, "retry_timeout": 4.0, "primary_start_timeout": 0.0},
			"ttl 10, loop_wait 1, retry_timeout 4, primary_start_timeout 0"},
		{patroniSetups(true)[2], map[string]any{}, "ttl 30, loop_wait 10, retry_timeout 10, primary_start_timeout 300"},
	} {
		conf := patroniConfig(patroniSpec{Scope: "sc-1", Node: n, Etcd: "127.0.0.1:2379", BinDir: "/usr/lib/postgresql/15/bin",
			Setup: c.setup, Parameters: map[string]string{"max_connections": "200", "fsync": "off"}})
		j, err := yaml.YAMLToJSON([]byte(conf))
		if err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", c.setup.Target, err, conf)
		}
		var m struct {
			Scope, Name string
			Restapi     struct{ Listen, ConnectAddress string } `json:"restapi"`
			Etcd3       struct{ Hosts string }
			Bootstrap   struct {
				DCS    map[string]any `json:"dcs"`
				Initdb []any
			}
			PostgreSQL struct {
				Listen         string
				DataDir        string `json:"data_dir"`
				BinDir         string `json:"bin_dir"`
				Authentication map[string]map[string]string
				PgHba          []string          `json:"pg_hba"`
				Parameters     map[string]string `json:"parameters"`
			} `json:"postgresql"`
		}
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		dcs := m.Bootstrap.DCS
		if dcs["synchronous_mode"] != true {
			t.Errorf("%s: synchronous_mode %v", c.setup.Target, dcs["synchronous_mode"])
		}
		pg, _ := dcs["postgresql"].(map[string]any)
		params, _ := pg["parameters"].(map[string]any)
		if pg["use_pg_rewind"] != true || params["max_connections"] != "200" || params["fsync"] != "off" {
			t.Errorf("%s: dcs.postgresql %v", c.setup.Target, pg)
		}
		delete(dcs, "synchronous_mode")
		delete(dcs, "postgresql")
		if len(dcs) != len(c.want) {
			t.Errorf("%s: dcs settings %v, want %v", c.setup.Target, dcs, c.want)
		}
		for k, v := range c.want {
			if dcs[k] != v {
				t.Errorf("%s: %s = %v, want %v", c.setup.Target, k, dcs[k], v)
			}
		}
		if got := c.setup.effective(); got != c.eff {
			t.Errorf("%s: effective %q, want %q", c.setup.Target, got, c.eff)
		}
		if m.Scope != "sc-1" || m.Name != "pg1" || m.Restapi.Listen != "127.0.0.1:8001" || m.Etcd3.Hosts != "127.0.0.1:2379" ||
			m.PostgreSQL.Listen != "127.0.0.1:5433" || m.PostgreSQL.DataDir != "/w/it's/data" || m.PostgreSQL.BinDir != "/usr/lib/postgresql/15/bin" ||
			m.PostgreSQL.Authentication["superuser"]["username"] != "postgres" || m.PostgreSQL.Parameters["unix_socket_directories"] != "/w/it's" ||
			len(m.PostgreSQL.PgHba) != 3 || len(m.Bootstrap.Initdb) != 2 {
			t.Errorf("%s: %+v", c.setup.Target, m)
		}
	}
	if _, ok := patroniSetupOf(failoverBelay); ok {
		t.Error("belay is not a Patroni setup")
	}
	if got := failoverTargets(false); strings.Join(got, " ") != "belay patroni-defaults-pst0 patroni-tuned-pst0" {
		t.Errorf("targets %v", got)
	}
}

// TestPromotion: the first node seen as a primary, and how long it ran
// with synchronous_standby_names empty.
func TestPromotion(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	end := at(5000)
	for _, c := range []struct {
		name    string
		samples []roleSample
		want    promoted
	}{
		{"none", []roleSample{{Node: "pg1", At: at(10)}, {Node: "pg2", At: at(20)}}, promoted{}},
		{"sync set before the promotion (belay)", []roleSample{
			{Node: "pg1", At: at(50)}, {Node: "pg1", At: at(100), Primary: true, SyncNames: "ANY 1 (pg0, pg2)"},
			{Node: "pg2", At: at(120), Primary: false},
		}, promoted{Node: "pg1", At: at(100)}},
		{"empty for a while (Patroni)", []roleSample{
			{Node: "pg2", At: at(100), Primary: false},
			{Node: "pg1", At: at(200), Primary: true},
			{Node: "pg2", At: at(300), Primary: true, SyncNames: "pg9"}, // not the first primary: ignored
			{Node: "pg1", At: at(1200), Primary: true},
			{Node: "pg1", At: at(3300), Primary: true, SyncNames: "pg2"},
			{Node: "pg1", At: at(3400), Primary: true},
		}, promoted{Node: "pg1", At: at(200), NoSync: 3100 * time.Millisecond}},
		{"still empty at the end", []roleSample{
			{Node: "pg0", At: at(400), Primary: true}, {Node: "pg0", At: at(900), Primary: true},
		}, promoted{Node: "pg0", At: at(400), NoSync: 4600 * time.Millisecond, Open: true}},
	} {
		if got := promotion(c.samples, end); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// failoverResult is a failover scenario's result with two targets: belay
// (three runs) and Patroni tuned (three runs, one not measured, one that
// never became writable).
func failoverResult() ScenarioResult {
	sc := failoverScenario()
	mk := func(target string, round int, f FailoverRun) RunResult {
		return RunResult{Scenario: sc.ID, Target: target, Round: round, CPUPer1k: -1, Failover: &f}
	}
	belay := []RunResult{
		mk(failoverBelay, 1, FailoverRun{OldPrimary: "pg0", NewPrimary: "pg1", FailedOver: true, Checked: true, GoneMs: 300, WritableMs: 1700,
			PromotedMs: 1300, Acked: 100, Errors: map[string]int{"40001": 2, "08007": 1}, ErrorsAfter: map[string]int{},
			PgbenchProcessed: 3000, PgbenchRetried: 8, PgbenchAborted: 1}),
		mk(failoverBelay, 2, FailoverRun{OldPrimary: "pg0", NewPrimary: "pg2", FailedOver: true, Checked: true, WritableMs: 1900,
			PromotedMs: 1400, Acked: 90, Errors: map[string]int{"40001": 4}, ErrorsAfter: map[string]int{}, PgbenchProcessed: 3100}),
		mk(failoverBelay, 3, FailoverRun{OldPrimary: "pg0", NewPrimary: "pg1", FailedOver: true, Checked: true, WritableMs: 1600,
			PromotedMs: 1200, Acked: 80, Errors: map[string]int{"40001": 1}, ErrorsAfter: map[string]int{}, PgbenchProcessed: 2900}),
	}
	patroni := []RunResult{
		mk(patroniTunedPst0, 1, FailoverRun{OldPrimary: "pg0", NewPrimary: "pg1", FailedOver: true, Checked: true, WritableMs: 3400,
			PromotedMs: 3300, NoSyncMs: 3100, NoSyncOpen: true, AckedNoSync: 4000, Acked: 9000, Errors: map[string]int{"conn": 70, "57P01": 2},
			ErrorsAfter: map[string]int{"conn": 66}, PgbenchProcessed: 1400, PgbenchAborted: 10}),
		mk(patroniTunedPst0, 2, FailoverRun{Err: "starting the cluster: boom"}),
		mk(patroniTunedPst0, 3, FailoverRun{OldPrimary: "pg1", NewPrimary: "pg1", Checked: false, WritableMs: -1, PromotedMs: -1,
			NoSyncMs: 0, Errors: map[string]int{"conn": 300}, ErrorsAfter: map[string]int{"conn": 299}, PgbenchAborted: 10}),
	}
	res := ScenarioResult{Scenario: sc, Failover: &FailoverInfo{Postgres: "15.18", MaxWaitSeconds: 60,
		Setups: map[string]string{failoverBelay: "the belay setup", patroniTunedPst0: "the tuned setup"}}}
	res.Rows = []Row{aggregate(failoverBelay, failoverLabel(failoverBelay), belay),
		aggregate(patroniTunedPst0, failoverLabel(patroniTunedPst0), patroni)}
	return res
}

// TestAggregateFailover: medians and worst over the measured runs, a run
// never writable makes the worst "none", a run not measured is left out
// and its error kept, counts are summed by SQLSTATE.
func TestAggregateFailover(t *testing.T) {
	res := failoverResult()
	b := res.Row(failoverBelay).Failover
	if b.Runs != 3 || b.Measured != 3 || b.FailedOver != 3 || b.WritableMedianMs != 1700 || b.WritableWorstMs != 1900 ||
		b.PromotedMedianMs != 1300 || b.PromotedWorstMs != 1400 || b.NeverWritable != 0 || b.ErrorsMedian != 3 || b.ErrorsWorst != 4 ||
		b.ErrorsAfterWorst != 0 || b.Errors["40001"] != 7 || b.Errors["08007"] != 1 || b.PgbenchProcessed != 9000 || b.PgbenchAborted != 1 ||
		b.PgbenchRetried != 8 || b.Acked != 270 || b.Unchecked != 0 {
		t.Errorf("belay: %+v", b)
	}
	p := res.Row(patroniTunedPst0).Failover
	if p.Runs != 3 || p.Measured != 2 || p.FailedOver != 1 || p.NeverWritable != 1 || p.WritableMedianMs != 3400 || p.WritableWorstMs != -1 ||
		p.PromotedMedianMs != 3300 || p.NoSyncMedianMs != 1550 || p.NoSyncWorstMs != 3100 || p.AckedNoSync != 4000 || p.NoSyncOpen != 1 ||
		p.ErrorsMedian != 186 || p.ErrorsWorst != 300 || p.ErrorsAfterMedian != 182.5 || p.ErrorsAfterWorst != 299 ||
		p.Errors["conn"] != 370 || p.Unchecked != 1 || p.PgbenchAborted != 20 || len(p.RunErrors) != 1 {
		t.Errorf("patroni: %+v", p)
	}
	if got := p.writableText(60); got != "3,400 ms / none within 60 s (1 of 2 runs)" {
		t.Errorf("writableText: %q", got)
	}
	if aggregateFailover([]RunResult{{NA: "x"}}) != nil {
		t.Error("figures from runs without any")
	}
}

// TestRenderFailover: the section, the summary's table and failover.csv
// carry every row and run.
func TestRenderFailover(t *testing.T) {
	res := failoverResult()
	rep := &Report{Meta: Meta{Command: "belay bench --scenarios failover", Rounds: 3}, Scenarios: []ScenarioResult{res}}
	md := RenderMarkdown(rep, nil)
	for _, want := range []string{
		"# belay bench: failover, belay against Patroni",
		"| belay (proxy + 2 orch) | 1,700 ms / 1,900 ms | 1,300 ms / 1,400 ms | 0 / 0 (0 acked) | 0 | 3 / 4 | 0 / 0 | 08007:1 40001:7 | 9,000 / 0 / 1 | 3 of 3 |",
		"| Patroni, ttl 10 / loop_wait 1 / retry_timeout 4, primary_start_timeout 0 | 3,400 ms / none within 60 s (1 of 2 runs) |",
		"| ≥ 1,550 ms / ≥ 3,100 ms (≥ 4,000 acked; still open at the end of 1 of 2 runs) | 0 (1 runs unchecked) |",
		"| belay (proxy + 2 orch) | 1,700 ms / 1,900 ms | 0 | 0 / 0 | 3 / 4 | 0 / 0 | 1 |", // the summary
		"| 3,400 ms / none within 60 s (1 of 2 runs) | 0 | ≥ 1,550 ms / ≥ 3,100 ms | 186 / 300 | 182.5 / 299 | 20 |",
		"| 2 | Patroni, ttl 10 / loop_wait 1 / retry_timeout 4, primary_start_timeout 0 | not measured: starting the cluster: boom |",
		"| 1 | belay (proxy + 2 orch) | pg0 → pg1 | 300 ms | 1,700 ms | 1,300 ms | 0 (0 acked) | 100 / 0 (0) / 0 | 0 | 08007:1 40001:2 | none | 3000 / 0 / 8 / 1 |",
		"- **belay (proxy + 2 orch)**: the belay setup",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "| scenario | direct | PgBouncer |") {
		t.Error("a failover-only report has the single-node summary's header")
	}
	var buf bytes.Buffer
	ok, err := writeFailoverCSV(&buf, rep)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 7 || len(recs[0]) != len(failoverCSVHeader) || recs[1][2] != failoverBelay || recs[1][1] != "1" {
		t.Fatalf("failover.csv: %q", recs)
	}
	if ok, _ := writeFailoverCSV(&buf, &Report{}); ok {
		t.Error("failover.csv without a failover scenario")
	}
}

// TestPgbenchRetried: --max-tries' retries are read from pgbench's summary.
func TestPgbenchRetried(t *testing.T) {
	s := ParsePgbenchOutput("number of transactions actually processed: 1504\nnumber of failed transactions: 0 (0.000%)\n"+
		"number of transactions retried: 8 (0.532%)\ntotal number of retries: 8\n",
		"pgbench: error: client 4 script 0 aborted in command 10 query 0: ERROR:  the server was lost\n")
	if s.Processed != 1504 || s.Retried != 8 || s.Aborted != 1 {
		t.Errorf("%+v", s)
	}
}

// TestFailoverEndToEnd runs one round of belay and of Patroni with ttl 10,
// loop_wait 1, retry_timeout 4 and primary_start_timeout 0 (installed with
// apt-get when missing, as CI's make deps does): Patroni fails over to
// another node, belay does too and loses no acknowledged write, and the
// report has both rows. About a minute and a half.
func TestFailoverEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts etcd, two 3-node clusters, Patroni, belay proxy and belay orch")
	}
	if _, err := pginstance.FindBinDir(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "belay")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/belaydb/belay/cmd/belay").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work, err := os.MkdirTemp("", "belay-bench-failover-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	o := Options{
		Out: t.TempDir(), WorkDir: work, Rounds: 1, PoolSize: 20, WarmUp: -1, BelayExe: bin, InstallPatroni: true,
		FailoverTargets: []string{failoverBelay, patroniTunedPst0}, FailoverMaxWait: 30 * time.Second,
		Command: "go test ./bench -run TestFailoverEndToEnd", Scenarios: []Scenario{failoverScenario()},
	}
	rep := runLogged(t, o)
	res := rep.Scenarios[0]
	if s := res.Failover.PatroniSkipped; s != "" {
		_, aptErr := exec.LookPath("apt-get")
		if os.Geteuid() == 0 && aptErr == nil {
			t.Fatalf("Patroni skipped as root with apt-get at hand: %s", s)
		}
		t.Skipf("Patroni is not available: %s", s)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("rows: %+v", res.Rows)
	}
	for _, r := range res.Rows {
		if r.NA != "" || r.Failover == nil || len(r.Runs) != 1 || r.Runs[0].Failover == nil {
			t.Fatalf("%s: n/a %q, figures %+v", r.Label, r.NA, r.Failover)
		}
		f := r.Runs[0].Failover
		if f.Err != "" || !f.Checked || !f.FailedOver || f.NewPrimary == f.OldPrimary || f.WritableMs <= 0 || f.PromotedMs <= 0 ||
			f.Acked == 0 || f.GoneMs <= 0 {
			t.Errorf("%s: %+v", r.Label, f)
		}
	}
	b := res.Row(failoverBelay).Runs[0].Failover
	if b.Lost != 0 || b.Phantom != 0 || b.BadSums != 0 || b.PgbenchProcessed == 0 {
		t.Errorf("belay lost acknowledged writes: %+v", b)
	}
	// belay sets synchronous replication on a standby before promoting it.
	if b.NoSyncMs != 0 || b.AckedNoSync != 0 {
		t.Errorf("belay's new primary ran without a synchronous standby: %+v", b)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{failoverBelay, patroniTunedPst0} {
		if !bytes.Contains(md, []byte("| "+failoverLabel(target)+" | ")) {
			t.Errorf("report.md has no row for %s", target)
		}
	}
	if recs, err := csv.NewReader(bytes.NewReader(mustRead(t, filepath.Join(o.Out, "failover.csv")))).ReadAll(); err != nil || len(recs) != 3 {
		t.Errorf("failover.csv: %q %v", recs, err)
	}
	// Nothing of the run is left: no Patroni, etcd or postgres in its
	// work directory.
	if out, _ := exec.Command("pgrep", "-f", work).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("processes left behind: %s", out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
