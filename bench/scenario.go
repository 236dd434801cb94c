package bench

import "fmt"

// Kind is how a scenario drives its target.
type Kind int

const (
	// KindPgbench is one timed pgbench run.
	KindPgbench Kind = iota
	// KindIdle holds Scenario.Idle idle connections open while pgbench runs.
	KindIdle
	// KindSlow is one client reading a large result slowly.
	KindSlow
	// KindNoisy is the noisy neighbour: two users share a budget of
	// Scenario.Budget server connections, one running Clients pgbench
	// clients flat out, the other QuietClients; then fresh users arrive
	// one by one while the budget is full (see runNoisy).
	KindNoisy
	// KindReadScale is read scaling: pgbench against a primary and its
	// replicas, each node CPU-limited, directly and through belay and
	// pgpool-II in front of 1 to Scenario.Nodes nodes (readscale.go).
	KindReadScale
	// KindFailover is a kill -9 of the primary's postmaster under load,
	// belay against Patroni, each on a 3-node cluster of its own per run
	// (failover.go).
	KindFailover
	// KindSharded is hash sharding: pgbench's accounts sharded by aid over
	// 1, 2 and 4 CPU-limited shards through belay, Scenario.Script run
	// against each and directly against one PostgreSQL (sharded.go).
	KindSharded
	// KindQuota is a node whose CPU quota is halved mid-run: pgbench
	// through each of Scenario.Variants in front of a PostgreSQL in a
	// cgroup of its own (adaptive.go).
	KindQuota
)

// Scenario is one workload run against every target.
type Scenario struct {
	ID    string // file-name safe, e.g. "select-simple-c10"
	Title string
	Kind  Kind
	// PgbenchArgs are pgbench's workload flags (-S, -M mode, -C); for
	// KindIdle those of the working clients.
	PgbenchArgs []string
	// Clients is the number of pgbench clients.
	Clients int
	// Idle is the number of idle connections held open (KindIdle).
	Idle int
	// SessionRow adds PgBouncer in session mode as a fourth target, and
	// ratios are then taken to it (prepared statements).
	SessionRow bool
	// DirectNA, when set, is why direct Postgres is not run.
	DirectNA string
	// TLS runs pgbench with sslmode=require (PgBouncer and belay both accept
	// TLS with the same ECDSA P-256 certificate); otherwise sslmode=disable.
	TLS bool

	// Budget is the server connections the proxies may open to the node in
	// all (KindNoisy): PgBouncer's max_db_connections, belay's
	// --max-db-connections.
	Budget int
	// QuietClients is the quiet user's pgbench clients (KindNoisy); Clients
	// are the noisy user's.
	QuietClients int
	// Arrivals is the fresh users that arrive one after the other while the
	// noisy user holds the budget (KindNoisy).
	Arrivals int

	// Nodes is the cluster of a read-scaling scenario (KindReadScale): a
	// primary and Nodes-1 replicas; of a sharded one (KindSharded), the
	// most shards.
	Nodes int
	// Script is a pgbench script (KindSharded, KindQuota), run with -f
	// and -D scale=Options.Scale.
	Script string `json:",omitempty"`
	// QuotaCores is the CPU quota, in cores, of a quota-halved scenario's
	// node before the halving (KindQuota; 0: Options.QuotaNodeCPU).
	QuotaCores float64 `json:",omitempty"`

	// Variants, when set, are the scenario's belay targets instead of
	// belay proxy and its two tiers: belay started with settings of its
	// own, afresh for each run (KindPgbench, KindNoisy, KindQuota;
	// adaptive.go).
	Variants []BelayVariant `json:",omitempty"`
	// NoisyJobs is the noisy user's pgbench threads (KindNoisy; 0:
	// Options.Jobs, as the quiet user's).
	NoisyJobs int `json:",omitempty"`
}

// sslMode is pgbench's sslmode for sc.
func sslMode(sc Scenario) string {
	if sc.TLS {
		return "require"
	}
	return "disable"
}

// withTLS is sc over TLS.
func withTLS(sc Scenario) Scenario {
	sc.ID += "-tls"
	sc.Title += ", over TLS (`sslmode=require`)"
	sc.TLS = true
	sc.SessionRow = false
	sc.DirectNA = "the harness's PostgreSQL runs without TLS"
	return sc
}

// slowQuery is the large result of the slow-client scenario: 2,000,000 rows of
// about 1 kB, about 2 GB.
const slowQuery = "SELECT repeat('x', 1000) FROM generate_series(1, 2000000)"

// DefaultScenarios returns the scenarios of a quick or a full run; idle is
// the number of idle clients of the idle-connection scenario.
func DefaultScenarios(quick bool, idle int) []Scenario {
	sel := func(mode string, clients int, session bool) Scenario {
		return Scenario{
			ID:          fmt.Sprintf("select-%s-c%d", mode, clients),
			Title:       fmt.Sprintf("select-only, %s protocol (`-S -M %s`), %s clients", mode, mode, thousands(int64(clients))),
			PgbenchArgs: []string{"-S", "-M", mode},
			Clients:     clients,
			SessionRow:  session,
		}
	}
	tpcb := func(clients int) Scenario {
		return Scenario{
			ID:          fmt.Sprintf("tpcb-c%d", clients),
			Title:       fmt.Sprintf("TPC-B-like, the default script (`-M simple`), %d clients", clients),
			PgbenchArgs: []string{"-M", "simple"},
			Clients:     clients,
		}
	}
	churn := Scenario{
		ID:          "churn-c10",
		Title:       "connection churn: a new connection per transaction (`-C -S -M simple`), 10 clients",
		PgbenchArgs: []string{"-C", "-S", "-M", "simple"},
		Clients:     10,
	}
	s := []Scenario{
		sel("simple", 10, false),
		withTLS(sel("simple", 10, false)),
		sel("extended", 10, false),
		sel("prepared", 10, true),
		tpcb(10),
		churn,
		withTLS(churn),
		sel("simple", 100, false),
	}
	if !quick {
		s = append(s,
			// Low concurrency, where a proxy's idle path shows most (issue 16).
			sel("simple", 4, false),
			sel("prepared", 100, true),
			tpcb(100),
			sel("simple", 1000, false),
		)
	}
	s = append(s,
		Scenario{
			ID:          fmt.Sprintf("idle-%d", idle),
			Title:       fmt.Sprintf("%s idle clients held open while 10 clients work (`-S -M simple`)", thousands(int64(idle))),
			Kind:        KindIdle,
			PgbenchArgs: []string{"-S", "-M", "simple"},
			Clients:     10,
			Idle:        idle,
			DirectNA:    "PostgreSQL needs a backend process per client",
		},
		Scenario{
			ID:       "slow-client",
			Title:    "one slow client reading a large result (`" + slowQuery + "`, about 2 GB)",
			Kind:     KindSlow,
			DirectNA: "no proxy in between: nothing to measure",
		},
		noisyNeighbour,
	)
	if !quick {
		s = append(s, noisyNeighbourTx)
		s = append(s, adaptiveScenarios()...)
		s = append(s, readScaleScenarios()...)
		s = append(s, shardedScenarios()...)
		s = append(s, failoverScenario())
	}
	return s
}

// failoverScenario is the failover scenario (full runs, or --scenarios
// failover): belay and Patroni, each on 3-node clusters of their own.
func failoverScenario() Scenario {
	return Scenario{
		ID: "failover",
		Title: "failover: kill -9 of the primary's postmaster under pgbench TPC-B (`-c 10`) and the bank checker, " +
			"belay against Patroni (a primary and 2 synchronous standbys)",
		Kind: KindFailover, Clients: failoverPgbenchClients, Nodes: 3,
	}
}

// noisyNeighbour is the noisy-neighbour scenario of quick and full runs:
// select-only transactions of one statement, the worst case for the quiet
// user, whose servers wait a whole round trip to its clients between
// transactions while the noisy user's queue keeps its own busy.
var noisyNeighbour = noisyScenario("noisy-neighbour", "`-S -M simple`", "-S", "-M", "simple")

// noisyNeighbourTx is the same with pgbench's simple-update transactions
// (BEGIN, UPDATE, SELECT, INSERT, END): each user holds its server across
// its clients' round trips, as applications do in transaction pooling
// (full runs).
var noisyNeighbourTx = noisyScenario("noisy-neighbour-tx", "simple-update transactions, `-N -M simple`", "-N", "-M", "simple")

func noisyScenario(id, what string, args ...string) Scenario {
	return Scenario{
		ID: id,
		Title: "noisy neighbour: a budget of 10 server connections, user `noisy` with 100 clients flat out, " +
			"user `quiet` with 4 (" + what + ")",
		Kind:         KindNoisy,
		PgbenchArgs:  args,
		Clients:      100,
		QuietClients: 4,
		Budget:       10,
		Arrivals:     40,
		DirectNA:     "no budget to share: PostgreSQL gives every client a backend of its own",
	}
}

// targetsFor lists the target names sc is run against, in run order:
// belay's two tiers (withTiers) after belay proxy, in the pgbench, idle
// and noisy-neighbour scenarios. A scenario with Variants runs them
// instead of belay proxy and its two tiers, and leaves direct out where
// it would be n/a.
func targetsFor(sc Scenario, withPgBouncer, withTiers bool) []string {
	if len(sc.Variants) > 0 {
		var t []string
		if sc.DirectNA == "" {
			t = append(t, Direct)
		}
		if withPgBouncer {
			t = append(t, PgBouncer)
		}
		for _, v := range sc.Variants {
			t = append(t, v.Name)
		}
		return t
	}
	t := []string{Direct}
	if withPgBouncer {
		t = append(t, PgBouncer)
		if sc.SessionRow {
			t = append(t, PgBouncerSession)
		}
	}
	t = append(t, Belay)
	if withTiers && (sc.Kind == KindPgbench || sc.Kind == KindIdle || sc.Kind == KindNoisy) {
		t = append(t, BelayTiers)
	}
	return t
}

// label is target name's label in sc's report: a variant's own, else
// targetLabel's.
func (sc Scenario) label(name string) string {
	for _, v := range sc.Variants {
		if v.Name == name {
			return v.Label
		}
	}
	return targetLabel(name)
}
