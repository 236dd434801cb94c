package loop

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	"github.com/jackc/pgx/v5/pgproto3"
)

// shardedServers are two servers, shards "0" and "1" of a cluster whose
// sharding schema shards kshard by aid (bigint) over 2 shards and has
// kref as a reference table; each server has both tables, empty but for
// kref's one row.
func shardedServers(t *testing.T) (s0, s1 *pginstance.Instance, src *staticTopology) {
	t.Helper()
	s0, s1 = pgtest.Shared(t), pgtest.New(t, pginstance.Options{})
	ctx := context.Background()
	for _, pg := range []*pginstance.Instance{s0, s1} {
		c := connect(t, pg.ConnString("postgres", "postgres"))
		if _, err := c.Exec(ctx, `DROP TABLE IF EXISTS kshard, kref;
			CREATE TABLE kshard (aid int8 PRIMARY KEY, v text); CREATE TABLE kref (id int); INSERT INTO kref VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	return s0, s1, twoShards(t, s0, s1, "kshard")
}

// twoShards is the topology of shards "0" (s0) and "1" (s1) sharding
// table by aid (bigint), kref a reference table.
func twoShards(t *testing.T, s0, s1 *pginstance.Instance, table string) *staticTopology {
	t.Helper()
	return twoShardsOf(s0, s1, aidSchema(t, table))
}

// aidSchema is the schema of 2 shards sharding table by aid (bigint),
// kref a reference table.
func aidSchema(t testing.TB, table string) *shard.Schema {
	t.Helper()
	sc, err := shard.New(2, shard.ShardedTable(shard.TableName{Name: table}, "aid", shard.KeyInteger),
		shard.ReferenceTable(shard.TableName{Name: "kref"}))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// preparingShards is a proxy in front of two servers that prepare
// transactions, shards "0" and "1" of a schema, with an etcd to record
// its decisions, and a connection to each server directly.
type preparingShards struct {
	p      *Proxy
	direct []*pgx.Conn
	store  *ha.Store
}

// startPreparingShards starts them: ddl runs on each server first, name
// is the cluster's in etcd, mod changes the proxy's configuration.
func startPreparingShards(t *testing.T, name, ddl string, sc *shard.Schema, mod func(*Config)) *preparingShards {
	t.Helper()
	settings := map[string]string{"max_prepared_transactions": "10"}
	s0, s1 := pgtest.New(t, pginstance.Options{Settings: settings}), pgtest.New(t, pginstance.Options{Settings: settings})
	ps := &preparingShards{}
	for _, pg := range []*pginstance.Instance{s0, s1} {
		d := connect(t, pg.ConnString("postgres", "postgres"))
		if _, err := d.Exec(context.Background(), ddl); err != nil {
			t.Fatal(err)
		}
		ps.direct = append(ps.direct, d)
	}
	var err error
	if ps.store, err = ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), name); err != nil {
		t.Fatal(err)
	}
	ps.p = startProxy(t, s0, func(c *Config) {
		c.Cluster, c.HealthDial, c.RecordDecision, c.ForgetDecision = twoShardsOf(s0, s1, sc), healthDial, ps.store.RecordDecision, ps.store.ForgetDecision
		if mod != nil {
			mod(c)
		}
	})
	waitShardPrimaries(t, ps.p, 2, 10*time.Second)
	return ps
}

// noneOpen waits until no shard has a transaction prepared or idle in
// one.
func (ps *preparingShards) noneOpen(t testing.TB, what string) {
	t.Helper()
	eventually(t, 10*time.Second, what+": nothing prepared or idle in a transaction", func() bool {
		for _, d := range ps.direct {
			var n int
			if err := d.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM pg_prepared_xacts) +
				(SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%')`).Scan(&n); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
}

// twoShardsOf is the topology of shards "0" (s0) and "1" (s1) under
// sharding schema sc.
func twoShardsOf(s0, s1 *pginstance.Instance, sc *shard.Schema) *staticTopology {
	top := ha.Build("t", 0, map[string]ha.ShardRecord{"0": {Term: 1, Primary: "a"}, "1": {Term: 1, Primary: "b"}},
		map[string]ha.NodeRecord{"a": {Shard: "0", Addr: s0.Addr()}, "b": {Shard: "1", Addr: s1.Addr()}})
	top.Sharding = sc
	src := &staticTopology{}
	src.t.Store(top)
	return src
}

// waitShardPrimaries waits until p follows n shards, each with a primary
// its health checks see up.
func waitShardPrimaries(t testing.TB, p *Proxy, n int, within time.Duration) {
	t.Helper()
	eventually(t, within, "every shard's primary checked", func() bool {
		set := p.sharding.set.Load()
		if set == nil || len(set.clusters) != n {
			return false
		}
		for _, c := range set.clusters {
			v := c.view.Load()
			if v == nil || v.primary < 0 {
				return false
			}
			if h := v.nodes[v.primary].health.Current(); h == nil || !h.Up {
				return false
			}
		}
		return true
	})
}

// TestShardedRouting: in front of two shards, each statement runs on the
// shard its key says (rows written through belay are on the shard
// Postgres's partition hash gives their key), by literal in the simple
// protocol and by parameter in the extended one, prepared or not; what
// reads only a reference table runs on either; a scatter is refused with
// 0A000 and the connection goes on; a transaction stays on its shard, and
// one that reaches for another shard is ended (FATAL 0A000) without
// committing anything.
func TestShardedRouting(t *testing.T) {
	s0, s1, src := shardedServers(t)
	ctx := context.Background()
	p := startProxy(t, s0, func(c *Config) { c.Cluster, c.HealthDial = src, healthDial })
	waitShardPrimaries(t, p, 2, 10*time.Second)
	servers := []*pginstance.Instance{s0, s1}
	// Keys on each shard, found with the hash itself.
	var keys [2][]int64
	for k := int64(1); len(keys[0]) < 20 || len(keys[1]) < 20; k++ {
		i := shard.Int(k).Shard(2)
		keys[i] = append(keys[i], k)
	}
	simple := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	for i := range 2 {
		for _, k := range keys[i] {
			if _, err := simple.Exec(ctx, fmt.Sprintf("INSERT INTO kshard (aid, v) VALUES (%d, 'simple')", k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, pg := range servers {
		c := connect(t, pg.ConnString("postgres", "postgres"))
		var n int
		var wrong int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM kshard").Scan(&n); err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(ctx, "SELECT aid FROM kshard")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var aid int64
			_ = rows.Scan(&aid)
			if shard.Int(aid).Shard(2) != i {
				wrong++
			}
		}
		c.Close(ctx)
		if n != len(keys[i]) || wrong != 0 {
			t.Fatalf("shard %d holds %d rows (%d of another shard), want %d", i, n, wrong, len(keys[i]))
		}
	}
	// Each row found by key, through the extended protocol: prepared
	// (Parse alone, then Bind) and not (Parse and Bind together).
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		c := connectMode(t, p.connString("postgres", "postgres"), mode)
		for i := range 2 {
			for _, k := range keys[i] {
				var v string
				if err := c.QueryRow(ctx, "SELECT v FROM kshard WHERE aid = $1", k).Scan(&v); err != nil || v != "simple" {
					t.Fatalf("mode %v: key %d (shard %d): %q, %v", mode, k, i, v, err)
				}
			}
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM kref").Scan(&n); err != nil || n != 1 {
			t.Fatalf("mode %v: a reference table read: %d, %v", mode, n, err)
		}
		c.Close(ctx)
	}
	// A count of every shard's rows is merged; a scatter needing a merge
	// belay does not do is refused, and the client goes on.
	var n int
	if err := simple.QueryRow(ctx, "SELECT count(*) FROM kshard").Scan(&n); err != nil || n != len(keys[0])+len(keys[1]) {
		t.Fatalf("a count of every shard's rows: %d, %v", n, err)
	}
	var pe *pgconn.PgError
	if err := simple.QueryRow(ctx, "SELECT string_agg(v, ',') FROM kshard").Scan(&n); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("a scatter belay does not merge: %v", err)
	}
	if err := simple.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM kshard WHERE aid = %d", keys[1][0])).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after a refused scatter: %d, %v", n, err)
	}
	// A transaction on one shard commits there.
	tx, err := simple.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys[1][:3] {
		if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE kshard SET v = 'tx' WHERE aid = %d", k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	direct1 := connect(t, s1.ConnString("postgres", "postgres"))
	if err := direct1.QueryRow(ctx, "SELECT count(*) FROM kshard WHERE v = 'tx'").Scan(&n); err != nil || n != 3 {
		t.Fatalf("a one-shard transaction committed %d rows, %v", n, err)
	}
	// The same with a BEGIN ending in a semicolon, as psql and pgbench
	// send it, for the shard the client is not on.
	for _, sql := range []string{"BEGIN;", fmt.Sprintf("UPDATE kshard SET v = 'semicolon' WHERE aid = %d;", keys[0][4]), "COMMIT;"} {
		if _, err := simple.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	direct0 := connect(t, s0.ConnString("postgres", "postgres"))
	if err := direct0.QueryRow(ctx, "SELECT count(*) FROM kshard WHERE v = 'semicolon'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a one-shard transaction begun with \"BEGIN;\" committed %d rows, %v", n, err)
	}
	direct0.Close(ctx)
	// One that reaches for the other shard ends, nothing of it committed.
	tx, err = simple.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE kshard SET v = 'lost' WHERE aid = %d", keys[1][5])); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, fmt.Sprintf("UPDATE kshard SET v = 'lost' WHERE aid = %d", keys[0][5]))
	if !errors.As(err, &pe) || pe.Code != "0A000" || pe.Severity != "FATAL" {
		t.Fatalf("a statement of another shard in a transaction: %v", err)
	}
	eventually(t, 10*time.Second, "the ended transaction to roll back", func() bool {
		var lost int
		err := direct1.QueryRow(ctx, "SELECT count(*) FROM kshard WHERE v = 'lost'").Scan(&lost)
		var idle int
		_ = direct1.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'").Scan(&idle)
		return err == nil && lost == 0 && idle == 0
	})
	direct1.Close(ctx)
	// In a transaction, each Bind is checked with the statement its own
	// Parse prepares, not the one the client had before under that name:
	// a reference table's read after a shard's statement, its parameter a
	// key of the other shard, is no statement of the other shard.
	ex := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	tx, err = ex.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := tx.QueryRow(ctx, "SELECT v FROM kshard WHERE aid = $1", keys[1][0]).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM kref WHERE id = $1", keys[0][0]).Scan(&n); err != nil {
		t.Fatalf("a reference read after a shard's statement in one transaction: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A transaction whose first statement is refused ends: the client
	// saw its BEGIN answered, and Postgres would have aborted it.
	tx, err = ex.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM kshard").Scan(&n); !errors.As(err, &pe) || pe.Code != "0A000" || pe.Severity != "FATAL" {
		t.Fatalf("a scatter as a transaction's first statement: %v", err)
	}
	ex.Close(ctx)
	ex = connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	// A pipeline is one unit: its statements of one shard run there; one
	// that mixes shards is refused, not run on the first's.
	batch := func(ks ...int64) error {
		b := &pgx.Batch{}
		for _, k := range ks {
			b.Queue("SELECT v FROM kshard WHERE aid = $1", k)
		}
		return ex.SendBatch(ctx, b).Close()
	}
	if err := batch(keys[0][1], keys[0][2]); err != nil {
		t.Fatalf("a pipeline on one shard: %v", err)
	}
	if err := batch(keys[0][1], keys[1][2]); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("a pipeline across shards: %v", err)
	}
	ex.Close(ctx)
	// A statement of a shape belay refuses is an ERROR, not a wrong answer.
	c := connect(t, p.connString("postgres", "postgres"))
	_, err = c.Exec(ctx, "INSERT INTO kshard VALUES (1, 'x')")
	if !errors.As(err, &pe) || pe.Code != "0A000" || pe.Severity != "ERROR" {
		t.Fatalf("an INSERT without its columns: %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
	c.Close(ctx)
}

// TestShardedIDs: ids unique across shards, the documented way: each
// shard's sequence counts in steps of the shard count from its own start
// (shard k: START WITH k+1 INCREMENT BY N), and a sharded table's id
// column defaults to it. Rows inserted through belay, by another key,
// get ids no other shard hands out, and RETURNING tells them.
func TestShardedIDs(t *testing.T) {
	s0, s1, src := shardedServers(t)
	ctx := context.Background()
	for k, pg := range []*pginstance.Instance{s0, s1} {
		c := connect(t, pg.ConnString("postgres", "postgres"))
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS korders; DROP SEQUENCE IF EXISTS korders_id;
			CREATE SEQUENCE korders_id START WITH %d INCREMENT BY 2;
			CREATE TABLE korders (id int8 PRIMARY KEY DEFAULT nextval('korders_id'), customer int8 NOT NULL)`, k+1)); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	top := src.Current()
	sc, err := top.Sharding.With(shard.ShardedTable(shard.TableName{Name: "korders"}, "customer", shard.KeyInteger))
	if err != nil {
		t.Fatal(err)
	}
	next := *top
	next.Sharding = sc
	src.t.Store(&next)
	p := startProxy(t, s0, func(c *Config) { c.Cluster, c.HealthDial = src, healthDial })
	c := connect(t, p.connString("postgres", "postgres"))
	seen := map[int64]int64{}
	for customer := int64(1); customer <= 60; customer++ {
		var id int64
		err := c.QueryRow(ctx, "INSERT INTO korders (customer) VALUES ($1) RETURNING id", customer).Scan(&id)
		for i := 0; err != nil && i < 50; i++ { // the shards' primaries checked first
			time.Sleep(100 * time.Millisecond)
			err = c.QueryRow(ctx, "INSERT INTO korders (customer) VALUES ($1) RETURNING id", customer).Scan(&id)
		}
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[id]; dup {
			t.Fatalf("id %d handed out for customers %d and %d", id, other, customer)
		}
		if want := int64(shard.Int(customer).Shard(2)); (id-1)%2 != want {
			t.Fatalf("customer %d (shard %d) got id %d, of shard %d's sequence", customer, want, id, (id-1)%2)
		}
		seen[id] = customer
	}
}

// TestSpread: a statement for every shard runs on each, atomically, with
// the two-phase commit's decision recorded in a real etcd: DDL creates the
// table on every shard; an UPDATE of every shard's rows counts them all in
// its tag; a reference table's INSERT reaches every copy; a DDL that fails
// on one shard is rolled back on the others and the client gets that
// shard's error; one PostgreSQL cannot run in a transaction block is
// refused with 0A000; one that returns rows is refused 0A000; nothing is
// left prepared.
func TestSpread(t *testing.T) {
	settings := map[string]string{"max_prepared_transactions": "10"}
	s0, s1 := pgtest.New(t, pginstance.Options{Settings: settings}), pgtest.New(t, pginstance.Options{Settings: settings})
	ctx := context.Background()
	servers := []*pginstance.Instance{s0, s1}
	for _, pg := range servers {
		c := connect(t, pg.ConnString("postgres", "postgres"))
		if _, err := c.Exec(ctx, "CREATE TABLE kref (id int)"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	store, err := ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), "spread")
	if err != nil {
		t.Fatal(err)
	}
	src := twoShards(t, s0, s1, "kspread")
	p := startProxy(t, s0, func(c *Config) {
		c.Cluster, c.HealthDial, c.RecordDecision = src, healthDial, store.RecordDecision
	})
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	exec := func(sql string) (pgconn.CommandTag, error) {
		var tag pgconn.CommandTag
		var err error
		for range 50 { // the shards' primaries checked first
			if tag, err = c.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "no primary") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return tag, err
	}
	count := func(pg *pginstance.Instance, sql string) int {
		t.Helper()
		d := connect(t, pg.ConnString("postgres", "postgres"))
		defer d.Close(ctx)
		var n int
		if err := d.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	if tag, err := exec("CREATE TABLE kspread (aid int8 PRIMARY KEY, v text)"); err != nil || tag.String() != "CREATE TABLE" {
		t.Fatalf("DDL on every shard: %q, %v", tag, err)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM pg_tables WHERE tablename = 'kspread'"); n != 1 {
			t.Fatalf("kspread on %s: %d", pg.Addr(), n)
		}
	}
	for aid := 1; aid <= 30; aid++ {
		if _, err := exec(fmt.Sprintf("INSERT INTO kspread (aid, v) VALUES (%d, 'one')", aid)); err != nil {
			t.Fatal(err)
		}
	}
	if tag, err := exec("UPDATE kspread SET v = 'all'"); err != nil || tag.String() != "UPDATE 30" {
		t.Fatalf("an UPDATE of every shard's rows: %q, %v", tag, err)
	}
	if n0, n1 := count(s0, "SELECT count(*) FROM kspread WHERE v = 'all'"), count(s1, "SELECT count(*) FROM kspread WHERE v = 'all'"); n0+n1 != 30 || n0 == 0 || n1 == 0 {
		t.Fatalf("updated rows by shard: %d and %d", n0, n1)
	}
	if tag, err := exec("INSERT INTO kref VALUES (7)"); err != nil || tag.String() != "INSERT 0 1" {
		t.Fatalf("a reference table's INSERT: %q, %v", tag, err)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM kref WHERE id = 7"); n != 1 {
			t.Fatalf("kref's copy on %s has %d rows of 7", pg.Addr(), n)
		}
	}
	// Fails on shard 1 only: rolled back on shard 0.
	d1 := connect(t, s1.ConnString("postgres", "postgres"))
	if _, err := d1.Exec(ctx, "CREATE TABLE only_one (x int)"); err != nil {
		t.Fatal(err)
	}
	d1.Close(ctx)
	var pe *pgconn.PgError
	if _, err := exec("CREATE TABLE only_one (x int)"); !errors.As(err, &pe) || pe.Code != "42P07" {
		t.Fatalf("a DDL that fails on one shard: %v", err)
	}
	if n := count(s0, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_one'"); n != 0 {
		t.Fatal("a DDL that failed on shard 1 stayed on shard 0")
	}
	// What PostgreSQL runs only outside a transaction runs as it is on
	// each shard.
	if tag, err := exec("CREATE INDEX CONCURRENTLY kspread_v ON kspread (v)"); err != nil || tag.String() != "CREATE INDEX" {
		t.Fatalf("CREATE INDEX CONCURRENTLY: %q, %v", tag, err)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM pg_indexes WHERE indexname = 'kspread_v'"); n != 1 {
			t.Fatalf("the index on %s: %d", pg.Addr(), n)
		}
	}
	if tag, err := exec("VACUUM ANALYZE kspread"); err != nil || tag.String() != "VACUUM" {
		t.Fatalf("VACUUM: %q, %v", tag, err)
	}
	if _, err := exec("CREATE INDEX CONCURRENTLY ON kspread (nope)"); !errors.As(err, &pe) || pe.Code != "42703" {
		t.Fatalf("CREATE INDEX CONCURRENTLY of a missing column: %v", err)
	}
	// A write of every shard's rows with RETURNING: every shard's rows.
	returned, err := pgx.CollectRows(must(c.Query(ctx, "UPDATE kspread SET v = v RETURNING aid")), pgx.RowTo[int64])
	if err != nil || len(returned) != 30 || len(slices.Compact(slices.Sorted(slices.Values(returned)))) != 30 {
		t.Fatalf("an UPDATE of every shard returning rows: %v, %v", returned, err)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM pg_prepared_xacts"); n != 0 {
			t.Fatalf("%d transactions left prepared on %s", n, pg.Addr())
		}
	}
	// An INSERT whose rows belong to both shards: each shard gets its own
	// rows, atomically; a part that fails leaves nothing on the other.
	var fresh [2][]int64 // keys above 100 of each shard
	for k := int64(101); len(fresh[0]) < 3 || len(fresh[1]) < 3; k++ {
		fresh[shard.Int(k).Shard(2)] = append(fresh[shard.Int(k).Shard(2)], k)
	}
	split := fmt.Sprintf("INSERT INTO kspread (aid, v) VALUES (%d, 'split'), (%d, 'split'), (%d, 'split'), (%d, 'split')",
		fresh[0][0], fresh[1][0], fresh[1][1], fresh[0][1])
	if tag, err := exec(split); err != nil || tag.String() != "INSERT 0 4" {
		t.Fatalf("an INSERT of rows of both shards: %q, %v", tag, err)
	}
	for i, pg := range servers {
		if n := count(pg, fmt.Sprintf("SELECT count(*) FROM kspread WHERE v = 'split' AND aid IN (%d, %d)", fresh[i][0], fresh[i][1])); n != 2 {
			t.Fatalf("shard %d holds %d of its 2 rows of a split INSERT", i, n)
		}
		if n := count(pg, "SELECT count(*) FROM kspread WHERE v = 'split'"); n != 2 {
			t.Fatalf("shard %d holds %d rows of a split INSERT, want its own 2", i, n)
		}
	}
	if _, err := exec(fmt.Sprintf("INSERT INTO kspread (aid, v) VALUES (%d, 'dup'), (%d, 'dup')", fresh[0][2], fresh[1][0])); !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a split INSERT with a duplicate key on one shard: %v", err)
	}
	// A split INSERT with RETURNING: its rows in the order of its VALUES,
	// as PostgreSQL returns them, whichever shard each is on.
	var order []int64 // keys alternating between the shards, unevenly
	for k := int64(5001); len(order) < 5; k++ {
		if want := []int{1, 0, 1, 1, 0}[len(order)]; shard.Int(k).Shard(2) == want {
			order = append(order, k)
		}
	}
	var values []string
	for i, k := range order {
		values = append(values, fmt.Sprintf("(%d, 'ret%d')", k, i))
	}
	type kv struct {
		Aid int64
		V   string
	}
	inserted, err := pgx.CollectRows(must(c.Query(ctx, "INSERT INTO kspread (aid, v) VALUES "+strings.Join(values, ", ")+" RETURNING aid, v")),
		pgx.RowToStructByPos[kv])
	if err != nil || len(inserted) != len(order) {
		t.Fatalf("a split INSERT with RETURNING: %v, %v", inserted, err)
	}
	for i, r := range inserted {
		if r.Aid != order[i] || r.V != fmt.Sprintf("ret%d", i) {
			t.Fatalf("a split INSERT's RETURNING rows %v, not in its VALUES' order %v", inserted, order)
		}
	}
	// A row that ON CONFLICT DO NOTHING skips leaves the order unknown:
	// refused, nothing written.
	if _, err := exec(fmt.Sprintf("INSERT INTO kspread (aid, v) VALUES (%d, 'r'), (%d, 'r') ON CONFLICT DO NOTHING RETURNING aid", order[0], fresh[0][2])); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("a split INSERT whose RETURNING skips a row: %v", err)
	}
	if tag, err := exec("DELETE FROM kspread WHERE v LIKE 'ret%'"); err != nil || tag.String() != "DELETE 5" {
		t.Fatalf("the RETURNING rows deleted: %q, %v", tag, err)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM kspread WHERE v IN ('dup', 'r')"); n != 0 {
			t.Fatalf("%d rows of a failed split INSERT on %s", n, pg.Addr())
		}
		if n := count(pg, "SELECT count(*) FROM pg_prepared_xacts"); n != 0 {
			t.Fatalf("%d transactions left prepared on %s", n, pg.Addr())
		}
	}
	// The same with parameters, in each of pgx's extended modes: each
	// shard's part takes its rows' parameters.
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		ext := connectMode(t, p.connString("postgres", "postgres"), mode)
		k0, k1 := int64(1000*(i+1)), int64(1000*(i+1)) // new keys of shards 0 and 1
		for shard.Int(k0).Shard(2) != 0 {
			k0++
		}
		for shard.Int(k1).Shard(2) != 1 {
			k1++
		}
		tag, err := ext.Exec(ctx, "INSERT INTO kspread (aid, v) VALUES ($1, $2), ($3, $2)", k0, "split", k1)
		if err != nil || tag.String() != "INSERT 0 2" {
			t.Fatalf("mode %v: an INSERT of both shards' rows with parameters: %q, %v", mode, tag, err)
		}
		if n0, n1 := count(s0, fmt.Sprintf("SELECT count(*) FROM kspread WHERE aid = %d", k0)), count(s1, fmt.Sprintf("SELECT count(*) FROM kspread WHERE aid = %d", k1)); n0 != 1 || n1 != 1 {
			t.Fatalf("mode %v: the split INSERT's rows on their shards: %d and %d", mode, n0, n1)
		}
		if _, err := ext.Exec(ctx, "INSERT INTO kspread (aid, v) VALUES ($1, $2), ($3, $2)", k0+2000, "dup", k1); !errors.As(err, &pe) || pe.Code != "23505" {
			t.Fatalf("mode %v: a split INSERT with parameters and a duplicate key: %v", mode, err)
		}
		ext.Close(ctx)
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM kspread WHERE v = 'dup'"); n != 0 {
			t.Fatalf("%d rows of a failed split INSERT on %s", n, pg.Addr())
		}
	}
	if tag, err := exec("DELETE FROM kspread WHERE v = 'split'"); err != nil || tag.String() != "DELETE 12" {
		t.Fatalf("a DELETE of the split INSERTs' rows on every shard: %q, %v", tag, err)
	}
	// The client goes on.
	var v string
	if err := c.QueryRow(ctx, "SELECT v FROM kspread WHERE aid = 3").Scan(&v); err != nil || v != "all" {
		t.Fatalf("after the spreads: %q, %v", v, err)
	}
	// A read of every shard whose rows need no merge: each shard's rows,
	// one tag counting them all.
	rows, err := c.Query(ctx, "SELECT aid, upper(v) FROM kspread WHERE aid <> 7")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for rows.Next() {
		var aid int64
		var u string
		if err := rows.Scan(&aid, &u); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[aid]; dup {
			t.Fatalf("row %d twice", aid)
		}
		got[aid] = u
	}
	if err := rows.Err(); err != nil || len(got) != 29 || got[3] != "ALL" || rows.CommandTag().String() != "SELECT 29" {
		t.Fatalf("a read of every shard: %d rows, tag %q, %v", len(got), rows.CommandTag(), err)
	}
	if _, err := exec("SELECT nope FROM kspread"); !errors.As(err, &pe) || pe.Code != "42703" {
		t.Fatalf("a read of every shard that fails: %v", err)
	}
	// Aggregates of every shard's rows, merged.
	var cnt, sum, lo, hi int64
	if err := c.QueryRow(ctx, "SELECT count(*), sum(aid), min(aid), max(aid) FROM kspread").Scan(&cnt, &sum, &lo, &hi); err != nil ||
		cnt != 30 || sum != 465 || lo != 1 || hi != 30 {
		t.Fatalf("count, sum, min, max over every shard: %d %d %d %d, %v", cnt, sum, lo, hi, err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM kspread WHERE aid > 100").Scan(&cnt); err != nil || cnt != 0 {
		t.Fatalf("a count of no rows over every shard: %d, %v", cnt, err)
	}
	if err := c.QueryRow(ctx, "SELECT min(v) FROM kspread").Scan(&v); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("min of text over every shard (its collation's order): %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT avg(aid) FROM kspread").Scan(&v); err != nil || v != "15.5000000000000000" {
		t.Fatalf("avg over every shard: %q, %v", v, err)
	}
	// Groups, ORDER BY and LIMIT over every shard's rows.
	rows, err = c.Query(ctx, "SELECT aid % 3 AS m, count(*), sum(aid) FROM kspread GROUP BY 1 HAVING count(*) > 1 ORDER BY sum(aid) DESC LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for rows.Next() {
		var m, n, sum int64
		if err := rows.Scan(&m, &n, &sum); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, fmt.Sprint(m, n, sum))
	}
	if err := rows.Err(); err != nil || strings.Join(groups, ";") != "0 10 165;2 10 155" || rows.CommandTag().String() != "SELECT 2" {
		t.Fatalf("GROUP BY, HAVING, ORDER BY, LIMIT over every shard: %q, tag %q, %v", groups, rows.CommandTag(), err)
	}
	aids := func(c *pgx.Conn, sql string, args ...any) string {
		t.Helper()
		rows, err := c.Query(ctx, sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return fmt.Sprint(got)
	}
	if top := aids(c, "SELECT aid FROM kspread ORDER BY aid DESC LIMIT 3 OFFSET 1"); top != "[29 28 27]" {
		t.Fatalf("ORDER BY aid DESC LIMIT 3 OFFSET 1 over every shard: %v", top)
	}
	if err := c.QueryRow(ctx, "SELECT v FROM kspread ORDER BY v LIMIT 1").Scan(&v); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("ORDER BY text over every shard (its collation's order): %v", err)
	}
	// The same in the extended protocol, in each of pgx's modes: rows in
	// binary, merged aggregates encoded in binary, parameters.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		ext := connectMode(t, p.connString("postgres", "postgres"), mode)
		rows, err := ext.Query(ctx, "SELECT aid, v FROM kspread WHERE v = $1", "all")
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for rows.Next() {
			var aid int64
			var v string
			if err := rows.Scan(&aid, &v); err != nil || v != "all" || seen[aid] {
				t.Fatalf("mode %v: row %d %q, %v", mode, aid, v, err)
			}
			seen[aid] = true
		}
		if rows.Err() != nil || len(seen) != 30 || rows.CommandTag().String() != "SELECT 30" {
			t.Fatalf("mode %v: a read of every shard's rows: %d rows, %q, %v", mode, len(seen), rows.CommandTag(), rows.Err())
		}
		var avg float64
		if err := ext.QueryRow(ctx, "SELECT count(*), sum(aid), min(aid), max(aid), avg(aid) FROM kspread WHERE aid > $1", 0).Scan(&cnt, &sum, &lo, &hi, &avg); err != nil ||
			cnt != 30 || sum != 465 || lo != 1 || hi != 30 || avg != 15.5 {
			t.Fatalf("mode %v: aggregates over every shard: %d %d %d %d %v, %v", mode, cnt, sum, lo, hi, avg, err)
		}
		rows, err = ext.Query(ctx, "SELECT aid % 3 AS m, count(*) FROM kspread GROUP BY 1 ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var m, n int64
			if err := rows.Scan(&m, &n); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d:%d", m, n))
		}
		if fmt.Sprint(got) != "[0:10 1:10 2:10]" {
			t.Fatalf("mode %v: GROUP BY over every shard: %v, %v", mode, got, rows.Err())
		}
		if top := aids(ext, "SELECT aid FROM kspread WHERE aid < $1 ORDER BY aid DESC LIMIT 3", 31); top != "[30 29 28]" {
			t.Fatalf("mode %v: ORDER BY LIMIT over every shard: %v", mode, top)
		}
		if top := aids(ext, "SELECT aid FROM kspread ORDER BY aid DESC LIMIT $1 OFFSET $2", 3, 1); top != "[29 28 27]" {
			t.Fatalf("mode %v: ORDER BY LIMIT $1 OFFSET $2 over every shard: %v", mode, top)
		}
		if _, err := ext.Exec(ctx, "SELECT aid FROM kspread ORDER BY aid LIMIT $1", -1); !errors.As(err, &pe) || pe.Code != "2201W" {
			t.Fatalf("mode %v: a negative LIMIT $1 over every shard: %v", mode, err)
		}
		if err := ext.QueryRow(ctx, "SELECT string_agg(v, ',') FROM kspread").Scan(&v); !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("mode %v: a read of every shard belay does not merge: %v", mode, err)
		}
		if err := ext.QueryRow(ctx, "SELECT v FROM kspread WHERE aid = $1", 3).Scan(&v); err != nil || v != "all" {
			t.Fatalf("mode %v: a keyed read after: %q, %v", mode, v, err)
		}
		ext.Close(ctx)
	}
	// Writes of every shard with parameters: the same statement on each,
	// in two phases.
	ext := connect(t, p.connString("postgres", "postgres"))
	for _, w := range []struct {
		sql  string
		args []any
		tag  string
	}{
		{"UPDATE kspread SET v = $1 WHERE aid > $2", []any{"ext", 0}, "UPDATE 30"},
		{"UPDATE kspread SET v = $1 WHERE v = $2", []any{"all", "ext"}, "UPDATE 30"},
		{"INSERT INTO kref VALUES ($1)", []any{9}, "INSERT 0 1"},
	} {
		if tag, err := ext.Exec(ctx, w.sql, w.args...); err != nil || tag.String() != w.tag {
			t.Fatalf("%s with parameters on every shard: %q, %v", w.sql, tag, err)
		}
	}
	for _, pg := range servers {
		if n := count(pg, "SELECT count(*) FROM kref WHERE id = 9"); n != 1 {
			t.Fatalf("kref's copy on %s has %d rows of 9", pg.Addr(), n)
		}
		if n := count(pg, "SELECT count(*) FROM kspread WHERE v <> 'all'"); n != 0 {
			t.Fatalf("%d rows of kspread on %s not updated back", n, pg.Addr())
		}
	}
	// A write of every shard whose unit prepares a named statement (as
	// JDBC sends it past prepareThreshold): the name is the client's
	// afterwards, bound again without a Parse.
	named := connect(t, p.connString("postgres", "postgres")).PgConn()
	fe := named.Frontend()
	for i, msgs := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Name: "S_1", Query: "UPDATE kspread SET v = $1 WHERE aid > $2"},
			&pgproto3.Bind{PreparedStatement: "S_1", Parameters: [][]byte{[]byte("all"), []byte("0")}}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		{&pgproto3.Bind{PreparedStatement: "S_1", Parameters: [][]byte{[]byte("all"), []byte("0")}}, &pgproto3.Execute{}, &pgproto3.Sync{}},
	} {
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var tag string
		for {
			m, err := named.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.CommandComplete:
				tag = string(m.CommandTag)
			case *pgproto3.ErrorResponse:
				t.Fatalf("unit %d of a named statement for every shard: %s %s", i, m.Code, m.Message)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if tag != "UPDATE 30" {
			t.Fatalf("unit %d of a named statement for every shard: %q", i, tag)
		}
	}
	named.Close(ctx)
	// With RETURNING, in each of pgx's extended modes (binary results in
	// some): every shard's rows; a split INSERT's in its VALUES' order.
	for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
		m := connectMode(t, p.connString("postgres", "postgres"), mode)
		got, err := pgx.CollectRows(must(m.Query(ctx, "UPDATE kspread SET v = $1 WHERE aid > $2 RETURNING aid", "all", 0)), pgx.RowTo[int64])
		if err != nil || len(got) != 30 {
			t.Fatalf("mode %v: an UPDATE of every shard returning rows, with parameters: %v, %v", mode, got, err)
		}
		keys := []int64{int64(7001 + 10*i), int64(7002 + 10*i), int64(7003 + 10*i)}
		ids, err := pgx.CollectRows(must(m.Query(ctx, "INSERT INTO kspread (aid, v) VALUES ($1, 'x'), ($2, 'x'), ($3, 'x') RETURNING aid", keys[0], keys[1], keys[2])),
			pgx.RowTo[int64])
		if err != nil || !slices.Equal(ids, keys) {
			t.Fatalf("mode %v: a split INSERT returning rows, with parameters: %v, %v; want %v", mode, ids, err, keys)
		}
		if _, err := m.Exec(ctx, "DELETE FROM kspread WHERE v = 'x'"); err != nil {
			t.Fatal(err)
		}
		m.Close(ctx)
	}
	ext.Close(ctx)
}
