package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

func TestPeekHeaderAndReadFrame(t *testing.T) {
	q := frame('Q', []byte("select 1\x00"))
	for _, tc := range []struct {
		name    string
		in      []byte
		max     int
		typ     byte
		bodyLen int // PeekHeader
		n       int // ReadFrame
		peekErr error
		readErr error
	}{
		{name: "empty", in: nil, peekErr: codec.ErrShortBuffer, readErr: codec.ErrShortBuffer},
		{name: "4 bytes", in: q[:4], peekErr: codec.ErrShortBuffer, readErr: codec.ErrShortBuffer},
		{name: "header only", in: q[:5], typ: 'Q', bodyLen: 9, readErr: codec.ErrShortBuffer},
		{name: "one short", in: q[:len(q)-1], typ: 'Q', bodyLen: 9, readErr: codec.ErrShortBuffer},
		{name: "whole", in: q, typ: 'Q', bodyLen: 9, n: 14},
		{name: "whole and more", in: append(append([]byte{}, q...), 'S', 0, 0), typ: 'Q', bodyLen: 9, n: 14},
		{name: "sync", in: []byte{'S', 0, 0, 0, 4}, typ: 'S', bodyLen: 0, n: 5},
		{name: "length 3", in: []byte{'S', 0, 0, 0, 3}, peekErr: codec.ErrInvalidLength, readErr: codec.ErrInvalidLength},
		{name: "length 0", in: []byte{'S', 0, 0, 0, 0}, peekErr: codec.ErrInvalidLength, readErr: codec.ErrInvalidLength},
		{name: "negative length", in: []byte{'S', 0x80, 0, 0, 4}, peekErr: codec.ErrInvalidLength, readErr: codec.ErrInvalidLength},
		{name: "at max", in: q, max: 9, typ: 'Q', bodyLen: 9, n: 14},
		{name: "over max", in: q, max: 8, peekErr: codec.ErrMessageTooLarge, readErr: codec.ErrMessageTooLarge},
		{name: "over default max", in: []byte{'D', 0x10, 0, 0, 5}, peekErr: codec.ErrMessageTooLarge, readErr: codec.ErrMessageTooLarge},
		{name: "at default max", in: []byte{'D', 0x10, 0, 0, 4}, typ: 'D', bodyLen: codec.DefaultMaxMessageSize, readErr: codec.ErrShortBuffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, bodyLen, err := codec.PeekHeader(tc.in, tc.max)
			if err != tc.peekErr {
				t.Fatalf("PeekHeader err = %v, want %v", err, tc.peekErr)
			}
			if err == nil && (typ != tc.typ || bodyLen != tc.bodyLen) {
				t.Fatalf("PeekHeader = %q, %d, want %q, %d", typ, bodyLen, tc.typ, tc.bodyLen)
			}
			f, n, err := codec.ReadFrame(tc.in, tc.max)
			if err != tc.readErr {
				t.Fatalf("ReadFrame err = %v, want %v", err, tc.readErr)
			}
			if err != nil {
				if n != 0 {
					t.Fatalf("ReadFrame n = %d on error", n)
				}
				return
			}
			if f.Type != tc.typ || n != tc.n || f.WireLen() != n || len(f.Body) != tc.bodyLen {
				t.Fatalf("ReadFrame = %q %q n=%d wirelen=%d", f.Type, f.Body, n, f.WireLen())
			}
			within(t, "body", f.Body, tc.in)
		})
	}
}

func TestReadFrameStream(t *testing.T) {
	var buf []byte
	buf = codec.AppendQuery(buf, "select 1")
	buf = codec.AppendSync(buf)
	buf = codec.AppendTerminate(buf)
	var types []byte
	for len(buf) > 0 {
		f, n, err := codec.ReadFrame(buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, f.Type)
		buf = buf[n:]
	}
	if string(types) != "QSX" {
		t.Fatalf("types %q", types)
	}
}

func TestReadStartupPacket(t *testing.T) {
	startup := codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", "u", "database", "d")
	big := make([]byte, 4)
	for _, tc := range []struct {
		name string
		in   []byte
		code uint32
		body string
		n    int
		err  error
	}{
		{name: "empty", err: codec.ErrShortBuffer},
		{name: "3 bytes", in: []byte{0, 0, 0}, err: codec.ErrShortBuffer},
		{name: "length only", in: []byte{0, 0, 0, 8}, err: codec.ErrShortBuffer},
		{name: "ssl", in: codec.AppendSSLRequest(nil), code: codec.SSLRequestCode, n: 8},
		{name: "gssenc", in: cat(u32(8), u32(codec.GSSENCRequestCode)), code: codec.GSSENCRequestCode, n: 8},
		{name: "startup", in: startup, code: codec.ProtocolVersion30, body: "user\x00u\x00database\x00d\x00\x00", n: len(startup)},
		{name: "startup and more", in: append(append([]byte{}, startup...), 'p'), code: codec.ProtocolVersion30, body: "user\x00u\x00database\x00d\x00\x00", n: len(startup)},
		{name: "startup truncated", in: startup[:len(startup)-1], err: codec.ErrShortBuffer},
		{name: "length 7", in: cat(u32(7), u32(1)), err: codec.ErrInvalidLength},
		{name: "length 0", in: u32(0), err: codec.ErrInvalidLength},
		{name: "negative", in: u32(0xFFFFFFF0), err: codec.ErrInvalidLength},
		{name: "longest", in: append(u32(codec.MaxStartupPacketLength+4), big...), err: codec.ErrShortBuffer},
		{name: "too long", in: append(u32(codec.MaxStartupPacketLength+5), big...), err: codec.ErrInvalidLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, n, err := codec.ReadStartupPacket(tc.in)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if n != 0 {
					t.Fatalf("n = %d on error", n)
				}
				return
			}
			if code != tc.code || string(body) != tc.body || n != tc.n {
				t.Fatalf("got %d %q %d, want %d %q %d", code, body, n, tc.code, tc.body, tc.n)
			}
			within(t, "body", body, tc.in)
		})
	}
}

func TestStartupParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
		err  error
	}{
		{name: "two", in: "user\x00alice\x00database\x00db\x00\x00", want: []string{"user", "alice", "database", "db"}},
		{name: "empty value", in: "user\x00alice\x00options\x00\x00\x00", want: []string{"user", "alice", "options", ""}},
		{name: "none", in: "\x00"},
		{name: "empty body", in: "", err: codec.ErrMalformed},
		{name: "no terminator", in: "user\x00alice\x00", err: codec.ErrMalformed},
		{name: "key without value", in: "user\x00alice\x00database\x00", err: codec.ErrMalformed},
		{name: "unterminated key", in: "user", err: codec.ErrMalformed},
		{name: "bytes after terminator", in: "user\x00alice\x00\x00x", err: codec.ErrMalformed},
		{name: "two terminators", in: "user\x00alice\x00\x00\x00", err: codec.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := codec.StartupParams([]byte(tc.in), func(k, v []byte) { got = append(got, string(k), string(v)) })
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil && len(got) != 0 {
				t.Fatalf("fn called on malformed body: %q", got)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseCancelRequestAndBackendKeyData(t *testing.T) {
	key32 := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name string
		in   []byte
		pid  uint32
		key  []byte
		ok   bool
	}{
		{name: "3.0", in: cat(u32(42), u32(0xDEADBEEF)), pid: 42, key: u32(0xDEADBEEF), ok: true},
		{name: "3.2", in: cat(u32(42), key32), pid: 42, key: key32, ok: true},
		{name: "256-byte key", in: cat(u32(1), make([]byte, 256)), pid: 1, key: make([]byte, 256), ok: true},
		{name: "257-byte key", in: cat(u32(1), make([]byte, 257))},
		{name: "short key", in: cat(u32(1), []byte{1, 2, 3})},
		{name: "no key", in: u32(1)},
		{name: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for fn, parse := range map[string]func([]byte) (uint32, []byte, error){
				"ParseCancelRequest":  codec.ParseCancelRequest,
				"ParseBackendKeyData": codec.ParseBackendKeyData,
			} {
				pid, key, err := parse(tc.in)
				if !tc.ok {
					if err != codec.ErrMalformed {
						t.Fatalf("%s err = %v, want ErrMalformed", fn, err)
					}
					continue
				}
				if err != nil || pid != tc.pid || !bytes.Equal(key, tc.key) {
					t.Fatalf("%s = %d %x %v", fn, pid, key, err)
				}
				within(t, fn, key, tc.in)
			}
		})
	}
}

func TestQueryTextAndCommandTag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"select 1\x00", "select 1", true},
		{"\x00", "", true},
		{"", "", false},
		{"select 1", "", false},
		{"select 1\x00\x00", "", false},
		{"select\x001\x00", "", false},
	} {
		for fn, parse := range map[string]func([]byte) ([]byte, error){"QueryText": codec.QueryText, "CommandTag": codec.CommandTag} {
			got, err := parse([]byte(tc.in))
			if tc.ok != (err == nil) || (err != nil && err != codec.ErrMalformed) || string(got) != tc.want {
				t.Errorf("%s(%q) = %q, %v", fn, tc.in, got, err)
			}
		}
	}
}

func TestParseParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want codec.Parse
		ok   bool
	}{
		{name: "unnamed", in: []byte("\x00select 1\x00\x00\x00"), want: codec.Parse{Name: []byte{}, Query: []byte("select 1"), ParamOIDs: []byte{}}, ok: true},
		{name: "named with params", in: cat([]byte("s1\x00select $1, $2\x00"), u16(2), u32(23), u32(25)),
			want: codec.Parse{Name: []byte("s1"), Query: []byte("select $1, $2"), ParamOIDs: cat(u32(23), u32(25)), NumParams: 2}, ok: true},
		{name: "missing count", in: []byte("s1\x00select 1\x00")},
		{name: "half count", in: []byte("s1\x00select 1\x00\x00")},
		{name: "missing oid", in: cat([]byte("s1\x00q\x00"), u16(2), u32(23))},
		{name: "short oid", in: cat([]byte("s1\x00q\x00"), u16(1), u16(23))},
		{name: "trailing", in: cat([]byte("s1\x00q\x00"), u16(0), []byte{0})},
		{name: "no query terminator", in: []byte("s1\x00select 1")},
		{name: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := codec.ParseParse(tc.in)
			if !tc.ok {
				if err != codec.ErrMalformed {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || !bytes.Equal(p.Name, tc.want.Name) || !bytes.Equal(p.Query, tc.want.Query) ||
				!bytes.Equal(p.ParamOIDs, tc.want.ParamOIDs) || p.NumParams != tc.want.NumParams {
				t.Fatalf("got %+v, %v", p, err)
			}
			within(t, "name", p.Name, tc.in)
			within(t, "query", p.Query, tc.in)
			within(t, "oids", p.ParamOIDs, tc.in)
			if got := codec.AppendParse(nil, p); !bytes.Equal(got, frame('P', tc.in)) {
				t.Fatalf("AppendParse = %q", got)
			}
		})
	}
}

func TestParseBind(t *testing.T) {
	rest := cat(u16(1), u16(1), u16(3), u32(4), u32(7), u32(0xFFFFFFFF), u32(0), u16(1), u16(1))
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{name: "minimal", in: cat([]byte("\x00\x00"), u16(0), u16(0), u16(0)), ok: true},
		{name: "full", in: cat([]byte("p1\x00s1\x00"), rest), ok: true},
		// Semantic oddities the server reports itself are let through.
		{name: "format count mismatch", in: cat([]byte("\x00\x00"), u16(2), u16(0), u16(0), u16(1), u32(0xFFFFFFFF), u16(0)), ok: true},
		{name: "format code 7", in: cat([]byte("\x00\x00"), u16(1), u16(7), u16(0), u16(1), u16(7)), ok: true},
		{name: "no statement terminator", in: []byte("p1\x00s1")},
		{name: "no portal terminator", in: []byte("p1")},
		{name: "no counts", in: []byte("\x00\x00")},
		{name: "format codes past end", in: cat([]byte("\x00\x00"), u16(2), u16(0))},
		{name: "no param count", in: cat([]byte("\x00\x00"), u16(0))},
		{name: "param length past end", in: cat([]byte("\x00\x00"), u16(0), u16(1), u32(5), []byte("abcd"), u16(0))},
		{name: "param length -2", in: cat([]byte("\x00\x00"), u16(0), u16(1), u32(0xFFFFFFFE), u16(0))},
		{name: "param length huge", in: cat([]byte("\x00\x00"), u16(0), u16(1), u32(0x7FFFFFFF), u16(0))},
		{name: "missing param", in: cat([]byte("\x00\x00"), u16(0), u16(2), u32(0), u16(0))},
		{name: "no result count", in: cat([]byte("\x00\x00"), u16(0), u16(0))},
		{name: "result codes past end", in: cat([]byte("\x00\x00"), u16(0), u16(0), u16(1))},
		{name: "trailing byte", in: cat([]byte("\x00\x00"), u16(0), u16(0), u16(0), []byte{0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := codec.ParseBind(tc.in)
			if !tc.ok {
				if err != codec.ErrMalformed {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			within(t, "portal", b.Portal, tc.in)
			within(t, "statement", b.Statement, tc.in)
			within(t, "rest", b.Rest, tc.in)
			if got := codec.AppendBind(nil, b); !bytes.Equal(got, frame('B', tc.in)) {
				t.Fatalf("AppendBind = %q", got)
			}
		})
	}
	b, err := codec.ParseBind(cat([]byte("p1\x00s1\x00"), rest))
	if err != nil || string(b.Portal) != "p1" || string(b.Statement) != "s1" || !bytes.Equal(b.Rest, rest) {
		t.Fatalf("got %q %q %x %v", b.Portal, b.Statement, b.Rest, err)
	}
	// Renaming the statement re-encodes the rest unchanged.
	b.Statement = []byte("belay_7")
	b2, err := codec.ParseBind(codec.AppendBind(nil, b)[5:])
	if err != nil || string(b2.Statement) != "belay_7" || !bytes.Equal(b2.Rest, rest) {
		t.Fatalf("renamed: %q %x %v", b2.Statement, b2.Rest, err)
	}
}

func TestParseDescribeCloseExecute(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind byte
		name string
		ok   bool
	}{
		{"S\x00", 'S', "", true},
		{"Ps1\x00", 'P', "s1", true},
		{"Xs1\x00", 0, "", false},
		{"S", 0, "", false},
		{"Ss1", 0, "", false},
		{"Ss1\x00\x00", 0, "", false},
		{"", 0, "", false},
	} {
		for fn, parse := range map[string]func([]byte) (byte, []byte, error){"ParseDescribe": codec.ParseDescribe, "ParseClose": codec.ParseClose} {
			kind, name, err := parse([]byte(tc.in))
			if tc.ok != (err == nil) || kind != tc.kind || string(name) != tc.name {
				t.Errorf("%s(%q) = %q %q %v", fn, tc.in, kind, name, err)
			}
		}
	}
	for _, tc := range []struct {
		in      []byte
		portal  string
		maxRows uint32
		ok      bool
	}{
		{cat([]byte("\x00"), u32(0)), "", 0, true},
		{cat([]byte("p1\x00"), u32(100)), "p1", 100, true},
		{cat([]byte("p1\x00"), u16(0)), "", 0, false},
		{cat([]byte("p1\x00"), u32(1), []byte{0}), "", 0, false},
		{[]byte("p1"), "", 0, false},
	} {
		portal, maxRows, err := codec.ParseExecute(tc.in)
		if tc.ok != (err == nil) || string(portal) != tc.portal || maxRows != tc.maxRows {
			t.Errorf("ParseExecute(%q) = %q %d %v", tc.in, portal, maxRows, err)
		}
		if err == nil {
			if got := codec.AppendExecute(nil, portal, maxRows); !bytes.Equal(got, frame('E', tc.in)) {
				t.Errorf("AppendExecute = %q", got)
			}
		}
	}
	if got := codec.AppendDescribe(nil, 'S', []byte("s1")); !bytes.Equal(got, frame('D', []byte("Ss1\x00"))) {
		t.Errorf("AppendDescribe = %q", got)
	}
	if got := codec.AppendClose(nil, 'P', []byte("p1")); !bytes.Equal(got, frame('C', []byte("Pp1\x00"))) {
		t.Errorf("AppendClose = %q", got)
	}
}

func TestReadyForQueryStatus(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"I", true}, {"T", true}, {"E", true}, {"X", false}, {"", false}, {"II", false}} {
		s, err := codec.ReadyForQueryStatus([]byte(tc.in))
		if tc.ok != (err == nil) || (tc.ok && s != tc.in[0]) {
			t.Errorf("ReadyForQueryStatus(%q) = %q %v", tc.in, s, err)
		}
	}
}

func TestParseErrorFields(t *testing.T) {
	in := []byte("SERROR\x00VERROR\x00C42P01\x00Mrelation \"x\" does not exist\x00P15\x00Fparse_relation.c\x00L1392\x00RparserOpenTable\x00Zunknown\x00\x00")
	e, err := codec.ParseErrorFields(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Severity) != "ERROR" || string(e.SeverityNonLocalized) != "ERROR" || string(e.Code) != "42P01" ||
		string(e.Message) != `relation "x" does not exist` || string(e.Position) != "15" || string(e.File) != "parse_relation.c" ||
		string(e.Line) != "1392" || string(e.Routine) != "parserOpenTable" || e.Detail != nil || e.Hint != nil {
		t.Fatalf("got %+v", e)
	}
	for _, m := range []string{
		"", "S", "SERROR", "SERROR\x00", "SERROR\x00\x00x", "SERROR\x00\x00\x00",
	} {
		if _, err := codec.ParseErrorFields([]byte(m)); err != codec.ErrMalformed {
			t.Errorf("ParseErrorFields(%q) err = %v", m, err)
		}
	}
	if _, err := codec.ParseErrorFields([]byte("\x00")); err != nil {
		t.Errorf("no fields: %v", err)
	}
}

func TestAppendEditedFields(t *testing.T) {
	in := []byte("SERROR\x00VERROR\x00C42P01\x00Mrelation \"b1\" does not exist\x00P15\x00Fparse_relation.c\x00Zunknown\x00\x00")
	got := codec.AppendEditedFields([]byte("x"), codec.MsgErrorResponse, in, func(f byte, v []byte) []byte {
		switch f {
		case 'M':
			return []byte(`relation "p" does not exist`)
		case 'P':
			return []byte("9")
		}
		return v
	})
	want := codec.AppendFrame([]byte("x"), codec.MsgErrorResponse,
		[]byte("SERROR\x00VERROR\x00C42P01\x00Mrelation \"p\" does not exist\x00P9\x00Fparse_relation.c\x00Zunknown\x00\x00"))
	if string(got) != string(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	bad := []byte("SERROR")
	if got := codec.AppendEditedFields(nil, codec.MsgErrorResponse, bad, nil); string(got) != string(codec.AppendFrame(nil, codec.MsgErrorResponse, bad)) {
		t.Fatalf("malformed body: %q", got)
	}
}

func TestParseParameterStatus(t *testing.T) {
	for _, tc := range []struct {
		in, name, value string
		ok              bool
	}{
		{"TimeZone\x00UTC\x00", "TimeZone", "UTC", true},
		{"x\x00\x00", "x", "", true},
		{"TimeZone\x00UTC", "", "", false},
		{"TimeZone\x00UTC\x00\x00", "", "", false},
		{"TimeZone", "", "", false},
		{"", "", "", false},
	} {
		n, v, err := codec.ParseParameterStatus([]byte(tc.in))
		if tc.ok != (err == nil) || string(n) != tc.name || string(v) != tc.value {
			t.Errorf("ParseParameterStatus(%q) = %q %q %v", tc.in, n, v, err)
		}
	}
}

func TestParseCopyResponse(t *testing.T) {
	c, err := codec.ParseCopyResponse(cat([]byte{1}, u16(2), u16(1), u16(1)))
	if err != nil || c.Format != 1 || c.NumColumns != 2 || !bytes.Equal(c.ColumnFormats, cat(u16(1), u16(1))) {
		t.Fatalf("got %+v %v", c, err)
	}
	for _, m := range [][]byte{nil, {0}, {0, 0}, cat([]byte{0}, u16(1)), cat([]byte{0}, u16(1), u16(0), []byte{0}), cat([]byte{0}, u16(0), []byte{0})} {
		if _, err := codec.ParseCopyResponse(m); err != codec.ErrMalformed {
			t.Errorf("ParseCopyResponse(%x) err = %v", m, err)
		}
	}
}

func TestParseAuthentication(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		kind uint32
		ok   bool
	}{
		{"ok", u32(0), codec.AuthOk, true},
		{"ok with data", cat(u32(0), []byte{0}), 0, false},
		{"cleartext", u32(3), codec.AuthCleartextPassword, true},
		{"md5", cat(u32(5), []byte("salt")), codec.AuthMD5Password, true},
		{"md5 short salt", cat(u32(5), []byte("sal")), 0, false},
		{"sasl", cat(u32(10), []byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")), codec.AuthSASL, true},
		{"sasl unterminated list", cat(u32(10), []byte("SCRAM-SHA-256\x00")), 0, false},
		{"sasl trailing", cat(u32(10), []byte("SCRAM-SHA-256\x00\x00x")), 0, false},
		{"sasl continue", cat(u32(11), []byte("r=abc,s=def,i=4096")), codec.AuthSASLContinue, true},
		{"sasl final", cat(u32(12), []byte("v=xyz")), codec.AuthSASLFinal, true},
		{"gss", u32(7), codec.AuthGSS, true},
		{"gss continue", cat(u32(8), []byte{1, 2, 3}), codec.AuthGSSContinue, true},
		{"unknown kind", cat(u32(99), []byte{1}), 99, true},
		{"short", []byte{0, 0, 0}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, data, err := codec.ParseAuthentication(tc.in)
			if !tc.ok {
				if err != codec.ErrMalformed {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || kind != tc.kind || !bytes.Equal(data, tc.in[4:]) {
				t.Fatalf("got %d %q %v", kind, data, err)
			}
		})
	}
	var mechs []string
	err := codec.SASLMechanisms([]byte("SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"), func(m []byte) { mechs = append(mechs, string(m)) })
	if err != nil || strings.Join(mechs, ",") != "SCRAM-SHA-256-PLUS,SCRAM-SHA-256" {
		t.Fatalf("SASLMechanisms = %q %v", mechs, err)
	}
	mechs = nil
	if err := codec.SASLMechanisms([]byte("A\x00B\x00"), func(m []byte) { mechs = append(mechs, string(m)) }); err != codec.ErrMalformed || mechs != nil {
		t.Fatalf("SASLMechanisms on malformed list: %q %v", mechs, err)
	}
}

func TestParseNegotiateProtocolVersion(t *testing.T) {
	minor, opts, err := codec.ParseNegotiateProtocolVersion(cat(u32(0), u32(2), []byte("_pq_.a\x00_pq_.b\x00")))
	if err != nil || minor != 0 || len(opts) != 2 || string(opts[0]) != "_pq_.a" || string(opts[1]) != "_pq_.b" {
		t.Fatalf("got %d %q %v", minor, opts, err)
	}
	minor, opts, err = codec.ParseNegotiateProtocolVersion(cat(u32(2), u32(0)))
	if err != nil || minor != 2 || len(opts) != 0 {
		t.Fatalf("got %d %q %v", minor, opts, err)
	}
	for _, m := range [][]byte{nil, u32(0), cat(u32(0), u32(1)), cat(u32(0), u32(1), []byte("a")), cat(u32(0), u32(1), []byte("a\x00b\x00")),
		cat(u32(0), u32(0xFFFFFFFF), []byte("a\x00"))} {
		if _, _, err := codec.ParseNegotiateProtocolVersion(m); err != codec.ErrMalformed {
			t.Errorf("ParseNegotiateProtocolVersion(%q) err = %v", m, err)
		}
	}
}

func TestAppenders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"Query", codec.AppendQuery(nil, "select 1"), frame('Q', []byte("select 1\x00"))},
		{"Query with NUL is cut", codec.AppendQuery(nil, "select 1\x00; drop table t"), frame('Q', []byte("select 1\x00"))},
		{"Sync", codec.AppendSync(nil), frame('S', nil)},
		{"Flush", codec.AppendFlush(nil), frame('H', nil)},
		{"Terminate", codec.AppendTerminate(nil), frame('X', nil)},
		{"CopyFail", codec.AppendCopyFail(nil, "boom"), frame('f', []byte("boom\x00"))},
		{"ReadyForQuery", codec.AppendReadyForQuery(nil, codec.TxActive), frame('Z', []byte("T"))},
		{"AuthenticationOk", codec.AppendAuthenticationOk(nil), frame('R', u32(0))},
		{"ParameterStatus", codec.AppendParameterStatus(nil, "TimeZone", "UTC"), frame('S', []byte("TimeZone\x00UTC\x00"))},
		{"BackendKeyData", codec.AppendBackendKeyData(nil, 42, 0xDEADBEEF), frame('K', cat(u32(42), u32(0xDEADBEEF)))},
		{"NegotiateProtocolVersion", codec.AppendNegotiateProtocolVersion(nil, 0, []string{"_pq_.x"}), frame('v', cat(u32(0), u32(1), []byte("_pq_.x\x00")))},
		{"Frame", codec.AppendFrame(nil, 'd', []byte("row")), frame('d', []byte("row"))},
		{"ErrorResponse", codec.AppendErrorResponse(nil, codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.TooManyConnections, Message: "too many", Hint: "wait"}),
			frame('E', []byte("SFATAL\x00VFATAL\x00C53300\x00Mtoo many\x00Hwait\x00\x00"))},
		{"ErrorResponse default severity", codec.AppendErrorResponse(nil, codec.ErrorResponse{Code: sqlstate.ProtocolViolation, Message: "m", Detail: "d"}),
			frame('E', []byte("SERROR\x00VERROR\x00C08P01\x00Mm\x00Dd\x00\x00"))},
		{"ErrorResponse with context", codec.AppendErrorResponse(nil, codec.ErrorResponse{Code: sqlstate.BadCopyFileFormat, Message: "m", Where: "COPY t, line 3"}),
			frame('E', []byte("SERROR\x00VERROR\x00C22P04\x00Mm\x00WCOPY t, line 3\x00\x00"))},
		{"NoticeResponse", codec.AppendNoticeResponse(nil, codec.ErrorResponse{Code: sqlstate.Warning, Message: "w"}),
			frame('N', []byte("SNOTICE\x00VNOTICE\x00C01000\x00Mw\x00\x00"))},
		{"StartupMessage", codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", "u", "", "skipped", "k\x00injected", "v\x00x"),
			cat(u32(20), u32(codec.ProtocolVersion30), []byte("user\x00u\x00k\x00v\x00\x00"))},
		{"CancelRequest", codec.AppendCancelRequest(nil, 42, u32(7)), cat(u32(16), u32(codec.CancelRequestCode), u32(42), u32(7))},
		{"SSLRequest", codec.AppendSSLRequest(nil), cat(u32(8), u32(codec.SSLRequestCode))},
		{"Begin/Finish", func() []byte {
			b, start := codec.BeginMessage([]byte("xx"), 'd')
			b = append(b, "abc"...)
			return codec.FinishMessage(b, start)
		}(), append([]byte("xx"), frame('d', []byte("abc"))...)},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	// Appenders extend dst rather than overwrite it.
	if got := codec.AppendSync([]byte("prefix")); string(got[:6]) != "prefix" || len(got) != 11 {
		t.Errorf("AppendSync with prefix = %q", got)
	}
}

func TestAppendParsePanicsOnBadOIDs(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "BUG:") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	codec.AppendParse(nil, codec.Parse{NumParams: 1})
}

func TestAppendersDoNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 1024)
	e := codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.AdminShutdown, Message: "terminating connection", Detail: "d", Hint: "h"}
	allocs := testing.AllocsPerRun(100, func() {
		b := codec.AppendErrorResponse(dst[:0], e)
		b = codec.AppendQuery(b, "select 1")
		b = codec.AppendReadyForQuery(b, codec.TxIdle)
		b = codec.AppendParameterStatus(b, "a", "b")
		b = codec.AppendStartupMessage(b, codec.ProtocolVersion30, "user", "u")
		_ = b
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}

func TestAccessorsDoNotAllocate(t *testing.T) {
	bind := cat([]byte("p\x00s\x00"), u16(1), u16(0), u16(2), u32(1), []byte("x"), u32(0xFFFFFFFF), u16(0))
	parse := cat([]byte("s\x00select $1\x00"), u16(1), u32(23))
	errBody := []byte("SERROR\x00VERROR\x00C42P01\x00Mm\x00\x00")
	startup := []byte("user\x00u\x00database\x00d\x00\x00")
	msg := codec.AppendQuery(nil, "select 1")
	var sink int
	fn := func(k, v []byte) { sink += len(k) + len(v) }
	allocs := testing.AllocsPerRun(100, func() {
		f, _, _ := codec.ReadFrame(msg, 0)
		q, _ := codec.QueryText(f.Body)
		b, _ := codec.ParseBind(bind)
		p, _ := codec.ParseParse(parse)
		e, _ := codec.ParseErrorFields(errBody)
		_ = codec.StartupParams(startup, fn)
		sink += len(q) + len(b.Rest) + len(p.Query) + len(e.Code)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	errs := []error{codec.ErrShortBuffer, codec.ErrInvalidLength, codec.ErrMessageTooLarge, codec.ErrMalformed}
	for i, a := range errs {
		for j, b := range errs {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("%v vs %v", a, b)
			}
		}
	}
}
