package shard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/belaydb/belay/internal/pgtest"
)

// Real PostgreSQL 15: its hash functions, its hash partitions and its input
// functions agree with this package's, value by value.

func TestMain(m *testing.M) { pgtest.Main(m) }

func connectPG(t *testing.T) (context.Context, *pgx.Conn) {
	t.Helper()
	pg := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c, err := pgx.Connect(ctx, pg.ConnString("postgres", pg.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return ctx, c
}

// connectPGSchema is connectPG in a schema of its own, name, on the
// connection's search_path, dropped at the test's end.
func connectPGSchema(t *testing.T, name string) (context.Context, *pgx.Conn) {
	t.Helper()
	ctx, c := connectPG(t)
	if _, err := c.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+name+"; SET search_path = "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE; RESET search_path") })
	return ctx, c
}

// narrow is the values of vs that fit in a signed integer of bits bits.
func narrow(vs []int64, bits int) []int64 {
	var n []int64
	for _, v := range vs {
		if v >= -1<<(bits-1) && v < 1<<(bits-1) {
			n = append(n, v)
		}
	}
	return n
}

func uuidStrings(us [][16]byte) []string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = FormatUUID(u)
	}
	return s
}

// TestHashMatchesPostgres: hashint2extended, hashint4extended,
// hashint8extended, hashtextextended and uuid_hash_extended computed by
// Postgres, with the partition seed and other seeds (0 takes hashfn.c's
// unseeded path), equal this package's, for thousands of values of each
// type. One batch (one round trip) per seed.
func TestHashMatchesPostgres(t *testing.T) {
	ctx, c := connectPG(t)
	r := testRand()
	ints := intCorpus(r, 3000)
	texts := textCorpus(r, 50)
	uuids := uuidCorpus(r, 3000)
	int4s := narrow(ints, 32)
	for range 3000 {
		int4s = append(int4s, int64(int32(r.Uint32())))
	}
	var int2s []int64 // every smallint
	for v := int64(-1 << 15); v < 1<<15; v++ {
		int2s = append(int2s, v)
	}

	seeds := []uint64{PartitionSeed, 0, 1, 1 << 63, ^uint64(0), r.Uint64()}
	compared := 0
	for _, seed := range seeds {
		type check struct {
			fn   string
			n    int
			want func(i int) uint64
		}
		checks := []check{
			{"hashint8extended(v::int8, $2)", len(ints), func(i int) uint64 { return HashInt8Extended(ints[i], seed) }},
			{"hashint4extended(v::int4, $2)", len(int4s), func(i int) uint64 { return HashInt4Extended(int32(int4s[i]), seed) }},
			{"hashint2extended(v::int2, $2)", len(int2s), func(i int) uint64 { return HashInt2Extended(int16(int2s[i]), seed) }},
			{"hashtextextended(v::text, $2)", len(texts), func(i int) uint64 { return HashTextExtended(texts[i], seed) }},
			{"uuid_hash_extended(v::uuid, $2)", len(uuids), func(i int) uint64 { return HashUUIDExtended(uuids[i], seed) }},
		}
		args := []any{ints, int4s, int2s, texts, uuidStrings(uuids)}
		arrays := []string{"int8[]", "int8[]", "int8[]", "text[]", "text[]"}
		b := &pgx.Batch{}
		for i, ch := range checks {
			b.Queue("SELECT "+ch.fn+" FROM unnest($1::"+arrays[i]+") WITH ORDINALITY AS u(v, i) ORDER BY i", args[i], int64(seed))
		}
		br := c.SendBatch(ctx, b)
		for _, ch := range checks {
			rows, err := br.Query()
			if err != nil {
				t.Fatalf("%s: %v", ch.fn, err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				t.Fatalf("%s: %v", ch.fn, err)
			}
			if len(got) != ch.n {
				t.Fatalf("%s: %d rows for %d values", ch.fn, len(got), ch.n)
			}
			bad := 0
			for i, g := range got {
				if w := ch.want(i); uint64(g) != w {
					if bad++; bad <= 5 {
						t.Errorf("%s with seed %#x, value %d: Postgres says %#x, we say %#x", ch.fn, seed, i, uint64(g), w)
					}
				}
			}
			compared += len(got)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("compared %d hashes (%d bigint, %d integer, %d smallint, %d text, %d uuid values, %d seeds each)",
		compared, len(ints), len(int4s), len(int2s), len(texts), len(uuids), len(seeds))
}

// TestPlacementMatchesPartitions: for tables PARTITION BY HASH (k) of each
// key type with N = 2, 3, 4, 7 partitions (named by remainder), the
// partition Postgres puts each inserted row in (its tableoid) is the one
// Shard computes, and satisfies_hash_partition agrees; a NULL key lands in
// remainder NullShard.
func TestPlacementMatchesPartitions(t *testing.T) {
	ctx, c := connectPG(t)
	r := testRand()
	ints := intCorpus(r, 2000)
	texts := textCorpus(r, 30)
	uuids := uuidCorpus(r, 2000)
	int4s := narrow(ints, 32)
	for range 1000 {
		int4s = append(int4s, int64(int32(r.Uint32())))
	}
	int2s := narrow(ints, 16)
	for v := int64(-1000); v <= 1000; v++ {
		int2s = append(int2s, v)
	}

	type keyset struct {
		typ    string // the column's type
		array  string // the parameter's array type
		values any
		n      int
		shard  func(i, n int) int
	}
	var icu bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu')").Scan(&icu); err != nil {
		t.Fatal(err)
	}
	sets := []keyset{
		{"int8", "int8[]", ints, len(ints), func(i, n int) int { return Shard(n, ints[i]) }},
		{"int4", "int8[]", int4s, len(int4s), func(i, n int) int { return Shard(n, int4s[i]) }},
		{"int2", "int8[]", int2s, len(int2s), func(i, n int) int { return Shard(n, int2s[i]) }},
		{"text", "text[]", texts, len(texts), func(i, n int) int { return Shard(n, texts[i]) }},
		{"varchar", "text[]", texts, len(texts), func(i, n int) int { return Text(texts[i]).Shard(n) }},
		{"uuid", "text[]", uuidStrings(uuids), len(uuids), func(i, n int) int { return Shard(n, uuids[i]) }},
	}
	if icu { // a deterministic ICU collation hashes the bytes too
		sets = append(sets, keyset{`text COLLATE "und-x-icu"`, "text[]", texts, len(texts), func(i, n int) int { return Shard(n, texts[i]) }})
	} else {
		t.Log("no ICU collation: the text COLLATE \"und-x-icu\" case is not run")
	}
	moduli := []int{2, 3, 4, 7}
	name := func(s, n int) string { return fmt.Sprintf("shard_place_%d_%d", s, n) }

	var ddl strings.Builder
	for s, ks := range sets {
		for _, n := range moduli {
			p := name(s, n)
			fmt.Fprintf(&ddl, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (i int8, k %s) PARTITION BY HASH (k);\n", p, p, ks.typ)
			for rem := range n {
				fmt.Fprintf(&ddl, "CREATE TABLE %s_r%d PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d);\n", p, rem, p, n, rem)
			}
		}
	}
	if _, err := c.Exec(ctx, ddl.String()); err != nil { // simple protocol: one round trip
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var drop strings.Builder
		for s := range sets {
			for _, n := range moduli {
				fmt.Fprintf(&drop, "DROP TABLE IF EXISTS %s;", name(s, n))
			}
		}
		if _, err := c.Exec(context.Background(), drop.String()); err != nil {
			t.Errorf("dropping the tables: %v", err)
		}
	})

	// Insert every value (and a NULL key, i = -1) into every table, then
	// read back where each row went and what satisfies_hash_partition says
	// of the remainder Shard computed: two batches.
	ins := &pgx.Batch{}
	for s, ks := range sets {
		for _, n := range moduli {
			ins.Queue(fmt.Sprintf("INSERT INTO %s SELECT i - 1, v::%s FROM unnest($1::%s) WITH ORDINALITY AS u(v, i) UNION ALL SELECT -1, NULL",
				name(s, n), strings.Fields(ks.typ)[0], ks.array), ks.values)
		}
	}
	if err := c.SendBatch(ctx, ins).Close(); err != nil {
		t.Fatal(err)
	}
	sel := &pgx.Batch{}
	for s, ks := range sets {
		for _, n := range moduli {
			rems := make([]int32, ks.n)
			for i := range rems {
				rems[i] = int32(ks.shard(i, n))
			}
			p := name(s, n)
			sel.Queue(fmt.Sprintf(`SELECT t.i, t.tableoid::regclass::text,
				coalesce(satisfies_hash_partition('%s'::regclass, %d, (($1::int4[])[t.i + 1]), t.k), false)
				FROM %s t ORDER BY t.i`, p, n, p), rems)
		}
	}
	br := c.SendBatch(ctx, sel)
	rows := 0
	for s, ks := range sets {
		for _, n := range moduli {
			p := name(s, n)
			res, err := br.Query()
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			type row struct {
				I         int64
				Partition string
				Satisfies bool
			}
			got, err := pgx.CollectRows(res, pgx.RowToStructByPos[row])
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if len(got) != ks.n+1 {
				t.Fatalf("%s: %d rows, inserted %d", p, len(got), ks.n+1)
			}
			bad := 0
			for _, g := range got {
				rem, err := strconv.Atoi(g.Partition[strings.LastIndex(g.Partition, "_r")+2:])
				if err != nil {
					t.Fatalf("%s: partition %q", p, g.Partition)
				}
				if g.I == -1 {
					if rem != NullShard {
						t.Errorf("%s: the NULL key went to remainder %d, NullShard is %d", p, rem, NullShard)
					}
					continue
				}
				want := ks.shard(int(g.I), n)
				if rem != want || !g.Satisfies {
					if bad++; bad <= 5 {
						t.Errorf("%s (%s, modulus %d): value %d is in remainder %d, Shard says %d (satisfies_hash_partition: %v)",
							p, ks.typ, n, g.I, rem, want, g.Satisfies)
					}
				}
			}
			rows += len(got)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("compared the placement of %d rows: %d key types (%d bigint, %d integer, %d smallint, %d text values, %d uuid values) x moduli %v, each with a NULL key",
		rows, len(sets), len(ints), len(int4s), len(int2s), len(texts), len(uuids), moduli)
}

// tryCast defines pg_temp.try_cast(s, type): whether Postgres accepts s as
// input of type, its output text if so, its SQLSTATE and message if not.
const tryCast = `CREATE FUNCTION pg_temp.try_cast(s text, typ text, OUT ok bool, OUT val text, OUT code text, OUT msg text) AS $$
BEGIN
	EXECUTE format('SELECT ($1::%s)::text', typ) INTO val USING s;
	ok := true;
EXCEPTION WHEN others THEN
	ok := false; code := SQLSTATE; msg := SQLERRM;
END $$ LANGUAGE plpgsql`

// TestParseMatchesPostgres: ParseInt64 and ParseUUID accept exactly the
// texts Postgres's bigint and uuid input accept, with the same values, and
// refuse the others with Postgres's SQLSTATE and message.
func TestParseMatchesPostgres(t *testing.T) {
	ctx, c := connectPG(t)
	if _, err := c.Exec(ctx, tryCast); err != nil {
		t.Fatal(err)
	}
	r := testRand()
	type result struct {
		S    string
		OK   bool
		Val  *string
		Code *string
		Msg  *string
	}
	ask := func(typ string, texts []string) []result {
		rows, _ := c.Query(ctx, `SELECT u.s, r.ok, r.val, r.code, r.msg FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i),
			LATERAL pg_temp.try_cast(u.s, $2) r ORDER BY u.i`, texts, typ)
		res, err := pgx.CollectRows(rows, pgx.RowToStructByPos[result])
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	check := func(typ string, texts []string, parse func(string) (string, error)) (accepted int) {
		for _, pgr := range ask(typ, texts) {
			got, err := parse(pgr.S)
			var e *Error
			switch {
			case pgr.OK && err != nil:
				t.Errorf("%s %q: Postgres accepts it (%s), we say %v", typ, pgr.S, *pgr.Val, err)
			case pgr.OK && got != *pgr.Val:
				t.Errorf("%s %q: Postgres reads %s, we read %s", typ, pgr.S, *pgr.Val, got)
			case pgr.OK:
				accepted++
			case err == nil:
				t.Errorf("%s %q: Postgres refuses it (%s %s), we read %s", typ, pgr.S, *pgr.Code, *pgr.Msg, got)
			case !errors.As(err, &e):
				t.Errorf("%s %q: %v is not an *Error", typ, pgr.S, err)
			case string(e.Code) != *pgr.Code || e.Message != *pgr.Msg:
				t.Errorf("%s %q: Postgres says %s %s, we say %s %s", typ, pgr.S, *pgr.Code, *pgr.Msg, e.Code, e.Message)
			}
		}
		return accepted
	}
	ints := intTexts(r, 1000)
	iok := check("int8", ints, func(s string) (string, error) {
		v, err := ParseInt64(s)
		return formatInt(v), err
	})
	uuids := uuidTexts(r, 1000)
	uok := check("uuid", uuids, func(s string) (string, error) {
		u, err := ParseUUID(s)
		return FormatUUID(u), err
	})
	t.Logf("bigint input: %d texts (%d accepted); uuid input: %d texts (%d accepted)", len(ints), iok, len(uuids), uok)
}
