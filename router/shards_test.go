package router

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/shard"
)

// testSchema: 4 shards; accounts sharded by aid (integer), users by name
// (text), sessions by id (uuid) in schema app; branches a reference table.
func testSchema(t *testing.T, shards int) *shard.Schema {
	t.Helper()
	sc, err := shard.New(shards,
		shard.ShardedTable(shard.TableName{Name: "accounts"}, "aid", shard.KeyInteger),
		shard.ShardedTable(shard.TableName{Name: "users"}, "name", shard.KeyText),
		shard.ShardedTable(shard.TableName{Schema: "app", Name: "sessions"}, "id", shard.KeyUUID),
		shard.ReferenceTable(shard.TableName{Name: "branches"}))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// textParams are parameters bound in text format ("" and absent: unbound).
type textParams map[int]string

func (p textParams) Key(n int, t shard.KeyType) (shard.Value, bool, error) {
	s, ok := p[n]
	if !ok {
		return shard.Value{}, false, nil
	}
	v, err := shard.ParseValue(t, s)
	return v, true, err
}

func intShard(n int, v int64) int { return shard.Int(v).Shard(n) }

// targetText renders a target as any, one:S, set:S,S or rows:S,S|set.
func targetText(t ShardTarget) string {
	var s []string
	for _, x := range t.Shards {
		s = append(s, fmt.Sprint(x))
	}
	out := map[Spread]string{AnyShard: "any", OneShard: "one", ShardSet: "set"}[t.Spread]
	if len(s) > 0 {
		out += ":" + strings.Join(s, ",")
	}
	if t.RowShards != nil {
		var r []string
		for _, x := range t.RowShards {
			r = append(r, fmt.Sprint(x))
		}
		out += " rows:" + strings.Join(r, ",")
	}
	if t.Copy != nil {
		out += " copy"
	}
	return out
}

// TestShards: where each kind of statement runs on 4 shards, and what is
// refused with 0A000.
func TestShards(t *testing.T) {
	sc := testSchema(t, 4)
	// Keys of distinct shards, found by the hash itself.
	keyOn := map[int]int64{}
	for k := int64(1); len(keyOn) < 4; k++ {
		if _, ok := keyOn[intShard(4, k)]; !ok {
			keyOn[intShard(4, k)] = k
		}
	}
	k0, k1, k2 := keyOn[0], keyOn[1], keyOn[2]
	f := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	for _, c := range []struct {
		sql    string
		params textParams
		want   string // a target, "refused", "unbound" or a SQLSTATE
	}{
		{"SELECT 1", nil, "any"},
		{"SELECT * FROM branches", nil, "any"},
		{"SELECT relname FROM pg_class", nil, "any"},
		{"SELECT * FROM information_schema.tables", nil, "any"},
		{f("SELECT * FROM accounts WHERE aid = %d", k2), nil, "one:2"},
		{f("SELECT * FROM public.accounts a WHERE a.aid = %d", k1), nil, "one:1"},
		{"SELECT * FROM accounts WHERE aid = $1", textParams{1: f("%d", k1)}, "one:1"},
		{"SELECT * FROM accounts WHERE aid = $1", nil, "unbound"},
		{"SELECT * FROM accounts WHERE aid = -$1", textParams{1: f("%d", -k2)}, "one:2"},
		{"SELECT * FROM accounts WHERE aid = -$1", textParams{1: "-9223372036854775808"}, "22003"},
		{"SELECT * FROM users WHERE name = -$1", textParams{1: "x"}, "refused"},
		{"SELECT * FROM accounts WHERE aid = $1", textParams{1: "x"}, "22P02"},
		{"SELECT * FROM accounts WHERE aid = 'nope'", nil, "22P02"},
		{f("SELECT * FROM accounts WHERE aid IN (%d, %d)", k0, k2), nil, "set:0,2"},
		{f("SELECT * FROM accounts WHERE aid IN (%d, %d) AND aid = %d", k0, k2, k2), nil, "one:2"},
		{f("SELECT * FROM accounts WHERE aid = %d AND aid = %d", k0, k2), nil, "one:2"}, // no row anywhere
		{"SELECT * FROM accounts", nil, "set:0,1,2,3"},
		{"SELECT count(*) FROM accounts WHERE abalance > 0", nil, "set:0,1,2,3"},
		{f("SELECT * FROM accounts a JOIN branches b ON a.bid = b.bid WHERE a.aid = %d", k1), nil, "one:1"},
		{f("SELECT * FROM accounts a JOIN users u ON true WHERE a.aid = %d AND u.name = 'x'", k1), nil, "refused"},
		// A table named twice: its filters cannot be told apart (conservative).
		{f("SELECT * FROM accounts a, accounts b WHERE a.aid = %d AND b.aid = %d", k1, k1), nil, "refused"},
		{f("SELECT * FROM accounts WHERE aid = %d AND bid IN (SELECT bid FROM accounts)", k1), nil, "refused"},
		{"SELECT * FROM accounts a JOIN users u ON a.aid = u.uid", nil, "refused"},
		{"SELECT * FROM users WHERE name = 'alice'", nil, f("one:%d", shard.Text("alice").Shard(4))},
		{"SELECT * FROM app.sessions WHERE id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", nil,
			f("one:%d", mustUUID(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").Shard(4))},
		{"SELECT * FROM sessions", nil, "refused"}, // public.sessions is not in the schema
		{"SELECT * FROM unknown_table", nil, "refused"},
		{f("UPDATE accounts SET abalance = abalance + 1 WHERE aid = %d", k1), nil, "one:1"},
		{"UPDATE accounts SET abalance = 0", nil, "set:0,1,2,3"},
		{f("UPDATE accounts SET aid = 5 WHERE aid = %d", k1), nil, "refused"},
		{f("DELETE FROM accounts WHERE aid IN (%d, %d)", k1, k0), nil, "set:0,1"},
		{f("UPDATE accounts a SET abalance = 0 FROM branches b WHERE a.bid = b.bid AND a.aid = %d", k2), nil, "one:2"},
		{f("INSERT INTO accounts (aid, bid, abalance) VALUES (%d, 1, 0)", k2), nil, "one:2 rows:2"},
		{f("INSERT INTO accounts (aid, abalance) VALUES (%d, 0), ($1, 0), (%d, 0)", k2, k0), textParams{1: f("%d", k1)}, "set:0,1,2 rows:2,1,0"},
		{"INSERT INTO accounts (aid, abalance) VALUES ($1, 0)", nil, "unbound"},
		{"INSERT INTO accounts VALUES (1, 1, 0)", nil, "refused"},
		{"INSERT INTO accounts (bid) VALUES (1)", nil, "refused"},
		{"INSERT INTO accounts (aid) VALUES (1 + 1)", nil, "refused"},
		{"INSERT INTO accounts (aid) SELECT aid FROM accounts", nil, "refused"},
		{"INSERT INTO branches (bid) VALUES (1)", nil, "set:0,1,2,3"},
		{"UPDATE branches SET bbalance = 0", nil, "set:0,1,2,3"},
		{"INSERT INTO branches (bid) SELECT bid FROM accounts", nil, "refused"},
		{"INSERT INTO unknown_table (x) VALUES (1)", nil, "refused"},
		{"CREATE TABLE accounts (aid int8 PRIMARY KEY, bid int, abalance int)", nil, "set:0,1,2,3"},
		{"CREATE INDEX ON accounts (bid)", nil, "set:0,1,2,3"},
		{"TRUNCATE accounts", nil, "set:0,1,2,3"},
		{"COPY accounts FROM STDIN", nil, "set:0,1,2,3 copy"},
		{"COPY branches (bid) FROM STDIN", nil, "set:0,1,2,3 copy"},
		{"COPY accounts FROM '/tmp/accounts.csv'", nil, "refused"},
		{"COPY accounts FROM PROGRAM 'cat'", nil, "refused"},
		{"COPY unknown_table FROM STDIN", nil, "refused"},
		{"COPY accounts FROM STDIN WITH (ENCODING 'LATIN1')", nil, "refused"},
		{"COPY accounts FROM STDIN WITH (FORMAT xml)", nil, "22023"},
		{"COPY accounts FROM STDIN WITH (DELIMITER ',', DELIMITER ';')", nil, "42601"},
		{"COPY accounts TO STDOUT", nil, "refused"},
		{"COPY (SELECT * FROM accounts) TO STDOUT", nil, "refused"},
		{"COPY branches TO STDOUT", nil, "any"},
		{"SET search_path = app", nil, "set:0,1,2,3"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT aid FROM accounts", nil, "refused"},
		{f("DECLARE c CURSOR FOR SELECT aid FROM accounts WHERE aid = %d", k1), nil, "refused"},
		{"PREPARE q(int8) AS SELECT * FROM accounts WHERE aid = $1", nil, "refused"},
		{"PREPARE q AS SELECT * FROM branches", nil, "set:0,1,2,3"},
		{"DECLARE c CURSOR FOR SELECT * FROM branches", nil, "set:0,1,2,3"},
		{"EXECUTE q(3)", nil, "set:0,1,2,3"},
		{"BEGIN", nil, "set:0,1,2,3"},
		{"SELECT nextval('s')", nil, "refused"},
		{"DO $$ BEGIN END $$", nil, "refused"},
		{"SELEC 1", nil, "refused"},
		{f("SELECT * FROM accounts WHERE aid = %d; SELECT * FROM branches", k1), nil, "one:1"},
		{f("SELECT * FROM accounts WHERE aid = %d; SELECT * FROM accounts WHERE aid = %d", k1, k2), nil, "refused"},
		{f("SELECT * FROM accounts WHERE aid = %d FOR UPDATE", k1), nil, "one:1"},
	} {
		p := planner.Parse(c.sql)
		var params Params
		if c.params != nil {
			params = c.params
		}
		got, err := Shards(sc, p, params)
		var text string
		var se *shard.Error
		switch {
		case errors.Is(err, ErrUnbound):
			text = "unbound"
		case errors.As(err, &se) && se.Code == sqlstate.FeatureNotSupported:
			text = "refused"
			if !strings.Contains(se.Message, " ") {
				t.Errorf("%q: a refusal without a message", c.sql)
			}
		case errors.As(err, &se):
			text = string(se.Code)
		case err != nil:
			t.Fatalf("%q: %v", c.sql, err)
		default:
			text = targetText(got)
		}
		if text != c.want {
			t.Errorf("%q: %s (%v), want %s", c.sql, text, err, c.want)
		}
	}
}

// TestShardsOneShard: with one shard everything that runs runs there.
func TestShardsOneShard(t *testing.T) {
	sc := testSchema(t, 1)
	for _, sql := range []string{"SELECT * FROM accounts", "UPDATE branches SET bbalance = 0", "CREATE TABLE x (a int)"} {
		got, err := Shards(sc, planner.Parse(sql), nil)
		if err != nil || targetText(got) != "one:0" {
			t.Errorf("%q on one shard: %s, %v", sql, targetText(got), err)
		}
	}
}

func mustUUID(t *testing.T, s string) shard.Value {
	t.Helper()
	v, err := shard.ParseValue(shard.KeyUUID, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCopySplit: a COPY FROM STDIN's options as the splitter gets them,
// in both syntaxes, and its target: the key's place among the columns.
func TestCopySplit(t *testing.T) {
	sc := testSchema(t, 4)
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		sql     string
		want    shard.CopyOptions
		columns []string
	}{
		{"COPY accounts FROM STDIN", shard.CopyOptions{}, nil},
		{"COPY accounts (bid, aid) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'x', FORCE_NOT_NULL (aid), FORCE_NULL (bid), FREEZE)",
			shard.CopyOptions{Format: shard.CopyCSV, Header: shard.CopyHeaderTrue, Delimiter: str(";"), Quote: str("'"), Escape: str(`\`), Null: str("x"), ForceNotNull: true},
			[]string{"bid", "aid"}},
		{"COPY accounts FROM STDIN WITH CSV HEADER DELIMITER AS '|' NULL AS '' FORCE NOT NULL bid FORCE NULL aid",
			shard.CopyOptions{Format: shard.CopyCSV, Header: shard.CopyHeaderTrue, Delimiter: str("|"), Null: str(""), ForceNull: true}, nil},
		{"COPY accounts FROM STDIN (HEADER 0, ENCODING 'utf-8')", shard.CopyOptions{}, nil},
		{"COPY accounts FROM STDIN (FORMAT text, HEADER match)", shard.CopyOptions{Header: shard.CopyHeaderMatch}, nil},
		{"COPY accounts FROM STDIN BINARY", shard.CopyOptions{Format: shard.CopyBinary}, nil},
	} {
		got, err := Shards(sc, planner.Parse(c.sql), nil)
		if err != nil || got.Copy == nil {
			t.Fatalf("%q: %+v, %v", c.sql, got, err)
		}
		if !copyOptionsEqual(got.Copy.Options, c.want) || fmt.Sprint(got.Copy.Columns) != fmt.Sprint(c.columns) {
			t.Errorf("%q: %+v columns %q, want %+v columns %q", c.sql, got.Copy.Options, got.Copy.Columns, c.want, c.columns)
		}
	}
	for _, c := range []struct {
		sql  string
		code sqlstate.Code
	}{
		{"COPY accounts FROM STDIN (HEADER 2)", sqlstate.SyntaxError},
		{"COPY accounts FROM STDIN (HEADER maybe)", sqlstate.SyntaxError},
		{"COPY accounts FROM STDIN (FORMAT)", sqlstate.SyntaxError},
		{"COPY accounts FROM STDIN (FORCE_NOT_NULL aid)", sqlstate.SyntaxError},
		{"COPY accounts FROM STDIN (FORMAT csv, FORMAT text)", sqlstate.SyntaxError},
		{"COPY accounts FROM STDIN (ENCODING 'SJIS')", sqlstate.FeatureNotSupported},
	} {
		_, err := Shards(sc, planner.Parse(c.sql), nil)
		var se *shard.Error
		if !errors.As(err, &se) || se.Code != c.code {
			t.Errorf("%q: %v, want %s", c.sql, err, c.code)
		}
	}
	// The key among the columns: its index; absent, refused.
	got, err := Shards(sc, planner.Parse("COPY users (email, name) FROM STDIN"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := got.Copy.Target(got.Copy.Columns)
	if err != nil || tg.Key != 1 || tg.KeyType != shard.KeyText || tg.Table != "users" {
		t.Fatalf("target: %+v, %v", tg, err)
	}
	var se *shard.Error
	if _, err := got.Copy.Target([]string{"email"}); !errors.As(err, &se) || se.Code != sqlstate.FeatureNotSupported {
		t.Fatalf("a COPY without the key: %v", err)
	}
}

func copyOptionsEqual(a, b shard.CopyOptions) bool {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return "'" + *p + "'"
	}
	return a.Format == b.Format && a.Header == b.Header && a.ForceNotNull == b.ForceNotNull && a.ForceNull == b.ForceNull &&
		s(a.Delimiter) == s(b.Delimiter) && s(a.Null) == s(b.Null) && s(a.Quote) == s(b.Quote) && s(a.Escape) == s(b.Escape)
}
