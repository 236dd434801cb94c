package loop

import (
	"context"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestAbandonOldPrimary (issue H): a primary that answers nothing and
// resets nothing (frozen with SIGSTOP, as a partition leaves it to belay:
// TCP gives up only after minutes) while clients have work on it; the
// replica is promoted and published with the next term. The work in
// flight on the old primary is answered at once, never hangs: the COMMIT
// 08007, the statement inside a transaction 40001, the autocommit write
// 08007, the read sent again to the new primary and answered; and each
// connection goes on, on the new primary.
func TestAbandonOldPrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Postgres servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 1})
	pri, rep := cl.Primary(), cl.Replicas()[0]
	nodes := map[string]ha.NodeRecord{pri.Name: {Shard: "0", Addr: pri.Addr()}, rep.Name: {Shard: "0", Addr: rep.Addr()}}
	src := &staticTopology{}
	src.t.Store(ha.Build("t", 1, map[string]ha.ShardRecord{"0": {Term: 1, Primary: pri.Name}}, nodes))
	adm := connect(t, pri.ConnString("postgres", "postgres"))
	if _, err := adm.Exec(ctx, "CREATE TABLE ka (id serial PRIMARY KEY, who text)"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, pri.Instance(), func(c *Config) {
		c.Cluster, c.HealthDial, c.PoolSize, c.FailoverHold = src, healthDial, 8, 20*time.Second
	})
	eventually(t, 20*time.Second, "both nodes' health checks", func() bool {
		for _, n := range p.cluster.view.Load().nodes {
			if h := n.health.Current(); h == nil || !h.Up {
				return false
			}
		}
		return true
	})
	cs := p.connString("postgres", "postgres")

	// Two transactions open on the primary before it freezes: one will
	// send its COMMIT, the other a statement, to the frozen server.
	commitc := connectMode(t, cs, pgx.QueryExecModeSimpleProtocol)
	txc := connectMode(t, cs, pgx.QueryExecModeCacheStatement)
	var txs []pgx.Tx
	for i, c := range []*pgx.Conn{commitc, txc} {
		tx, err := c.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO ka (who) VALUES ($1)", []string{"commit", "tx"}[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	// An autocommit write and a read (routed to the primary by its hint)
	// that are running on the primary when it freezes.
	writec := connectMode(t, cs, pgx.QueryExecModeSimpleProtocol)
	readc := connectMode(t, cs, pgx.QueryExecModeCacheStatement)
	type outcome struct {
		what string
		err  error
		at   time.Time
	}
	out := make(chan outcome, 4)
	go func() {
		_, err := writec.Exec(ctx, "INSERT INTO ka (who) SELECT 'write' FROM pg_sleep(2)")
		out <- outcome{"write", err, time.Now()}
	}()
	go func() {
		var n int
		err := readc.QueryRow(ctx, "/* belay.route=primary */ SELECT 1 FROM pg_sleep($1::float8)", 2).Scan(&n)
		out <- outcome{"read", err, time.Now()}
	}()
	eventually(t, 10*time.Second, "the write and the read sleeping on the primary", func() bool {
		var n int
		_ = adm.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").Scan(&n)
		return n == 2
	})
	adm.Close(ctx)

	// Freeze the primary, its postmaster and every process it forked.
	thaw, err := pri.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(thaw) // before the cluster stops
	go func() {
		err := txs[0].Commit(ctx)
		out <- outcome{"commit", err, time.Now()}
	}()
	go func() {
		_, err := txs[1].Exec(ctx, "INSERT INTO ka (who) VALUES ($1)", "tx-2")
		out <- outcome{"tx", err, time.Now()}
	}()
	// Nothing comes back from a frozen server: the four wait.
	select {
	case o := <-out:
		t.Fatalf("%s answered while the primary is frozen and no new one is published: %v", o.what, o.err)
	case <-time.After(2500 * time.Millisecond):
	}

	// The orchestrator's work: the replica promoted, published at term 2.
	rc, err := pgx.Connect(ctx, rep.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Exec(ctx, "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	rc.Close(ctx)
	src.t.Store(ha.Build("t", 2, map[string]ha.ShardRecord{"0": {Term: 2, Primary: rep.Name}}, nodes))
	published := time.Now()

	want := map[string]string{"commit": "08007", "tx": "40001", "write": "08007", "read": ""}
	for range 4 {
		select {
		case o := <-out:
			took := o.at.Sub(published)
			t.Logf("%s: %v, %v after the publish", o.what, o.err, took.Round(time.Millisecond))
			if code := sqlstateOf(o.err); code != want[o.what] {
				t.Errorf("%s in flight on the frozen primary got %v, want SQLSTATE %q", o.what, o.err, want[o.what])
			}
			limit := 3 * time.Second
			if o.what == "read" {
				limit += 2 * time.Second // it runs again, pg_sleep(2) included
			}
			if took > limit {
				t.Errorf("%s answered %v after the new primary was published", o.what, took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("work in flight on the old primary still unanswered 10 s after a new primary was published")
		}
	}
	// The lost transaction ends with ROLLBACK, played by belay; every
	// connection goes on, on the new primary.
	if err := txs[1].Rollback(ctx); err != nil {
		t.Errorf("ROLLBACK of the lost transaction: %v", err)
	}
	for name, c := range map[string]*pgx.Conn{"commit": commitc, "tx": txc, "write": writec, "read": readc} {
		var standby bool
		if err := c.QueryRow(ctx, "/* belay.route=primary */ SELECT pg_is_in_recovery()").Scan(&standby); err != nil || standby {
			t.Errorf("client %s after the failover: %v, standby %v", name, err, standby)
		}
	}
}
