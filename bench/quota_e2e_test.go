package bench

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

// TestAdaptiveLimitUnderQuota is the adaptive limit (fairness.Limiter, on
// in belay proxy by default) end to end against a PostgreSQL whose CPU
// quota changes mid-run: the node in a cgroup of its own at 1 core, 40
// clients of CPU-bound queries through belay, then the quota cut to a
// tenth of a core. The limit must not rise, and it or the limiter's
// measure of the node's capacity must fall; the figures (and how long the
// limit took to move) are logged. belay bench's quota-halved
// scenario measures the same with pgbench, and the latency.
//
// The cut is to a tenth, not to a half or a quarter, because this test
// runs beside other packages' tests under the race detector: on a busy
// machine a Postgres "at 1 core" may get a quarter of one (in one CI run
// the queries per second were the same at 1 core and at a quarter, and the
// limiter rightly saw no change). The test counts the queries of each
// phase to know the cut bound; if it did not, the fault was not produced
// and the test says so rather than judge the limiter on it.
//
// The limit's floor is 1, not the default 2: the limiter's probes measure
// the service time at its floor, and a tenth of a core runs less than one
// of these queries at a time, so a probe of two would count one query's
// wait for the other as service (capacity reads 2 at limit 2, whatever
// the node).
func TestAdaptiveLimitUnderQuota(t *testing.T) {
	if _, err := pginstance.FindBinDir(); err != nil {
		t.Fatal(err) // CI installs PostgreSQL: never skip silently
	}
	cg, err := newNodeCgroups([]string{"node"})
	if err != nil {
		t.Skipf("no CPU quota here: %v", err)
	}
	t.Cleanup(func() { // after the server stopped (cleanups run last in, first out)
		if err := cg.remove(); err != nil {
			t.Error(err)
		}
	})
	quota := func(cores float64) {
		t.Helper()
		q, err := cpuQuotaUs(cores, cpuPeriodUs/10) // a 10 ms period: throttling waits are short
		if err != nil {
			t.Fatal(err)
		}
		if err := cg.limitPeriod("node", q, cpuPeriodUs/10); err != nil {
			t.Fatal(err)
		}
	}
	quota(1)
	pg := pgtest.New(t, pginstance.Options{Cgroup: cg.dir("node"), Settings: map[string]string{"max_connections": "60"}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logDone atomic.Bool
	p, err := loop.Start(loop.Config{Listen: []string{addr}, Server: pg.Addr(), PoolSize: 30, MaxDBConnections: 30,
		AdaptiveLimit: true, AdaptiveLimitMin: 1, AuthType: "trust", EventLoops: 1, Logger: slog.New(slog.NewTextHandler(testLog{t, &logDone}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer logDone.Store(true) // after Stop (deferred below, so run before)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	}()

	host, port, _ := net.SplitHostPort(addr)
	conn := "host=" + host + " port=" + port + " dbname=postgres user=" + pg.Superuser + " sslmode=disable"
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var done atomic.Int64 // queries answered
	defer func() { cancel(); wg.Wait() }()
	for range 40 {
		cfg, err := pgx.ParseConfig(conn)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(context.Background())
			for ctx.Err() == nil {
				if _, err := c.Exec(ctx, "SELECT count(*) FROM generate_series(1, 20000)"); err != nil {
					if ctx.Err() == nil {
						t.Errorf("query: %v", err)
					}
					return
				}
				done.Add(1)
			}
		}()
	}

	// sample reads the limit (outside probes and checks) and the measured
	// capacity every 100 ms for d, and the queries per second over d.
	sample := func(d time.Duration) (limits, capacity []float64, qps float64) {
		start, n0 := time.Now(), done.Load()
		defer func() { qps = float64(done.Load()-n0) / time.Since(start).Seconds() }()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			ls := p.Limit("")
			if ls.Probing {
				continue
			}
			limits = append(limits, float64(ls.Limit))
			if ls.Last.Capacity > 0 {
				capacity = append(capacity, ls.Last.Capacity)
			}
		}
		return limits, capacity, 0
	}
	sample(15 * time.Second) // settle
	l1, c1, q1 := sample(5 * time.Second)
	quota(0.1)
	cut := time.Now()
	var moved time.Duration
	for time.Since(cut) < 15*time.Second && moved == 0 {
		if ls := p.Limit(""); float64(ls.Limit) < Median(l1) && !ls.Probing {
			moved = time.Since(cut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// At a tenth of a core a window takes seconds (40 queries at 10 a
	// second), and the window of a probe or a check measures no capacity:
	// the capacity after the cut is read over the whole 15 s.
	_, c2, _ := sample(10 * time.Second)
	l2, c2last, q2 := sample(5 * time.Second)
	c2 = append(c2, c2last...)
	t.Logf("1 core: limit %v, capacity %.2f, %.0f queries/s; a tenth of a core: limit %v, capacity %.2f, %.0f queries/s; the limit first fell %v after the cut; %s",
		Median(l1), Median(c1), q1, Median(l2), Median(c2), q2, moved, p.Limit("").Reason)
	if len(l1) == 0 || len(l2) == 0 || len(c1) == 0 || len(c2) == 0 {
		t.Fatalf("no samples: %v %v %v %v", l1, l2, c1, c2)
	}
	if q2 > 0.6*q1 {
		t.Skipf("the quota cut did not bind (%.0f queries/s before, %.0f after): this busy machine gave Postgres little more CPU before the cut than the cut left, so there is no change for the limiter to follow", q1, q2)
	}
	if Median(l2) > Median(l1) {
		t.Errorf("the limit rose from %g to %g when the quota was cut", Median(l1), Median(l2))
	}
	// One of the two must show the cut: the limit falls, or the capacity
	// the limiter measures does (a node already at the band's floor keeps
	// its limit).
	if Median(l2) < Median(l1) || Median(c2) <= 0.75*Median(c1) {
		return
	}
	if Median(c1) > 2 {
		// The capacity is the throughput at the limit times the time per
		// query at the floor: for CPU-bound queries on one core about 1,
		// as one query at a time keeps the core busy. Above 2 the baseline
		// is too high, and the limit sits in the band of a capacity that
		// is not there. A CI run read 2.73 at limit 6, and a run by hand
		// the same: the first probe, at the start, had read 13.9 ms per
		// query where 3.8 is right. The limiter now probes the start's
		// baseline again after 15 s, before this test's cut; a baseline
		// still this high means the machine kept the node from its CPU
		// (the probe's window at one query at a time idled between a
		// client's queries), which is no node to judge a CPU cut on.
		t.Skipf("the limit did not follow the cut, but the node was not CPU-bound for the limiter before it (capacity %.2f at limit %g, for queries that keep one core busy one at a time)", Median(c1), Median(l1))
	}
	t.Errorf("neither the limit (%g) nor the measured capacity (%.2f, then %.2f) followed the quota from 1 core to a tenth",
		Median(l1), Median(c1), Median(c2))
}

// testLog writes what belay logs (its limit's changes, at Info) to the
// test's log, shown when it fails or under -v; nothing once done is set
// (t.Log panics after the test ends).
type testLog struct {
	t    *testing.T
	done *atomic.Bool
}

func (w testLog) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}
