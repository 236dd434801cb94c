package loop

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestAdaptiveLimit: with the adaptive limit on, 40 clients of CPU-bound
// queries on a 2-core machine keep the node's budget, measured, well under
// its ceiling of 30 (it starts at the prior of a node on this machine, twice
// the cores plus one), the servers open follow it, and SHOW NODES, SHOW
// FAIRNESS and the metrics show the limit and why. Then the same clients
// run queries that sleep: they wait on nothing of the node's, the limiter
// measures no queue, and the limit grows back toward the ceiling. (Bounds
// here are for a hang or a wrong direction, not speed: belay bench
// measures how fast and how well.)
func TestAdaptiveLimit(t *testing.T) {
	pg := pgtest.New(t, pginstance.Options{Settings: map[string]string{"fsync": "off", "max_connections": "60"}})
	p := startProxy(t, pg, func(c *Config) {
		c.PoolSize, c.MaxDBConnections, c.AdaptiveLimit = 30, 30, true
		c.EventLoops = 1 // no slot moving between loops: its logins would keep the node unmeasured
		c.AdminUsers = []string{"postgres"}
	})
	ctx := context.Background()
	run := func(sql string) (stop func()) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range 40 {
			c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, err := c.Exec(ctx, sql); err != nil && ctx.Err() == nil {
						t.Errorf("%s: %v", sql, err)
						return
					}
				}
			}()
		}
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
		t.Cleanup(stop) // before the connections close (cleanups run last in, first out)
		return stop
	}
	limit := func() int { return p.pools.NodeStats().Limit.Limit }
	// settled is the limit when it is not lowered for a probe or a check.
	settled := func() int {
		if l := p.pools.NodeStats().Limit; !l.Probing {
			return l.Limit
		}
		return -1
	}
	within := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(end) {
				ns := p.pools.NodeStats()
				t.Fatalf("%s: not within %s; limit %d, budget %d, open %d, %d logins (%d slot moves, %d retried): %s", what, d,
					ns.Limit.Limit, ns.Budget, ns.Open, p.pools.Dials.Load(), p.pools.Transfers.Load(), p.pools.LoginRetries.Load(), ns.Limit.Reason)
			}
		}
	}

	stop := run("SELECT count(*) FROM generate_series(1, 30000)")
	// A node on this machine starts at a prior (twice the cores plus one):
	// the limit must be measured there too, a probe made, not kept.
	within("the limit is measured and two thirds of the ceiling or less", 60*time.Second, func() bool {
		l := settled()
		return l >= 0 && l <= 20 && p.pools.NodeStats().Limit.Probes >= 2
	})
	within("the servers open follow the budget down", 30*time.Second, func() bool {
		ns := p.pools.NodeStats()
		return ns.Open <= ns.Budget
	})
	ns := p.pools.NodeStats()
	t.Logf("CPU-bound: limit %d, budget %d, open %d, %d changes: %s", ns.Limit.Limit, ns.Budget, ns.Open, ns.Limit.Changes, ns.Limit.Reason)
	if !ns.Limit.Adaptive || ns.Limit.Ceiling != 30 || ns.Budget < ns.Limit.Limit || ns.Budget > 30 {
		t.Errorf("node stats %+v", ns)
	}

	con := connectMode(t, p.connString("belay", "postgres"), pgx.QueryExecModeSimpleProtocol)
	var node, reason string
	var lim int32
	if err := con.QueryRow(ctx, "SHOW NODES").Scan(nil, &node, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, &lim, &reason); err != nil {
		t.Fatal(err)
	}
	if lim < 2 || lim > 30 || reason == "" || reason == "fixed" {
		t.Errorf("SHOW NODES: limit %d, reason %q", lim, reason)
	}
	var budget, fairLimit, maxDB int32
	if err := con.QueryRow(ctx, "SHOW FAIRNESS").Scan(nil, nil, nil, nil, nil, nil, nil, nil, nil, &budget, nil, nil, &fairLimit, &maxDB, &reason); err != nil {
		t.Fatal(err)
	}
	if maxDB != 30 || fairLimit < 2 || budget < fairLimit {
		t.Errorf("SHOW FAIRNESS: budget %d, limit %d, max_db_connections %d, %q", budget, fairLimit, maxDB, reason)
	}
	var b strings.Builder
	p.Metrics().WritePrometheus(&b)
	for _, want := range []string{`belay_node_limit{node="",role="primary"} `, `belay_node_limit_ceiling{node="",role="primary"} 30`,
		`belay_node_limit_changes_total{node="",role="primary"} `, `belay_node_limit_reason{node="",role="primary",reason="`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	stop()

	low := limit()
	stop = run("SELECT pg_sleep(0.02)")
	within("the limit grows back for queries that only wait", 60*time.Second, func() bool { return settled() >= 25 })
	ns = p.pools.NodeStats()
	t.Logf("sleeping: limit %d (from %d), budget %d, open %d: %s", ns.Limit.Limit, low, ns.Budget, ns.Open, ns.Limit.Reason)
	stop()
}

// TestAdaptiveLimitOff: without it the budget is max_db_connections, and
// SHOW NODES says the limit is fixed.
func TestAdaptiveLimitOff(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) {
		c.MaxDBConnections = 7
		c.AdminUsers = []string{"postgres"}
	})
	c := connect(t, p.connString("postgres", "postgres"))
	if _, err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	ns := p.pools.NodeStats()
	if ns.Limit.Adaptive || ns.Budget != 7 || ns.Limit.Limit != 7 {
		t.Errorf("node stats %+v", ns)
	}
	con := connectMode(t, p.connString("belay", "postgres"), pgx.QueryExecModeSimpleProtocol)
	var lim int32
	var reason string
	if err := con.QueryRow(context.Background(), "SHOW NODES").Scan(nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, &lim, &reason); err != nil {
		t.Fatal(err)
	}
	if lim != 7 || reason != "fixed" {
		t.Errorf("SHOW NODES: limit %d, %q", lim, reason)
	}
}
