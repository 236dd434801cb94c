package planner

import (
	"fmt"
	"strings"
	"testing"
)

// filtersText renders a statement's key filters as table.column=v1|v2, a
// parameter as $n, sorted as found; values are checked against their spans.
func filtersText(t *testing.T, p *Plan) string {
	t.Helper()
	var parts []string
	for _, f := range p.Stmts[0].KeyFilters {
		var vs []string
		for _, v := range f.Values {
			vs = append(vs, valueText(t, p, v))
		}
		parts = append(parts, f.Table+"."+f.Column+"="+strings.Join(vs, "|"))
	}
	return strings.Join(parts, " ")
}

func valueText(t *testing.T, p *Plan, v KeyValue) string {
	t.Helper()
	if v.Span.Len == 0 {
		t.Errorf("%q: value %+v has no span", p.Text, v)
	}
	if v.Negate {
		v.Negate = false
		return "-" + valueText(t, p, v)
	}
	if v.Param > 0 {
		if got := p.Text[v.Span.Loc:v.Span.End()]; got != fmt.Sprintf("$%d", v.Param) {
			t.Errorf("%q: $%d spans %q", p.Text, v.Param, got)
		}
		return fmt.Sprintf("$%d", v.Param)
	}
	return v.Const
}

// TestKeyFilters: the columns a statement pins to constants at the top
// level of its WHERE clause, resolved to their tables, and what is not
// such a filter.
func TestKeyFilters(t *testing.T) {
	for _, c := range []struct{ sql, want string }{
		{"SELECT * FROM accounts WHERE aid = 42", "accounts.aid=42"},
		{"SELECT * FROM accounts WHERE 42 = aid", "accounts.aid=42"},
		{"SELECT * FROM accounts WHERE aid = -7", "accounts.aid=-7"},
		{"SELECT * FROM accounts WHERE aid = 9000000000", "accounts.aid=9000000000"},
		{"SELECT * FROM accounts WHERE aid = $1", "accounts.aid=$1"},
		{"SELECT * FROM accounts WHERE aid = -$1", "accounts.aid=-$1"},
		{"SELECT * FROM accounts WHERE aid = -(-$1::int8)", "accounts.aid=$1"},
		{"SELECT * FROM accounts WHERE aid = $2::int8 AND bid = $1", "accounts.aid=$2 accounts.bid=$1"},
		{"SELECT * FROM users WHERE name = 'O''Brien'", "users.name=O'Brien"},
		{"SELECT * FROM t WHERE id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "t.id=a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"SELECT * FROM accounts WHERE aid IN (1, 2, $1)", "accounts.aid=1|2|$1"},
		{"SELECT * FROM public.accounts a WHERE a.aid = 3", "public.accounts.aid=3"},
		{"SELECT * FROM public.accounts WHERE public.accounts.aid = 3", "public.accounts.aid=3"},
		{"SELECT * FROM accounts WHERE accounts.aid = 3", "accounts.aid=3"},
		{"SELECT * FROM a JOIN b ON a.x = b.x WHERE a.k = 1 AND b.k = 2", "a.k=1 b.k=2"},
		{"SELECT * FROM a, b WHERE k = 1", ""}, // ambiguous
		{"SELECT * FROM a LEFT JOIN b ON a.x = b.x WHERE a.k = 1", ""},
		{"SELECT * FROM a WHERE k = 1 OR k = 2", ""},
		{"SELECT * FROM a WHERE (k = 1 AND j = 2) AND m = 3", "a.k=1 a.j=2 a.m=3"},
		{"SELECT * FROM a WHERE NOT (k = 1)", ""},
		{"SELECT * FROM a WHERE k = j", ""},
		{"SELECT * FROM a WHERE k = 1 + 1", ""},
		{"SELECT * FROM a WHERE k = NULL", ""},
		{"SELECT * FROM a WHERE k = 2.0", ""}, // bigint = numeric: no key value
		{"SELECT * FROM a WHERE k = 7.6::int8", ""},
		{"SELECT * FROM a WHERE k = 99999999999999999999", ""},
		{"SELECT * FROM a WHERE k IN (1, j)", ""},
		{"SELECT * FROM a WHERE k < 3", ""},
		{"SELECT * FROM a WHERE k = 1 UNION SELECT * FROM a WHERE k = 2", ""},
		{"SELECT 1", ""},
		{"UPDATE accounts SET abalance = abalance + 1 WHERE aid = $1", "accounts.aid=$1"},
		{"UPDATE accounts AS x SET abalance = 0 FROM branches b WHERE x.aid = 5 AND b.bid = 2", "accounts.aid=5 branches.bid=2"},
		{"DELETE FROM accounts WHERE aid = 5", "accounts.aid=5"},
		{"DELETE FROM accounts a USING tellers t WHERE a.aid = t.tid AND a.aid IN (1, 2)", "accounts.aid=1|2"},
	} {
		p := Parse(c.sql)
		if p.Err != nil {
			t.Fatalf("%q: %v", c.sql, p.Err)
		}
		if got := filtersText(t, p); got != c.want {
			t.Errorf("%q: key filters %q, want %q", c.sql, got, c.want)
		}
	}
}

// TestInsertRows: the rows an INSERT ... VALUES writes, a value per column
// where it is a constant; none for INSERT ... SELECT.
func TestInsertRows(t *testing.T) {
	for _, c := range []struct{ sql, want string }{
		{"INSERT INTO accounts (aid, bid, abalance) VALUES (1, $1, 0)", "accounts(aid,bid,abalance) [1 $1 0]"},
		{"INSERT INTO accounts (aid, abalance) VALUES (1, 0), (2, abs(-1)), ($3, DEFAULT)", "accounts(aid,abalance) [1 0] [2 ?] [$3 ?]"},
		{"INSERT INTO s.t VALUES ('x', 2)", "s.t() [x 2]"},
		{"INSERT INTO t (k) SELECT k FROM u", "t(k)"},
		{"INSERT INTO t DEFAULT VALUES", "t()"},
	} {
		p := Parse(c.sql)
		if p.Err != nil {
			t.Fatalf("%q: %v", c.sql, p.Err)
		}
		in := p.Stmts[0].Insert
		if in == nil {
			t.Fatalf("%q: no Insert", c.sql)
		}
		got := in.Table + "(" + strings.Join(in.Columns, ",") + ")"
		for _, r := range in.Rows {
			var vs []string
			for _, v := range r {
				if v == nil {
					vs = append(vs, "?")
				} else {
					vs = append(vs, valueText(t, p, *v))
				}
			}
			got += " [" + strings.Join(vs, " ") + "]"
		}
		if got != c.want {
			t.Errorf("%q: %q, want %q", c.sql, got, c.want)
		}
	}
	if p := Parse("UPDATE t SET a = 1, b = b + 1 WHERE k = 2"); strings.Join(p.Stmts[0].SetColumns, ",") != "a,b" {
		t.Errorf("UPDATE's set columns: %v", p.Stmts[0].SetColumns)
	}
	if p := Parse("SELECT * FROM t WHERE k = 1"); p.Stmts[0].Insert != nil || p.Stmts[0].SetColumns != nil || p.Stmts[0].Target != "" {
		t.Errorf("a SELECT with an Insert, SetColumns or a Target: %+v", p.Stmts[0])
	}
	for sql, want := range map[string]string{
		"UPDATE s.t AS x SET a = 1 FROM u WHERE x.k = u.k": "s.t",
		"DELETE FROM t USING u WHERE t.k = u.k":            "t",
		"INSERT INTO t (k) SELECT k FROM u":                "t",
		"COPY s.t (a, b) FROM STDIN":                       "s.t",
		"COPY s.t TO STDOUT":                               "",
	} {
		if got := Parse(sql).Stmts[0].Target; got != want {
			t.Errorf("%q: target %q, want %q", sql, got, want)
		}
	}
}

// TestReturning: which writes return rows.
func TestReturning(t *testing.T) {
	for sql, want := range map[string]bool{
		"INSERT INTO t (k) VALUES (1) RETURNING k": true, "UPDATE t SET a = 1 RETURNING *": true,
		"DELETE FROM t WHERE k = 1 RETURNING k": true, "DELETE FROM t": false, "INSERT INTO t VALUES (1)": false,
	} {
		if got := Parse(sql).Stmts[0].Returning; got != want {
			t.Errorf("%q: returning %v", sql, got)
		}
	}
}

// TestConcat: the SELECTs whose result over parts is the parts' results
// one after the other.
func TestConcat(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT * FROM a": true,
		"SELECT k, lower(v), v || 'x' FROM a WHERE k > 3": true,
		"SELECT k, (SELECT max(b) FROM r) FROM a":         true,
		"SELECT * FROM a WHERE k IN (SELECT k FROM r)":    true,
		"SELECT count(*) FROM a":                          false,
		"SELECT sum(v) + 1 FROM a":                        false,
		"SELECT pg_catalog.max(v) FROM a":                 false,
		"SELECT myagg(v) FROM a":                          false,
		"SELECT s.f(v) FROM a":                            false,
		"SELECT row_number() OVER () FROM a":              false,
		"SELECT * FROM a ORDER BY k":                      false,
		"SELECT * FROM a LIMIT 3":                         false,
		"SELECT DISTINCT k FROM a":                        false,
		"SELECT k FROM a GROUP BY k":                      false,
		"SELECT * FROM a FOR UPDATE":                      false,
		"WITH c AS (SELECT * FROM a) SELECT * FROM c":     false,
		"SELECT * FROM a UNION ALL SELECT * FROM b":       false,
		"SELECT * INTO n FROM a":                          false,
	} {
		if got := Parse(sql).Stmts[0].Concat; got != want {
			t.Errorf("%q: concat %v", sql, got)
		}
	}
}

// TestRowSources: the relations every row of a SELECT's join holds a row
// of; ON CONFLICT's SET columns.
func TestRowSources(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT * FROM a":                                                   "a",
		"SELECT * FROM a, s.b JOIN c ON true":                               "a s.b c",
		"SELECT * FROM a LEFT JOIN b ON true":                               "a",
		"SELECT * FROM a RIGHT JOIN b ON true":                              "b",
		"SELECT * FROM a FULL JOIN b ON true":                               "",
		"SELECT * FROM a LEFT JOIN (b JOIN c ON true) ON true":              "a",
		"SELECT * FROM a WHERE EXISTS (SELECT 1 FROM b)":                    "a",
		"SELECT * FROM (SELECT * FROM a) x":                                 "a",
		"SELECT * FROM (SELECT k FROM a LIMIT 3) x":                         "",
		"SELECT * FROM (SELECT k, count(*) FROM a GROUP BY k) x":            "",
		"SELECT * FROM b LEFT JOIN (SELECT k FROM a WHERE k > 1) x ON true": "b",
		"SELECT * FROM a JOIN b ON true LEFT JOIN c ON true":                "a b",
		"SELECT * FROM a WHERE k IN (SELECT k FROM b) AND k = 1":            "a",
		"WITH w AS (SELECT * FROM a) SELECT * FROM w JOIN b ON true":        "w b",
		"SELECT (SELECT max(k) FROM b) FROM a RIGHT JOIN c ON true":         "c",
		"SELECT * FROM a FULL JOIN b ON true JOIN c ON true":                "c",
		"SELECT * FROM generate_series(1, 3) g JOIN a ON a.k = g":           "a",
		"SELECT * FROM a CROSS JOIN LATERAL (SELECT * FROM b) x":            "a",
		"SELECT * FROM a NATURAL JOIN b":                                    "a b",
	} {
		if got := strings.Join(Parse(sql).Stmts[0].RowSources, " "); got != want {
			t.Errorf("%q: row sources %q, want %q", sql, got, want)
		}
	}
	if got := Parse("INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 100, v = 2").Stmts[0].SetColumns; strings.Join(got, " ") != "id v" {
		t.Errorf("ON CONFLICT DO UPDATE SET columns: %q", got)
	}
}

// TestCopy: a COPY's direction.
func TestCopy(t *testing.T) {
	for sql, want := range map[string]CopyDir{
		"COPY t FROM STDIN (FORMAT csv)":   CopyFrom,
		"COPY t TO STDOUT":                 CopyTo,
		"COPY (SELECT * FROM t) TO STDOUT": CopyTo,
		"SELECT * FROM t":                  NotCopy,
	} {
		if got := Parse(sql).Stmts[0].Copy; got != want {
			t.Errorf("%q: copy %d, want %d", sql, got, want)
		}
	}
}

// TestNoTxBlock: the maintenance PostgreSQL refuses in a transaction
// block.
func TestNoTxBlock(t *testing.T) {
	for sql, want := range map[string]bool{
		"VACUUM":                               true,
		"VACUUM ANALYZE t":                     true,
		"VACUUM (FULL, ANALYZE) t":             true,
		"ANALYZE t":                            false,
		"CREATE INDEX CONCURRENTLY i ON t (a)": true,
		"CREATE INDEX i ON t (a)":              false,
		"DROP INDEX CONCURRENTLY i":            true,
		"DROP INDEX i":                         false,
		"REINDEX TABLE CONCURRENTLY t":         true,
		"REINDEX (CONCURRENTLY) TABLE t":       true,
		"REINDEX (CONCURRENTLY false) TABLE t": false,
		"REINDEX TABLE t":                      false,
		"SELECT 1":                             false,
	} {
		if got := Parse(sql).Stmts[0].NoTxBlock; got != want {
			t.Errorf("%q: NoTxBlock %v, want %v", sql, got, want)
		}
	}
}

// TestRelations: every relation reference of a statement, a table named
// twice listed twice, CTE names left out.
func TestRelations(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT * FROM a WHERE k = 1 AND x IN (SELECT x FROM a)":       "a a",
		"WITH c AS (SELECT * FROM b) SELECT * FROM c JOIN s.d ON true": "s.d b",
		"INSERT INTO t (k) SELECT k FROM u":                            "t u",
		"SELECT 1":                                                     "",
	} {
		p := Parse(sql)
		if got := strings.Join(p.Stmts[0].Relations, " "); got != want {
			t.Errorf("%q: relations %q, want %q", sql, got, want)
		}
	}
}

// TestKeyFiltersNormalized: a plan of normalized text (literals become
// $k) pins the same columns, to parameters.
func TestKeyFiltersNormalized(t *testing.T) {
	norm, n := Normalize(nil, []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 4711"))
	if n != 1 {
		t.Fatalf("Normalize: %d literals", n)
	}
	p := Parse(string(norm))
	if got := filtersText(t, p); got != "pgbench_accounts.aid=$1" {
		t.Errorf("%q: %q", norm, got)
	}
}
