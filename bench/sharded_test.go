package bench

import (
	"strings"
	"testing"

	"github.com/belaydb/belay/shard"
)

// TestShardedPieces: the sharded scenarios' targets, schema and load
// statements.
func TestShardedPieces(t *testing.T) {
	if got := shardedTargets(); strings.Join(got, ",") != "direct,shards-1,shards-2,shards-4" {
		t.Errorf("targets %v", got)
	}
	for name, want := range map[string]int{"shards-1": 1, "shards-4": 4} {
		if n, ok := parseShardedTarget(name); !ok || n != want {
			t.Errorf("%s: %d, %v", name, n, ok)
		}
	}
	for _, bad := range []string{Direct, "shards-", "shards-0", "belay-2"} {
		if _, ok := parseShardedTarget(bad); ok {
			t.Errorf("%q parsed as a shard count", bad)
		}
	}
	if shardedLabel("shards-1") != "belay, 1 shard" || shardedLabel("shards-4") != "belay, 4 shards" || !strings.HasPrefix(shardedLabel(Direct), "direct") {
		t.Errorf("labels %q %q %q", shardedLabel("shards-1"), shardedLabel("shards-4"), shardedLabel(Direct))
	}
	sc, err := shardedSchema(4)
	if err != nil || sc.Shards() != 4 {
		t.Fatalf("schema: %v, %v", sc, err)
	}
	for name, want := range map[string]shard.Kind{"pgbench_accounts": shard.Sharded, "pgbench_history": shard.Sharded,
		"pgbench_branches": shard.Reference, "pgbench_tellers": shard.Reference} {
		tb, ok := sc.Lookup("", name)
		if !ok || tb.Kind != want || want == shard.Sharded && (tb.Key != "aid" || tb.KeyType != shard.KeyInteger) {
			t.Errorf("%s: %+v, %v", name, tb, ok)
		}
	}
	sql := strings.Join(shardLoadSQL(10, 4, 3), ";\n")
	for _, want := range []string{"generate_series(1, 1000000)", "satisfies_hash_partition('belay_placement'::regclass, 4, 3, aid)",
		"generate_series(1, 100) AS tid", "generate_series(1, 10) AS bid", "PARTITION BY HASH (aid)"} {
		if !strings.Contains(sql, want) {
			t.Errorf("the load of shard 3 of 4 lacks %q:\n%s", want, sql)
		}
	}
	for _, s := range shardedScenarios() {
		if s.Kind != KindSharded || !strings.Contains(s.Script, ":scale") || !strings.Contains(s.Script, "pgbench_accounts") {
			t.Errorf("scenario %s: %+v", s.ID, s)
		}
	}
}

// TestShardedPoints: rows folded into points by shard count, the scaling
// over 1 shard, belay's CPU by process in ms, and the report's tables.
func TestShardedPoints(t *testing.T) {
	row := func(target string, tps []float64, gateway, pooler float64, poolers int) Row {
		var runs []RunResult
		for i, v := range tps {
			r := RunResult{Target: target, Round: i + 1, TPS: v, Transactions: int64(v * 10), CPUPer1k: -1}
			if gateway > 0 {
				r.CPUPer1k = gateway + pooler*float64(poolers)
				r.TierCPUPer1k = []TierCPU{{Tier: "gateway", Per1k: gateway}}
				for k := range poolers {
					r.TierCPUPer1k = append(r.TierCPUPer1k, TierCPU{Tier: "pooler node" + string(rune('0'+k)), Per1k: pooler})
				}
			}
			runs = append(runs, r)
		}
		return aggregate(target, shardedLabel(target), runs)
	}
	sc := shardedScenarios()[0]
	s := ScenarioResult{Scenario: sc, Rows: []Row{
		row(Direct, []float64{2000, 2200, 2100}, 0, 0, 0),
		row("shards-1", []float64{1900, 2000, 2100}, 0.030, 0.025, 1),
		row("shards-2", []float64{3900, 4100, 4000}, 0.030, 0.013, 2),
		row("shards-4", []float64{7000, 8200, 8000}, 0.032, 0.007, 4),
	}}
	pts := shardedPoints(&s)
	if len(pts) != 3 || pts[0].Shards != 1 || pts[2].Shards != 4 {
		t.Fatalf("points %+v", pts)
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if p := pts[2]; p.TPS != 8000 || !near(p.Scale, 4) || p.Spread != "7,000–8,200" || !near(p.GatewayMs, 32) || !near(p.PoolersMs, 28) || !near(p.BelayMs, 60) {
		t.Errorf("4 shards: %+v", p)
	}
	if p := pts[0]; !near(p.Scale, 1) || !near(p.BelayMs, 55) {
		t.Errorf("1 shard: %+v", p)
	}
	info := ShardedResult{NodeCPU: 0.2, QuotaUs: 2000, PeriodUs: 10000, Scale: 10, Clients: 32, DirectTPS: 2100, Points: pts,
		Settings: settingsText(map[string]string{"max_prepared_transactions": "200", "fsync": "off"})}
	s.Sharded = &info
	var b strings.Builder
	renderSharded(&b, &s)
	out := b.String()
	for _, want := range []string{"| 4 | 8,000 (7,000–8,200) | 4.00 | 32.0 + 28.0 = 60.0 | 0 |", "| direct, 1 PostgreSQL | 2,100 |",
		"SELECT abalance FROM pgbench_accounts WHERE aid = :aid;", "0.2 core",
		"The nodes' settings: fsync=off, max_prepared_transactions=200."} {
		if !strings.Contains(out, want) {
			t.Errorf("the section lacks %q:\n%s", want, out)
		}
	}
	sum := renderShardedSummary(&Report{Scenarios: []ScenarioResult{s}})
	if !strings.Contains(sum, "| sharded-select | 2,100 | 2,000 | 4,000 | 8,000 | 4.00 | 55.0 / 56.0 / 60.0 |") {
		t.Errorf("summary:\n%s", sum)
	}
	skipped := ScenarioResult{Scenario: sc, Sharded: &ShardedResult{Skipped: "no cgroups"}}
	b.Reset()
	renderSharded(&b, &skipped)
	if !strings.Contains(b.String(), "Skipped: no cgroups") {
		t.Errorf("skipped: %s", b.String())
	}
}
