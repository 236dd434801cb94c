package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	registerShards(t, ctx, st, nodes)
	for k, pg := range nodes {
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
	eventually(t, "the orchestrator to resolve what the killed gateways left prepared", func() bool { return nonePrepared(ctx, direct) })
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

// TestUpShardPrimaryKill is issue J's other must-show: under `belay up
// --shards 2 --replicas 1`, shard 1's primary is killed with SIGKILL while
// clients update counters by key on each shard and H's bank runs across
// both. Shard 0's clients see no error at all; on shard 1 no acknowledged
// increment is lost, none is applied that its client was told failed, and
// the only errors are H's (08007 for an outcome not known, 40001);
// the bank loses nothing, has no phantom, its balances sum to the total,
// and nothing is left prepared once shard 1 has its new primary.
func TestUpShardPrimaryKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sharded cluster of four PostgreSQL")
	}
	bin := buildBelay(t)
	dir := upDir(t)
	u := startUp(t, bin, dir, "--shards", "2", "--replicas", "1")
	defer u.stop(t, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"table", "bank_accounts", "id", "integer"}, {"table", "bank_ids", "id", "bigint"}, {"table", "kv", "k", "bigint"}} {
		shardCLI(t, bin, u.etcd, args...)
	}
	c, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	o := bankcheck.Options{ConnString: u.url, Clients: 2, Accounts: 10, Initial: 100, OpTimeout: 10 * time.Second, Sharded: true}
	createSharded(t, ctx, c, "CREATE TABLE IF NOT EXISTS kv (k int8 PRIMARY KEY, n int8 NOT NULL)", "kv")
	if _, err := c.Exec(ctx, "CREATE TABLE bank_accounts (id int PRIMARY KEY, balance bigint NOT NULL)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE bank_ids (id bigint PRIMARY KEY)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= o.Accounts; id++ {
		if _, err := c.Exec(ctx, "INSERT INTO bank_accounts (id, balance) VALUES ($1, $2)", id, o.Initial); err != nil {
			t.Fatal(err)
		}
	}
	var keys [2][]int64 // counters on each shard
	for k := int64(1); len(keys[0]) < 4 || len(keys[1]) < 4; k++ {
		if i := shard.Int(k).Shard(2); len(keys[i]) < 4 {
			keys[i] = append(keys[i], k)
			if _, err := c.Exec(ctx, "INSERT INTO kv (k, n) VALUES ($1, 0)", k); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Counters: each worker increments its own key; what it was told, by key.
	type told struct {
		acked, unsure int64
		errs          []string
	}
	var mu sync.Mutex
	counts := map[int64]*told{}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, ks := range keys {
		for _, k := range ks {
			counts[k] = &told{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var conn *pgx.Conn
				defer func() {
					if conn != nil {
						conn.Close(context.Background())
					}
				}()
				for runCtx.Err() == nil {
					if conn == nil {
						var cerr error
						if conn, cerr = pgx.Connect(runCtx, u.url); cerr != nil {
							conn = nil
							if runCtx.Err() != nil {
								return
							}
							mu.Lock()
							counts[k].errs = append(counts[k].errs, "connect: "+cerr.Error())
							mu.Unlock()
							time.Sleep(50 * time.Millisecond)
							continue
						}
					}
					octx, ocancel := context.WithTimeout(runCtx, 15*time.Second)
					_, err := conn.Exec(octx, "UPDATE kv SET n = n + 1 WHERE k = $1", k)
					ocancel()
					if runCtx.Err() != nil && err != nil {
						mu.Lock()
						counts[k].unsure++ // cut short by the run's end
						mu.Unlock()
						return
					}
					mu.Lock()
					switch {
					case err == nil:
						counts[k].acked++
					default:
						counts[k].errs = append(counts[k].errs, err.Error())
						var pe *pgconn.PgError
						if !errors.As(err, &pe) || strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") {
							counts[k].unsure++ // the outcome is not known
						}
						conn.Close(context.Background())
						conn = nil
					}
					mu.Unlock()
				}
			}()
		}
	}
	r := &bankcheck.Recorder{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bankcheck.RunInto(runCtx, o, r)
	}()
	acked := func(ks []int64) (n int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range ks {
			n += counts[k].acked
		}
		return n
	}
	eventually(t, "increments acknowledged on both shards", func() bool { return acked(keys[0]) > 50 && acked(keys[1]) > 50 })

	before := acked(keys[1])
	killNode(t, dir, "s1pg0")
	killed := time.Now()
	deadline := killed.Add(90 * time.Second)
	for acked(keys[1]) < before+50 {
		if time.Now().After(deadline) {
			t.Fatalf("no 50 increments acknowledged on shard 1 within 90 s of its primary's kill")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resumed := time.Since(killed)
	time.Sleep(time.Second)
	stop()
	wg.Wait()

	// The shards' primaries now, read directly.
	primaries := make([]*pgx.Conn, 2)
	eventually(t, "a primary for each shard", func() bool {
		for i := range primaries {
			if primaries[i] != nil {
				continue
			}
			for _, n := range u.nodes {
				if !strings.HasPrefix(n.name, fmt.Sprintf("s%dpg", i)) {
					continue
				}
				d, err := pgx.Connect(ctx, "postgres://postgres@"+n.addr+"/postgres?connect_timeout=2")
				if err != nil {
					continue
				}
				var standby bool
				if err := d.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err == nil && !standby {
					primaries[i] = d
					break
				}
				d.Close(ctx)
			}
		}
		return primaries[0] != nil && primaries[1] != nil
	})
	for _, d := range primaries {
		defer d.Close(context.Background())
	}
	eventually(t, "nothing left prepared on either shard", func() bool { return nonePrepared(ctx, primaries) })
	acked0, acked1 := acked(keys[0]), acked(keys[1])
	mu.Lock()
	defer mu.Unlock()
	var shard1Errs []string
	for i, ks := range keys {
		for _, k := range ks {
			tk := counts[k]
			if i == 0 && len(tk.errs) > 0 {
				t.Errorf("shard 0's key %d saw errors while shard 1 failed over: %q", k, tk.errs)
			}
			if i == 1 {
				shard1Errs = append(shard1Errs, tk.errs...)
				for _, e := range tk.errs {
					// H's answers: an outcome not known, or work lost.
					if !strings.Contains(e, "(SQLSTATE 08007)") && !strings.Contains(e, "(SQLSTATE 40001)") {
						t.Errorf("shard 1's key %d: %s", k, e)
					}
				}
			}
			var n int64
			if err := primaries[i].QueryRow(ctx, "SELECT n FROM kv WHERE k = $1", k).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n < tk.acked || n > tk.acked+tk.unsure {
				t.Errorf("shard %d's key %d: %d increments applied, %d acknowledged and %d of unknown outcome", i, k, n, tk.acked, tk.unsure)
			}
		}
	}
	res, err := r.CheckShards(ctx, primaries, killed, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("shard 1's primary killed: increments acknowledged on shard 1 again %v after; shard 0: %d increments, no error; shard 1: %d increments, errors %q; bank: %v",
		resumed.Round(time.Millisecond), acked0, acked1, shard1Errs, res)
	if !res.OK() || res.FinalSum != int64(o.Accounts)*o.Initial {
		t.Fatalf("the bank over shards broke its promises: %v", res)
	}
}

// TestShardedJDBC: the PostgreSQL JDBC driver through belay up --shards 2:
// transfers between keys of two shards committed by Connection.commit
// (BEGIN sent with the first statement, COMMIT in the extended protocol,
// the UPDATE a named server statement past prepareThreshold) and one
// rolled back, then reads of every shard through a PreparedStatement: the
// program prints what PostgreSQL would answer, and each shard holds its
// key's balance.
func TestShardedJDBC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sharded cluster and a JVM")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java is not on PATH (Debian package default-jdk-headless)")
	}
	const jar = "/usr/share/java/postgresql.jar"
	if _, err := os.Stat(jar); err != nil {
		t.Skip(jar + " is missing (Debian package libpostgresql-jdbc-java)")
	}
	bin := buildBelay(t)
	dir := upDir(t)
	u := startUp(t, bin, dir, "--shards", "2", "--replicas", "0")
	defer u.stop(t, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	shardCLI(t, bin, u.etcd, "table", "kx", "aid", "bigint")
	c, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	createSharded(t, ctx, c, "CREATE TABLE IF NOT EXISTS kx (aid int8 PRIMARY KEY, v int8 NOT NULL)", "kx")
	var keys [2]int64
	for k := int64(1); keys[0] == 0 || keys[1] == 0; k++ {
		if i := shard.Int(k).Shard(2); keys[i] == 0 {
			keys[i] = k
		}
	}
	if _, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO kx (aid, v) VALUES (%d, 100), (%d, 100)", keys[0], keys[1]), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(u.url)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("jdbc:postgresql://%s:%d/postgres?user=postgres&sslmode=disable&prepareThreshold=5&connectTimeout=10", cfg.Host, cfg.Port)
	out, err := exec.CommandContext(ctx, java, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", jar,
		filepath.Join("testdata", "ShardedTx.java"), url, strconv.FormatInt(keys[0], 10), strconv.FormatInt(keys[1], 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	want := fmt.Sprintf("every shard: 2 200 90 110\nkey %d: 90\nkey %d: 110\n", keys[0], keys[1])
	if string(out) != want {
		t.Fatalf("JDBC through belay over 2 shards printed:\n%s\nwant:\n%s", out, want)
	}
	for i, n := range u.nodes {
		d, err := pgx.Connect(ctx, "postgres://postgres@"+n.addr+"/postgres")
		if err != nil {
			t.Fatal(err)
		}
		var v int64
		var prepared int
		err = d.QueryRow(ctx, "SELECT (SELECT v FROM kx WHERE aid = $1), (SELECT count(*) FROM pg_prepared_xacts)", keys[i]).Scan(&v, &prepared)
		d.Close(ctx)
		if err != nil || v != []int64{90, 110}[i] || prepared != 0 {
			t.Fatalf("%s: key %d holds %d (%d left prepared), %v", n.name, keys[i], v, prepared, err)
		}
	}
}

// registerShards puts node k of nodes in st as "nK", the primary of shard
// K at term 1.
func registerShards(t *testing.T, ctx context.Context, st *ha.Store, nodes []*pginstance.Instance) {
	t.Helper()
	for k, pg := range nodes {
		name := fmt.Sprintf("n%d", k)
		if _, err := st.PutNode(ctx, name, ha.NodeRecord{Shard: ha.ShardName(k), Addr: pg.Addr(), State: ha.StateUp}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.CreateShard(ctx, ha.ShardName(k), ha.ShardRecord{Term: 1, Primary: name}); err != nil {
			t.Fatal(err)
		}
	}
}

// nonePrepared says no transaction is prepared on any of conns.
func nonePrepared(ctx context.Context, conns []*pgx.Conn) bool {
	for _, d := range conns {
		var n int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&n); err != nil || n != 0 {
			return false
		}
	}
	return true
}

// createSharded creates table (DDL runs on every shard whether or not the
// schema names the table) once the gateway follows a schema that has it:
// a read of a table the schema does not name is refused (0A000), so the
// read, not the DDL, says the schema has come.
func createSharded(t *testing.T, ctx context.Context, c *pgx.Conn, ddl, table string) {
	t.Helper()
	if _, err := c.Exec(ctx, ddl, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway to follow the schema", func() bool {
		_, err := c.Exec(ctx, "SELECT count(*) FROM "+table, pgx.QueryExecModeSimpleProtocol)
		return err == nil
	})
}
