package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestPoolerNeverSent: a gateway (PoolerServers) in front of a belay pooler
// whose Postgres has stopped. The client's BEGIN goes to the gateway's idle
// connection to the pooler; the pooler cannot connect to its node and says
// so (FATAL 08001). The BEGIN never reached Postgres, so the gateway takes
// the primary as lost and holds the BEGIN as a failover's: once the node is
// back and a newer term names it, the BEGIN runs and the transaction
// commits. The client sees a pause, not 40001 (before, a FATAL 08006 from
// the pooler could not be told from a server lost under the statement).
func TestPoolerNeverSent(t *testing.T) {
	ctx := context.Background()
	dir := pgtest.TempDir(t)
	pg := pgtest.New(t, pginstance.Options{Dir: dir})
	pooler := startProxy(t, pg, nil)
	src := &staticTopology{}
	nodes := map[string]ha.NodeRecord{"p": {Shard: "0", Addr: pooler.Addr()}}
	publish := func(term uint64) {
		src.t.Store(ha.Build("t", 0, map[string]ha.ShardRecord{"0": {Term: term, Primary: "p"}}, nodes))
	}
	publish(1)
	// The gateway's health checks see the node up until the BEGIN was
	// lost, so that only the pooler's answer tells the gateway the node is
	// gone; then they check it through the pooler, as belay gateway does.
	up, real := pgtest.Shared(t), atomic.Bool{}
	const fakeHealth = "nsent-health"
	gw := startProxy(t, pg, func(c *Config) {
		c.Cluster, c.PoolerServers, c.CloseUnusedServers, c.FailoverHold = src, true, true, 30*time.Second
		c.HealthDial = func(ctx context.Context, addr string) (*pgx.Conn, error) {
			if real.Load() {
				return healthDial(ctx, addr)
			}
			return pgx.Connect(ctx, up.ConnString("postgres", "postgres")+" application_name="+fakeHealth)
		}
	})
	unsent := func() int64 { return gw.cluster.view.Load().nodes[0].unsent.Load() }
	c := connectMode(t, gw.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	if _, err := c.Exec(ctx, "CREATE TABLE nsent (v int)"); err != nil {
		t.Fatal(err)
	}

	port := pg.Port
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the pooler's servers to close", func() bool { return pooler.pools.NodeStats().Open == 0 })

	type result struct {
		tx  pgx.Tx
		err error
	}
	done := make(chan result, 1)
	go func() {
		tx, err := c.Begin(ctx)
		done <- result{tx, err}
	}()
	eventually(t, 10*time.Second, "the gateway to route the BEGIN again after its pooler's 08001", func() bool { return unsent() > 0 })
	real.Store(true) // the checks' connection to up is ended: they dial the pooler
	if _, err := connect(t, up.ConnString("postgres", "postgres")).Exec(ctx,
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", fakeHealth); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("BEGIN with the node down was answered (err %v), not held", r.err)
	case <-time.After(2 * time.Second):
	}
	t.Logf("the BEGIN was routed again %d time(s) while the node was down", unsent())

	pg2 := pgtest.New(t, pginstance.Options{Dir: dir, Port: port})
	publish(2)
	gw.TopologyChanged()
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the held BEGIN did not run once a primary was published")
	}
	if r.err != nil {
		t.Fatalf("held BEGIN: %v (%s)", r.err, sqlstateOf(r.err))
	}
	if _, err := r.tx.Exec(ctx, "INSERT INTO nsent VALUES (1)"); err != nil {
		t.Fatalf("INSERT after the held BEGIN: %v", err)
	}
	if err := r.tx.Commit(ctx); err != nil {
		t.Fatalf("COMMIT after the held BEGIN: %v", err)
	}
	direct := connect(t, pg2.ConnString("postgres", "postgres"))
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM nsent").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows committed through the held transaction: %d, %v; want 1", n, err)
	}
}
