package shard

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The COPY splitter against a real PostgreSQL 15: the cases' rows and
// errors are Postgres's, and random data loaded into hash-partitioned
// tables lands where the splitter says, whole.

// sqlLit is s as an escape string literal.
func sqlLit(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// optionsSQL is o as a COPY statement's option list, the key column being
// key.
func optionsSQL(o CopyOptions, key string) string {
	var opts []string
	if o.Format != CopyText {
		opts = append(opts, "format "+o.Format.String())
	}
	for _, p := range []struct {
		name string
		v    *string
	}{{"delimiter", o.Delimiter}, {"null", o.Null}, {"quote", o.Quote}, {"escape", o.Escape}} {
		if p.v != nil {
			opts = append(opts, p.name+" "+sqlLit(*p.v))
		}
	}
	switch o.Header {
	case CopyHeaderTrue:
		opts = append(opts, "header")
	case CopyHeaderMatch:
		opts = append(opts, "header match")
	}
	if o.ForceNull {
		opts = append(opts, "force_null ("+QuoteIdent(key)+")")
	}
	if o.ForceNotNull {
		opts = append(opts, "force_not_null ("+QuoteIdent(key)+")")
	}
	if len(opts) == 0 {
		return ""
	}
	return " (" + strings.Join(opts, ", ") + ")"
}

// pgType is the column type of a key type in these tests.
func pgType(t KeyType) string {
	return map[KeyType]string{KeyInteger: "int8", KeyText: "text", KeyUUID: "uuid"}[t]
}

// hashTableDDL creates table name (columns cols, all text but the key)
// PARTITION BY HASH (key) with n partitions name_r0, name_r1, ...
func hashTableDDL(name string, cols []string, key int, typ KeyType, n int) string {
	var defs []string
	for i, c := range cols {
		t := "text"
		if i == key {
			t = pgType(typ)
		}
		defs = append(defs, QuoteIdent(c)+" "+t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s) PARTITION BY HASH (%s);\n", name, name, strings.Join(defs, ", "), QuoteIdent(cols[key]))
	for rem := range n {
		fmt.Fprintf(&b, "CREATE TABLE %s_r%d PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d);\n", name, rem, name, n, rem)
	}
	return b.String()
}

func columnList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = QuoteIdent(c)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// remainderOf reads the remainder from a partition's name (..._r3).
func remainderOf(t *testing.T, partition string) int {
	t.Helper()
	var rem int
	if _, err := fmt.Sscanf(partition[strings.LastIndex(partition, "_r"):], "_r%d", &rem); err != nil {
		t.Fatalf("partition %q: %v", partition, err)
	}
	return rem
}

// TestCopyCasesMatchPostgres: each case of TestCopySplitCases, COPYed into
// a table PARTITION BY HASH (k) with 4 partitions, is refused by Postgres
// with the case's SQLSTATE, message, context (and the splitter's hint), or
// accepted with as many rows in each partition as the splitter sends each
// shard.
func TestCopyCasesMatchPostgres(t *testing.T) {
	ctx, c := connectPGSchema(t, "copycases")
	refused, accepted := 0, 0
	for _, cc := range copyCases {
		tg := cc.target()
		if _, err := c.Exec(ctx, hashTableDDL("t", tg.Columns, tg.Key, tg.KeyType, caseShards)); err != nil {
			t.Fatalf("%s: %v", cc.name, err)
		}
		sql := "COPY t " + columnList(tg.Columns) + " FROM STDIN" + optionsSQL(cc.opts, tg.Columns[tg.Key])
		_, pgErr := c.PgConn().CopyFrom(ctx, strings.NewReader(cc.in), sql)
		rows, err := splitPieces(cc.splitter(t), []byte(cc.in))
		var pe *pgconn.PgError
		if errors.As(pgErr, &pe) {
			refused++
			var e *Error
			switch {
			case !errors.As(err, &e):
				t.Errorf("%s: Postgres says %s %s (%s), the splitter %v", cc.name, pe.Code, pe.Message, pe.Where, err)
			case string(e.Code) != pe.Code || e.Message != pe.Message || e.Context != pe.Where:
				t.Errorf("%s: Postgres says %s %q (%q), the splitter %s %q (%q)", cc.name, pe.Code, pe.Message, pe.Where, e.Code, e.Message, e.Context)
			case e.Hint != "" && e.Hint != pe.Hint:
				t.Errorf("%s: Postgres hints %q, the splitter %q", cc.name, pe.Hint, e.Hint)
			}
			continue
		}
		if pgErr != nil {
			t.Fatalf("%s: %v", cc.name, pgErr)
		}
		accepted++
		if err != nil {
			t.Errorf("%s: Postgres accepts it, the splitter says %v", cc.name, err)
			continue
		}
		want := make([]int, caseShards)
		for _, r := range rows {
			if r.shard != AllShards {
				want[r.shard]++
			}
		}
		got := make([]int, caseShards)
		res, err := c.Query(ctx, "SELECT tableoid::regclass::text FROM t")
		if err != nil {
			t.Fatal(err)
		}
		parts, err := pgx.CollectRows(res, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			got[remainderOf(t, p)]++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: rows per partition: Postgres %v, the splitter %v", cc.name, got, want)
		}
	}
	t.Logf("%d cases: %d refused by Postgres as by the splitter, %d accepted and placed alike", len(copyCases), refused, accepted)
}

// TestCopyOptionsMatchPostgres: Postgres refuses the options of
// copyOptionCases with the SQLSTATE and message the splitter gives, and
// accepts the others.
func TestCopyOptionsMatchPostgres(t *testing.T) {
	ctx, c := connectPG(t)
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS copyopts; CREATE TEMP TABLE copyopts (a int8, b text)"); err != nil {
		t.Fatal(err)
	}
	for _, oc := range copyOptionCases {
		if oc.unsupported {
			continue
		}
		data := ""
		if oc.opts.Header != CopyHeaderFalse { // a header line HEADER MATCH accepts
			d := "\t"
			if oc.opts.Format == CopyCSV {
				d = ","
			}
			if oc.opts.Delimiter != nil {
				d = *oc.opts.Delimiter
			}
			data = "a" + d + "b\n"
		}
		sql := "COPY copyopts (a, b) FROM STDIN"
		if oc.sql != "" {
			sql += " (" + oc.sql + ")"
		}
		_, err := c.PgConn().CopyFrom(ctx, strings.NewReader(data), sql)
		var pe *pgconn.PgError
		switch {
		case oc.code == "" && err != nil:
			t.Errorf("%s: Postgres says %v", sql, err)
		case oc.code != "" && !errors.As(err, &pe):
			t.Errorf("%s: Postgres says %v, want %s %s", sql, err, oc.code, oc.msg)
		case oc.code != "" && (pe.Code != string(oc.code) || pe.Message != oc.msg):
			t.Errorf("%s: Postgres says %s %s, the splitter %s %s", sql, pe.Code, pe.Message, oc.code, oc.msg)
		}
	}
}

// copyVariant is a way of writing COPY data: options, line terminator, the
// COPY's column order.
type copyVariant struct {
	name string
	opts CopyOptions
	eol  string
	cols []string // a permutation of id, k, a, b
}

var copyVariants = []copyVariant{
	{"text", CopyOptions{}, "\n", []string{"id", "k", "a", "b"}},
	{"text | nil crlf header", CopyOptions{Delimiter: str("|"), Null: str("nil"), Header: CopyHeaderTrue}, "\r\n", []string{"k", "id", "a", "b"}},
	{"text cr", CopyOptions{Null: str("")}, "\r", []string{"id", "a", "b", "k"}},
	{"csv", CopyOptions{Format: CopyCSV}, "\n", []string{"id", "a", "b", "k"}},
	{"csv ; ' \\ NULL crlf header", CopyOptions{Format: CopyCSV, Delimiter: str(";"), Quote: str("'"), Escape: str(`\`), Null: str("NULL"), Header: CopyHeaderTrue}, "\r\n", []string{"id", "k", "a", "b"}},
	{"csv | cr force_null", CopyOptions{Format: CopyCSV, Delimiter: str("|"), ForceNull: true}, "\r", []string{"k", "id", "a", "b"}},
}

// trickyText is a random text value made of pieces COPY must get right:
// delimiters, quotes, backslashes, newlines, escapes' look-alikes,
// non-ASCII text, the end marker, NULL strings.
func trickyText(r *rand.Rand) string {
	pieces := []string{"a", "Z", " ", "\t", "\n", "\r", "\r\n", ",", ";", "|", `"`, `'`, `\`, `\\`, `\.`, `\N`, "N", "NULL", "nil",
		"é", "日本", "🐘", "x41", "101", ".", "-", "0", "42", "\x01", "\x7f"}
	if r.IntN(10) == 0 {
		return ""
	}
	var b strings.Builder
	for range 1 + r.IntN(8) {
		if r.IntN(4) == 0 {
			b.WriteString(randomUTF8(r, 1+r.IntN(6)))
		} else {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
	}
	return b.String()
}

// copyValue is a column's value in the generated data (null: NULL).
type copyValue struct {
	s    string
	null bool
}

// encodeText writes v as a text-format field: escaped where it must be,
// and at random where it may be (octal, hex, a backslash before a plain
// character).
func encodeText(r *rand.Rand, v copyValue, o CopyOptions) string {
	null, delim := `\N`, byte('\t')
	if o.Null != nil {
		null = *o.Null
	}
	if o.Delimiter != nil {
		delim = (*o.Delimiter)[0]
	}
	if v.null {
		return null
	}
	var b strings.Builder
	for i := 0; i < len(v.s); i++ {
		c := v.s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == delim:
			if r.IntN(2) == 0 {
				b.WriteByte('\\')
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, `\%03o`, c)
			}
		case c < 0x80 && r.IntN(12) == 0:
			if r.IntN(2) == 0 { // always two or three digits: a digit after them is data
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				fmt.Fprintf(&b, `\%03o`, c)
			}
		case c == '\t' && r.IntN(2) == 0:
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()
	if s == null { // a value that reads as the NULL string: escape its first byte
		if v.s == "" {
			panic("BUG: an empty string cannot be written in text format when NULL is ''")
		}
		s = fmt.Sprintf(`\%03o`, v.s[0]) + s[1:]
	}
	return s
}

// encodeCSV writes v as a CSV field: quoted where it must be, and at
// random where it may be.
func encodeCSV(r *rand.Rand, v copyValue, o CopyOptions) string {
	null, delim, quote := "", ",", `"`
	if o.Null != nil {
		null = *o.Null
	}
	if o.Delimiter != nil {
		delim = *o.Delimiter
	}
	if o.Quote != nil {
		quote = *o.Quote
	}
	escape := quote
	if o.Escape != nil {
		escape = *o.Escape
	}
	if v.null {
		return null
	}
	if !(v.s == null || v.s == "" || strings.ContainsAny(v.s, delim+quote+escape+"\r\n") || strings.HasPrefix(v.s, `\.`) || r.IntN(3) == 0) {
		return v.s
	}
	s := v.s
	if escape != quote {
		s = strings.ReplaceAll(s, escape, escape+escape)
	}
	return quote + strings.ReplaceAll(s, quote, escape+quote) + quote
}

// generateCopy makes n rows of random values (row i has id i) and their
// COPY data written as variant says. The key's value is of type typ; NULL
// at times, as are a and b.
func generateCopy(r *rand.Rand, v copyVariant, typ KeyType, n int) (rows [][4]copyValue, data []byte) {
	ints := intCorpus(r, n)
	uuids := uuidCorpus(r, n)
	var b bytes.Buffer
	enc := encodeText
	delim := "\t"
	if v.opts.Format == CopyCSV {
		enc, delim = encodeCSV, ","
	}
	if v.opts.Delimiter != nil {
		delim = *v.opts.Delimiter
	}
	if v.opts.Header != CopyHeaderFalse {
		b.WriteString(strings.Join(v.cols, delim) + v.eol)
	}
	for i := range n {
		row := [4]copyValue{{s: formatInt(int64(i))}} // id, k, a, b
		switch {
		case r.IntN(20) == 0:
			row[1].null = true
		case typ == KeyInteger:
			k := formatInt(ints[r.IntN(len(ints))])
			if r.IntN(5) == 0 {
				k = " " + k + " "
			}
			row[1].s = k
		case typ == KeyText:
			row[1].s = trickyText(r)
		case typ == KeyUUID:
			u := FormatUUID(uuids[r.IntN(len(uuids))])
			switch r.IntN(4) { // forms Postgres's uuid input accepts
			case 0:
				u = strings.ToUpper(u)
			case 1:
				u = "{" + u + "}"
			case 2:
				u = strings.ReplaceAll(u, "-", "")
			}
			row[1].s = u
		}
		for j := 2; j < 4; j++ {
			row[j] = copyValue{s: trickyText(r), null: r.IntN(8) == 0}
		}
		if v.opts.Format == CopyText && v.opts.Null != nil && *v.opts.Null == "" {
			for j := 1; j < 4; j++ { // NULL '' leaves no way to write an empty string
				if row[j].s == "" && !row[j].null {
					row[j].s = "e"
				}
			}
		}
		if v.opts.ForceNull && !row[1].null && typ == KeyText && r.IntN(10) == 0 {
			row[1].s = "" // a quoted empty string that FORCE_NULL makes NULL
		}
		rows = append(rows, row)
		idx := map[string]int{"id": 0, "k": 1, "a": 2, "b": 3}
		for c, col := range v.cols {
			if c > 0 {
				b.WriteString(delim)
			}
			b.WriteString(enc(r, row[idx[col]], v.opts))
		}
		if i < n-1 || r.IntN(2) == 0 { // the last line without its terminator, at times
			b.WriteString(v.eol)
		}
	}
	return rows, b.Bytes()
}

// TestCopySplitMatchesPostgres: random rows with tricky text, written in
// each variant's format, COPYed into tables PARTITION BY HASH (k) of each
// key type with 2, 3 and 4 partitions: each row's partition is the shard
// the splitter gives it (fed in random pieces), and each shard's rows (the
// header first), COPYed into that partition of a second such table, are
// accepted there (its partition constraint) and make exactly the same
// rows.
func TestCopySplitMatchesPostgres(t *testing.T) {
	ctx, c := connectPGSchema(t, "copysplit")
	r := testRand()
	const n = 300
	loads, compared, nulls := 0, 0, 0
	for _, typ := range []KeyType{KeyInteger, KeyText, KeyUUID} {
		for _, v := range copyVariants {
			rows, data := generateCopy(r, v, typ, n)
			key := slices.Index(v.cols, "k")
			cols := v.cols
			for _, modulus := range []int{2, 3, 4} {
				name := fmt.Sprintf("%s %s modulus %d", pgType(typ), v.name, modulus)
				ddl := hashTableDDL("src", []string{"id", "k", "a", "b"}, 1, typ, modulus) +
					hashTableDDL("dst", []string{"id", "k", "a", "b"}, 1, typ, modulus)
				if _, err := c.Exec(ctx, ddl); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				opts := optionsSQL(v.opts, "k")
				if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY src "+columnList(cols)+" FROM STDIN"+opts); err != nil {
					t.Fatalf("%s: Postgres refuses the data: %v", name, err)
				}

				// Split it, in random pieces.
				s, err := NewCopySplitter(v.opts, CopyTarget{Table: "src", Columns: cols, Key: key, KeyType: typ}, modulus, 0)
				if err != nil {
					t.Fatal(err)
				}
				var pieces [][]byte
				for rest := data; len(rest) > 0; {
					k := min(1+r.IntN(200), len(rest))
					pieces = append(pieces, rest[:k])
					rest = rest[k:]
				}
				got, err := splitPieces(s, pieces...)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				perShard := make([][]byte, modulus)
				var shardOf []int
				for _, g := range got {
					if g.shard == AllShards {
						for k := range perShard {
							perShard[k] = append(perShard[k], g.data...)
						}
						continue
					}
					shardOf = append(shardOf, g.shard)
					perShard[g.shard] = append(perShard[g.shard], g.data...)
				}
				if len(shardOf) != n {
					t.Fatalf("%s: %d rows split, %d generated", name, len(shardOf), n)
				}

				// Where Postgres put each row, and what it read.
				res, err := c.Query(ctx, "SELECT id::int8, tableoid::regclass::text, k::text, a, b FROM src ORDER BY id::int8")
				if err != nil {
					t.Fatal(err)
				}
				type stored struct {
					ID        int64
					Partition string
					K, A, B   *string
				}
				src, err := pgx.CollectRows(res, pgx.RowToStructByPos[stored])
				if err != nil {
					t.Fatal(err)
				}
				if len(src) != n {
					t.Fatalf("%s: Postgres holds %d rows, %d generated", name, len(src), n)
				}
				bad := 0
				for i, st := range src {
					want := rows[i]
					if st.ID != int64(i) {
						t.Fatalf("%s: row %d has id %d", name, i, st.ID)
					}
					if rem := remainderOf(t, st.Partition); rem != shardOf[i] {
						if bad++; bad <= 5 {
							t.Errorf("%s: row %d (key %q) is in partition %d, the splitter says shard %d", name, i, want[1].s, rem, shardOf[i])
						}
					}
					keyNull := want[1].null || v.opts.ForceNull && want[1].s == ""
					if keyNull {
						nulls++
					}
					// What Postgres read is what was generated (the encoders are right).
					for j, pv := range []*string{st.K, st.A, st.B} {
						w := want[j+1]
						isNull := w.null || j == 0 && keyNull
						if isNull != (pv == nil) || pv != nil && j > 0 && *pv != w.s || pv != nil && j == 0 && typ == KeyText && *pv != w.s {
							t.Fatalf("%s: row %d column %d: Postgres read %v, generated %+v", name, i, j+1, deref(pv), w)
						}
					}
				}

				// Each shard's bytes into its partition of dst.
				for k, b := range perShard {
					sql := fmt.Sprintf("COPY dst_r%d %s FROM STDIN%s", k, columnList(cols), opts)
					if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(b), sql); err != nil {
						t.Fatalf("%s: shard %d's rows into partition %d: %v", name, k, k, err)
					}
				}
				var missing, extra int
				if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM dst) x),
					(SELECT count(*) FROM (SELECT * FROM dst EXCEPT ALL SELECT * FROM src) y)`).Scan(&missing, &extra); err != nil {
					t.Fatal(err)
				}
				if missing != 0 || extra != 0 {
					t.Errorf("%s: the shards' rows differ from Postgres's: %d missing, %d extra", name, missing, extra)
				}
				loads++
				compared += n
			}
		}
	}
	t.Logf("%d loads (%d variants x 3 key types x moduli 2, 3, 4): %d rows placed as Postgres places them (%d with a NULL key) and copied back whole",
		loads, len(copyVariants), compared, nulls)
}

func deref(p *string) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *p)
}
