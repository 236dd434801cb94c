package auth

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A verifier captured from PostgreSQL 15 (password "sekret").
const pgVerifier = "SCRAM-SHA-256$4096:19ny9eoQZYucaQt1DTHWuA==$1xHXVDP/Fw94JWH4PqV6MWjp2y1VG9h7SVMyHuD69X0=:mt7HyfXcyGdcoO41Qvcl+Y9/9aKvNJkr7YIASgywQrc="

func TestParseSecret(t *testing.T) {
	key := "Vy6hFOmpXb3sM4xgDc0MXV0v/u/pQtJEFhWdpc+Dv3c="
	for _, tc := range []struct {
		in   string
		kind SecretKind
	}{
		{"", SecretNone},
		{"\x00md5", SecretNone},
		{"sekret", SecretPlain},
		{"md5" + strings.Repeat("a", 32), SecretMD5},
		{"md5" + strings.Repeat("0123456789abcdef", 2), SecretMD5},
		{"md5" + strings.Repeat("A", 32), SecretPlain},         // uppercase hex
		{"md5" + strings.Repeat("a", 31), SecretPlain},         // short
		{"md5" + strings.Repeat("a", 33), SecretPlain},         // long
		{"md5" + strings.Repeat("a", 32) + "\x00x", SecretMD5}, // C string
		{pgVerifier, SecretSCRAM},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key, SecretSCRAM},
		{"SCRAM-SHA-256$4096:$" + key + ":" + key, SecretPlain},           // strtok skips the empty salt
		{"$SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key, SecretSCRAM},  // strtok skips leading '$'
		{"SCRAM-SHA-256$4096:c2FsdA==$:" + key + ":" + key, SecretSCRAM},  // and leading ':'
		{"SCRAM-SHA-256$ +4096:c2FsdA==$" + key + ":" + key, SecretSCRAM}, // strtol
		{"SCRAM-SHA-256$-1:c2FsdA==$" + key + ":" + key, SecretSCRAM},
		{"SCRAM-SHA-256$4096 :c2FsdA==$" + key + ":" + key, SecretPlain},
		{"SCRAM-SHA-256$99999999999999999999:c2FsdA==$" + key + ":" + key, SecretPlain}, // ERANGE
		{"SCRAM-SHA-256$x:c2FsdA==$" + key + ":" + key, SecretPlain},
		{"SCRAM-SHA-256$4096:c2FsdA=$" + key + ":" + key, SecretPlain},   // bad base64
		{"SCRAM-SHA-256$4096:c2Fs dA==$" + key + ":" + key, SecretPlain}, // whitespace
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key[:40], SecretPlain},
		{"SCRAM-SHA-256$4096:c2FsdA==$" + key, SecretPlain},
		{"SCRAM-SHA-1$4096:c2FsdA==$" + key + ":" + key, SecretPlain},
	} {
		got := ParseSecret(tc.in)
		if got.Kind != tc.kind {
			t.Errorf("ParseSecret(%q).Kind = %v, want %v", tc.in, got.Kind, tc.kind)
		}
	}
	s := ParseSecret(pgVerifier)
	if s.SCRAM.String() != pgVerifier || s.SCRAM.Iterations != 4096 || len(s.SCRAM.Salt) != 16 {
		t.Errorf("round trip: %+v -> %s", s.SCRAM, s.SCRAM)
	}
	if v := ParseSecret("SCRAM-SHA-256$4294967297:c2FsdA==$" + key + ":" + key).SCRAM.Iterations; v != 1 {
		t.Errorf("iterations truncated to C int: %d, want 1", v)
	}
	if v := ParseSecret("SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key).SCRAM; string(v.Salt) != "salt" {
		t.Errorf("salt %q", v.Salt)
	}
}

func TestPgB64Decode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		out  string
		fail bool
	}{
		{"", "", false},
		{"YWJj", "abc", false},
		{"YWI=", "ab", false},
		{"YQ==", "a", false},
		{"YQ=", "", true},
		{"Y===", "", true},
		{"=YWJ", "", true},
		{"YQ==YWJj", "aa", false}, // after '=', only the first byte of each group (pg quirk)
		{"YW\nJj", "", true},
		{"YWJj\xff", "", true},
	} {
		got, ok := pgB64Decode(tc.in)
		if ok == tc.fail || ok && string(got) != tc.out {
			t.Errorf("pgB64Decode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.out, !tc.fail)
		}
	}
}

func TestMD5(t *testing.T) {
	// From PgBouncer's documentation: user admin, password 1234.
	if got := MD5Hash("admin", "1234"); got != "md545f2603610af569b6155c45067268c6b" {
		t.Fatalf("MD5Hash = %s", got)
	}
	salt := [4]byte{1, 2, 3, 4}
	resp := MD5Response(MD5Hash("admin", "1234"), salt)
	for _, tc := range []struct {
		s    Secret
		user string
		resp string
		want bool
	}{
		{ParseSecret("1234"), "admin", resp, true},
		{ParseSecret("md545f2603610af569b6155c45067268c6b"), "admin", resp, true},
		{ParseSecret("1234"), "other", resp, false},
		{ParseSecret("12345"), "admin", resp, false},
		{ParseSecret("md545f2603610af569b6155c45067268c6b"), "admin", resp[:34], false},
		{ParseSecret(pgVerifier), "admin", resp, false},
		{Secret{}, "admin", resp, false},
	} {
		if got := CheckMD5(tc.s, tc.user, salt, tc.resp); got != tc.want {
			t.Errorf("CheckMD5(%v, %q) = %v", tc.s.Kind, tc.user, got)
		}
	}
	if CheckMD5(ParseSecret("1234"), "admin", [4]byte{4, 3, 2, 1}, resp) {
		t.Error("CheckMD5 accepted a response to another salt")
	}
	if !CheckPassword(ParseSecret(pgVerifier), "x", "sekret") || CheckPassword(ParseSecret(pgVerifier), "x", "Sekret") {
		t.Error("CheckPassword with SCRAM")
	}
	if !CheckPassword(ParseSecret(MD5Hash("u", "p")), "u", "p") || CheckPassword(ParseSecret(MD5Hash("u", "p")), "v", "p") {
		t.Error("CheckPassword with MD5")
	}
	if !CheckPassword(ParseSecret("p"), "u", "p") || CheckPassword(ParseSecret("p"), "u", "q") || CheckPassword(Secret{}, "u", "") {
		t.Error("CheckPassword with plain")
	}
}

func TestSASLprep(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"I\u00ADX", "IX", true}, // RFC 4013 examples
		{"user", "user", true},
		{"USER", "USER", true},
		{"\u00AA", "a", true},
		{"\u2168", "IX", true},
		{"\u0007", "\u0007", true},  // ASCII passes untouched in PostgreSQL
		{"\u0627\u0031", "", false}, // bidi: RandAL must be last too
		{"a\u00A0b", "a b", true},
		{"a\u200Bb", "a b", true}, // C.1.2 before B.1, as PostgreSQL does
		{"\u00AD", "", false},     // empty after mapping
		{"a\u0340", "", false},    // prohibited before normalization (PostgreSQL's order)
		{"\xff\xfe", "", false},   // not UTF-8
		{"caf\u00e9", "caf\u00e9", true},
		{"cafe\u0301", "caf\u00e9", true},
		{"\U000E0001x", "", false}, // tagging character (C.9)
		{"\u0221", "", false},      // unassigned in Unicode 3.2
	} {
		got, ok := saslprep(tc.in)
		if ok != tc.ok || ok && got != tc.out {
			t.Errorf("saslprep(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.out, tc.ok)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0
	}
	return len(p), nil
}

func exchange(t testing.TB, c *ScramClient, s *ScramServer) (clientKey []byte, err error) {
	sf, err := s.ClientFirst(c.First())
	if err != nil {
		return nil, err
	}
	cf, err := c.Final(sf)
	if err != nil {
		return nil, err
	}
	fin, ck, err := s.ClientFinal(cf)
	if err != nil {
		return nil, err
	}
	return ck, c.Verify(fin)
}

func TestScramRoundTrip(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, pw := range []string{"sekret", "I\u00ADX", "\xff\xfe raw", "\u2168"} {
		v := NewVerifier(pw, salt, 4096)
		ck, err := exchange(t, NewScramClient(pw, rand.Reader), NewScramServer(v, rand.Reader))
		if err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		// Passthrough against a server holding the same verifier.
		if _, err := exchange(t, NewScramClientFromKeys(v, ck, rand.Reader), NewScramServer(v, rand.Reader)); err != nil {
			t.Fatalf("%q passthrough: %v", pw, err)
		}
		// Wrong password.
		_, err = exchange(t, NewScramClient(pw+"x", rand.Reader), NewScramServer(v, rand.Reader))
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != sqlstate.InvalidPassword {
			t.Fatalf("%q wrong password: %v", pw, err)
		}
		// Passthrough against another verifier of the same password: refused clearly.
		_, err = exchange(t, NewScramClientFromKeys(v, ck, rand.Reader), NewScramServer(NewVerifier(pw, []byte("other salt"), 4096), rand.Reader))
		if !errors.As(err, &ae) || !strings.Contains(ae.Message, "differs") {
			t.Fatalf("%q passthrough with another salt: %v", pw, err)
		}
	}
	// SASLprep makes equivalent passwords log in.
	if _, err := exchange(t, NewScramClient("IX", rand.Reader), NewScramServer(NewVerifier("I\u00ADX", salt, 4096), rand.Reader)); err != nil {
		t.Fatal(err)
	}
	// Mock exchange: fails with 28P01 even with the "right" proof for its salt.
	m := NewMockScramServer("nobody", []byte("cluster secret"), rand.Reader)
	m2 := NewMockScramServer("nobody", []byte("cluster secret"), rand.Reader)
	_, err := exchange(t, NewScramClient("", rand.Reader), m)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != sqlstate.InvalidPassword {
		t.Fatalf("mock: %v", err)
	}
	if !bytes.Equal(m.v.Salt, m2.v.Salt) || len(m.v.Salt) != DefaultSaltLen || m.v.Iterations != DefaultIterations {
		t.Fatal("mock salt is not deterministic")
	}
	if bytes.Equal(m.v.Salt, NewMockScramServer("somebody", []byte("cluster secret"), nil).v.Salt) {
		t.Fatal("mock salt does not depend on the user")
	}
}

func TestScramServerErrors(t *testing.T) {
	v := NewVerifier("pw", []byte("salt"), 4096)
	for _, tc := range []struct {
		first, final string
		code         sqlstate.Code
		detail       string
	}{
		{"", "", sqlstate.ProtocolViolation, "The message is empty."},
		{"n,,n=,r=abc\x00", "", sqlstate.ProtocolViolation, "Message length does not match input length."},
		{"p=tls-server-end-point,,n=,r=abc", "", sqlstate.ProtocolViolation, "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."},
		{"x,,n=,r=abc", "", sqlstate.ProtocolViolation, `Unexpected channel-binding flag "'x'".`},
		{"n,a=bob,n=,r=abc", "", sqlstate.FeatureNotSupported, ""},
		{"n,,m=x,n=,r=abc", "", sqlstate.FeatureNotSupported, ""},
		{"n,,r=abc", "", sqlstate.ProtocolViolation, `Expected attribute "n" but found "'r'".`},
		{"n,,n=,r=a b", "", sqlstate.ProtocolViolation, ""},
		{"n,,n=,r=abc,1=x", "", sqlstate.ProtocolViolation, `Attribute expected, but found invalid character "'1'".`},
		{"n,,n=,r=abc", "c=eSws,r=abc,p=x", sqlstate.ProtocolViolation, ""},
		{"n,,n=,r=abc", "c=biws,r=abc", sqlstate.ProtocolViolation, "Attribute expected, but found end of string."},
		{"n,,n=,r=abc", "c=biws,r=abc,p=AAAA", sqlstate.ProtocolViolation, "Malformed proof in client-final-message."},
		{"n,,n=,r=abc", "c=biws,r=abc,p=" + strings.Repeat("A", 43) + "=", sqlstate.ProtocolViolation, "Nonce does not match."},
		{"n,,n=,r=abc", "c=biws,r=abcAAAAAAAAAAAAAAAAAAAAAAAA,p=" + strings.Repeat("A", 43) + "=,x=y", sqlstate.ProtocolViolation, "Garbage found at the end of client-final-message."},
		{"n,,n=,r=abc", "c=biws,r=abcAAAAAAAAAAAAAAAAAAAAAAAA,p=" + strings.Repeat("A", 43) + "=", sqlstate.InvalidPassword, ""},
		{"y,,n=,r=abc,e=ext", "c=eSws,r=abcAAAAAAAAAAAAAAAAAAAAAAAA,x=ext,p=" + strings.Repeat("A", 43) + "=", sqlstate.InvalidPassword, ""},
	} {
		s := NewScramServer(v, zeroReader{})
		_, err := s.ClientFirst([]byte(tc.first))
		if err == nil {
			_, _, err = s.ClientFinal([]byte(tc.final))
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tc.code || tc.detail != "" && ae.Detail != tc.detail {
			t.Errorf("%q / %q: got %v, want %s %q", tc.first, tc.final, err, tc.code, tc.detail)
		}
		// After an error the exchange is over.
		if _, _, err := s.ClientFinal([]byte(tc.final)); err == nil {
			t.Errorf("%q / %q: exchange continued after an error", tc.first, tc.final)
		}
	}
}

func TestScramClientErrors(t *testing.T) {
	for _, tc := range []struct{ first, final string }{
		{"", ""},
		{"r=AAAAAAAAAAAAAAAAAAAAAAAA,s=c2FsdA==,i=4096", ""},                                 // nonce not extended
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA=,i=4096", ""},                                 // salt
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=0", ""},                                   // iterations
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=100000000000", ""},                        // too many
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1,x=y", ""},                               // garbage
		{"r=BAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1", ""},                                   // wrong nonce
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1", "e=invalid-proof"},                    // server error
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1", "v=" + strings.Repeat("A", 43) + "="}, // bad signature
		{"r=AAAAAAAAAAAAAAAAAAAAAAAAx,s=c2FsdA==,i=1", "v=AAAA"},
	} {
		c := NewScramClient("pw", zeroReader{})
		c.First()
		_, err := c.Final([]byte(tc.first))
		if err == nil {
			err = c.Verify([]byte(tc.final))
		}
		if err == nil {
			t.Errorf("%q / %q: no error", tc.first, tc.final)
		}
	}
}

func TestParseUserlist(t *testing.T) {
	md5 := MD5Hash("bob", "pw")
	in := `; comment
"alice" "plain pw" trailing garbage "x"

  "bob"   "` + md5 + `"
"q""uote" "a""b"
"scram" "` + pgVerifier + `"
"empty" ""
"alice" "replaced"
"multi
line" junk
"pw"
`
	got, err := ParseUserlist(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Secret{
		"alice":       {Kind: SecretPlain, Plain: "replaced"},
		"bob":         {Kind: SecretMD5, MD5: md5},
		`q"uote`:      {Kind: SecretPlain, Plain: `a"b`},
		"scram":       ParseSecret(pgVerifier),
		"empty":       {Kind: SecretNone},
		"multi\nline": {Kind: SecretPlain, Plain: "pw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	for _, tc := range []struct {
		in    string
		users int
		line  string
	}{
		{`"a" "b"` + "\n# hash comment\n" + `"c" "d"`, 1, "line 2"},
		{`"a" "b"` + "\n\"c", 1, "line 2"},
		{`"a" "b"` + "\n\"c\"", 1, "line 2"},
		{`"a" "b"` + "\n\"c\" \"d", 1, "line 2"},
		{`"` + strings.Repeat("u", 128) + `" "p"`, 0, "username too long"},
		{`"u" "` + strings.Repeat("p", 2048) + `"`, 0, "password too long"},
	} {
		got, err := ParseUserlist(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.line) || len(got) != tc.users {
			t.Errorf("%q: %d users, %v; want %d users and an error with %q", tc.in, len(got), err, tc.users, tc.line)
		}
	}
	if got, err := ParseUserlist(strings.NewReader("\"a\" \"b\"\x00\"c\" \"d\"")); err != nil || len(got) != 1 {
		t.Errorf("NUL: %v %v", got, err)
	}
}

func TestHBA(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admins"), []byte("# admins\nroot, \"Ad min\"\nops @sub/more\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "more"), []byte("dba\n"), 0o644)
	conf := `# TYPE DATABASE USER ADDRESS METHOD
local   all       @admins                 peer
local   sameuser  all                     md5 # comment
local   all       all                     reject
hostssl all       all    10.0.0.0/8       cert clientcert=verify-full
host    db1,"DB 2" app 10.1.2.3 255.255.0.0 scram-sha-256
host    all       all    10.0.0.0/8       password
hostnossl all     all    ::1/128          trust
host    "all"     all    0.0.0.0/0        md5
host    all       all    ::/0             reject
`
	h, err := ParseHBA(strings.NewReader(conf), dir)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		c      HBAConn
		method string
	}{
		{HBAConn{Local: true, Database: "x", User: "root"}, "peer"},
		{HBAConn{Local: true, Database: "x", User: "Ad min"}, "peer"},
		{HBAConn{Local: true, Database: "x", User: "ops"}, "peer"},
		{HBAConn{Local: true, Database: "x", User: "dba"}, "peer"},
		{HBAConn{Local: true, Database: "bob", User: "bob"}, "md5"},
		{HBAConn{Local: true, Database: "x", User: "bob"}, "reject"},
		{HBAConn{TLS: true, Addr: a("10.9.9.9"), Database: "x", User: "u"}, "cert"},
		{HBAConn{Addr: a("10.1.200.1"), Database: "DB 2", User: "app"}, "scram-sha-256"},
		{HBAConn{Addr: a("::ffff:10.1.200.1"), Database: "db1", User: "app"}, "scram-sha-256"},
		{HBAConn{Addr: a("10.2.0.1"), Database: "db1", User: "app"}, "password"},
		{HBAConn{Addr: a("10.1.0.1"), Database: "db3", User: "app"}, "password"},
		{HBAConn{Addr: a("::1"), Database: "x", User: "u"}, "trust"},
		{HBAConn{TLS: true, Addr: a("::1"), Database: "x", User: "u"}, "reject"},
		{HBAConn{Addr: a("192.168.0.1"), Database: "all", User: "u"}, "md5"},
		{HBAConn{Addr: a("192.168.0.1"), Database: "x", User: "u"}, ""},
	} {
		m, ok := h.Method(tc.c)
		if m != tc.method || ok != (tc.method != "") {
			t.Errorf("%+v: %q, %v; want %q", tc.c, m, ok, tc.method)
		}
	}
	if m, ok := (*HBA)(nil).Method(HBAConn{Local: true}); ok || m != "" {
		t.Error("nil HBA matched")
	}
	for _, tc := range []struct{ line, want string }{
		{"hostgssenc all all 0.0.0.0/0 md5", "line 1: unknown connection type"},
		{"\n\nhost all +group 0.0.0.0/0 md5", "line 3: user field: group names"},
		{"host samerole all 0.0.0.0/0 md5", "samerole is not supported"},
		{"host replication all 0.0.0.0/0 md5", "replication is not supported"},
		{"host all all example.com md5", "failed to parse address"},
		{"host all all samenet md5", "failed to parse address"},
		{"host all all 10.0.0.0/33 md5", "invalid mask"},
		{"host all all 10.0.0.0/+8 md5", "invalid mask"},
		{"host all all 10.0.0.0 ffff:: md5", "failed to parse mask"},
		{"host all all 10.0.0.0", "did not find mask"},
		{"host all all 10.0.0.0/8", "missing authentication method"},
		{"host all all 10.0.0.0/8 ldap", `unsupported method "ldap"`},
		{"local all all ident", `unsupported method "ident"`},
		{"local all", "missing name"},
		{`local "all all md5`, "unterminated"},
		{"local all @missing md5", "missing"},
		{"local all all, md5", "missing authentication method"},
	} {
		_, err := ParseHBA(strings.NewReader(tc.line), dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.line, err, tc.want)
		}
	}
	// Include loops are cut.
	os.WriteFile(filepath.Join(dir, "loop"), []byte("@loop\n"), 0o644)
	if _, err := ParseHBA(strings.NewReader("local all @loop md5"), dir); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("include loop: %v", err)
	}
	p := filepath.Join(dir, "pg_hba.conf")
	os.WriteFile(p, []byte(conf), 0o644)
	h2, err := LoadHBA(p)
	if err != nil || !reflect.DeepEqual(h, h2) {
		t.Errorf("LoadHBA: %v", err)
	}
}
