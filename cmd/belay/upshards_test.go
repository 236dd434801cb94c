package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
)

// TestDirShards: the number of shards a directory's PostgreSQL data was
// made for, from its node directories, and the refusal of another.
func TestDirShards(t *testing.T) {
	mk := func(root string, nodes ...string) {
		for _, n := range nodes {
			if err := os.MkdirAll(filepath.Join(root, n, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, n, "data", "PG_VERSION"), []byte("15\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		nodes []string
		want  int
	}{
		{nil, 0},
		{[]string{"pg"}, 1},
		{[]string{"pg0", "pg1", "pg2"}, 1},
		{[]string{"s0pg0", "s1pg0", "s1pg1"}, 2},
		{[]string{"s0pg0", "s3pg0"}, 4},
		{[]string{"etcd", "log", "sock", "spg0", "s0pgx"}, 0},
	} {
		root := t.TempDir()
		mk(root, tc.nodes...)
		_ = os.MkdirAll(filepath.Join(root, "s9pg0"), 0o755) // no data: not counted
		if got := dirShards(root); got != tc.want {
			t.Errorf("nodes %v: %d shards, want %d", tc.nodes, got, tc.want)
		}
	}
	root := t.TempDir()
	mk(root, "s0pg0", "s1pg0")
	if err := checkDirShards(root, 2); err != nil {
		t.Errorf("the same number of shards refused: %v", err)
	}
	for _, n := range []int{1, 3} {
		if err := checkDirShards(root, n); err == nil || !strings.Contains(err.Error(), "Start it with --shards 2") {
			t.Errorf("--shards %d over a directory of 2 shards: %v", n, err)
		}
	}
	if err := checkDirShards(t.TempDir(), 4); err != nil {
		t.Errorf("a new directory: %v", err)
	}
	if p := nodePrefix(1, 0); p != "pg" {
		t.Errorf("unsharded prefix %q", p)
	}
	if p := nodePrefix(4, 3); p != "s3pg" {
		t.Errorf("shard 3's prefix %q", p)
	}
}

// TestClaimShards: belay up makes a new cluster sharded over --shards in
// etcd, starts it again with the same number, and refuses another, in
// either direction (a cluster registered without a sharding schema has
// one shard).
func TestClaimShards(t *testing.T) {
	srv := etcdtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	claim := func(name string, n int) error {
		c := &cluster{info: clusterInfo{Name: name, Endpoints: []string{srv.Endpoint()}, Shards: n}}
		return c.claimShards(ctx)
	}
	if err := claim("two", 2); err != nil {
		t.Fatal(err)
	}
	st, err := ha.NewStore(etcdtest.Client(t, srv), "two")
	if err != nil {
		t.Fatal(err)
	}
	if sc, _, err := st.Sharding(ctx); err != nil || sc == nil || sc.Shards() != 2 {
		t.Fatalf("the schema after --shards 2: %v, %v", sc, err)
	}
	if err := claim("two", 2); err != nil {
		t.Errorf("again with --shards 2: %v", err)
	}
	for _, n := range []int{1, 4} {
		if err := claim("two", n); err == nil || !strings.Contains(err.Error(), "Start it with --shards 2") {
			t.Errorf("--shards %d over a cluster of 2: %v", n, err)
		}
	}
	// An unsharded cluster: a shard record, no schema.
	plain, err := ha.NewStore(etcdtest.Client(t, srv), "plain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.PutNode(ctx, "pg0", ha.NodeRecord{Shard: "0", Addr: "127.0.0.1:5432", State: ha.StateUp}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := plain.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: "pg0"}); err != nil {
		t.Fatal(err)
	}
	if err := claim("plain", 1); err != nil {
		t.Errorf("an unsharded cluster started unsharded: %v", err)
	}
	if err := claim("plain", 2); err == nil || !strings.Contains(err.Error(), "is not sharded") {
		t.Errorf("--shards 2 over an unsharded cluster: %v", err)
	}
	if sc, _, _ := plain.Sharding(ctx); sc != nil {
		t.Errorf("the refused --shards 2 left a schema: %v", sc)
	}
}

// TestUpShards: `belay up --shards 2 --replicas 0` starts two shards of a
// primary each (s0pg0, s1pg0) with max_prepared_transactions set, sharded
// over them in etcd; a table named with belay shard and created through
// the gateway (DDL) is on both shards; rows written by key through the
// gateway land on the shard PostgreSQL's hash partitioning names
// (satisfies_hash_partition on the node holding each row, and shard.Shard);
// a count of every shard through the gateway is the number of rows
// written. Started again in the same directory, it refuses --shards 3 and
// starts the same two shards with their data with --shards 2.
func TestUpShards(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a sharded cluster")
	}
	bin := buildBelay(t)
	dir := upDir(t)
	u := startUp(t, bin, dir, "--shards", "2", "--replicas", "0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(u.nodes) != 2 || u.nodes[0].name != "s0pg0" || u.nodes[1].name != "s1pg0" ||
		u.nodes[0].role != "primary" || u.nodes[1].role != "primary" {
		t.Fatalf("belay up --shards 2's nodes: %v\n%s", u.nodes, strings.Join(u.lines, "\n"))
	}
	cli, err := etcdlocal.NewClient([]string{u.etcd})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := ha.NewStore(cli, "local")
	if err != nil {
		t.Fatal(err)
	}
	top, err := st.Load(ctx)
	if err != nil || top.Sharding == nil || top.Sharding.Shards() != 2 || len(top.Shards) != 2 ||
		top.Shard("0").Primary != "s0pg0" || top.Shard("1").Primary != "s1pg0" {
		t.Fatalf("the topology in etcd: %+v, %v", top, err)
	}
	shardCLI(t, bin, u.etcd, "table", "accounts", "aid", "bigint")
	c, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE TABLE accounts (aid int8 PRIMARY KEY, abalance int NOT NULL)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("CREATE TABLE through the gateway: %v", err)
	}
	// Each pooler reaches its node over the node's Unix socket.
	var overUnix bool
	if err := c.QueryRow(ctx, "SELECT client_addr IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&overUnix); err != nil || !overUnix {
		t.Fatalf("the pooler's connection to its node over its Unix socket: %v, %v", overUnix, err)
	}
	nodes := make([]*pgx.Conn, 2)
	for k, n := range u.nodes {
		if nodes[k], err = pgx.Connect(ctx, "postgres://postgres@"+n.addr+"/postgres"); err != nil {
			t.Fatal(err)
		}
		defer nodes[k].Close(ctx)
		var made int
		var prepared string
		if err := nodes[k].QueryRow(ctx, "SELECT count(*), current_setting('max_prepared_transactions') FROM pg_tables WHERE tablename = 'accounts'").Scan(&made, &prepared); err != nil ||
			made != 1 || prepared != upPreparedTransactions {
			t.Fatalf("%s: accounts %d, max_prepared_transactions %s, %v", n.name, made, prepared, err)
		}
		// PostgreSQL's own placement: a table PARTITION BY HASH (aid) of 2.
		if _, err := nodes[k].Exec(ctx, "CREATE TABLE placement (aid int8) PARTITION BY HASH (aid)"); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway follows the schema's change through etcd.
	cfg, err := pgx.ParseConfig(u.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "belay"
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(ctx)
	eventually(t, "the gateway to see public.accounts sharded", func() bool {
		var table, kind string
		err := con.QueryRow(ctx, "SHOW SHARDED_TABLES", pgx.QueryExecModeSimpleProtocol).Scan(&table, &kind, nil, nil, nil)
		return err == nil && table == "public.accounts" && kind == "sharded"
	})
	const rows = 200
	var want int64
	for aid := int64(1); aid <= rows; aid++ {
		key := aid * 7919
		if _, err := c.Exec(ctx, "INSERT INTO accounts (aid, abalance) VALUES ($1, $2)", key, aid); err != nil {
			t.Fatalf("INSERT of aid %d through the gateway: %v", key, err)
		}
		want += aid
	}
	held := make([]int, 2)
	for k, n := range u.nodes {
		var count, misplaced, wrongHash int
		err := nodes[k].QueryRow(ctx, `SELECT count(*),
			count(*) FILTER (WHERE NOT satisfies_hash_partition('placement'::regclass, 2, $1, aid)),
			count(*) FILTER (WHERE NOT (aid = ANY ($2::int8[]))) FROM accounts`, k, keysOfShard(rows, 2, k)).Scan(&count, &misplaced, &wrongHash)
		if err != nil {
			t.Fatal(err)
		}
		if misplaced != 0 || wrongHash != 0 || count == 0 {
			t.Fatalf("%s (shard %d) holds %d rows: %d outside PostgreSQL's hash partition %d of 2, %d of another shard by shard.Shard",
				n.name, k, count, misplaced, k, wrongHash)
		}
		held[k] = count
	}
	if held[0]+held[1] != rows {
		t.Fatalf("the shards hold %v rows, %d written", held, rows)
	}
	var n int
	var sum int64
	if err := c.QueryRow(ctx, "SELECT count(*), sum(abalance) FROM accounts", pgx.QueryExecModeSimpleProtocol).Scan(&n, &sum); err != nil || n != rows || sum != want {
		t.Fatalf("count(*), sum(abalance) of every shard through the gateway: %d, %d, %v; want %d, %d", n, sum, err, rows, want)
	}
	t.Logf("%d rows through the gateway: %d on s0pg0, %d on s1pg0, each where PARTITION BY HASH puts it; count(*) through the gateway %d", rows, held[0], held[1], n)

	// pgbench -i through the gateway: DROP and CREATE TABLE on every
	// shard, TRUNCATE and COPY in one transaction (the accounts split by
	// aid, the branches and tellers copied to each), VACUUM on each, the
	// primary keys.
	shardCLI(t, bin, u.etcd, "table", "pgbench_accounts", "aid", "integer")
	shardCLI(t, bin, u.etcd, "table", "pgbench_history", "aid", "integer")
	shardCLI(t, bin, u.etcd, "reference", "pgbench_branches")
	shardCLI(t, bin, u.etcd, "reference", "pgbench_tellers")
	eventually(t, "the gateway to see pgbench's tables in the schema", func() bool {
		rows, err := con.Query(ctx, "SHOW SHARDED_TABLES", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return false
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n == 5
	})
	if out, err := exec.CommandContext(ctx, pgtest.RequireBinary(t, "pgbench"), "-i", "-s", "2", u.url).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i through the gateway: %v\n%s", err, out)
	}
	accounts := 0
	for k, n := range u.nodes {
		var count, misplaced, branches, tellers int
		if _, err := nodes[k].Exec(ctx, "CREATE TEMP TABLE placement4 (aid int4) PARTITION BY HASH (aid)"); err != nil {
			t.Fatal(err)
		}
		err := nodes[k].QueryRow(ctx, `SELECT (SELECT count(*) FROM pgbench_accounts),
			(SELECT count(*) FROM pgbench_accounts WHERE NOT satisfies_hash_partition('placement4'::regclass, 2, $1, aid)),
			(SELECT count(*) FROM pgbench_branches), (SELECT count(*) FROM pgbench_tellers)`, k).Scan(&count, &misplaced, &branches, &tellers)
		if err != nil {
			t.Fatal(err)
		}
		if misplaced != 0 || count == 0 || branches != 2 || tellers != 20 {
			t.Fatalf("after pgbench -i, %s holds %d accounts (%d outside its hash partition), %d branches, %d tellers", n.name, count, misplaced, branches, tellers)
		}
		accounts += count
	}
	if accounts != 200000 {
		t.Fatalf("after pgbench -i -s 2, %d accounts over the shards", accounts)
	}
	c.Close(ctx)
	con.Close(ctx)
	for _, nc := range nodes {
		nc.Close(ctx)
	}
	u.stop(t, os.Interrupt)
	noProcessesLeft(t, dir)

	// Another number of shards over the same directory is refused.
	out, err := exec.Command(bin, "up", "--dir", dir, "--port", strconv.Itoa(freePort(t)), "--shards", "3", "--replicas", "0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "Start it with --shards 2") {
		t.Errorf("belay up --shards 3 over a directory of 2 shards: %v\n%s", err, out)
	}
	// The same number starts the same shards, with their data.
	u = startUp(t, bin, dir, "--shards", "2", "--replicas", "0")
	c, err = pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	eventually(t, "the rows of both shards after a restart", func() bool {
		return c.QueryRow(ctx, "SELECT count(*) FROM accounts", pgx.QueryExecModeSimpleProtocol).Scan(&n) == nil && n == rows
	})
	c.Close(ctx)
	u.stop(t, os.Interrupt)
	noProcessesLeft(t, dir)
}

// keysOfShard are the keys TestUpShards writes (aid*7919, aid 1..rows) that
// shard.Shard places on shard k of n.
func keysOfShard(rows, n, k int) []int64 {
	var keys []int64
	for aid := int64(1); aid <= int64(rows); aid++ {
		if shard.Int(aid*7919).Shard(n) == k {
			keys = append(keys, aid*7919)
		}
	}
	return keys
}

// shardCLI runs `belay shard --etcd etcd args...` and fails the test if
// it fails.
func shardCLI(t *testing.T, bin, etcd string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"shard", "--etcd", etcd}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("belay shard %v: %v\n%s", args, err, out)
	}
}
