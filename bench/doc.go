// Package bench is belay's side-by-side benchmark harness (`belay bench`): it
// starts one PostgreSQL (internal/pginstance), a PgBouncer (Debian's package,
// installed with apt-get when missing) and belay (a separate `belay proxy`
// process, so that /proc gives its CPU time and resident memory), all with the
// same pool size, and runs each scenario against direct Postgres, PgBouncer and
// belay, alternating the targets per round (A B C A B C) so that machine drift
// cancels out. It writes report.md, results.json and PNG charts (gonum/plot),
// and failover.csv for the failover scenario. A run of the failover
// scenario alone starts no single PostgreSQL, PgBouncer or single-node belay.
//
// Every proxy is started the same way with respect to the kernel's autogroup
// scheduling (Placement, stated in the report): by default each in a session
// of its own, as daemons run, or all in the harness's session, which is
// pgbench's and PostgreSQL's. With autogroup on, the two differ (issue 16:
// PgBouncer daemonized with -d while belay shared pgbench's session made
// PgBouncer's epoll_wait calls per transaction 0.40 instead of 1.19).
//
// Scenarios: pgbench select-only with -M simple / extended / prepared (plus a
// PgBouncer session-mode row, since PgBouncer cannot keep prepared statements
// in transaction mode), TPC-B, connection churn (-C), client counts 10, 100
// (and, in full mode, 4, and 1,000 split over several pgbench processes), idle
// connections held by the harness while 10 pgbench clients work, a slow
// client reading a large result while the proxy's RSS is sampled, and the
// noisy neighbour: both proxies limited to a budget of 10 server
// connections (PgBouncer's max_db_connections, belay's
// --max-db-connections), user noisy runs 100 clients flat out beside user
// quiet's 4, then fresh users arrive while noisy holds the budget (quiet's
// share of the transactions, its latency with and without noisy, and how
// long a new user waits for its first result; noisy.go).
//
// The adaptive limit (issue Q; full runs, or --scenarios adaptive;
// adaptive.go, adaptive_report.go): belay's adaptive limit on a node's
// concurrency (--adaptive-limit, --max-db-connections its ceiling) against
// fixed budgets (--adaptive-limit=false), each belay a BelayVariant, a
// `belay proxy` of its own started afresh for each run, whose
// belay_node_limit is read from its /metrics every 250 ms. The noisy
// neighbour with the noisy user's pgbench at -j 1 and -j 2 (PgBouncer at
// max_db_connections 10, belay adaptive at ceiling 20, belay fixed at 3,
// 5, 8, 10 and 20; the fixed budgets skip the arrivals), and pgbench -S
// and TPC-B at 100 clients (direct, PgBouncer, belay adaptive, belay
// fixed pools of 3 to 20): the report gives belay adaptive's total ÷ the
// best fixed budget's and ÷ PgBouncer's, the quiet user's share and p99
// ratio, and the limit it settled at. A node whose CPU quota is halved
// mid-run (a PostgreSQL of its own in a cgroup, halved at the midpoint of
// Options.QuotaDuration; under pgbench -S at Options.QuotaNodeCPU cores,
// and under a range read of 5,000 accounts at 2 cores): belay adaptive
// against belay fixed 20, the limit before and after, the time it took
// to reach its new level, and tps, p99 and the limit second by second
// from pgbench's per-transaction log; skipped without cgroups.
//
// Read scaling (full runs, or --scenarios readscale; readscale.go): a
// cluster of its own, a primary and 2 streaming replicas
// (internal/pgcluster), each node started inside a cgroup with a CPU quota
// of its own (Options.NodeCPU cores; cgroup.go: v2's cpu.max or v1's
// cpu.cfs_quota_us, whichever this machine has), so that a node added
// adds capacity although every node shares the machine's cores. The nodes
// are registered in an embedded etcd (internal/etcdlocal, ha.Store) as one
// cluster per node count, each served by a `belay proxy --etcd --cluster`,
// and by a pgpool-II in streaming-replication mode with load balancing
// (pgpool.go, Debian's pgpool2, installed with apt-get when missing).
// pgbench -S and a read-mostly mix run directly against the primary and
// through both proxies in front of 1, 2 and 3 nodes, alternating; the
// report gives tps by node count and belay ÷ pgpool-II, with each node's
// CPU use and throttling. Without pgpool-II or cgroups (not root, say) the
// scenarios are skipped and the report says why.
//
// Sharding (full runs, or --scenarios sharded; sharded.go,
// sharded_report.go): pgbench's tables hash-sharded by belay (accounts and
// history by aid, branches and tellers as reference tables) over 1, 2 and
// 4 shards of a primary each, every node in a cgroup with the same CPU
// quota (Options.ShardNodeCPU per 10 ms period), each shard loaded
// directly with its own rows (pgbench -i cannot go through belay: it
// truncates every table in one transaction), served by a belay gateway and
// a belay pooler per node as belay up runs them. A keyed read, a keyed
// write transaction and a read of every shard merged by belay run
// directly against one PostgreSQL holding every row and through belay
// over 1, 2 and 4 shards, alternating; the report gives tps by shard
// count, its ratio to 1 shard, and belay's CPU per 1,000 transactions by
// process (gateway, poolers).
//
// Failover (full runs, or --scenarios failover; failover.go, patroni.go,
// failover_report.go): a kill -9 of the primary's postmaster under
// pgbench TPC-B (-c 10) and the bank checker (internal/bankcheck), belay
// against Patroni, a fresh 3-node cluster per target and round. belay: a
// pgcluster (synchronous ANY 1) registered in etcd, `belay proxy --etcd`
// and two `belay orch`, as cmd/belay's TestFailoverKill9 runs them.
// Patroni: three processes of Debian's patroni (3.0.x, run as user
// postgres; it runs PostgreSQL itself) with synchronous_mode on, their
// DCS a Debian etcd-server process (/usr/bin/etcd, 3.4) the harness starts
// on loopback ports with a data directory of its own, never the system
// service (both packages installed with apt-get when missing, their
// services kept from starting); Patroni's defaults and ttl 10, loop_wait
// 1, retry_timeout 4, each with primary_start_timeout 0, and with
// Options.PatroniAsIs the defaults as they are (it restarts the killed
// primary in place). The same etcd process serves belay. Patroni's
// clients use libpq's multi-host form with target_session_attrs=read-write
// (pgbench through libpq, the checker through pgx). Per run: time from
// the SIGKILL to the first acknowledged write sent after the old primary
// was gone, to a node answering as primary, how long that primary ran
// without synchronous_standby_names (sampled every 50 ms, and the writes
// acknowledged meanwhile), acknowledged writes lost, the clients' errors
// by SQLSTATE, pgbench's failed transactions and aborted clients; the
// report gives median and worst per target, and failover.csv every run.
// A run that cannot be measured says why and the others go on.
//
// Figures come from pgbench's per-transaction logs (latency percentiles,
// completion times), its summary (tps, failed transactions, aborted
// clients), /proc/PID/stat and /proc/PID/statm of the proxy process (CPU
// seconds, RSS), pg_stat_activity (the backends each user holds) and
// belay's /metrics (its plan cache counts, its adaptive limit).
//
// The pure parts (log parsing, percentiles, /proc parsing, report rendering)
// are in files of their own and unit-tested; the rest drives processes.
// With Options.FlameDir set, Run instead profiles belay under each core
// scenario and renders flame graphs with package flamegraphs.
//
// Concurrency: Run drives one scenario at a time from the calling goroutine
// (the read-scaling cluster, the sharded scenarios' nodes and belay, the
// quota-halved scenario's node, and the failover scenario's etcd, started by
// the first such scenario, are stopped with the rest of the environment
// when Run returns; a failover run's cluster is stopped when the run
// ends); the helpers it starts (RSS and pg_stat_activity samplers,
// idle-connection dialers, belay's limit sampler, arriving users, a
// background pgbench, the bank
// checker's clients, the failover sampler's goroutine per node, process
// waiters) end
// before the step that started them returns. Nothing here is
// safe for concurrent use unless it says so.
//
// Never imports: loop, poolcore, planner, codec (belay is measured as a
// black box, through its binary; tests may use loop to run a proxy in-process).
package bench
