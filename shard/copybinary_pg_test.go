package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The binary COPY splitter against a real PostgreSQL 15: the cases' rows
// and errors are Postgres's, and random rows, encoded by the test or by
// Postgres itself, land where the splitter says, whole.

// binTableDDL creates table name (columns cols, of types types)
// PARTITION BY HASH (cols[key]) with n partitions name_r0, name_r1, ...
func binTableDDL(name string, cols, types []string, key, n int) string {
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = QuoteIdent(c) + " " + types[i]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s) PARTITION BY HASH (%s);\n", name, name, strings.Join(defs, ", "), QuoteIdent(cols[key]))
	for rem := range n {
		fmt.Fprintf(&b, "CREATE TABLE %s_r%d PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d);\n", name, rem, name, n, rem)
	}
	return b.String()
}

// perShardStreams is each shard's COPY data from the rows a split gave:
// the rows of AllShards (file header, trailer) in every stream.
func perShardStreams(rows []gotRow, shards int) [][]byte {
	streams := make([][]byte, shards)
	for _, g := range rows {
		for k := range streams {
			if g.shard == AllShards || g.shard == k {
				streams[k] = append(streams[k], g.data...)
			}
		}
	}
	return streams
}

// partitionCounts is how many rows each partition of table holds.
func partitionCounts(ctx context.Context, t *testing.T, c *pgx.Conn, table string, n int) []int {
	t.Helper()
	res, err := c.Query(ctx, "SELECT tableoid::regclass::text FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int, n)
	for _, p := range parts {
		got[remainderOf(t, p)]++
	}
	return got
}

// TestBinaryCopyCasesMatchPostgres: each case of TestBinaryCopySplitCases,
// COPYed in binary into a table PARTITION BY HASH (k) with 4 partitions,
// is refused by Postgres with the case's SQLSTATE, message and context
// (none for the file header's errors), or accepted with as many rows in
// each partition as the splitter sends each shard; then each shard's
// stream, COPYed into its partition alone, is accepted. A case whose key
// the splitter leaves to the shards (of the wrong length for its type, not
// UTF-8) is refused by Postgres, and by the partition of each shard that
// got such a row, with the same SQLSTATE.
func TestBinaryCopyCasesMatchPostgres(t *testing.T) {
	ctx, c := connectPGSchema(t, "bincases")
	refused, accepted, byShards := 0, 0, 0
	for _, bc := range binCases {
		tg := bc.target()
		types := make([]string, len(tg.Columns))
		for i := range types {
			types[i] = "text"
		}
		types[tg.Key] = bc.pgtype
		if bc.pgtype == "" {
			types[tg.Key] = pgType(tg.KeyType)
		}
		if _, err := c.Exec(ctx, binTableDDL("t", tg.Columns, types, tg.Key, caseShards)); err != nil {
			t.Fatalf("%s: %v", bc.name, err)
		}
		copySQL := func(table string) string {
			return "COPY " + table + " " + columnList(tg.Columns) + " FROM STDIN (FORMAT binary)"
		}
		_, pgErr := c.PgConn().CopyFrom(ctx, bytes.NewReader(bc.in), copySQL("t"))
		rows, err := splitPieces(bc.splitter(t), bc.in)
		var pe *pgconn.PgError
		switch {
		case bc.refused != "":
			if !errors.As(pgErr, &pe) || pe.Code != string(bc.refused) {
				t.Errorf("%s: Postgres says %v, want %s", bc.name, pgErr, bc.refused)
				continue
			}
			if err != nil {
				t.Errorf("%s: the splitter says %v, want the rows for the shards to refuse", bc.name, err)
				continue
			}
			if len(rows) != len(bc.rows) {
				t.Fatalf("%s: %d rows, the case has %d", bc.name, len(rows), len(bc.rows))
			}
			bad := make([]bool, caseShards) // the shards that got a bad row
			for i, g := range rows {
				if bc.rows[i].bad {
					bad[g.shard] = true
				}
			}
			for k, stream := range perShardStreams(rows, caseShards) {
				_, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(stream), copySQL(fmt.Sprintf("t_r%d", k)))
				var spe *pgconn.PgError
				switch {
				case bad[k] && (!errors.As(err, &spe) || spe.Code != pe.Code):
					t.Errorf("%s: shard %d, which got the bad row, says %v; Postgres said %s", bc.name, k, err, pe.Code)
				case !bad[k] && err != nil:
					t.Errorf("%s: shard %d refuses its rows: %v", bc.name, k, err)
				}
			}
			byShards++
		case errors.As(pgErr, &pe):
			refused++
			var e *Error
			switch {
			case !errors.As(err, &e):
				t.Errorf("%s: Postgres says %s %s (%s), the splitter %v", bc.name, pe.Code, pe.Message, pe.Where, err)
			case string(e.Code) != pe.Code || e.Message != pe.Message || e.Context != pe.Where:
				t.Errorf("%s: Postgres says %s %q (%q), the splitter %s %q (%q)", bc.name, pe.Code, pe.Message, pe.Where, e.Code, e.Message, e.Context)
			}
			if bc.err == nil {
				t.Errorf("%s: Postgres refuses it (%v), the case has no error", bc.name, pgErr)
			}
		case pgErr != nil:
			t.Fatalf("%s: %v", bc.name, pgErr)
		default:
			accepted++
			if err != nil || bc.err != nil {
				t.Errorf("%s: Postgres accepts it, the splitter says %v", bc.name, err)
				continue
			}
			want := make([]int, caseShards)
			for _, g := range rows {
				if g.shard != AllShards {
					want[g.shard]++
				}
			}
			if got := partitionCounts(ctx, t, c, "t", caseShards); !slices.Equal(got, want) {
				t.Errorf("%s: rows per partition: Postgres %v, the splitter %v", bc.name, got, want)
			}
			if _, err := c.Exec(ctx, "TRUNCATE t"); err != nil {
				t.Fatal(err)
			}
			for k, stream := range perShardStreams(rows, caseShards) {
				if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(stream), copySQL(fmt.Sprintf("t_r%d", k))); err != nil {
					t.Errorf("%s: shard %d's stream into partition %d: %v", bc.name, k, k, err)
				}
			}
			if got := partitionCounts(ctx, t, c, "t", caseShards); !slices.Equal(got, want) {
				t.Errorf("%s: rows per partition from the shards' streams: %v, want %v", bc.name, got, want)
			}
		}
	}
	t.Logf("%d cases: %d refused by Postgres as by the splitter, %d accepted and placed alike, %d refused by Postgres and by the shards given the bad rows",
		len(binCases), refused, accepted, byShards)
}

// TestBinaryCopyOptionsMatchPostgres: the options Postgres refuses with
// FORMAT binary are refused by NewRowSplitter with its SQLSTATE and
// message.
func TestBinaryCopyOptionsMatchPostgres(t *testing.T) {
	ctx, c := connectPG(t)
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS binopts; CREATE TEMP TABLE binopts (a int8, b text)"); err != nil {
		t.Fatal(err)
	}
	target := CopyTarget{Table: "binopts", Columns: []string{"a", "b"}, KeyType: KeyInteger}
	for _, oc := range []struct {
		sql  string
		opts CopyOptions
	}{
		{"", CopyOptions{}},
		{"delimiter ','", CopyOptions{Delimiter: str(",")}},
		{"null ''", CopyOptions{Null: str("")}},
		{"header", CopyOptions{Header: CopyHeaderTrue}},
		{"header match", CopyOptions{Header: CopyHeaderMatch}},
		{"quote '\"'", CopyOptions{Quote: str(`"`)}},
		{"escape '\\'", CopyOptions{Escape: str(`\`)}},
		{"force_null (a)", CopyOptions{ForceNull: true}},
		{"force_not_null (a)", CopyOptions{ForceNotNull: true}},
		{"delimiter ',', null 'x', header", CopyOptions{Delimiter: str(","), Null: str("x"), Header: CopyHeaderTrue}},
		{"null 'x', header", CopyOptions{Null: str("x"), Header: CopyHeaderTrue}},
	} {
		oc.opts.Format = CopyBinary
		sql := "COPY binopts (a, b) FROM STDIN (format binary"
		if oc.sql != "" {
			sql += ", " + oc.sql
		}
		sql += ")"
		_, pgErr := c.PgConn().CopyFrom(ctx, bytes.NewReader(cat(binHdr, binTrailerBytes)), sql)
		rs, err := NewRowSplitter(oc.opts, target, 2, 0)
		var pe *pgconn.PgError
		var e *Error
		switch {
		case pgErr == nil:
			if _, ok := rs.(*BinaryCopySplitter); !ok || err != nil {
				t.Errorf("%s: Postgres accepts it, NewRowSplitter says %T %v", sql, rs, err)
			}
		case !errors.As(pgErr, &pe):
			t.Fatalf("%s: %v", sql, pgErr)
		case !errors.As(err, &e) || string(e.Code) != pe.Code || e.Message != pe.Message:
			t.Errorf("%s: Postgres says %s %s, NewRowSplitter %v", sql, pe.Code, pe.Message, err)
		}
	}
}

// binKeyType is a key column type of the random test: its KeyType and how
// to make random values of it, in binary.
type binKeyType struct {
	pg  string
	typ KeyType
}

var binKeyTypes = []binKeyType{{"int8", KeyInteger}, {"int4", KeyInteger}, {"int2", KeyInteger}, {"text", KeyText}, {"varchar", KeyText}, {"uuid", KeyUUID}}

// randomBinKey is a random value of kt's type, in binary, and its Value.
func randomBinKey(r *rand.Rand, kt binKeyType, ints []int64, uuids [][16]byte) ([]byte, Value) {
	switch kt.pg {
	case "int8", "int4", "int2":
		bits := map[string]int{"int8": 64, "int4": 32, "int2": 16}[kt.pg]
		var v int64
		for {
			v = ints[r.IntN(len(ints))]
			if r.IntN(4) == 0 {
				v = int64(r.Uint64()) >> (64 - bits)
			}
			if bits == 64 || v >= -1<<(bits-1) && v < 1<<(bits-1) {
				break
			}
		}
		switch bits {
		case 16:
			return i2(int16(v)), Int(v)
		case 32:
			return i4(int32(v)), Int(v)
		}
		return i8(v), Int(v)
	case "uuid":
		u := uuids[r.IntN(len(uuids))]
		return u[:], UUID(u)
	}
	s := trickyText(r)
	if r.IntN(3) == 0 {
		s = randomUTF8(r, r.IntN(40))
	}
	return []byte(s), Text(s)
}

// TestBinaryCopySplitMatchesPostgres: random rows (id int8, k of each key
// type, a text, b bytea, at times NULL), encoded in binary by the test
// (columns in several orders, a file header with or without an extension,
// with or without the trailer) and by Postgres itself (COPY ... TO STDOUT
// (FORMAT binary)), COPYed into tables PARTITION BY HASH (k) with 2, 3 and
// 4 partitions: each row's partition is the shard the splitter gives it
// (fed in random pieces), and each shard's stream (the header, its tuples,
// the trailer), COPYed into that partition of a second such table alone,
// is accepted there (its partition constraint) and makes exactly the same
// rows.
func TestBinaryCopySplitMatchesPostgres(t *testing.T) {
	ctx, c := connectPGSchema(t, "binsplit")
	r := testRand()
	ints := intCorpus(r, 500)
	uuids := uuidCorpus(r, 500)
	const n = 300
	orders := [][]string{{"id", "k", "a", "b"}, {"k", "b", "a", "id"}, {"a", "b", "id", "k"}}
	loads, placed, nulls := 0, 0, 0
	for ti, kt := range binKeyTypes {
		cols := orders[ti%len(orders)]
		key := slices.Index(cols, "k")
		typeOf := map[string]string{"id": "int8", "k": kt.pg, "a": "text", "b": "bytea"}
		types := make([]string, len(cols))
		for i, col := range cols {
			types[i] = typeOf[col]
		}

		// The rows, encoded by the test.
		var data []byte
		if r.IntN(2) == 0 {
			data = binHdr
		} else {
			data = binHeaderOf(int32(r.IntN(1<<16)), randomUTF8(r, r.IntN(30)))
		}
		keys := make([]Value, n)
		for i := range n {
			fields := make(map[string][]byte)
			fields["id"] = i8(int64(i))
			if r.IntN(20) != 0 {
				fields["k"], keys[i] = randomBinKey(r, kt, ints, uuids)
			}
			if r.IntN(8) != 0 {
				fields["a"] = []byte(trickyText(r))
			}
			if r.IntN(8) != 0 {
				b := make([]byte, r.IntN(50))
				for j := range b {
					b[j] = byte(r.Uint32())
				}
				fields["b"] = b
			}
			var ordered [][]byte
			for _, col := range cols {
				ordered = append(ordered, fields[col])
			}
			data = append(data, tup(ordered...)...)
		}
		trailer := r.IntN(3) != 0
		if trailer {
			data = append(data, binTrailerBytes...)
		}

		for _, modulus := range []int{2, 3, 4} {
			name := fmt.Sprintf("%s key, columns %v, modulus %d", kt.pg, cols, modulus)
			if _, err := c.Exec(ctx, binTableDDL("src", cols, types, key, modulus)+binTableDDL("dst", cols, types, key, modulus)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			copySQL := func(table string, cols []string) string {
				return "COPY " + table + " " + columnList(cols) + " FROM STDIN (FORMAT binary)"
			}
			if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(data), copySQL("src", cols)); err != nil {
				t.Fatalf("%s: Postgres refuses the data: %v", name, err)
			}
			res, err := c.Query(ctx, "SELECT id, tableoid::regclass::text FROM src ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			type stored struct {
				ID        int64
				Partition string
			}
			src, err := pgx.CollectRows(res, pgx.RowToStructByPos[stored])
			if err != nil {
				t.Fatal(err)
			}
			if len(src) != n {
				t.Fatalf("%s: Postgres holds %d rows, %d generated", name, len(src), n)
			}
			partition := make([]int, n)
			for i, st := range src {
				if st.ID != int64(i) {
					t.Fatalf("%s: row %d has id %d", name, i, st.ID)
				}
				partition[i] = remainderOf(t, st.Partition)
				if partition[i] != keys[i].Shard(modulus) {
					t.Fatalf("%s: row %d (key %v) is in partition %d, its Value's shard is %d", name, i, keys[i], partition[i], keys[i].Shard(modulus))
				}
			}

			// The test's encoding and Postgres's own (other column order,
			// read from the table), split in random pieces.
			pgCols := slices.Clone(cols)
			slices.Reverse(pgCols)
			var pgData bytes.Buffer
			if _, err := c.PgConn().CopyTo(ctx, &pgData, "COPY (SELECT "+strings.Join(pgCols, ", ")+" FROM src ORDER BY id) TO STDOUT (FORMAT binary)"); err != nil {
				t.Fatal(err)
			}
			for _, enc := range []struct {
				name string
				cols []string
				data []byte
			}{{"the test's", cols, data}, {"Postgres's", pgCols, pgData.Bytes()}} {
				what := name + ", " + enc.name + " encoding"
				s, err := NewRowSplitter(CopyOptions{Format: CopyBinary},
					CopyTarget{Table: "src", Columns: enc.cols, Key: slices.Index(enc.cols, "k"), KeyType: kt.typ}, modulus, 0)
				if err != nil {
					t.Fatal(err)
				}
				var pieces [][]byte
				for rest := enc.data; len(rest) > 0; {
					k := min(1+r.IntN(300), len(rest))
					pieces = append(pieces, rest[:k])
					rest = rest[k:]
				}
				rows, err := splitPieces(s, pieces...)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				var shardOf []int
				for _, g := range rows {
					if g.shard != AllShards {
						shardOf = append(shardOf, g.shard)
					}
				}
				if len(shardOf) != n {
					t.Fatalf("%s: %d rows split, %d generated", what, len(shardOf), n)
				}
				bad := 0
				for i := range n {
					if shardOf[i] != partition[i] {
						if bad++; bad <= 5 {
							t.Errorf("%s: row %d (key %v) is in partition %d, the splitter says shard %d", what, i, keys[i], partition[i], shardOf[i])
						}
					}
					if keys[i].IsNull() && enc.name == "Postgres's" {
						nulls++
					}
				}

				// Each shard's stream into its partition of dst alone.
				if _, err := c.Exec(ctx, "TRUNCATE dst"); err != nil {
					t.Fatal(err)
				}
				for k, stream := range perShardStreams(rows, modulus) {
					if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(stream), copySQL(fmt.Sprintf("dst_r%d", k), enc.cols)); err != nil {
						t.Fatalf("%s: shard %d's stream into partition %d: %v", what, k, k, err)
					}
				}
				var missing, extra int
				if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM dst) x),
					(SELECT count(*) FROM (SELECT * FROM dst EXCEPT ALL SELECT * FROM src) y)`).Scan(&missing, &extra); err != nil {
					t.Fatal(err)
				}
				if missing != 0 || extra != 0 {
					t.Errorf("%s: the shards' rows differ from Postgres's: %d missing, %d extra", what, missing, extra)
				}
				loads++
				placed += n
			}
		}
	}
	t.Logf("%d splits (%d key types x moduli 2, 3, 4 x 2 encodings): %d rows placed as Postgres places them (%d with a NULL key) and copied back whole",
		loads, len(binKeyTypes), placed, nulls)
}
