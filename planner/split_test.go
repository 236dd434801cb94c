package planner

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/belaydb/belay/shard"
	pg "github.com/pganalyze/pg_query_go/v5"
)

// TestSplitInsert: each shard's INSERT holds its rows in their order, with
// the rest of the statement; literals keep their values; what cannot be
// split is refused with 0A000.
func TestSplitInsert(t *testing.T) {
	sql := `INSERT INTO t (id, v, n) VALUES (1, 'it''s', 1.50), (2, NULL, DEFAULT), (3, E'a\nb', -7), (4, 'x', 2)
		ON CONFLICT (id) DO UPDATE SET v = excluded.v`
	parts, err := SplitInsert(sql, []int{0, 1, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]string{0: {"1", "'it''s'", "1.50", "3", "E'a\\nb'", "-7"}, 1: {"2", "NULL", "DEFAULT"}, 2: {"4", "'x'", "2"}}
	if len(parts) != len(want) {
		t.Fatalf("%d parts, want %d: %v", len(parts), len(want), parts)
	}
	rows := map[int]int{0: 2, 1: 1, 2: 1}
	for k, p := range parts {
		part := p.SQL
		if len(p.Params) != 0 {
			t.Errorf("shard %d: parameters %v of a statement without any", k, p.Params)
		}
		tree, err := pg.Parse(part)
		if err != nil {
			t.Fatalf("shard %d: %q does not parse: %v", k, part, err)
		}
		ins := tree.Stmts[0].Stmt.GetInsertStmt()
		if n := len(ins.GetSelectStmt().GetSelectStmt().ValuesLists); n != rows[k] {
			t.Errorf("shard %d: %d rows, want %d: %s", k, n, rows[k], part)
		}
		if ins.OnConflictClause == nil || len(ins.Cols) != 3 {
			t.Errorf("shard %d lost the statement's columns or ON CONFLICT: %s", k, part)
		}
		// Each value, in order, as PostgreSQL reads it.
		at := 0
		for _, v := range want[k] {
			i := strings.Index(part[at:], v)
			if v == "E'a\\nb'" && i < 0 {
				i = strings.Index(part[at:], "'a\nb'") // deparsed as a plain literal with the newline itself
			}
			if i < 0 {
				t.Errorf("shard %d: value %s missing or out of order in %s", k, v, part)
				break
			}
			at += i + 1
		}
	}
	// RETURNING stays with each part.
	ret, err := SplitInsert("INSERT INTO t (id) VALUES (1), (2), (3) RETURNING id, v", []int{1, 0, 1})
	if err != nil || len(ret) != 2 || !strings.Contains(ret[0].SQL, "RETURNING id, v") || !strings.Contains(ret[1].SQL, "RETURNING id, v") ||
		!strings.Contains(ret[1].SQL, "(1), (3)") {
		t.Errorf("a split INSERT with RETURNING: %v, %v", ret, err)
	}
	for _, bad := range []string{
		"WITH x AS (SELECT 1) INSERT INTO t (id) VALUES (1), (2)",
		"INSERT INTO t (id) SELECT 1",
		"SELECT 1",
	} {
		_, err := SplitInsert(bad, []int{0, 1})
		var se *shard.Error
		if !errors.As(err, &se) || se.Code != "0A000" {
			t.Errorf("%s: %v, want 0A000", bad, err)
		}
	}
	if _, err := SplitInsert("INSERT INTO t (id) VALUES (1), (2)", []int{0}); err == nil {
		t.Error("rows placed and rows written differ: no error")
	}
	// Parameters: each part numbers the client's it uses anew, in order.
	parts, err = SplitInsert("INSERT INTO t (id, v) VALUES ($1, $2), ($3, 'x'), ($4, $2) ON CONFLICT (id) DO UPDATE SET v = $5", []int{1, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int]struct {
		params []int
		sql    string
	}{
		0: {[]int{3, 5}, "VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET v = $2"},
		1: {[]int{1, 2, 4, 5}, "VALUES ($1, $2), ($3, $2) ON CONFLICT (id) DO UPDATE SET v = $4"},
	} {
		if p := parts[k]; !slices.Equal(p.Params, want.params) || !strings.Contains(p.SQL, want.sql) {
			t.Errorf("shard %d: %q with parameters %v, want %q and %v", k, p.SQL, p.Params, want.sql, want.params)
		}
	}
}
