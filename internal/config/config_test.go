package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	f, err := Parse("p.ini", []byte(`; a comment
# another
[databases]
bench = host=127.0.0.1 port=5432 dbname=pgbench
"odd name" = host=/tmp password='it''s' dbname='a b'
* = host=127.0.0.1

[PgBouncer]
Listen_Port = 6432
auth_type=scram-sha-256
admin_users = alice, bob
[users]
Alice = pool_mode=session
[pgbouncer]
max_client_conn = 100
`))
	if err != nil {
		t.Fatal(err)
	}
	db := f.Section("databases")
	if len(db) != 3 || db[1].Key != "odd name" || db[2].Key != "*" || db[0].Pos.Line != 4 {
		t.Fatalf("databases: %+v", db)
	}
	pb := f.Section("pgbouncer")
	var keys []string
	for _, e := range pb {
		keys = append(keys, e.Key+"="+e.Value)
	}
	if want := []string{"listen_port=6432", "auth_type=scram-sha-256", "admin_users=alice, bob", "max_client_conn=100"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("pgbouncer: %v, want %v", keys, want)
	}
	if u := f.Section("users"); len(u) != 1 || u[0].Key != "Alice" {
		t.Fatalf("users: %+v", u)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"port = 1", "p.ini:1: \"port = 1\" comes before any [section]"},
		{"[pgbouncer\nx=1", "p.ini:1: a section header is [name]"},
		{"[]", "p.ini:1: empty section name"},
		{"[pgbouncer]\njust words", "p.ini:2: want key = value"},
		{"[pgbouncer]\n = 3", "p.ini:2: empty key"},
		{"[databases]\n\"unterminated = x", "p.ini:2: unterminated quoted name"},
		{"[pgbouncer]\n%include other.ini", "p.ini:2: %include is only followed by Load"},
	} {
		_, err := Parse("p.ini", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

func TestLoadIncludes(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("main.ini", "[pgbouncer]\nlisten_port = 1\n%include part.ini\n[pgbouncer]\nmax_client_conn = 3\n")
	write("part.ini", "[databases]\ndb = host=h\n[pgbouncer]\npool_mode = session\n")
	f, err := Load("main.ini")
	if err != nil {
		t.Fatal(err)
	}
	pb := f.Section("pgbouncer")
	if len(pb) != 3 || pb[1].Key != "pool_mode" || pb[1].Pos != (Pos{"part.ini", 4}) || pb[2].Key != "max_client_conn" {
		t.Fatalf("pgbouncer: %+v", pb)
	}
	write("loop.ini", "[pgbouncer]\n%include loop.ini\n")
	if _, err := Load("loop.ini"); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("a file including itself: %v", err)
	}
	write("missing.ini", "[pgbouncer]\n%include nowhere.ini\n")
	if _, err := Load("missing.ini"); err == nil || !strings.Contains(err.Error(), "missing.ini:2: %include") {
		t.Fatalf("a missing include: %v", err)
	}
}

func TestParseConnString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]string
		err  bool
	}{
		{"host=127.0.0.1 port=5432 dbname=x", map[string]string{"host": "127.0.0.1", "port": "5432", "dbname": "x"}, false},
		{"host = h  user=u", map[string]string{"host": "h", "user": "u"}, false},
		{`password='a b\'c' x=1`, map[string]string{"password": "a b'c", "x": "1"}, false},
		{"", map[string]string{}, false},
		{"host", nil, true},
		{"=x", nil, true},
		{"password='open", nil, true},
	} {
		got, err := ParseConnString(c.in)
		if (err != nil) != c.err || (!c.err && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("%q: %v %v, want %v (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]time.Duration{"15": 15 * time.Second, "0.5": 500 * time.Millisecond,
		"250ms": 250 * time.Millisecond, "2min": 2 * time.Minute, "0": 0} {
		if got, err := Seconds(in); err != nil || got != want {
			t.Errorf("Seconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1 week", "x"} {
		if _, err := Seconds(bad); err == nil {
			t.Errorf("Seconds(%q) accepted", bad)
		}
	}
	for in, want := range map[string]bool{"1": true, "on": true, "Yes": true, "0": false, "off": false} {
		if got, err := Bool(in); err != nil || got != want {
			t.Errorf("Bool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := Bool("maybe"); err == nil {
		t.Error("Bool(maybe) accepted")
	}
	if _, err := Int("12x"); err == nil {
		t.Error("Int(12x) accepted")
	}
	if got := List(" a, ,b "); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("List: %v", got)
	}
}

// FuzzParse: any text parses or fails with a positioned error, and what
// parses keeps every entry's key and line.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[pgbouncer]\nlisten_port = 6432\n[databases]\n\"a\"\"b\" = host=x\n"))
	f.Add([]byte("; c\n[users]\nu = pool_mode=session\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.ini", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.ini:") {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		for _, s := range file.Sections {
			for _, e := range s.Entries {
				if e.Key == "" || e.Pos.Line < 1 {
					t.Fatalf("entry %+v", e)
				}
			}
		}
	})
}

// FuzzParseConnString: no input panics, and a parsed string's values
// survive quoting back.
func FuzzParseConnString(f *testing.F) {
	f.Add("host=127.0.0.1 port=5432 dbname=x")
	f.Add(`password='a b\'c'`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseConnString(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for k, v := range m {
			if strings.ContainsAny(k, "= \t'\\") || k == "" {
				return // a key the quoting below cannot write back
			}
			b.WriteString(k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "' ")
		}
		again, err := ParseConnString(b.String())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("%q → %v → %q → %v %v", s, m, b.String(), again, err)
		}
	})
}

func TestUnquote(t *testing.T) {
	for _, c := range []struct {
		in, word string
		n        int
		ok       bool
	}{
		{`"a b" rest`, "a b", 5, true},
		{`"a""b"`, `a"b`, 6, true},
		{`""`, "", 2, true},
		{`"open`, "", 0, false},
		{"\"nul\x00\"", "", 0, false},
		{`plain`, "", 0, false},
	} {
		w, n, ok := Unquote(c.in)
		if w != c.word || n != c.n || ok != c.ok {
			t.Errorf("Unquote(%q) = %q, %d, %v; want %q, %d, %v", c.in, w, n, ok, c.word, c.n, c.ok)
		}
	}
}

// TestPgBouncerKeys: real PgBouncer settings are known as such, so that a
// caller can tell "not supported" from a typo, and a typo gets the key it
// most likely meant.
func TestPgBouncerKeys(t *testing.T) {
	for _, k := range []string{"log_connections", "log_disconnections", "log_pooler_errors", "verbose", "syslog",
		"dns_max_ttl", "application_name_add_host", "disable_pqexec", "server_round_robin", "tcp_keepalive",
		"default_pool_size", "max_prepared_statements", "client_tls13_ciphers"} {
		if !PgBouncerKeys[k] {
			t.Errorf("%s is a PgBouncer setting", k)
		}
	}
	if PgBouncerKeys["frobnicate"] || PgBouncerKeys["defualt_pool_size"] {
		t.Error("a typo is taken for a PgBouncer setting")
	}
	known := []string{"default_pool_size", "max_client_conn", "min_pool_size", "pool_mode"}
	for _, c := range []struct{ key, want string }{
		{"defualt_pool_size", "default_pool_size"},
		{"default_pool_sizes", "default_pool_size"},
		{"max_client_con", "max_client_conn"},
		{"pool_mod", "pool_mode"},
		{"frobnicate", ""},
		{"mode", ""}, // 2 edits from nothing close enough for so short a word
	} {
		if got := Nearest(c.key, known); got != c.want {
			t.Errorf("Nearest(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}
