package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/belaydb/belay/bench"
)

// runBench is `belay bench`: direct PostgreSQL, PgBouncer and belay side by
// side (package bench), or with --flamegraphs, CPU flame graphs of belay.
func runBench(args []string) error {
	fs := newFlagSet("belay bench", "belay bench [flags]",
		"Starts PostgreSQL, PgBouncer (installed with apt-get when missing) and belay on this machine and runs\n"+
			"pgbench and other clients against each, alternating them; writes report.md and charts to --out.\n"+
			"--scenarios failover: kill -9 of a primary under load, belay against Patroni (Debian's patroni and\n"+
			"etcd-server, installed when missing), a 3-node cluster per run; --rounds 5 for the issue's five runs.\n"+
			"--scenarios adaptive: belay's adaptive node limit against fixed budgets (3, 5, 8, 10, 20) and PgBouncer:\n"+
			"the noisy neighbour with the noisy user's pgbench at -j 1 and -j 2, select-only and TPC-B at 100 clients,\n"+
			"and a node whose CPU quota is halved mid-run (a cgroup; skipped where there is none).")
	quick := fs.Bool("quick", false, "core scenarios only, short runs, one round (under 4 minutes on 2 cores)")
	out := fs.String("out", "bench-out", "directory for report.md, results.json and the PNG charts")
	duration := fs.Duration("duration", 0, "length of each timed run (default 5s with --quick, else 20s)")
	rounds := fs.Int("rounds", 0, "rounds per scenario; the report shows medians (default 1 with --quick, else 3)")
	poolSize := fs.Int("pool-size", 20, "server connections per pool, for PgBouncer and belay alike")
	scale := fs.Int("scale", 10, "pgbench scale factor")
	idle := fs.Int("idle-clients", 0, "idle clients of the idle-connection scenario (default 1000 with --quick, else 10000)")
	only := fs.String("scenarios", "", "comma-separated substrings: run only the scenarios whose ID contains one")
	noBouncer := fs.Bool("no-pgbouncer", false, "leave PgBouncer out")
	noTiers := fs.Bool("no-tiers", false, "leave out belay's two tiers (belay gateway in front of belay pooler, beside belay proxy in the pgbench scenarios)")
	noInstall := fs.Bool("no-install", false, "do not install PgBouncer, pgpool-II, Patroni or etcd-server with apt-get when missing")
	nodeCPU := fs.Float64("node-cpu", 0.4, "read-scaling scenarios: the CPU quota of each PostgreSQL node, in cores (a cgroup per node)")
	shardCPU := fs.Float64("shard-node-cpu", 0.2, "sharded scenarios (--scenarios sharded): the CPU quota of each shard's PostgreSQL node, in cores (a cgroup per node)")
	quotaCPU := fs.Float64("quota-node-cpu", 1, "quota-halved scenario (--scenarios adaptive-quota-halved): the CPU quota of its PostgreSQL node, in cores, before it is halved mid-run (adaptive-quota-halved-heavy's node has 2)")
	quotaDur := fs.Duration("quota-duration", 0, "quota-halved scenario: the length of each run, the quota halved at its midpoint (default 1.5 times --duration, at least 10s)")
	asIs := fs.Bool("failover-patroni-as-is", false, "failover scenario: also run Patroni with its defaults as they are (primary_start_timeout 300: it restarts a killed primary in place)")
	maxWait := fs.Duration("failover-max-wait", time.Minute, "failover scenario: how long a run waits after the kill for a write to be acknowledged")
	flame := fs.String("flamegraphs", "", "instead of comparing, profile belay under each core scenario and write flame graphs to DIR")
	keep := fs.Bool("keep", false, "keep the temporary directory (Postgres data, logs)")
	placement := fs.String("placement", string(bench.PlaceOwnSession), "where the proxies run, the same for all, with respect to the kernel's autogroup scheduling: own-session (each in a session of its own, as daemons run) or shared (all in the harness's session, with pgbench)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := bench.Options{
		Quick: *quick, Out: *out, Duration: *duration, Rounds: *rounds, PoolSize: *poolSize,
		Scale: *scale, IdleClients: *idle, NoPgBouncer: *noBouncer, NoTiers: *noTiers, InstallPgBouncer: !*noInstall,
		InstallPgpool: !*noInstall, NodeCPU: *nodeCPU, ShardNodeCPU: *shardCPU, QuotaNodeCPU: *quotaCPU, QuotaDuration: *quotaDur, InstallPatroni: !*noInstall, PatroniAsIs: *asIs, FailoverMaxWait: *maxWait,
		FlameDir: *flame, Keep: *keep, Progress: os.Stderr, Placement: bench.Placement(*placement),
		Command: "belay bench " + strings.Join(args, " "),
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	_, err := bench.Run(ctx, o)
	return err
}
