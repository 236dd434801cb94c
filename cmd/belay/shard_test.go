package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestChangeSchema: each command's effect on a schema, and its refusals.
func TestChangeSchema(t *testing.T) {
	apply := func(cur *shard.Schema, args ...string) (*shard.Schema, error) { return changeSchema(cur, args) }
	if _, err := apply(nil, "table", "accounts", "aid", "integer"); err == nil {
		t.Error("a table added before init")
	}
	sc, err := apply(nil, "init", "4")
	if err != nil || sc.Shards() != 4 {
		t.Fatalf("init 4: %v, %v", sc, err)
	}
	if same, err := apply(sc, "init", "4"); err != nil || same != sc {
		t.Errorf("init again with the same count: %v", err)
	}
	if _, err := apply(sc, "init", "8"); err == nil || !strings.Contains(err.Error(), "resharding") {
		t.Errorf("init with another count: %v", err)
	}
	for _, bad := range [][]string{{"init", "x"}, {"init", "0"}, {"table", "t", "k"}, {"table", "t", "k", "float"},
		{"table", "t", "a.b", "int"}, {"nope"}, {"drop", "missing"}} {
		if _, err := apply(sc, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if sc, err = apply(sc, "table", "Accounts", "AID", "bigint"); err != nil {
		t.Fatal(err)
	}
	if sc, err = apply(sc, "table", `app."Users"`, "name", "text"); err != nil {
		t.Fatal(err)
	}
	if sc, err = apply(sc, "reference", "branches"); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(sc, "reference", "accounts"); !errors.Is(err, shard.ErrShardedAndReference) {
		t.Errorf("accounts made a reference table too: %v", err)
	}
	if tb, ok := sc.Lookup("", "accounts"); !ok || tb.Key != "aid" || tb.KeyType != shard.KeyInteger {
		t.Errorf("accounts: %+v, %v", tb, ok)
	}
	if tb, ok := sc.Lookup("app", "Users"); !ok || tb.Key != "name" || tb.KeyType != shard.KeyText {
		t.Errorf("app.Users: %+v, %v", tb, ok)
	}
	if sc, err = apply(sc, "drop", "branches"); err != nil || sc.Len() != 2 {
		t.Fatalf("drop: %v, %v", sc, err)
	}
}

// TestShardCommand: belay shard's commands against etcd: the schema is
// kept there, where a topology snapshot carries it, and printed.
func TestShardCommand(t *testing.T) {
	st, err := ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), "sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	for _, args := range [][]string{{"show"}, {"init", "2"}, {"table", "pgbench_accounts", "aid", "integer"},
		{"reference", "pgbench_branches"}, {"show"}} {
		if err := shardCommand(ctx, st, args, &out); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
	}
	got := out.String()
	for _, want := range []string{"cluster sh is not sharded", "cluster sh: 2 shard(s)",
		"public.pgbench_accounts  sharded    aid  integer", "public.pgbench_branches  reference  -    -"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	top, err := st.Load(ctx)
	if err != nil || top.Sharding == nil || top.Sharding.Len() != 2 {
		t.Fatalf("the topology's schema: %v, %v", top.Sharding, err)
	}
	if err := shardCommand(ctx, st, []string{"init", "3"}, &out); err == nil {
		t.Error("init 3 after init 2 accepted")
	}
}

// TestShardedProxy: belay proxy in front of a cluster of two shards in
// etcd, its schema written with belay shard's commands: rows written
// through belay land where PostgreSQL's own hash partitioning puts them
// (a table PARTITION BY HASH (aid) with modulus 2 on a node says which
// partition each key belongs to), each is read back by key, and a scatter
// is refused with 0A000; then the same through a gateway in front of a
// pooler beside each shard's node (each key read on its shard's node).
func TestShardedProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, two PostgreSQL and belay")
	}
	bin := buildBelay(t)
	prepared := pginstance.Options{Settings: map[string]string{"max_prepared_transactions": "10"}}
	nodes := []*pginstance.Instance{pgtest.New(t, prepared), pgtest.New(t, prepared)}
	st, err := ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), "sp")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	registerShards(t, ctx, st, nodes)
	for _, pg := range nodes {
		c, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "CREATE TABLE accounts (aid int8 PRIMARY KEY, abalance int)"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	for _, args := range [][]string{{"init", "2"}, {"table", "accounts", "aid", "bigint"}} {
		if err := shardCommand(ctx, st, args, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	port := strconv.Itoa(freePort(t))
	startProc(t, bin, "proxy", "--listen", "127.0.0.1:"+port, "--etcd", st.Client().Endpoints()[0], "--cluster", "sp",
		"--auth-type", "trust", "--pool-size", "5")
	waitListening(t, "127.0.0.1:"+port)
	c, err := pgx.Connect(ctx, "host=127.0.0.1 port="+port+" user=postgres dbname=postgres sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	keys := []int64{-9000000000, -1, 0, 1, 2, 3, 42, 1 << 40}
	for i := int64(100); i < 160; i++ {
		keys = append(keys, i*7919)
	}
	eventually(t, "belay to route a write to its shard", func() bool {
		_, err := c.Exec(ctx, "INSERT INTO accounts (aid, abalance) VALUES ($1, 0)", keys[0])
		return err == nil
	})
	for _, k := range keys[1:] {
		if _, err := c.Exec(ctx, "INSERT INTO accounts (aid, abalance) VALUES ($1, $2)", k, k%1000); err != nil {
			t.Fatal(err)
		}
	}
	// psql's \copy: the rows split between the shards by key.
	var rowsCSV strings.Builder
	for i := int64(1); i <= 50; i++ {
		k := i * 1000003
		keys = append(keys, k)
		fmt.Fprintf(&rowsCSV, "%d,%d\n", k, k%1000)
	}
	cp := exec.CommandContext(ctx, pgtest.RequireBinary(t, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port,
		"-U", "postgres", "-d", "postgres", "-c", `\copy accounts (aid, abalance) FROM STDIN WITH (FORMAT csv)`)
	cp.Stdin = strings.NewReader(rowsCSV.String())
	if out, err := cp.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "COPY 50" {
		t.Fatalf("psql's \\copy through belay: %s, %v", out, err)
	}
	// Where PostgreSQL's hash partitioning puts each key.
	check, err := pgx.Connect(ctx, nodes[0].ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close(ctx)
	if _, err := check.Exec(ctx, `CREATE TABLE placement (aid int8) PARTITION BY HASH (aid);
		CREATE TABLE placement_0 PARTITION OF placement FOR VALUES WITH (MODULUS 2, REMAINDER 0);
		CREATE TABLE placement_1 PARTITION OF placement FOR VALUES WITH (MODULUS 2, REMAINDER 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := check.Exec(ctx, "INSERT INTO placement SELECT unnest($1::int8[])", keys); err != nil {
		t.Fatal(err)
	}
	want := map[int64]int{}
	rows, err := check.Query(ctx, "SELECT aid, right(tableoid::regclass::text, 1)::int FROM placement")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var aid int64
		var part int
		if err := rows.Scan(&aid, &part); err != nil {
			t.Fatal(err)
		}
		want[aid] = part
	}
	got := map[int64]int{}
	for k, pg := range nodes {
		d, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := d.Query(ctx, "SELECT aid FROM accounts")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var aid int64
			_ = rows.Scan(&aid)
			got[aid] = k
		}
		d.Close(ctx)
	}
	if len(got) != len(keys) || !maps.Equal(got, want) {
		t.Fatalf("rows by shard through belay %v, PostgreSQL's partitions %v", got, want)
	}
	for _, k := range keys {
		var b int64
		if err := c.QueryRow(ctx, "SELECT abalance FROM accounts WHERE aid = $1", k).Scan(&b); err != nil || b != k%1000 {
			t.Fatalf("key %d read back %d, %v", k, b, err)
		}
	}
	var n int
	var pe *pgconn.PgError
	if err := c.QueryRow(ctx, "SELECT count(*) FROM accounts", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != len(keys) {
		t.Fatalf("a count of every shard's rows through belay: %d, %v", n, err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != len(keys) {
		t.Fatalf("a count of every shard's rows in the extended protocol through belay: %d, %v", n, err)
	}
	t.Logf("%d keys placed as PARTITION BY HASH places them: %d on shard 0, %d on shard 1", len(keys), countOf(got, 0), countOf(got, 1))

	// pgbench through belay, its statements carrying the key: every one on
	// its shard, in the simple and prepared protocols, with no failure.
	pgbenchSharded(t, ctx, st, nodes, port)

	// The same through the two tiers: a pooler beside each shard's node, a
	// gateway that sees the shards through them.
	for k, pg := range nodes {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		startProc(t, bin, "pooler", "--listen", addr, "--server", pg.Addr(), "--node", fmt.Sprintf("n%d", k),
			"--etcd", st.Client().Endpoints()[0], "--cluster", "sp", "--auth-type", "trust", "--pool-size", "5")
		waitListening(t, addr)
	}
	gw := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startProc(t, bin, "gateway", "--listen", gw, "--etcd", st.Client().Endpoints()[0], "--cluster", "sp",
		"--auth-type", "trust", "--pool-size", "5")
	waitListening(t, gw)
	g, err := pgx.Connect(ctx, "host=127.0.0.1 port="+strings.Split(gw, ":")[1]+" user=postgres dbname=postgres sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	eventually(t, "the gateway to route by key through the poolers", func() bool {
		var b int64
		return g.QueryRow(ctx, "SELECT abalance FROM accounts WHERE aid = $1", keys[5]).Scan(&b) == nil && b == keys[5]%1000
	})
	for _, k := range keys {
		var b int64
		var port int
		if err := g.QueryRow(ctx, "SELECT abalance, inet_server_port() FROM accounts WHERE aid = $1", k).Scan(&b, &port); err != nil || b != k%1000 {
			t.Fatalf("through the gateway, key %d read back %d, %v", k, b, err)
		}
		if want := nodes[got[k]].Port; port != want {
			t.Fatalf("through the gateway, key %d was read on port %d, its shard's node is on %d", k, port, want)
		}
	}
	var total int64
	if err := g.QueryRow(ctx, "SELECT count(*), sum(abalance) FROM accounts", pgx.QueryExecModeSimpleProtocol).Scan(&n, &total); err != nil || n != len(keys) {
		t.Fatalf("a count of every shard's rows through the gateway: %d, %v", n, err)
	}
	var wantSum int64
	for _, k := range keys {
		wantSum += k % 1000
	}
	if total != wantSum {
		t.Fatalf("a sum of every shard's rows through the gateway: %d, want %d", total, wantSum)
	}
	if err := g.QueryRow(ctx, "SELECT string_agg(abalance::text, ',') FROM accounts", pgx.QueryExecModeSimpleProtocol).Scan(&total); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("a read of every shard belay does not merge, through the gateway: %v", err)
	}
	// DDL through the gateway reaches every shard, committed in two phases
	// with the decision in etcd.
	if _, err := g.Exec(ctx, "CREATE TABLE made_through_the_gateway (id int8 PRIMARY KEY)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	for _, pg := range nodes {
		d, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var made, prepared int
		err = d.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_tables WHERE tablename = 'made_through_the_gateway'), (SELECT count(*) FROM pg_prepared_xacts)").Scan(&made, &prepared)
		d.Close(ctx)
		if err != nil || made != 1 || prepared != 0 {
			t.Fatalf("DDL through the gateway on %s: table %d, left prepared %d, %v", pg.Addr(), made, prepared, err)
		}
	}
	// The decision was written in etcd, then deleted once carried out on
	// both shards.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	puts, dels := 0, 0
	for w := range st.Client().Watch(wctx, ha.Prefix("sp")+"2pc/", clientv3.WithPrefix(), clientv3.WithRev(1)) {
		for _, ev := range w.Events {
			if ev.Type == clientv3.EventTypePut {
				puts++
			} else {
				dels++
			}
		}
		if puts > 0 && dels == puts {
			break
		}
	}
	if puts == 0 || dels != puts {
		t.Fatalf("decisions in etcd: %d written, %d deleted; want each written and deleted", puts, dels)
	}
}

func countOf(m map[int64]int, v int) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}

// pgbenchSharded runs pgbench with a script of keyed statements (an UPDATE
// and a SELECT by aid of a sharded table of 200 rows, placed on the shards
// as the hash says) through belay at port, 8 clients for 3 s in the simple
// and the prepared protocol: no transaction may fail, and every shard
// still holds its own rows, each changed by as much as pgbench's updates.
func pgbenchSharded(t *testing.T, ctx context.Context, st *ha.Store, nodes []*pginstance.Instance, port string) {
	t.Helper()
	pgbench := pgtest.RequireBinary(t, "pgbench")
	const rows = 200
	for k, pg := range nodes {
		d, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var mine []int64
		for aid := int64(1); aid <= rows; aid++ {
			if shard.Int(aid).Shard(len(nodes)) == k {
				mine = append(mine, aid)
			}
		}
		if _, err := d.Exec(ctx, "CREATE TABLE bench_accounts (aid int8 PRIMARY KEY, abalance int NOT NULL DEFAULT 0)"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Exec(ctx, "INSERT INTO bench_accounts (aid) SELECT unnest($1::int8[])", mine); err != nil {
			t.Fatal(err)
		}
		d.Close(ctx)
	}
	if err := shardCommand(ctx, st, []string{"table", "bench_accounts", "aid", "bigint"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "keyed.sql")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`\set aid random(1, %d)
\set delta random(-100, 100)
UPDATE bench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM bench_accounts WHERE aid = :aid;
`, rows)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+port, "PGUSER=postgres", "PGDATABASE=postgres", "PGSSLMODE=disable")
	time.Sleep(500 * time.Millisecond) // the schema's change reaches belay's watch
	for _, mode := range []string{"simple", "prepared"} {
		cmd := exec.CommandContext(ctx, pgbench, "-n", "-f", script, "-M", mode, "-c", "8", "-j", "2", "-T", "3")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
			t.Fatalf("pgbench -M %s through belay over %d shards: %v\n%s", mode, len(nodes), err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "tps") || strings.HasPrefix(l, "number of transactions actually") {
				t.Logf("pgbench -M %s, keyed UPDATE and SELECT over %d shards: %s", mode, len(nodes), l)
			}
		}
	}
	for k, pg := range nodes {
		d, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var n, wrong int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM bench_accounts").Scan(&n); err != nil {
			t.Fatal(err)
		}
		rs, err := d.Query(ctx, "SELECT aid FROM bench_accounts")
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var aid int64
			_ = rs.Scan(&aid)
			if shard.Int(aid).Shard(len(nodes)) != k {
				wrong++
			}
		}
		d.Close(ctx)
		if wrong != 0 || n == 0 {
			t.Fatalf("shard %d holds %d rows after pgbench, %d of another shard", k, n, wrong)
		}
	}
}
