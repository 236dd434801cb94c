package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
)

// Binary COPY data for the tests.

func be16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func i2(v int16) []byte   { return be16(v) }
func i4(v int32) []byte   { return be32(v) }
func i8(v int64) []byte   { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func cat(bs ...[]byte) []byte {
	return bytes.Join(bs, nil)
}

// binHeader is a file header: the signature, flags, the extension.
func binHeaderOf(flags int32, ext string) []byte {
	return cat([]byte(copySignature), be32(flags), be32(int32(len(ext))), []byte(ext))
}

// binHdr is the file header Postgres writes (and pgx): no flags, no
// extension.
var binHdr = binHeaderOf(0, "")

// binTrailerBytes is the trailer: a field count of -1.
var binTrailerBytes = be16(-1)

// tup is a tuple of the fields (nil: NULL).
func tup(fields ...[]byte) []byte {
	b := be16(int16(len(fields)))
	for _, f := range fields {
		if f == nil {
			b = append(b, be32(-1)...)
			continue
		}
		b = append(b, be32(int32(len(f)))...)
		b = append(b, f...)
	}
	return b
}

func txt(s string) []byte { return []byte(s) }

// mustUUID is u's 16 bytes.
func mustUUID(s string) []byte {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u[:]
}

// binWant is a row a binary case expects: its bytes, its shard (from its
// key's Value, or given), its line.
type binWant struct {
	data  []byte
	key   Value
	shard int  // the shard, when set is true (AllShards, or 0 for a key of the wrong length)
	set   bool // shard is given, not the key's
	line  int64
	bad   bool // a row Postgres refuses (the value of its key): its shard refuses it
}

func bh(data []byte) binWant { return binWant{data: data, shard: AllShards, set: true} }
func btr(line int64) binWant {
	return binWant{data: binTrailerBytes, shard: AllShards, set: true, line: line}
}
func bk(data []byte, k Value, l int64) binWant { return binWant{data: data, key: k, line: l} }
func bbad(data []byte, k Value, l int64) binWant {
	return binWant{data: data, key: k, line: l, bad: true}
}
func b0(data []byte, l int64) binWant {
	return binWant{data: data, shard: 0, set: true, line: l, bad: true}
}

// binCase is binary COPY data and what Postgres makes of it. The table is
// t, its columns cols (default id, k, v), the key k at index key (default
// 1), of type typ (default integer) and, in Postgres, of type pgtype
// (default pgType(typ)); the other columns are text. 4 shards.
type binCase struct {
	name   string
	cols   []string
	key    int
	typ    KeyType
	pgtype string
	in     []byte
	rows   []binWant
	err    *Error
	// refused: Postgres refuses the data with this SQLSTATE for a value
	// the splitter leaves to the shards (the rows marked bad), which the
	// shard holding such a row refuses too.
	refused sqlstate.Code
	// ended: the splitter has ended before Finish (the trailer).
	ended bool
}

func (c binCase) target() CopyTarget {
	t := CopyTarget{Table: "t", Columns: c.cols, Key: c.key, KeyType: c.typ}
	if t.Columns == nil {
		t.Columns, t.Key = []string{"id", "k", "v"}, 1
	}
	if t.KeyType == 0 {
		t.KeyType = KeyInteger
	}
	return t
}

func (c binCase) splitter(t testing.TB) RowSplitter {
	t.Helper()
	s, err := NewRowSplitter(CopyOptions{Format: CopyBinary}, c.target(), caseShards, 0)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return s
}

func (c binCase) want() []gotRow {
	var want []gotRow
	for _, r := range c.rows {
		g := gotRow{data: string(r.data), shard: r.shard, line: r.line}
		if !r.set {
			g.shard = r.key.Shard(caseShards)
		}
		want = append(want, g)
	}
	return want
}

func (c binCase) check(t *testing.T, how string, got []gotRow, err error) bool {
	t.Helper()
	want := c.want()
	if c.err == nil {
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, how, err)
			return false
		}
	} else {
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s (%s): error %v, want %s %s (%s)", c.name, how, err, c.err.Code, c.err.Message, c.err.Context)
			return false
		}
		if e.Code != c.err.Code || e.Message != c.err.Message || e.Context != c.err.Context || !errors.Is(err, ErrCopyData) {
			t.Errorf("%s (%s): error %s %q (%q), want %s %q (%q)", c.name, how, e.Code, e.Message, e.Context, c.err.Code, c.err.Message, c.err.Context)
			return false
		}
		if len(want) == 0 {
			return true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s (%s):\n got %v\nwant %v", c.name, how, got, want)
		return false
	}
	return true
}

var (
	bt1 = tup(txt("1"), i8(10), txt("a"))
	bt2 = tup(txt("2"), i8(-20), txt("b"))
	bt3 = tup(txt("3"), nil, nil)
	uid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
)

func badErr(msg, ctx string) *Error { return copyErr(sqlstate.BadCopyFileFormat, msg, ctx) }

var binCases = []binCase{
	// The file header.
	{name: "empty", in: nil, err: badErr("COPY file signature not recognized", "")},
	{name: "signature cut", in: []byte(copySignature[:5]), err: badErr("COPY file signature not recognized", "")},
	{name: "signature cut before its NUL", in: []byte(copySignature[:10]), err: badErr("COPY file signature not recognized", "")},
	{name: "signature wrong", in: cat([]byte("PGCOPY\n\377\r\n\001"), be32(0), be32(0)), err: badErr("COPY file signature not recognized", "")},
	{name: "text data", in: []byte("1\t10\tv\n"), err: badErr("COPY file signature not recognized", "")},
	{name: "missing flags", in: []byte(copySignature), err: badErr("invalid COPY file header (missing flags)", "")},
	{name: "flags cut", in: cat([]byte(copySignature), []byte{0, 0, 0}), err: badErr("invalid COPY file header (missing flags)", "")},
	{name: "with oids", in: binHeaderOf(1<<16, ""), err: badErr("invalid COPY file header (WITH OIDS)", "")},
	{name: "with oids and length missing", in: cat([]byte(copySignature), be32(1<<16)), err: badErr("invalid COPY file header (WITH OIDS)", "")},
	{name: "critical flag", in: binHeaderOf(1<<17, ""), err: badErr("unrecognized critical flags in COPY file header", "")},
	{name: "critical high bit", in: binHeaderOf(-1<<31, ""), err: badErr("unrecognized critical flags in COPY file header", "")},
	{name: "critical flag and oids", in: binHeaderOf(3<<16, ""), err: badErr("invalid COPY file header (WITH OIDS)", "")},
	{name: "low flags are not critical", in: cat(binHeaderOf(0xffff, ""), bt1),
		rows: []binWant{bh(binHeaderOf(0xffff, "")), bk(bt1, Int(10), 1)}},
	{name: "missing length", in: cat([]byte(copySignature), be32(0)), err: badErr("invalid COPY file header (missing length)", "")},
	{name: "length cut", in: cat([]byte(copySignature), be32(0), []byte{0, 0}), err: badErr("invalid COPY file header (missing length)", "")},
	{name: "negative length", in: cat([]byte(copySignature), be32(0), be32(-1), bt1), err: badErr("invalid COPY file header (missing length)", "")},
	{name: "extension cut", in: cat([]byte(copySignature), be32(0), be32(5), txt("ab")), err: badErr("invalid COPY file header (wrong length)", "")},
	{name: "extension", in: cat(binHeaderOf(0, "ext\x00\xff"), bt1, bt2),
		rows: []binWant{bh(binHeaderOf(0, "ext\x00\xff")), bk(bt1, Int(10), 1), bk(bt2, Int(-20), 2)}},
	{name: "extension like a tuple", in: cat(binHeaderOf(0, string(bt2)), bt1),
		rows: []binWant{bh(binHeaderOf(0, string(bt2))), bk(bt1, Int(10), 1)}},
	{name: "header only", in: binHdr, rows: []binWant{bh(binHdr)}},
	{name: "header and one byte", in: cat(binHdr, []byte{0}), rows: []binWant{bh(binHdr)}},

	// Tuples, by key type.
	{name: "bigint keys", in: cat(binHdr, bt1, bt2, binTrailerBytes), ended: true,
		rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1), bk(bt2, Int(-20), 2), btr(3)}},
	{name: "bigint edges", in: cat(binHdr, tup(txt("1"), i8(-1<<63), txt("")), tup(txt("2"), i8(1<<63-1), txt("")), tup(txt("3"), i8(0), txt(""))),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), i8(-1<<63), txt("")), Int(-1<<63), 1), bk(tup(txt("2"), i8(1<<63-1), txt("")), Int(1<<63-1), 2),
			bk(tup(txt("3"), i8(0), txt("")), Int(0), 3)}},
	{name: "integer keys", pgtype: "int4", in: cat(binHdr, tup(txt("1"), i4(-1<<31), txt("x")), tup(txt("2"), i4(1<<31-1), txt("y")), tup(txt("3"), i4(7), nil)),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), i4(-1<<31), txt("x")), Int(-1<<31), 1), bk(tup(txt("2"), i4(1<<31-1), txt("y")), Int(1<<31-1), 2),
			bk(tup(txt("3"), i4(7), nil), Int(7), 3)}},
	{name: "smallint keys", pgtype: "int2", in: cat(binHdr, tup(txt("1"), i2(-1<<15), txt("x")), tup(txt("2"), i2(1<<15-1), txt("y")), tup(txt("3"), i2(-1), nil)),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), i2(-1<<15), txt("x")), Int(-1<<15), 1), bk(tup(txt("2"), i2(1<<15-1), txt("y")), Int(1<<15-1), 2),
			bk(tup(txt("3"), i2(-1), nil), Int(-1), 3)}},
	{name: "text keys", typ: KeyText, in: cat(binHdr, tup(txt("1"), txt("customer-42"), txt("v")), tup(txt("2"), txt(""), txt("v")),
		tup(txt("3"), txt("日本 🐘\n\t\\N"), txt("v")), binTrailerBytes), ended: true,
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), txt("customer-42"), txt("v")), Text("customer-42"), 1), bk(tup(txt("2"), txt(""), txt("v")), Text(""), 2),
			bk(tup(txt("3"), txt("日本 🐘\n\t\\N"), txt("v")), Text("日本 🐘\n\t\\N"), 3), btr(4)}},
	{name: "varchar keys", typ: KeyText, pgtype: "varchar(20)", in: cat(binHdr, tup(txt("1"), txt("abc"), txt("v"))),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), txt("abc"), txt("v")), Text("abc"), 1)}},
	{name: "long text key", typ: KeyText, in: cat(binHdr, tup(txt("1"), txt(strings.Repeat("é", 3000)), txt("v"))),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), txt(strings.Repeat("é", 3000)), txt("v")), Text(strings.Repeat("é", 3000)), 1)}},
	{name: "uuid keys", typ: KeyUUID, in: cat(binHdr, tup(txt("1"), mustUUID(uid), txt("v")), tup(txt("2"), make([]byte, 16), txt("v"))),
		rows: []binWant{bh(binHdr), bk(tup(txt("1"), mustUUID(uid), txt("v")), UUID([16]byte(mustUUID(uid))), 1),
			bk(tup(txt("2"), make([]byte, 16), txt("v")), UUID([16]byte{}), 2)}},
	{name: "null keys", in: cat(binHdr, bt3, bt1, bt3), rows: []binWant{bh(binHdr), bk(bt3, Null(), 1), bk(bt1, Int(10), 2), bk(bt3, Null(), 3)}},
	{name: "null text key", typ: KeyText, in: cat(binHdr, tup(nil, nil, nil)), rows: []binWant{bh(binHdr), bk(tup(nil, nil, nil), Null(), 1)}},
	{name: "null uuid key", typ: KeyUUID, in: cat(binHdr, tup(txt("1"), nil, txt("v"))), rows: []binWant{bh(binHdr), bk(tup(txt("1"), nil, txt("v")), Null(), 1)}},
	{name: "key first", cols: []string{"k", "a", "b"}, key: 0, in: cat(binHdr, tup(i8(5), txt("a"), txt("b"))),
		rows: []binWant{bh(binHdr), bk(tup(i8(5), txt("a"), txt("b")), Int(5), 1)}},
	{name: "key last", cols: []string{"a", "b", "k"}, key: 2, typ: KeyText, in: cat(binHdr, tup(txt("a"), nil, txt("z")), tup(nil, nil, txt("y"))),
		rows: []binWant{bh(binHdr), bk(tup(txt("a"), nil, txt("z")), Text("z"), 1), bk(tup(nil, nil, txt("y")), Text("y"), 2)}},
	{name: "key alone", cols: []string{"k"}, key: 0, in: cat(binHdr, tup(i8(1)), tup(i8(2)), tup(i8(3)), binTrailerBytes), ended: true,
		rows: []binWant{bh(binHdr), bk(tup(i8(1)), Int(1), 1), bk(tup(i8(2)), Int(2), 2), bk(tup(i8(3)), Int(3), 3), btr(4)}},
	{name: "empty fields", in: cat(binHdr, tup(txt(""), i8(1), txt(""))), rows: []binWant{bh(binHdr), bk(tup(txt(""), i8(1), txt("")), Int(1), 1)}},

	// Keys of the wrong length: shard 0, refused there by Postgres.
	{name: "integer key of 3 bytes", in: cat(binHdr, bt1, tup(txt("2"), []byte{1, 2, 3}, txt("v"))), refused: sqlstate.ProtocolViolation,
		rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1), b0(tup(txt("2"), []byte{1, 2, 3}, txt("v")), 2)}},
	{name: "integer key of 0 bytes", in: cat(binHdr, tup(txt("1"), []byte{}, txt("v"))), refused: sqlstate.ProtocolViolation,
		rows: []binWant{bh(binHdr), b0(tup(txt("1"), []byte{}, txt("v")), 1)}},
	{name: "integer key of 9 bytes", in: cat(binHdr, tup(txt("1"), make([]byte, 9), txt("v"))), refused: sqlstate.InvalidBinaryRepresentation,
		rows: []binWant{bh(binHdr), b0(tup(txt("1"), make([]byte, 9), txt("v")), 1)}},
	{name: "uuid key of 15 bytes", typ: KeyUUID, in: cat(binHdr, tup(txt("1"), make([]byte, 15), txt("v"))), refused: sqlstate.ProtocolViolation,
		rows: []binWant{bh(binHdr), b0(tup(txt("1"), make([]byte, 15), txt("v")), 1)}},
	{name: "uuid key of 17 bytes", typ: KeyUUID, in: cat(binHdr, tup(txt("1"), make([]byte, 17), txt("v"))), refused: sqlstate.InvalidBinaryRepresentation,
		rows: []binWant{bh(binHdr), b0(tup(txt("1"), make([]byte, 17), txt("v")), 1)}},
	// A length of another integer type: the value's shard, and Postgres
	// refuses it anyway.
	{name: "bigint bytes for a smallint column", pgtype: "int2", in: cat(binHdr, tup(txt("1"), i8(7), txt("v"))), refused: sqlstate.InvalidBinaryRepresentation,
		rows: []binWant{bh(binHdr), bbad(tup(txt("1"), i8(7), txt("v")), Int(7), 1)}},
	{name: "smallint bytes for a bigint column", in: cat(binHdr, tup(txt("1"), i2(7), txt("v"))), refused: sqlstate.ProtocolViolation,
		rows: []binWant{bh(binHdr), bbad(tup(txt("1"), i2(7), txt("v")), Int(7), 1)}},
	{name: "text key not UTF-8", typ: KeyText, in: cat(binHdr, tup(txt("1"), txt("a\xff"), txt("v"))), refused: sqlstate.CharacterNotInRepertoire,
		rows: []binWant{bh(binHdr), bbad(tup(txt("1"), txt("a\xff"), txt("v")), Text("a\xff"), 1)}},

	// The field count.
	{name: "too few fields", in: cat(binHdr, bt1, tup(txt("2"), i8(2))), rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1)},
		err: badErr("row field count is 2, expected 3", "COPY t, line 2")},
	{name: "too many fields", in: cat(binHdr, tup(txt("1"), i8(2), txt("v"), txt("w"))), err: badErr("row field count is 4, expected 3", "COPY t, line 1")},
	{name: "no fields", in: cat(binHdr, be16(0)), err: badErr("row field count is 0, expected 3", "COPY t, line 1")},
	{name: "negative field count", in: cat(binHdr, be16(-2)), err: badErr("row field count is -2, expected 3", "COPY t, line 1")},
	{name: "field count cut short", in: cat(binHdr, be16(2)), err: badErr("row field count is 2, expected 3", "COPY t, line 1")},
	{name: "field count -32768", in: cat(binHdr, be16(-1<<15), make([]byte, 40)), err: badErr("row field count is -32768, expected 3", "COPY t, line 1")},

	// Field sizes.
	{name: "field size -2", in: cat(binHdr, be16(3), be32(1), txt("1"), be32(-2)), err: badErr("invalid field size", "COPY t, line 1, column k")},
	{name: "field size min int32", in: cat(binHdr, bt1, be16(3), be32(-1<<31)), err: badErr("invalid field size", "COPY t, line 2, column id")},
	{name: "field size in the last column", in: cat(binHdr, be16(3), be32(1), txt("1"), be32(8), i8(1), be32(-7), txt("rest")),
		err: badErr("invalid field size", "COPY t, line 1, column v")},

	// The end of the data.
	{name: "one byte after a tuple", in: cat(binHdr, bt1, []byte{0}), rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1)}},
	{name: "one byte 0xff after a tuple", in: cat(binHdr, bt1, []byte{0xff}), rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1)}},
	{name: "no trailer", in: cat(binHdr, bt1, bt2), rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1), bk(bt2, Int(-20), 2)}},
	{name: "eof after the field count", in: cat(binHdr, bt1, be16(3)), err: badErr("unexpected EOF in COPY data", "COPY t, line 2, column id")},
	{name: "eof in a field size", in: cat(binHdr, be16(3), be32(1), txt("1"), []byte{0, 0}), err: badErr("unexpected EOF in COPY data", "COPY t, line 1, column k")},
	{name: "eof in the key", in: cat(binHdr, be16(3), be32(1), txt("1"), be32(8), []byte{1, 2, 3}), err: badErr("unexpected EOF in COPY data", "COPY t, line 1, column k")},
	{name: "eof before the last field", in: cat(binHdr, be16(3), be32(1), txt("1"), be32(8), i8(3)), err: badErr("unexpected EOF in COPY data", "COPY t, line 1, column v")},
	{name: "eof in the last field", in: cat(binHdr, be16(3), be32(1), txt("1"), be32(8), i8(3), be32(5), txt("abcd")),
		err: badErr("unexpected EOF in COPY data", "COPY t, line 1, column v")},
	{name: "eof in a large field", in: cat(binHdr, be16(3), be32(1<<20), txt("abc")),
		err: badErr("unexpected EOF in COPY data", "COPY t, line 1, column id")},

	// The trailer.
	{name: "trailer only", in: cat(binHdr, binTrailerBytes), ended: true, rows: []binWant{bh(binHdr), btr(1)}},
	{name: "data after the trailer", in: cat(binHdr, bt1, binTrailerBytes, []byte{0}), rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1), btr(2)},
		err: badErr("received copy data after EOF marker", "COPY t, line 2")},
	{name: "a tuple after the trailer", in: cat(binHdr, binTrailerBytes, bt1), rows: []binWant{bh(binHdr), btr(1)},
		err: badErr("received copy data after EOF marker", "COPY t, line 1")},
	{name: "a second trailer", in: cat(binHdr, bt1, bt2, binTrailerBytes, binTrailerBytes),
		rows: []binWant{bh(binHdr), bk(bt1, Int(10), 1), bk(bt2, Int(-20), 2), btr(3)},
		err:  badErr("received copy data after EOF marker", "COPY t, line 3")},
}

// TestBinaryCopySplitCases: each case's input gives the same rows and error
// fed at once, in two pieces cut at every byte, byte by byte, and (short
// inputs) in three pieces cut at every pair of bytes.
func TestBinaryCopySplitCases(t *testing.T) {
	splits := 0
	for _, c := range binCases {
		s := c.splitter(t)
		got, err := splitPieces(s, c.in)
		if !c.check(t, "at once", got, err) {
			continue
		}
		if err == nil && !s.Ended() {
			t.Errorf("%s: Ended() = false after Finish", c.name)
		}
		ok := true
		for i := 0; i <= len(c.in) && ok; i++ {
			got, err := splitPieces(c.splitter(t), c.in[:i], c.in[i:])
			ok = c.check(t, fmt.Sprintf("cut at %d", i), got, err)
			splits++
		}
		var bytewise [][]byte
		for i := range c.in {
			bytewise = append(bytewise, c.in[i:i+1])
		}
		got, err = splitPieces(c.splitter(t), bytewise...)
		ok = ok && c.check(t, "byte by byte", got, err)
		for i := 0; i <= len(c.in) && len(c.in) <= 80 && ok; i++ {
			for j := i; j <= len(c.in) && ok; j++ {
				got, err := splitPieces(c.splitter(t), c.in[:i], c.in[i:j], c.in[j:])
				ok = c.check(t, fmt.Sprintf("cut at %d and %d", i, j), got, err)
				splits++
			}
		}
	}
	t.Logf("%d cases, %d splits", len(binCases), splits)
}

// TestBinaryCopyEnded: after the trailer the splitter has ended, before
// Finish; data fed after it is Postgres's error, an empty feed is not.
func TestBinaryCopyEnded(t *testing.T) {
	for _, c := range binCases {
		if !c.ended {
			continue
		}
		s := c.splitter(t)
		rows, err := splitPiecesNoFinish(s, c.in)
		if err != nil || !s.Ended() || len(rows) != len(c.rows) {
			t.Fatalf("%s: Ended() = %v after %d rows (%v) before Finish; want true after %d", c.name, s.Ended(), len(rows), err, len(c.rows))
		}
		s.Feed(nil)
		if _, ok, err := s.Next(); ok || err != nil {
			t.Errorf("%s: an empty feed after the trailer: %v, %v", c.name, ok, err)
		}
		s.Feed(bt1)
		want := fmt.Sprintf("received copy data after EOF marker (COPY t, line %d)", len(c.rows)-1)
		if _, ok, err := s.Next(); ok || err == nil || err.Error() != want {
			t.Errorf("%s: data after the trailer: %v, %v; want %s", c.name, ok, err, want)
		}
		s.Feed(bt1) // ignored after the error
		if _, _, err2 := s.Next(); err2 == nil || err2.Error() != want {
			t.Errorf("%s: the error is not kept: %v", c.name, err2)
		}
	}
	s := binCases[0].splitter(t)
	if rows, err := splitPiecesNoFinish(s, cat(binHdr, bt1)); err != nil || len(rows) != 2 || s.Ended() {
		t.Errorf("without a trailer: %v, %v, Ended() = %v before Finish", rows, err, s.Ended())
	}
}

// splitPiecesNoFinish is splitPieces without Finish.
func splitPiecesNoFinish(s RowSplitter, pieces ...[]byte) (rows []gotRow, err error) {
	for _, p := range pieces {
		s.Feed(p)
		for {
			row, ok, err := s.Next()
			if err != nil {
				return rows, err
			}
			if !ok {
				break
			}
			rows = append(rows, gotRow{string(row.Data), row.Shard, row.Line})
		}
	}
	return rows, nil
}

// TestBinaryCopyRowViews: tuples within one feed are views of it, even one
// that begins where a feed begins; a tuple spanning feeds is assembled, and
// the tuples after it in the feed are views again.
func TestBinaryCopyRowViews(t *testing.T) {
	s := NewBinaryCopySplitter(CopyTarget{Table: "t", Columns: []string{"k"}, KeyType: KeyInteger}, 3, 0)
	t1, t2, t3, t4 := tup(i8(1)), tup(i8(2)), tup(i8(3)), tup(i8(4))
	view := func(name string, feed []byte, off int, want []byte) {
		t.Helper()
		row, ok, err := s.Next()
		if !ok || err != nil || !bytes.Equal(row.Data, want) || off >= 0 && &row.Data[0] != &feed[off] {
			t.Fatalf("%s: %x %v %v: want %x, a view of the feed at %d", name, row.Data, ok, err, want, off)
		}
	}
	feed := cat(binHdr, t1, t2[:5])
	s.Feed(feed)
	view("header", feed, 0, binHdr)
	view("tuple 1", feed, len(binHdr), t1)
	if _, ok, _ := s.Next(); ok {
		t.Fatal("a row from a partial tuple")
	}
	feed = cat(t2[5:], t3)
	s.Feed(feed)
	view("tuple 2, spanning", feed, -1, t2)
	view("tuple 3", feed, len(t2)-5, t3)
	if _, ok, _ := s.Next(); ok {
		t.Fatal("a row after the feed")
	}
	feed = cat(t4, binTrailerBytes)
	s.Feed(feed)
	view("tuple 4, at the feed's start", feed, 0, t4)
	view("trailer", feed, len(t4), binTrailerBytes)
	if len(s.buf) != len(t2) {
		t.Errorf("the splitter copied %d bytes, the spanning tuple is %d", len(s.buf), len(t2))
	}
}

// TestBinaryCopyMaxRow: a tuple longer than the limit is refused (54000)
// when its length is read, whether in one feed or many, and what the
// splitter keeps of it stays within the limit; a file header too.
func TestBinaryCopyMaxRow(t *testing.T) {
	target := CopyTarget{Table: "t", Columns: []string{"k", "v"}, KeyType: KeyInteger}
	long := cat(binHdr, tup(i8(1), txt(strings.Repeat("x", 100))))
	for _, pieces := range [][]int{{len(long)}, {30, len(long) - 30}, {25, 10, 60, len(long) - 95}, {40, len(long) - 40}} {
		s := NewBinaryCopySplitter(target, 2, 64)
		var bs [][]byte
		off := 0
		for _, n := range pieces {
			bs = append(bs, long[off:off+n])
			off += n
		}
		rows, err := splitPieces(s, bs...)
		var e *Error
		if !errors.As(err, &e) || e.Code != sqlstate.ProgramLimitExceeded || e.Message != "COPY row longer than 64 bytes" ||
			e.Context != "COPY t, line 1, column v" || len(rows) != 1 {
			t.Errorf("pieces %v: %v, %v; want the header, then 54000 on line 1, column v", pieces, rows, err)
		}
		if cap(s.buf) > 128 {
			t.Errorf("pieces %v: the splitter kept %d bytes", pieces, cap(s.buf))
		}
	}
	fits := tup(i8(1), txt(strings.Repeat("x", 64-2-12-4)))
	if rows, err := splitPieces(NewBinaryCopySplitter(target, 2, 64), binHdr, fits[:7], fits[7:]); err != nil || len(rows) != 2 || len(rows[1].data) != 64 {
		t.Errorf("a tuple of 64 bytes: %v, %v", rows, err)
	}
	_, err := splitPieces(NewBinaryCopySplitter(target, 2, 64), binHeaderOf(0, strings.Repeat("e", 50)))
	if err == nil || err.Error() != "COPY row longer than 64 bytes" {
		t.Errorf("a file header of 69 bytes: %v", err)
	}
}

// TestNewRowSplitter: NewRowSplitter refuses the options NewCopySplitter
// refuses, with the same errors, but for the binary format, which it
// reads; a text or CSV COPY gets a CopySplitter. An error returns a nil
// RowSplitter.
func TestNewRowSplitter(t *testing.T) {
	target := CopyTarget{Table: "t", Columns: []string{"a", "b"}, KeyType: KeyInteger}
	binaries := 0
	for _, c := range copyOptionCases {
		rs, err := NewRowSplitter(c.opts, target, 2, 0)
		_, cerr := NewCopySplitter(c.opts, target, 2, 0)
		switch {
		case c.unsupported:
			if _, ok := rs.(*BinaryCopySplitter); !ok || err != nil || c.opts.Format != CopyBinary {
				t.Errorf("%s: %T, %v; want a BinaryCopySplitter", c.sql, rs, err)
			}
			binaries++
		case c.code != "":
			if rs != nil || fmt.Sprint(err) != fmt.Sprint(cerr) || !errors.Is(err, ErrCopyOptions) {
				t.Errorf("%s: %v, %v; want nil and %v", c.sql, rs, err, cerr)
			}
		default:
			if _, ok := rs.(*CopySplitter); !ok || err != nil {
				t.Errorf("%s: %T, %v; want a CopySplitter", c.sql, rs, err)
			}
		}
	}
	if binaries != 1 {
		t.Errorf("%d binary cases accepted", binaries)
	}
	// Every option Postgres refuses with FORMAT binary is refused.
	for _, o := range []CopyOptions{{Escape: str(`\`)}, {ForceNull: true}, {ForceNotNull: true}, {Header: CopyHeaderMatch}, {Delimiter: str("\t")}, {Null: str("")}} {
		o.Format = CopyBinary
		if rs, err := NewRowSplitter(o, target, 2, 0); rs != nil || !errors.Is(err, ErrCopyOptions) {
			t.Errorf("%+v: %v, %v", o, rs, err)
		}
	}
}

// TestBinaryCopyNoAllocs: splitting allocates nothing per row, in views
// or assembled across feeds, once the splitter's buffer has grown.
func TestBinaryCopyNoAllocs(t *testing.T) {
	var data []byte
	for i := range 1000 {
		data = append(data, tup(i4(int32(i)), txt("filler filler filler"), nil)...)
	}
	s := NewBinaryCopySplitter(CopyTarget{Table: "t", Columns: []string{"k", "a", "b"}, KeyType: KeyInteger}, 4, 0)
	s.Feed(binHdr)
	s.Next()
	s.Next()
	rows := 0
	allocs := testing.AllocsPerRun(10, func() {
		for off := 0; off < len(data); off += 777 { // cut anywhere: many tuples span feeds
			s.Feed(data[off:min(off+777, len(data))])
			for {
				_, ok, err := s.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				rows++
			}
		}
	})
	if allocs != 0 || rows != 11*1000 {
		t.Errorf("%v allocations per run of 1000 rows; %d rows", allocs, rows)
	}
}

// refTupleShard is where a whole tuple goes, read independently of the
// splitter: its key field as a Value.
func refTupleShard(t testing.TB, tuple []byte, key int, typ KeyType, shards int) int {
	p := 2
	for range key {
		n := int32(binary.BigEndian.Uint32(tuple[p:]))
		p += 4 + max(int(n), 0)
	}
	n := int32(binary.BigEndian.Uint32(tuple[p:]))
	if n == -1 {
		return Null().Shard(shards)
	}
	val := tuple[p+4 : p+4+int(n)]
	switch {
	case typ == KeyText:
		return Text(string(val)).Shard(shards)
	case typ == KeyUUID && len(val) == 16:
		return UUID([16]byte(val)).Shard(shards)
	case typ == KeyInteger && len(val) == 8:
		return Int(int64(binary.BigEndian.Uint64(val))).Shard(shards)
	case typ == KeyInteger && len(val) == 4:
		return Int(int64(int32(binary.BigEndian.Uint32(val)))).Shard(shards)
	case typ == KeyInteger && len(val) == 2:
		return Int(int64(int16(binary.BigEndian.Uint16(val)))).Shard(shards)
	}
	return 0
}

// FuzzBinaryCopySplit: any data, fed at once or cut anywhere into pieces,
// gives the same rows, shards, lines and error, and never panics; the rows
// are the data's beginning byte for byte (the file header and the trailer
// once), all of it without an error, but for a last lone byte Postgres
// ignores too; each tuple's shard is its key's.
func FuzzBinaryCopySplit(f *testing.F) {
	for i, c := range binCases {
		f.Add(c.in, uint8(i), uint64(0x9e3779b97f4a7c15)*uint64(i+1))
	}
	f.Fuzz(func(t *testing.T, data []byte, opt uint8, cuts uint64) {
		ncols := 1 + int(opt&3)%3
		target := CopyTarget{Table: "t", Columns: []string{"a", "b", "c"}[:ncols], Key: int(opt>>2) % ncols,
			KeyType: []KeyType{KeyInteger, KeyText, KeyUUID}[int(opt>>4)%3]}
		maxRow := 0
		if opt&0x80 != 0 {
			maxRow = 40
		}
		whole := NewBinaryCopySplitter(target, caseShards, maxRow)
		wrows, werr := splitPieces(whole, data)
		var pieces [][]byte
		rest := data
		for x := cuts; len(rest) > 0; x >>= 3 {
			n := min(int(x&7), len(rest))
			if x == 0 {
				n = len(rest)
			}
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		cut := NewBinaryCopySplitter(target, caseShards, maxRow)
		crows, cerr := splitPieces(cut, pieces...)
		if fmt.Sprint(wrows) != fmt.Sprint(crows) || fmt.Sprint(werr) != fmt.Sprint(cerr) {
			t.Fatalf("pieces %q:\nat once %v %v\n    cut %v %v", pieces, wrows, werr, crows, cerr)
		}
		var all bytes.Buffer
		for i, r := range wrows {
			all.WriteString(r.data)
			switch {
			case i == 0:
				if r.shard != AllShards || r.line != 0 || !strings.HasPrefix(r.data, copySignature) {
					t.Fatalf("the first row %v is not the file header", r)
				}
			case r.data == "\xff\xff":
				if r.shard != AllShards || i != len(wrows)-1 || r.line != int64(i) {
					t.Fatalf("the trailer %v is not the last row, line %d", r, i)
				}
			default:
				if r.line != int64(i) {
					t.Fatalf("row %d: %v", i, r)
				}
				if want := refTupleShard(t, []byte(r.data), target.Key, target.KeyType, caseShards); r.shard != want {
					t.Fatalf("row %d %v: shard %d, its key's is %d", i, r, r.shard, want)
				}
			}
		}
		if !bytes.HasPrefix(data, all.Bytes()) {
			t.Fatalf("the rows %q are not the data %q", all.Bytes(), data)
		}
		if werr == nil {
			trailer := len(wrows) > 1 && wrows[len(wrows)-1].data == "\xff\xff"
			if left := len(data) - all.Len(); left > 1 || left == 1 && trailer {
				t.Fatalf("the rows %q end before the data %q", all.Bytes(), data)
			}
			if !whole.Ended() {
				t.Fatal("not Ended after Finish")
			}
		} else if !errors.Is(werr, ErrCopyData) {
			t.Fatalf("%v is not ErrCopyData", werr)
		}
	})
}

// The splitter on binary COPY data as pgx's CopyFrom sends it, of
// pgbench_accounts' shape (aid, bid, abalance integers, an 84-byte
// filler: 114 bytes a tuple) keyed by aid, and the same with a uuid and a
// text key, over 4 shards, fed in 64 KiB CopyData payloads cut anywhere,
// each row appended to its shard's outgoing buffer as the proxy does. One
// op is one payload; run with -benchmem: no allocation per payload or row.
func BenchmarkBinaryCopySplit(b *testing.B) {
	for _, bc := range []struct {
		name string
		typ  KeyType
		key  func(i int) []byte
	}{
		{"int", KeyInteger, func(i int) []byte { return i4(int32(i)) }},
		{"uuid", KeyUUID, func(i int) []byte { u := mustUUID(uid); binary.BigEndian.PutUint64(u[8:], uint64(i)); return u }},
		{"text", KeyText, func(i int) []byte { return fmt.Appendf(nil, "customer-%08d", i) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const msg = 64 << 10
			filler := strings.Repeat(" ", 84)
			var data []byte
			var last int
			for aid := 1; len(data) < 4<<20; aid++ {
				last = len(data)
				data = append(data, tup(bc.key(aid), i4(int32((aid-1)/100000+1)), i4(0), txt(filler))...)
			}
			// Whole payloads, the last tuple's filler longer: the stream
			// goes on from the first tuple after the last.
			pad := (msg - len(data)%msg) % msg
			data = append(data[:last], tup(bc.key(0), i4(1), i4(0), txt(filler+strings.Repeat(" ", pad)))...)
			if len(data)%msg != 0 {
				b.Fatal("not whole payloads")
			}
			s := NewBinaryCopySplitter(CopyTarget{Table: "pgbench_accounts", Columns: []string{"aid", "bid", "abalance", "filler"},
				KeyType: bc.typ}, 4, 0)
			s.Feed(binHdr)
			if _, ok, err := s.Next(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			s.Next()
			benchSplit(b, s, data, msg)
		})
	}
}

// A binary COPY, as pgx's CopyFrom sends it, into a table sharded by id
// over 2 shards: the file header and the trailer go to every shard; a
// tuple cut between two CopyData messages comes out whole.
func ExampleNewRowSplitter() {
	s, err := NewRowSplitter(CopyOptions{Format: CopyBinary},
		CopyTarget{Table: "accounts", Columns: []string{"id", "name"}, Key: 0, KeyType: KeyInteger}, 2, 0)
	if err != nil {
		panic(err)
	}
	data := cat(binHdr, tup(i8(1), txt("alice")), tup(i8(2), txt("bob")), tup(i8(3), txt("carol")), binTrailerBytes)
	for _, payload := range [][]byte{data[:40], data[40:]} {
		s.Feed(payload)
		for {
			row, ok, err := s.Next()
			if err != nil {
				panic(err)
			}
			if !ok {
				break
			}
			fmt.Printf("line %d: %d bytes to shard %d\n", row.Line, len(row.Data), row.Shard)
		}
	}
	s.Finish()
	if _, ok, err := s.Next(); ok || err != nil || !s.Ended() {
		panic("not the end")
	}
	// Output:
	// line 0: 19 bytes to shard -1
	// line 1: 23 bytes to shard 0
	// line 2: 21 bytes to shard 0
	// line 3: 23 bytes to shard 1
	// line 4: 2 bytes to shard -1
}
