package loop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// clusterTopology is the topology of c: shard "0", its primary and replicas.
func clusterTopology(c *pgcluster.Cluster) *ha.Topology {
	nodes := map[string]string{}
	for _, n := range c.Nodes() {
		nodes[n.Name] = n.Addr()
	}
	return topologyOf(c.Primary().Name, nodes)
}

// startClusterProxy runs a belay in front of cluster c.
func startClusterProxy(t *testing.T, c *pgcluster.Cluster, mod func(*Config)) (*Proxy, *staticTopology) {
	t.Helper()
	src := &staticTopology{}
	src.t.Store(clusterTopology(c))
	p := startProxy(t, c.Primary().Instance(), func(cfg *Config) {
		cfg.Cluster, cfg.HealthDial = src, healthDial
		cfg.AdminUsers = []string{"postgres"}
		cfg.PoolSize = 8
		if mod != nil {
			mod(cfg)
		}
	})
	eventually(t, 20*time.Second, "every node's health check", func() bool {
		for _, n := range p.cluster.view.Load().nodes {
			if h := n.health.Current(); h == nil || !h.Up {
				return false
			}
		}
		return true
	})
	return p, src
}

// TestReadYourWrites (issue G): clients each write a row and read it back
// at once, and read rows they wrote earlier; with read-your-writes (the
// default) no read misses what its client wrote, while most reads are still
// served by replicas. BELAY_RYW_OPS sets the number of operations (1000).
func TestReadYourWrites(t *testing.T) {
	cl := pgtest.SharedCluster(t)
	ctx := context.Background()
	adm := connect(t, cl.Primary().ConnString("postgres", "postgres"))
	if _, err := adm.Exec(ctx, "DROP TABLE IF EXISTS kryw; CREATE TABLE kryw (client int, seq int, v text, PRIMARY KEY (client, seq))"); err != nil {
		t.Fatal(err)
	}
	ops := 1000
	if n, err := strconv.Atoi(os.Getenv("BELAY_RYW_OPS")); err == nil {
		ops = n
	}
	for _, eventual := range []bool{false, true} {
		name := "read-your-writes"
		if eventual {
			name = "eventual"
		}
		t.Run(name, func(t *testing.T) {
			p, _ := startClusterProxy(t, cl, func(c *Config) { c.Eventual = eventual })
			const clients = 20
			var wg sync.WaitGroup
			var stale, reads, replicaReads, writes atomic.Int64
			var writeTime atomic.Int64
			var firstStale atomic.Value
			per := ops / clients / 2
			base := 0
			if eventual {
				base = 1 << 20
			}
			for i := 0; i < clients; i++ {
				c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeCacheStatement)
				id := base + i
				wg.Add(1)
				go func() {
					defer wg.Done()
					check := func(seq int) {
						var v string
						var standby bool
						err := c.QueryRow(ctx, "SELECT v, pg_is_in_recovery() FROM kryw WHERE client = $1 AND seq = $2", id, seq).Scan(&v, &standby)
						reads.Add(1)
						if standby {
							replicaReads.Add(1)
						}
						if err != nil || v != fmt.Sprint(seq) {
							stale.Add(1)
							firstStale.CompareAndSwap(nil, fmt.Sprintf("client %d row %d: %q, %v", id, seq, v, err))
						}
					}
					for seq := 0; seq < per; seq++ {
						start := time.Now()
						if _, err := c.Exec(ctx, "INSERT INTO kryw VALUES ($1, $2, $3)", id, seq, fmt.Sprint(seq)); err != nil {
							t.Errorf("insert: %v", err)
							return
						}
						writeTime.Add(int64(time.Since(start)))
						writes.Add(1)
						check(seq)                // at once
						check(rand.IntN(seq + 1)) // one written earlier
					}
				}()
			}
			wg.Wait()
			n := writes.Load()
			t.Logf("%s: %d writes (mean %v), %d reads, %.1f%% served by replicas, %d stale", name, n,
				time.Duration(writeTime.Load()/max(n, 1)).Round(time.Microsecond), reads.Load(),
				100*float64(replicaReads.Load())/float64(max(reads.Load(), 1)), stale.Load())
			if !eventual && stale.Load() > 0 {
				t.Fatalf("%d stale reads with read-your-writes; the first: %v", stale.Load(), firstStale.Load())
			}
			if replicaReads.Load() == 0 {
				t.Fatal("no read was served by a replica")
			}
		})
	}
}

// TestLaggingReplica (issue G): a replica held behind by
// recovery_min_apply_delay gets no reads while its lag is past the limit,
// and gets them again once it caught up.
func TestLaggingReplica(t *testing.T) {
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	ctx := context.Background()
	slow := cl.Replicas()[0]
	sc := connect(t, slow.ConnString("postgres", "postgres"))
	if _, err := sc.Exec(ctx, "ALTER SYSTEM SET recovery_min_apply_delay = '5s'"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	p, _ := startClusterProxy(t, cl, func(c *Config) { c.MaxReplicaLag = time.Second; c.Eventual = true })
	pc := connect(t, cl.Primary().ConnString("postgres", "postgres"))
	if _, err := pc.Exec(ctx, "CREATE TABLE IF NOT EXISTS klag (x int)"); err != nil {
		t.Fatal(err)
	}
	node := func(name string) *clusterNode {
		for _, n := range p.cluster.view.Load().nodes {
			if n.name == name {
				return n
			}
		}
		t.Fatalf("no node %s", name)
		return nil
	}
	// Writes every 100 ms keep the primary moving; the slow replica's lag
	// grows to about 5 s.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = pc.Exec(ctx, "INSERT INTO klag VALUES (1)")
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	eventually(t, 20*time.Second, "the slow replica's lag past 1 s", func() bool {
		h := node(slow.Name).health.Current()
		return h != nil && h.Lag.Time > 2*time.Second
	})
	c := connect(t, p.connString("postgres", "postgres"))
	before := node(slow.Name).reads.Load()
	for i := 0; i < 200; i++ {
		if _, err := c.Exec(ctx, "SELECT count(*) FROM klag"); err != nil {
			t.Fatal(err)
		}
	}
	h := node(slow.Name).health.Current()
	if got := node(slow.Name).reads.Load() - before; got != 0 {
		t.Fatalf("the lagging replica (%v behind, %d bytes) served %d reads", h.Lag.Time, h.Lag.Bytes, got)
	}
	t.Logf("the replica %v (%d bytes) behind served no read of 200", h.Lag.Time.Round(time.Millisecond), h.Lag.Bytes)
	// Caught up again, it gets reads again.
	if _, err := sc.Exec(ctx, "ALTER SYSTEM RESET recovery_min_apply_delay"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the replica to serve reads again", func() bool {
		for i := 0; i < 20; i++ {
			_, _ = c.Exec(ctx, "SELECT count(*) FROM klag")
		}
		return node(slow.Name).reads.Load() > before
	})
}

// TestReplicaKilled (issue G): kill -9 of a replica's postmaster during
// pgbench -S -c 20 through belay: no transaction fails (reads in flight on
// it are sent again elsewhere), its reads move to the other replica within
// a second, and once it is started again it gets reads again.
func TestReplicaKilled(t *testing.T) {
	pgbench := pgtest.RequireBinary(t, "pgbench")
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	p, _ := startClusterProxy(t, cl, func(c *Config) { c.PoolSize = 20 })
	env := clientEnv(p)
	if out, err := run(t, env, "", pgbench, "-i", "-s", "2", "-q", "postgres"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	victim := cl.Replicas()[0]
	node := func() *clusterNode {
		for _, n := range p.cluster.view.Load().nodes {
			if n.name == victim.Name {
				return n
			}
		}
		return nil
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := run(t, env, "", pgbench, "-S", "-c", "20", "-j", "2", "-T", "9", "-n", "postgres")
		done <- result{out, err}
	}()
	time.Sleep(2 * time.Second)
	if node().reads.Load() == 0 {
		t.Fatal("the replica served no read before the kill")
	}
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(time.Second)
	atOneSecond := node().reads.Load()
	time.Sleep(2 * time.Second)
	if later := node().reads.Load(); later != atOneSecond {
		t.Fatalf("the killed replica was given %d reads more than a second after the kill", later-atOneSecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	r := <-done
	if r.err != nil {
		t.Fatalf("pgbench: %v\n%s", r.err, r.out)
	}
	m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindStringSubmatch(r.out)
	n := regexp.MustCompile(`number of transactions actually processed: (\d+)`).FindStringSubmatch(r.out)
	if m == nil || m[1] != "0" || strings.Contains(r.out, "aborted") || n == nil {
		t.Fatalf("pgbench had failures across the kill:\n%s", r.out)
	}
	t.Logf("pgbench -S -c 20 across a replica's kill -9: %s transactions, 0 failed; %d reads sent again", n[1], node().retries.Load())
	// Back, it gets reads again.
	c := connect(t, p.connString("postgres", "postgres"))
	before := node().reads.Load()
	eventually(t, 30*time.Second, "the restarted replica to serve reads", func() bool {
		for i := 0; i < 20; i++ {
			_, _ = c.Exec(context.Background(), "SELECT 1 FROM pgbench_branches LIMIT 1")
		}
		return node().reads.Load() > before
	})
	t.Logf("killed at 0 s, started again at %v, serving reads again at %v", restarted.Sub(killed).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// TestLeaveAfterWrite: a client that writes and hangs up as soon as it has
// its answer may leave belay's WAL-position question (askLSN, pipelined
// behind the write) unanswered on its server; the server is drained of it
// before the next client gets it (with one server, the next client always
// does): that client's statement gets its own answer, never the position.
// The window is narrow (the position's answer must come in a read of its
// own): TestFailoverKill9's pgbench -i hit it under load, this test did not
// before the fix on a quiet machine; TestOwnRepliesOwed pins the count.
func TestLeaveAfterWrite(t *testing.T) {
	cl := pgtest.SharedCluster(t)
	ctx := context.Background()
	adm := connect(t, cl.Primary().ConnString("postgres", "postgres"))
	if _, err := adm.Exec(ctx, "DROP TABLE IF EXISTS kleave; CREATE TABLE kleave (x int)"); err != nil {
		t.Fatal(err)
	}
	p, _ := startClusterProxy(t, cl, func(c *Config) { c.PoolSize = 1 })
	cs := p.connString("postgres", "postgres")
	for i := range 30 {
		w, err := pgconn.Connect(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Exec(ctx, "INSERT INTO kleave VALUES (1)").ReadAll(); err != nil {
			t.Fatal(err)
		}
		w.Close(ctx) // at once: the position's answer is still on its way
		r, err := pgconn.Connect(ctx, cs)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Exec(ctx, "CREATE TABLE IF NOT EXISTS kleave (x int)").ReadAll()
		r.Close(ctx)
		if err != nil || len(res) != 1 || res[0].Err != nil || res[0].CommandTag.String() != "CREATE TABLE" || len(res[0].Rows) != 0 {
			t.Fatalf("round %d: the next client's DDL got %+v, %v", i, res, err)
		}
	}
}

// TestReplicaNotInRecovery (issue H): a node the topology names a replica
// that is no standby (promoted behind belay's back, or an old primary back
// on its old timeline before it is rewound) has writes the primary lacks
// and lacks the primary's: it serves no read, and the reads go elsewhere
// without an error.
func TestReplicaNotInRecovery(t *testing.T) {
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 1})
	ctx := context.Background()
	p, _ := startClusterProxy(t, cl, func(c *Config) { c.Eventual = true })
	rep := cl.Replicas()[0]
	var node *clusterNode
	for _, n := range p.cluster.view.Load().nodes {
		if n.name == rep.Name {
			node = n
		}
	}
	c := connect(t, p.connString("postgres", "postgres"))
	reads := func() int64 {
		t.Helper()
		before := node.reads.Load()
		for i := 0; i < 50; i++ {
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		return node.reads.Load() - before
	}
	if n := reads(); n == 0 {
		t.Fatal("the standby served none of 50 reads before its promotion")
	}
	rc := connect(t, rep.ConnString("postgres", "postgres"))
	if _, err := rc.Exec(ctx, "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the health check to see it out of recovery", func() bool {
		h := node.health.Current()
		return h != nil && h.Up && !h.InRecovery
	})
	if n := reads(); n != 0 {
		t.Fatalf("the replica out of recovery served %d of 50 reads", n)
	}
}
