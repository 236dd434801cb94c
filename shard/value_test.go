package shard

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
)

func TestParseInt64(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		code sqlstate.Code // "" when valid
	}{
		{"0", 0, ""}, {" 42", 42, ""}, {"-7", -7, ""}, {"+7", 7, ""}, {"-0", 0, ""}, {"007", 7, ""},
		{" \t\n\v\f\r12 \t\n\v\f\r", 12, ""},
		{"9223372036854775807", math.MaxInt64, ""}, {"-9223372036854775808", math.MinInt64, ""},
		{"9223372036854775808", 0, sqlstate.NumericValueOutOfRange},
		{"-9223372036854775809", 0, sqlstate.NumericValueOutOfRange},
		{"99999999999999999999x", 0, sqlstate.NumericValueOutOfRange}, // overflow is reported first, as Postgres does
		{"", 0, sqlstate.InvalidTextRepresentation}, {" ", 0, sqlstate.InvalidTextRepresentation},
		{"-", 0, sqlstate.InvalidTextRepresentation}, {"- 1", 0, sqlstate.InvalidTextRepresentation},
		{"1 2", 0, sqlstate.InvalidTextRepresentation}, {"0x10", 0, sqlstate.InvalidTextRepresentation},
		{"1_000", 0, sqlstate.InvalidTextRepresentation}, {"1.0", 0, sqlstate.InvalidTextRepresentation},
		{"\u00a012", 0, sqlstate.InvalidTextRepresentation}, {"1\x00", 0, sqlstate.InvalidTextRepresentation},
	} {
		got, err := ParseInt64(c.in)
		if c.code == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseInt64(%q) = %d, %v; want %d", c.in, got, err, c.want)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("ParseInt64(%q) = %d, %v; want SQLSTATE %s", c.in, got, err, c.code)
			continue
		}
		wantErr := ErrSyntax
		if c.code == sqlstate.NumericValueOutOfRange {
			wantErr = ErrRange
		}
		if !errors.Is(err, wantErr) {
			t.Errorf("ParseInt64(%q): %v is not %v", c.in, err, wantErr)
		}
	}
	if _, err := ParseInt64("x"); err.Error() != `invalid input syntax for type bigint: "x"` {
		t.Errorf("message %q", err)
	}
}

func TestParseUUID(t *testing.T) {
	want := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	for _, s := range []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"} {
		if got, err := ParseUUID(s); err != nil || got != want {
			t.Errorf("ParseUUID(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "{}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"} {
		_, err := ParseUUID(s)
		var e *Error
		if !errors.As(err, &e) || e.Code != sqlstate.InvalidTextRepresentation || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseUUID(%q): %v, want 22P02", s, err)
		}
	}
	if FormatUUID(want) != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
		t.Errorf("FormatUUID = %s", FormatUUID(want))
	}
}

func TestKeyType(t *testing.T) {
	for s, want := range map[string]KeyType{"integer": KeyInteger, "BIGINT": KeyInteger, " int2 ": KeyInteger, "int": KeyInteger,
		"text": KeyText, "character varying": KeyText, "varchar": KeyText, "uuid": KeyUUID, "UUID": KeyUUID} {
		if got, err := ParseKeyType(s); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "char", "bpchar", "numeric", "float8", "bytea", "integer[]"} {
		if _, err := ParseKeyType(s); !errors.Is(err, ErrKeyType) {
			t.Errorf("ParseKeyType(%q): %v", s, err)
		}
	}
	for _, k := range []KeyType{KeyInteger, KeyText, KeyUUID} {
		if got, err := ParseKeyType(k.String()); err != nil || got != k || !k.Valid() {
			t.Errorf("%v does not round-trip", k)
		}
	}
	if KeyType(0).Valid() || KeyType(4).Valid() || KeyType(9).String() != "KeyType(9)" {
		t.Error("invalid key types")
	}
}

func TestParseValueAndDecodeBinary(t *testing.T) {
	u, _ := ParseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	for _, c := range []struct {
		t    KeyType
		text string
		bin  []byte
		want Value
	}{
		{KeyInteger, "-2", []byte{0xff, 0xfe}, Int(-2)},
		{KeyInteger, "-2", []byte{0xff, 0xff, 0xff, 0xfe}, Int(-2)},
		{KeyInteger, "-2", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, Int(-2)},
		{KeyInteger, "4294967296", []byte{0, 0, 0, 1, 0, 0, 0, 0}, Int(1 << 32)},
		{KeyText, "héllo", []byte("héllo"), Text("héllo")},
		{KeyText, "", []byte{}, Text("")},
		{KeyUUID, "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", u[:], UUID(u)},
	} {
		if v, err := ParseValue(c.t, c.text); err != nil || v != c.want {
			t.Errorf("ParseValue(%v, %q) = %v, %v", c.t, c.text, v, err)
		}
		if v, err := DecodeBinary(c.t, c.bin); err != nil || v != c.want {
			t.Errorf("DecodeBinary(%v, %x) = %v, %v", c.t, c.bin, v, err)
		}
	}
	for _, c := range []struct {
		t   KeyType
		bin []byte
	}{{KeyInteger, nil}, {KeyInteger, []byte{1}}, {KeyInteger, []byte{1, 2, 3}}, {KeyUUID, u[:15]}, {KeyUUID, make([]byte, 17)}} {
		var e *Error
		if _, err := DecodeBinary(c.t, c.bin); !errors.As(err, &e) || e.Code != sqlstate.InvalidBinaryRepresentation || !errors.Is(err, ErrBinary) {
			t.Errorf("DecodeBinary(%v, %x): %v", c.t, c.bin, err)
		}
	}
	if _, err := ParseValue(KeyInteger, "x"); !errors.Is(err, ErrSyntax) {
		t.Error(err)
	}
	if _, err := ParseValue(KeyUUID, "x"); !errors.Is(err, ErrSyntax) {
		t.Error(err)
	}
	if _, err := ParseValue(0, "1"); !errors.Is(err, ErrKeyType) {
		t.Error(err)
	}
	if _, err := DecodeBinary(7, []byte{1}); !errors.Is(err, ErrKeyType) {
		t.Error(err)
	}
	if v := Int(-3); v.Type() != KeyInteger || v.Int() != -3 || v.IsNull() || v.String() != "-3" {
		t.Errorf("%#v", v)
	}
	if v := UUID(u); v.UUID() != u || v.String() != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
		t.Errorf("%#v", v)
	}
	if v := Text("t"); v.Text() != "t" || v.String() != "t" || v.Type() != KeyText {
		t.Errorf("%#v", v)
	}
	if v := Null(); !v.IsNull() || v.Type() != 0 || v.String() != "NULL" || v != (Value{}) {
		t.Errorf("%#v", v)
	}
}

// ParseInt64 reads what strconv reads once the whitespace Postgres skips is
// trimmed, and refuses the rest; a valid result prints back to an equal value.
func FuzzParseInt64(f *testing.F) {
	for _, s := range intTexts(testRand(), 20) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseInt64(s)
		trimmed := s
		for len(trimmed) > 0 && isSpace(trimmed[0]) {
			trimmed = trimmed[1:]
		}
		for len(trimmed) > 0 && isSpace(trimmed[len(trimmed)-1]) {
			trimmed = trimmed[:len(trimmed)-1]
		}
		// In base 10, strconv reads exactly [+-]?[0-9]+, Postgres's grammar.
		sv, serr := strconv.ParseInt(trimmed, 10, 64)
		switch {
		case err == nil && (serr != nil || sv != v):
			t.Fatalf("ParseInt64(%q) = %d; strconv: %d, %v", s, v, sv, serr)
		case err != nil && serr == nil:
			t.Fatalf("ParseInt64(%q): %v; strconv reads %d", s, err, sv)
		case errors.Is(serr, strconv.ErrRange) && !errors.Is(err, ErrRange):
			// (The converse is fine: like Postgres, ParseInt64 reports an
			// overflow before any junk after the digits.)
			t.Fatalf("ParseInt64(%q): %v; strconv: %v", s, err, serr)
		}
	})
}

// A uuid ParseUUID accepts prints back to a text it reads as the same uuid.
func FuzzParseUUID(f *testing.F) {
	for _, s := range uuidTexts(testRand(), 20) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUUID(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseUUID(%q): %v", s, err)
			}
			return
		}
		again, err := ParseUUID(FormatUUID(u))
		if err != nil || again != u {
			t.Fatalf("ParseUUID(%q) = %x does not round-trip: %x, %v", s, u, again, err)
		}
	})
}

// Two implementations of the byte hash (over []byte and over string), and
// the specialised hashes, agree on any input.
func FuzzHashBytes(f *testing.F) {
	f.Add([]byte(""), uint64(0))
	f.Add([]byte("hello world, sharded"), PartitionSeed)
	f.Fuzz(func(t *testing.T, k []byte, seed uint64) {
		h := HashBytesExtended(k, seed)
		if hs := hashStringExtended(string(k), seed); hs != h {
			t.Fatalf("%x: bytes %#x, string %#x", k, h, hs)
		}
		if len(k) == 16 && HashUUIDExtended([16]byte(k), seed) != h {
			t.Fatalf("%x: uuid hash differs", k)
		}
		if len(k) == 4 && HashUint32Extended(uint32(k[0])|uint32(k[1])<<8|uint32(k[2])<<16|uint32(k[3])<<24, seed) != h {
			t.Fatalf("%x: uint32 hash differs", k)
		}
	})
}
