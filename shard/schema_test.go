package shard

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
)

func tn(schema, name string) TableName { return TableName{Schema: schema, Name: name} }

func pgbenchSchema(t *testing.T) *Schema {
	t.Helper()
	s, err := New(4,
		ReferenceTable(tn("", "pgbench_tellers")),
		ShardedTable(tn("public", "pgbench_accounts"), "aid", KeyInteger),
		ReferenceTable(tn("public", "pgbench_branches")),
		ShardedTable(tn("app", "Users"), "id", KeyUUID),
		ShardedTable(tn("app", "sessions"), "token", KeyText),
	)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchemaLookup(t *testing.T) {
	s := pgbenchSchema(t)
	if s.Shards() != 4 || s.Len() != 5 {
		t.Fatalf("%d shards, %d tables", s.Shards(), s.Len())
	}
	var names []string
	for _, tb := range s.Tables() {
		names = append(names, tb.Name.String())
	}
	if got := strings.Join(names, " "); got != `app."Users" app.sessions public.pgbench_accounts public.pgbench_branches public.pgbench_tellers` {
		t.Errorf("tables in order: %s", got)
	}
	if tb, ok := s.Lookup("", "pgbench_accounts"); !ok || tb.Kind != Sharded || tb.Key != "aid" || tb.KeyType != KeyInteger || tb.Name != tn("public", "pgbench_accounts") {
		t.Errorf("unqualified pgbench_accounts: %+v %v", tb, ok)
	}
	if tb, ok := s.Lookup("public", "pgbench_tellers"); !ok || tb.Kind != Reference || tb.Key != "" {
		t.Errorf("public.pgbench_tellers: %+v %v", tb, ok)
	}
	if tb, ok := s.Table(tn("app", "Users")); !ok || tb.KeyType != KeyUUID {
		t.Errorf("app.Users: %+v %v", tb, ok)
	}
	for _, n := range []TableName{tn("app", "users"), tn("public", "sessions"), tn("", "sessions"), tn("public", "nope")} {
		if _, ok := s.Lookup(n.Schema, n.Name); ok {
			t.Errorf("%v found", n)
		}
	}
	// Tables returns a copy: the schema is immutable.
	s.Tables()[0].Key = "changed"
	if tb, _ := s.Table(tn("app", "Users")); tb.Key != "id" {
		t.Error("Tables exposes the schema's own slice")
	}
}

func TestSchemaValidation(t *testing.T) {
	ok := ShardedTable(tn("public", "a"), "id", KeyInteger)
	for _, c := range []struct {
		name   string
		shards int
		tables []Table
		want   error
		code   sqlstate.Code
	}{
		{"zero shards", 0, nil, ErrShards, sqlstate.InvalidParameterValue},
		{"negative shards", -1, nil, ErrShards, sqlstate.InvalidParameterValue},
		{"too many shards", MaxShards + 1, nil, ErrShards, sqlstate.InvalidParameterValue},
		{"unknown key type", 2, []Table{ShardedTable(tn("", "b"), "id", 0)}, ErrKeyType, sqlstate.UndefinedObject},
		{"key type out of range", 2, []Table{ShardedTable(tn("", "b"), "id", 9)}, ErrKeyType, sqlstate.UndefinedObject},
		{"sharded and reference", 2, []Table{ok, ReferenceTable(tn("public", "a"))}, ErrShardedAndReference, sqlstate.InvalidTableDefinition},
		{"sharded and reference, default schema", 2, []Table{ReferenceTable(tn("", "a")), ok}, ErrShardedAndReference, sqlstate.InvalidTableDefinition},
		{"duplicate sharded", 2, []Table{ok, ShardedTable(tn("", "a"), "other", KeyText)}, ErrDuplicate, sqlstate.DuplicateObject},
		{"duplicate reference", 2, []Table{ReferenceTable(tn("s", "r")), ReferenceTable(tn("s", "r"))}, ErrDuplicate, sqlstate.DuplicateObject},
		{"no key", 2, []Table{ShardedTable(tn("", "b"), "", KeyInteger)}, ErrName, sqlstate.InvalidName},
		{"empty name", 2, []Table{ReferenceTable(tn("public", ""))}, ErrName, sqlstate.InvalidName},
		{"long name", 2, []Table{ReferenceTable(tn("public", strings.Repeat("x", 64)))}, ErrName, sqlstate.InvalidName},
		{"long key", 2, []Table{ShardedTable(tn("", "b"), strings.Repeat("k", 64), KeyText)}, ErrName, sqlstate.InvalidName},
		{"bad UTF-8", 2, []Table{ReferenceTable(tn("\xff", "r"))}, ErrName, sqlstate.InvalidName},
		{"NUL", 2, []Table{ReferenceTable(tn("public", "a\x00b"))}, ErrName, sqlstate.InvalidName},
		{"reference with a key", 2, []Table{{Name: tn("", "r"), Kind: Reference, Key: "id", KeyType: KeyInteger}}, ErrKeyType, sqlstate.InvalidTableDefinition},
		{"no kind", 2, []Table{{Name: tn("", "r")}}, ErrKind, sqlstate.InvalidParameterValue},
	} {
		_, err := New(c.shards, c.tables...)
		var e *Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: %v (want %v, %s)", c.name, err, c.want, c.code)
		}
	}
	if _, err := New(1); err != nil {
		t.Errorf("one shard, no tables: %v", err)
	}
	if _, err := New(MaxShards, ok, ReferenceTable(tn("", strings.Repeat("x", 63)))); err != nil {
		t.Errorf("MaxShards, a 63-byte name: %v", err)
	}
}

func TestSchemaWithWithout(t *testing.T) {
	s := pgbenchSchema(t)
	s2, err := s.With(ShardedTable(tn("", "orders"), "customer", KeyInteger))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Lookup("", "orders"); !ok || s2.Len() != 6 {
		t.Error("With did not add the table")
	}
	if _, ok := s.Lookup("", "orders"); ok || s.Len() != 5 {
		t.Error("With changed the original")
	}
	if _, err := s2.With(ReferenceTable(tn("public", "orders"))); !errors.Is(err, ErrShardedAndReference) {
		t.Errorf("With a sharded table as a reference table: %v", err)
	}
	if _, err := s2.With(ShardedTable(tn("", "orders"), "id", KeyText)); !errors.Is(err, ErrDuplicate) {
		t.Errorf("With the same table twice: %v", err)
	}
	s3, err := s2.Without(tn("", "pgbench_accounts"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s3.Lookup("", "pgbench_accounts"); ok || s3.Len() != 5 {
		t.Error("Without did not remove the table")
	}
	if _, ok := s2.Lookup("", "pgbench_accounts"); !ok {
		t.Error("Without changed the original")
	}
	var e *Error
	if _, err := s3.Without(tn("", "pgbench_accounts")); !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Code != sqlstate.UndefinedTable {
		t.Errorf("Without a missing table: %v", err)
	}
	if !s.Equal(pgbenchSchema(t)) || s.Equal(s2) || s2.Equal(s3) {
		t.Error("Equal")
	}
}

func TestParseTableName(t *testing.T) {
	for in, want := range map[string]TableName{
		"accounts":                   tn("public", "accounts"),
		"Accounts":                   tn("public", "accounts"),
		`"Accounts"`:                 tn("public", "Accounts"),
		"app.Users":                  tn("app", "users"),
		` "My Schema" . "a""b" `:     tn("My Schema", `a"b`),
		"_t$1":                       tn("public", "_t$1"),
		"ÉTÉ":                        tn("public", "ÉtÉ"), // only ASCII letters fold
		`"public"."pgbench_history"`: tn("public", "pgbench_history"),
	} {
		got, err := ParseTableName(in)
		if err != nil || got != want {
			t.Errorf("ParseTableName(%q) = %#v, %v; want %#v", in, got, err, want)
		}
	}
	for _, in := range []string{"", " ", ".", "a.", ".a", "a..b", "db.app.t", `""`, `"unclosed`, "1abc", "a b", "a-b", "a;", `a."b`, strings.Repeat("x", 64)} {
		_, err := ParseTableName(in)
		var e *Error
		if !errors.Is(err, ErrName) || !errors.As(err, &e) || e.Code != sqlstate.InvalidName {
			t.Errorf("ParseTableName(%q): %v", in, err)
		}
	}
	for _, c := range []struct {
		n        TableName
		str, sql string
	}{
		{tn("public", "accounts"), "public.accounts", `"public"."accounts"`},
		{tn("app", "Users"), `app."Users"`, `"app"."Users"`},
		{tn("a b", `q"t`), `"a b"."q""t"`, `"a b"."q""t"`},
		{tn("s", "1x"), `s."1x"`, `"s"."1x"`},
	} {
		if c.n.String() != c.str || c.n.SQL() != c.sql {
			t.Errorf("%#v: String %s, SQL %s", c.n, c.n.String(), c.n.SQL())
		}
		for _, s := range []string{c.str, c.sql} {
			if back, err := ParseTableName(s); err != nil || back != c.n {
				t.Errorf("ParseTableName(%s) = %#v, %v", s, back, err)
			}
		}
	}
}

// The stored form, pinned: a change to it is a change of EncodingVersion.
const pgbenchJSON = `{"version":1,"shards":4,` +
	`"sharded":[{"schema":"app","table":"Users","key":"id","key_type":"uuid"},` +
	`{"schema":"app","table":"sessions","key":"token","key_type":"text"},` +
	`{"schema":"public","table":"pgbench_accounts","key":"aid","key_type":"integer"}],` +
	`"reference":[{"schema":"public","table":"pgbench_branches"},{"schema":"public","table":"pgbench_tellers"}]}`

func TestSchemaJSON(t *testing.T) {
	s := pgbenchSchema(t)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != pgbenchJSON {
		t.Fatalf("encoding:\n%s\nwant:\n%s", b, pgbenchJSON)
	}
	back, err := Decode(b)
	if err != nil || !back.Equal(s) {
		t.Fatalf("Decode: %v", err)
	}
	empty, _ := New(2)
	if b, _ := json.Marshal(empty); string(b) != `{"version":1,"shards":2,"sharded":[],"reference":[]}` {
		t.Errorf("empty schema: %s", b)
	}
	// Whitespace and field order do not matter.
	if s2, err := Decode([]byte(" {\"reference\": [], \"sharded\" : [], \"shards\": 3, \"version\": 1}\n")); err != nil || s2.Shards() != 3 {
		t.Errorf("reordered: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
	}{
		{``, ErrEncoding},
		{`null`, ErrEncoding},
		{`[]`, ErrEncoding},
		{`{}`, ErrEncoding},
		{`{"shards":2,"sharded":[],"reference":[]}`, ErrEncoding},             // no version
		{`{"version":2,"shards":2,"sharded":[],"reference":[]}`, ErrEncoding}, // a newer form
		{`{"version":0,"shards":2,"sharded":[],"reference":[]}`, ErrEncoding},
		{`{"version":1,"sharded":[],"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":null,"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[],"reference":[],"extra":1}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[],"reference":[]} {}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[],"reference":[]}x`, ErrEncoding},
		{`{"version":1,"shards":"2","sharded":[],"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[{"schema":"public","table":"a","key":"id"}],"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[null],"reference":[]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[],"reference":[{"table":"a"}]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[],"reference":[{"schema":"","table":"a"}]}`, ErrEncoding},
		{`{"version":1,"shards":2,"sharded":[{"schema":"public","table":"a","key":"id","key_type":"int8"}],"reference":[]}`, ErrKeyType},
		{`{"version":1,"shards":0,"sharded":[],"reference":[]}`, ErrShards},
		{`{"version":1,"shards":2,"sharded":[{"schema":"public","table":"a","key":"id","key_type":"text"}],"reference":[{"schema":"public","table":"a"}]}`, ErrShardedAndReference},
		{`{"version":1,"shards":2,"sharded":[],"reference":[{"schema":"public","table":"a"},{"schema":"public","table":"a"}]}`, ErrDuplicate},
		{`{"version":1,"shards":2,"sharded":[],"reference":[{"schema":"public","table":""}]}`, ErrName},
	} {
		_, err := Decode([]byte(c.in))
		var e *Error
		if !errors.Is(err, c.want) || !errors.As(err, &e) {
			t.Errorf("Decode(%s): %v, want %v", c.in, err, c.want)
		} else if c.want == ErrEncoding && e.Code != sqlstate.DataCorrupted {
			t.Errorf("Decode(%s): SQLSTATE %s", c.in, e.Code)
		}
	}
}

// FuzzDecode: Decode never panics; what it accepts is a valid schema whose
// encoding decodes to an equal schema and encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(pgbenchJSON))
	f.Add([]byte(`{"version":1,"shards":2,"sharded":[],"reference":[]}`))
	f.Add([]byte(`{"version":1,"shards":3,"sharded":[{"schema":"a b","table":"\"q\"","key":"k\u00e9","key_type":"text"}],"reference":[{"schema":"s","table":"t"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Err == nil {
				t.Fatalf("Decode(%q): %v is not an *Error with a code and a sentinel", data, err)
			}
			return
		}
		if s.Shards() < 1 || s.Shards() > MaxShards {
			t.Fatalf("Decode(%q): %d shards", data, s.Shards())
		}
		b1, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Decode(b1)
		if err != nil || !s2.Equal(s) {
			t.Fatalf("Decode(%q) does not round-trip through %s: %v", data, b1, err)
		}
		if b2, _ := json.Marshal(s2); string(b2) != string(b1) {
			t.Fatalf("unstable encoding: %s, then %s", b1, b2)
		}
		if _, err := New(s.Shards(), s.Tables()...); err != nil {
			t.Fatalf("a decoded schema is not valid: %v", err)
		}
	})
}

// FuzzParseTableName: a name ParseTableName accepts prints (String and SQL)
// to text it reads back as the same name.
func FuzzParseTableName(f *testing.F) {
	for _, s := range []string{"accounts", "app.Users", `"My Schema"."a""b"`, "ÉTÉ", `a."b`, "db.s.t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseTableName(s)
		if err != nil {
			if !errors.Is(err, ErrName) {
				t.Fatalf("ParseTableName(%q): %v", s, err)
			}
			return
		}
		for _, out := range []string{n.String(), n.SQL()} {
			if back, err := ParseTableName(out); err != nil || back != n {
				t.Fatalf("ParseTableName(%q) = %#v prints as %s, read back as %#v, %v", s, n, out, back, err)
			}
		}
	})
}
