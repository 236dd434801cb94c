package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
)

// TestShardedBankGatewayKill is issue J's must-show: H's bank workload
// spread over two shards (accounts and ids sharded by id, so that most
// transfers are transactions across shards, committed in two phases)
// through a `belay gateway` in front of a `belay pooler` beside each
// shard's node, with `belay orch` resolving what a dead gateway leaves
// prepared. The gateway is killed with SIGKILL three times in the middle
// of the transfers and started again on its port. Afterwards no
// acknowledged transfer is lost, none that failed is there, the balances
// on the two shards sum to the total, and no transaction is left prepared
// on either shard.
func TestShardedBankGatewayKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, two PostgreSQL and five belay processes")
	}
	bin := buildBelay(t)
	prepared := pginstance.Options{Settings: map[string]string{"max_prepared_transactions": "20"}}
	nodes := []*pginstance.Instance{pgtest.New(t, prepared), pgtest.New(t, prepared)}
	etcd := etcdtest.New(t)
	st, err := ha.NewStore(etcdtest.Client(t, etcd), "xbank")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := bankcheck.Options{Clients: 4, Accounts: 10, Initial: 100, OpTimeout: 5 * time.Second, Sharded: true}
	direct := make([]*pgx.Conn, len(nodes))
	for k, pg := range nodes {
		name := fmt.Sprintf("n%d", k)
		if _, err := st.PutNode(ctx, name, ha.NodeRecord{Shard: ha.ShardName(k), Addr: pg.Addr(), State: ha.StateUp}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.CreateShard(ctx, ha.ShardName(k), ha.ShardRecord{Term: 1, Primary: name}); err != nil {
			t.Fatal(err)
		}
		if direct[k], err = pgx.Connect(ctx, pg.ConnString("postgres", "postgres")); err != nil {
			t.Fatal(err)
		}
		defer direct[k].Close(context.Background())
		if _, err := direct[k].Exec(ctx, `CREATE TABLE bank_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
			CREATE TABLE bank_ids (id bigint PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= o.Accounts; id++ {
		if _, err := direct[shard.Int(int64(id)).Shard(2)].Exec(ctx, "INSERT INTO bank_accounts VALUES ($1, $2)", id, o.Initial); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "2"}, {"table", "bank_accounts", "id", "integer"}, {"table", "bank_ids", "id", "bigint"}} {
		if err := shardCommand(ctx, st, args, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	endpoint := st.Client().Endpoints()[0]
	for k, pg := range nodes {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		startProc(t, bin, "pooler", "--listen", addr, "--server", pg.Addr(), "--node", fmt.Sprintf("n%d", k),
			"--etcd", endpoint, "--cluster", "xbank", "--auth-type", "trust", "--pool-size", "10")
		waitListening(t, addr)
	}
	startProc(t, bin, "orch", "--etcd", endpoint, "--cluster", "xbank", "--id", "orch-1", "--require-poolers", "--resolve-grace", "3s")
	port := strconv.Itoa(freePort(t))
	gw := "127.0.0.1:" + port
	gateway := func() func() {
		_, kill := startProc(t, bin, "gateway", "--listen", gw, "--etcd", endpoint, "--cluster", "xbank",
			"--auth-type", "trust", "--pool-size", "10")
		waitListening(t, gw)
		return kill
	}
	kill := gateway()
	o.ConnString = "host=127.0.0.1 port=" + port + " user=postgres dbname=postgres sslmode=disable connect_timeout=5"
	probe, err := pgx.Connect(ctx, o.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway to route by key", func() bool {
		var b int64
		return probe.QueryRow(ctx, "SELECT balance FROM bank_accounts WHERE id = $1", 1).Scan(&b) == nil && b == o.Initial
	})
	probe.Close(ctx)

	runCtx, stop := context.WithCancel(ctx)
	r := &bankcheck.Recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		bankcheck.RunInto(runCtx, o, r)
	}()
	start := time.Now()
	inDoubt := 0 // transactions found prepared on a shard just after a kill
	var firstKill time.Time
	for round := range 3 {
		from := time.Now()
		for deadline := time.Now().Add(20 * time.Second); r.AckedBetween(from, time.Now()) < 30; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop()
				<-done
				res, err := r.CheckShards(ctx, direct, start, o)
				t.Fatalf("round %d: fewer than 30 transfers acknowledged in 20 s: %v %v %q", round, res, err, res.AfterSamples)
			}
		}
		if round == 0 {
			firstKill = time.Now()
		}
		kill()
		for _, d := range direct {
			var n int
			if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&n); err == nil {
				inDoubt += n
			}
		}
		kill = gateway()
	}
	from := time.Now()
	eventually(t, "30 transfers acknowledged after the last restart", func() bool { return r.AckedBetween(from, time.Now()) >= 30 })
	stop()
	<-done
	eventually(t, "the orchestrator to resolve what the killed gateways left prepared", func() bool {
		for _, d := range direct {
			var n int
			if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&n); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
	res, err := r.CheckShards(ctx, direct, firstKill, o)
	if err != nil {
		t.Fatal(err)
	}
	var crossed int
	for _, d := range direct {
		var n int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM bank_ids").Scan(&n); err != nil {
			t.Fatal(err)
		}
		crossed += n
	}
	t.Logf("%v over %v; %d ids committed over 2 shards; transactions found prepared just after the 3 kills: %d",
		res, time.Since(start).Round(time.Millisecond), crossed, inDoubt)
	if !res.OK() || res.FinalSum != int64(o.Accounts)*o.Initial {
		t.Fatalf("the bank over shards broke its promises: %v", res)
	}
}
