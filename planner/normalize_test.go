package planner

import (
	"bytes"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v5"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		sql, want string
		n         int
	}{
		{pgbenchSelect, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 1},
		{pgbenchUpdateA, "UPDATE pgbench_accounts SET abalance = abalance + -$1 WHERE aid = $2;", 2},
		{pgbenchInsert, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, -$4, CURRENT_TIMESTAMP);", 4},
		{"SELECT * FROM t WHERE a = $2 AND b = 'x' AND c = $1", "SELECT * FROM t WHERE a = $2 AND b = $3 AND c = $1", 1},
		{"select 1.5, .5, 1e10, 2.5E-3, 0x1F, 1_000", "select $1, $2, $3, $4, $5, $6", 6},
		{"SELECT E'it\\'s', B'101', X'FF', N'n', $$dollar$$, $tag$x$tag$", "SELECT $1, $2, $3, $4, $5, $6", 6},
		{"SELECT 'a'\n  'b' AS s", "SELECT $1 AS s", 1},
		{"SELECT'a'FROM t", "SELECT $1 FROM t", 1},
		{"SELECT interval '1 day', date '2020-01-01', foo.bar 'x', \"t\" 'y', varchar(3) 'abc'", "SELECT interval '1 day', date '2020-01-01', foo.bar 'x', \"t\" 'y', varchar(3) 'abc'", 0},
		{"SELECT now() - interval '1 day' > '2020-01-01'::date", "SELECT now() - interval '1 day' > $1::date", 1},
		{"SELECT x::varchar(10), y::numeric(10, 2), CAST(z AS timestamp(3)), round(w, 2)", "SELECT x::varchar(10), y::numeric(10, 2), CAST(z AS timestamp(3)), round(w, $1)", 1},
		{"EXPLAIN (COSTS 0) SELECT 1", "EXPLAIN (COSTS 0) SELECT $1", 1},
		{"SELECT x FROM t WHERE a LIKE 'a%' ESCAPE '!' OR b IN ('x', 'y') ORDER BY 1 LIMIT 10 OFFSET 5", "SELECT x FROM t WHERE a LIKE $1 ESCAPE $2 OR b IN ($3, $4) ORDER BY $5 LIMIT $6 OFFSET $7", 7},
		{"SELECT CASE WHEN a THEN 'x' ELSE 'y' END", "SELECT CASE WHEN a THEN $1 ELSE $2 END", 2},
		{"SELECT 'a' -- 'b'\n, /* 'c' */ 2", "SELECT $1 -- 'b'\n, /* 'c' */ $2", 2},
		{"SELECT \"col'1\" FROM t", "SELECT \"col'1\" FROM t", 0},
		{"SELECT U&'d\\0061t' UESCAPE '!'", "SELECT U&'d\\0061t' UESCAPE '!'", 0},
		{"SELECT 1abc", "SELECT 1abc", 0},
		{"PREPARE p(int, text) AS SELECT $1, $2, 'x'", "PREPARE p(int, text) AS SELECT $1, $2, $3", 1},
		{"EXECUTE \"MixedCase\"(1, 'x')", "EXECUTE \"MixedCase\"($1, $2)", 2},
		{"SET work_mem = '1MB'; SELECT 1; SHOW x; CREATE TABLE t (c varchar(10) DEFAULT 'x'); COPY t FROM STDIN; VACUUM t",
			"SET work_mem = '1MB'; SELECT $1; SHOW x; CREATE TABLE t (c varchar(10) DEFAULT 'x'); COPY t FROM STDIN; VACUUM t", 1},
		{"DO $$BEGIN PERFORM 1; END$$; NOTIFY c, 'x'; FETCH 5 FROM c", "DO $$BEGIN PERFORM 1; END$$; NOTIFY c, 'x'; FETCH 5 FROM c", 0},
		{"(SELECT 1) UNION ALL (SELECT 2)", "(SELECT $1) UNION ALL (SELECT $2)", 2},
		{"WITH x AS (SELECT 1) SELECT * FROM x WHERE y = 'a'", "WITH x AS (SELECT $1) SELECT * FROM x WHERE y = $2", 2},
		{"SELECT 1 FROM t WHERE a = 1 $99999", "SELECT 1 FROM t WHERE a = 1 $99999", 0},
		{"", "", 0},
	}
	for _, c := range cases {
		buf := make([]byte, 0, 256)
		got, n := Normalize(buf, []byte(c.sql))
		if string(got) != c.want || n != c.n {
			t.Errorf("Normalize(%q)\n = %q, %d\nwant %q, %d", c.sql, got, n, c.want, c.n)
		}
		again, n2 := Normalize(nil, got)
		if !bytes.Equal(again, got) || n2 != 0 {
			t.Errorf("Normalize(Normalize(%q)) = %q, %d: not stable", c.sql, again, n2)
		}
		if _, err := pg.Parse(c.sql); err == nil {
			if _, err := pg.Parse(string(got)); err != nil {
				t.Errorf("Normalize(%q) = %q does not parse: %v", c.sql, got, err)
			}
		}
	}
}

func TestNormalizeSharesPlans(t *testing.T) {
	a, _ := Normalize(nil, []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 42"))
	b, _ := Normalize(nil, []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 43"))
	if !bytes.Equal(a, b) {
		t.Fatalf("%q != %q", a, b)
	}
}

func TestNormalizeAllocs(t *testing.T) {
	q := []byte(pgbenchUpdateA)
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { Normalize(buf[:0], q) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{pgbenchSelect, pgbenchUpdateA, pgbenchInsert, "SELECT 'a'\n'b'",
		"SELECT interval '1 day', x::varchar(3)", "SELECT $1, 2, $$x$$, E'\\'', B'1', 1e5, .5",
		"SET x = 1; SELECT 'a'FROM t", "SELECT 1abc", "/* /* */ */ SELECT 1", "SELECT U&'x' UESCAPE '!'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		out, n := Normalize(nil, []byte(sql))
		if n == 0 && string(out) != sql {
			t.Fatalf("no literal replaced but %q != %q", out, sql)
		}
		again, n2 := Normalize(nil, out)
		if n2 != 0 || !bytes.Equal(again, out) {
			t.Fatalf("not stable: %q -> %q -> %q (%d)", sql, out, again, n2)
		}
		if n == 0 || bytes.IndexByte(out, 0) >= 0 {
			return
		}
		if _, err := pg.Parse(sql); err == nil {
			if _, err := pg.Parse(string(out)); err != nil {
				t.Fatalf("%q parses, its normalized form %q does not: %v", sql, out, err)
			}
		}
	})
}
