package loop

import (
	"encoding/binary"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

func packet(code uint32, kv ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], code)
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	if code>>16 == 3 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestParseStartup(t *testing.T) {
	absurd := []byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0}
	cases := []struct {
		name string
		in   []byte
		kind startupKind
		code sqlstate.Code
		msg  string
		chk  func(t *testing.T, s startup)
	}{
		{name: "short", in: []byte{0, 0, 0}, kind: startupNeedMore},
		{name: "partial", in: packet(codec.ProtocolVersion30, "user", "u")[:10], kind: startupNeedMore},
		{name: "absurd length", in: absurd, kind: startupReject, code: sqlstate.ProtocolViolation, msg: "invalid length of startup packet"},
		{name: "tiny length", in: []byte{0, 0, 0, 4, 0, 3, 0, 0}, kind: startupReject, code: sqlstate.ProtocolViolation},
		{name: "ssl", in: packet(codec.SSLRequestCode), kind: startupSSL},
		{name: "gss", in: packet(codec.GSSENCRequestCode), kind: startupGSS},
		{name: "protocol 2", in: packet(2<<16, "user", "u"), kind: startupReject, code: sqlstate.FeatureNotSupported,
			msg: "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"},
		{name: "protocol 4", in: packet(4<<16|1, "user", "u"), kind: startupReject, code: sqlstate.FeatureNotSupported},
		{name: "no user", in: packet(codec.ProtocolVersion30, "database", "d"), kind: startupReject,
			code: sqlstate.InvalidAuthorizationSpecification, msg: "no PostgreSQL user name specified in startup packet"},
		{name: "replication", in: packet(codec.ProtocolVersion30, "user", "u", "replication", "database"), kind: startupReject,
			code: sqlstate.FeatureNotSupported},
		{name: "bad options", in: packet(codec.ProtocolVersion30, "user", "u", "options", "-x"), kind: startupReject,
			code: sqlstate.FeatureNotSupported},
		{name: "login", in: packet(codec.ProtocolVersion30, "user", "alice", "application_name", "psql", "options", "-c search_path=a\\ b --work-mem=1MB", "DateStyle", "ISO"),
			kind: startupLogin, chk: func(t *testing.T, s startup) {
				if s.user != "alice" || s.database != "alice" {
					t.Fatalf("user/db = %q/%q", s.user, s.database)
				}
				want := []param{{"application_name", "psql"}, {"datestyle", "ISO"}, {"search_path", "a b"}, {"work_mem", "1MB"}}
				if len(s.params) != len(want) {
					t.Fatalf("params %v", s.params)
				}
				for i := range want {
					if s.params[i] != want[i] {
						t.Fatalf("params %v, want %v", s.params, want)
					}
				}
				if got := startupSQL(s.params); got != `SELECT pg_catalog.set_config(E'application_name', E'psql', false), pg_catalog.set_config(E'datestyle', E'ISO', false), `+
					`pg_catalog.set_config(E'search_path', E'a b', false), pg_catalog.set_config(E'work_mem', E'1MB', false)` {
					t.Fatalf("startupSQL %s", got)
				}
			}},
		{name: "protocol 3.2 negotiates", in: packet(3<<16|2, "user", "u", "_pq_.x", "1"), kind: startupLogin, chk: func(t *testing.T, s startup) {
			if s.minor != 2 || len(s.unrecognized) != 1 || s.unrecognized[0] != "_pq_.x" {
				t.Fatalf("minor %d unrecognized %v", s.minor, s.unrecognized)
			}
		}},
		{name: "quotes escaped", in: packet(codec.ProtocolVersion30, "user", "u", "application_name", `it's "x"`), kind: startupLogin, chk: func(t *testing.T, s startup) {
			if got := startupSQL(s.params); got != `SELECT pg_catalog.set_config(E'application_name', E'it''s "x"', false)` {
				t.Fatalf("startupSQL %s", got)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := parseStartup(c.in)
			if s.kind != c.kind {
				t.Fatalf("kind %d, want %d (%+v)", s.kind, c.kind, s)
			}
			if c.code != "" && s.err.Code != c.code {
				t.Fatalf("code %s, want %s", s.err.Code, c.code)
			}
			if c.msg != "" && s.err.Message != c.msg {
				t.Fatalf("message %q, want %q", s.err.Message, c.msg)
			}
			if s.kind == startupReject && s.err.Severity != "FATAL" {
				t.Fatalf("severity %q", s.err.Severity)
			}
			if c.chk != nil {
				c.chk(t, s)
			}
		})
	}
}

func FuzzParseStartup(f *testing.F) {
	f.Add(packet(codec.ProtocolVersion30, "user", "u", "database", "d"))
	f.Add(packet(codec.SSLRequestCode))
	f.Add(packet(codec.CancelRequestCode, "abcdefgh"))
	f.Add(packet(3<<16|5, "user", "u", "options", "-c a=b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := parseStartup(b)
		if s.n > len(b) {
			t.Fatalf("n %d > len %d", s.n, len(b))
		}
		if s.kind == startupLogin && s.user == "" {
			t.Fatal("login without user")
		}
		if s.kind == startupReject && (s.err.Code == "" || s.err.Severity != "FATAL") {
			t.Fatalf("reject without SQLSTATE: %+v", s.err)
		}
	})
}
