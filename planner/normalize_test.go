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
		{"SELECT * FROM t ORDER BY a OFFSET -1 ROWS FETCH FIRST -5 ROWS ONLY", "SELECT * FROM t ORDER BY a OFFSET -1 ROWS FETCH FIRST -5 ROWS ONLY", 0},
		{"SELECT * FROM t FETCH NEXT + 5 ROWS ONLY", "SELECT * FROM t FETCH NEXT + 5 ROWS ONLY", 0},
		{"SELECT * FROM t OFFSET 2 ROWS FETCH FIRST 5 ROWS ONLY", "SELECT * FROM t OFFSET $1 ROWS FETCH FIRST $2 ROWS ONLY", 2},
		{"SELECT * FROM t LIMIT -5 OFFSET -2", "SELECT * FROM t LIMIT -$1 OFFSET -2", 1},
		{"SELECT CURRENT_TIMESTAMP(3), localtime(2), EXTRACT('year' FROM d), extract(epoch FROM d - 1)", "SELECT CURRENT_TIMESTAMP(3), localtime(2), EXTRACT('year' FROM d), extract(epoch FROM d - 1)", 0},
		// array bounds of a type name are constants; subscripts and ARRAY[] are not
		{"SELECT ''::A[0]", "SELECT $1::A[0]", 1},
		{"SELECT x::varchar(10)[2], ARRAY[1,2], a[3]", "SELECT x::varchar(10)[2], ARRAY[$1,$2], a[$3]", 3},
		{"SELECT CAST(x AS int[3]), y[4]", "SELECT CAST(x AS int[3]), y[$1]", 1},
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

// trickySQL are statements that parse, written to reach the corners of
// Normalize: typed literals, type modifiers, keywords before strings,
// operators, continuations, every kind of literal.
var trickySQL = []string{

	"SELECT * FROM t WHERE ts > timestamp with time zone '2020-01-01' AND y = 'a'",
	"SELECT x::character varying(20), 'a'::bit varying(5), interval '1' day to second(3)",
	"SELECT interval(3) '1 day', time(2) '10:00', timestamp(6) with time zone '2020-01-01'",
	"SELECT float(24) '1.5', 1::float(24), '1'::double precision",
	"SELECT substring('abc' from 2 for 1), position('a' in 'abc'), trim(both 'x' from 'xax'), overlay('abc' placing 'x' from 2 for 1)",
	"SELECT * FROM t WHERE a SIMILAR TO 'a%' ESCAPE '#' AND b IS DISTINCT FROM 'x' AND c NOT BETWEEN 1 AND 2",
	"SELECT json_object('a' VALUE 'b'), json_object(KEY 'a' VALUE 1), json_array(1, 'x')",
	"SELECT 'a' AT TIME ZONE 'UTC', now() AT TIME ZONE 'Europe/Paris'",
	"SELECT * FROM t LIMIT 10 OFFSET 5", "SELECT * FROM t OFFSET 5 ROWS FETCH FIRST 10 ROWS ONLY",
	"SELECT * FROM t ORDER BY 1 DESC NULLS LAST",
	"SELECT count(*) FILTER (WHERE x > 1) OVER (ORDER BY y ROWS BETWEEN 1 PRECEDING AND 2 FOLLOWING) FROM t",
	"SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (42)",
	"INSERT INTO t VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET x = 'b' WHERE t.y > 3 RETURNING 'z', 1",
	"UPDATE t SET (a, b) = (1, 'x') FROM u WHERE u.id = t.id AND u.v = 2.5",
	"DELETE FROM t USING u WHERE t.a = u.a AND u.b = E'\\n'",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 1 THEN UPDATE SET v = 'a' WHEN NOT MATCHED THEN INSERT VALUES (1, 'b')",
	"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r",
	"SELECT (ARRAY[1, 2, 3])[1:2], '{1,2}'::int[], x[2] FROM t",
	"SELECT CAST('1' AS numeric(10, 2)), CAST(1 AS varchar(3)), CAST(2 AS char(1))",
	"SELECT 'a' || 'b', 1 + -2, - 3, +4, 5 % 2, 2 ^ 3, |/ 16.0",
	"SELECT x FROM t WHERE y = ANY('{1,2}') AND z = ALL(ARRAY[1]) AND w IN (SELECT 1)",
	"SELECT $1::int + 1, $2 || 'x'",
	"SELECT 'a'\n'b', E'x'\n  'y'",
	"SELECT 1 AS one, 'x' AS \"X\"",
	"EXPLAIN (ANALYZE, FORMAT JSON, COSTS false) SELECT 1 WHERE 2 = 3",
	"EXPLAIN ANALYZE VERBOSE SELECT 'x'",
	"DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT 1, 'a'",
	"CALL p(1, 'a', ARRAY[2])",
	"VALUES (1, 'a'), (2, 'b') ORDER BY 1 LIMIT 1",
	"TABLE t", "(SELECT 1) UNION (SELECT 2) ORDER BY 1",
	"SELECT xmlelement(name foo, xmlattributes('v' as bar), 'content')",
	"SELECT xmlparse(document '<a/>'), xmlserialize(content 'x'::xml as text)",
	"SELECT extract(year from timestamp '2020-01-01'), date_part('day', now())",
	"SELECT * FROM t WHERE x = $$a$$ AND y = $q$b$q$",
	"SELECT 0x1F, 0o17, 0b101, 1_000_000, 1.5e+10, 1.e5, .5e-3",
	"SELECT u&'\\0061', U&\"col\" FROM t",
	"SELECT 'a' COLLATE \"C\", x COLLATE pg_catalog.\"default\"",
	"SELECT B'101' | B'011', X'FF'::int",
	"SELECT CASE 'a' WHEN 'b' THEN 1 ELSE 2 END",
	"SELECT * FROM generate_series(1, 10) WITH ORDINALITY AS g(n, i)",
	"SELECT * FROM t WHERE x ~ 'a.*' AND y !~* 'B' AND z @> '{1}' AND j->>'k' = 'v' AND j #> '{a,b}' IS NOT NULL",
	"SELECT * FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3))",
	"SELECT GROUPING(a) FROM t GROUP BY ROLLUP(a, b), CUBE(c), GROUPING SETS ((a), ())",
	"SELECT a FROM t GROUP BY a HAVING count(*) > 1 AND max(b) <> 'x'",
	"SELECT DISTINCT ON (a) a, 'x' FROM t",
	"SELECT * FROM t WHERE d > current_date - 7 AND d < now() + '1 hour'::interval",
	"SELECT nullif('a', 'b'), coalesce(null, 'c'), greatest(1, 2)",
	"SELECT 'x' IS JSON, 'y' IS JSON OBJECT WITH UNIQUE KEYS",
	"PREPARE q(numeric(10,2)) AS SELECT $1 + 1.5",
	"SELECT * FROM t WHERE a = 1 FOR UPDATE OF t SKIP LOCKED",
	"SELECT 1::\"numeric\"(10, 2), 'a'::myschema.mytype(3)",
	"SELECT * FROM t WHERE f(x) = 'a' AND g.h(1) IS NULL",
	"SELECT 'a' LIKE 'b' ESCAPE '', 'x' NOT ILIKE 'y'",
	"SELECT TIMESTAMP '2020-01-01 00:00' AT TIME ZONE 'UTC'",
	"SELECT current_time(1), current_timestamp(2), localtime(3), localtimestamp(4), extract('year' from now())",
	"SELECT char(3) 'x', nchar(2) 'y', national character varying(4) 'z', bit(3) '101'",
}

func TestNormalizeKeepsParsing(t *testing.T) {
	for _, s := range trickySQL {
		if _, err := pg.Parse(s); err != nil {
			t.Fatalf("the test's own SQL does not parse: %q: %v", s, err)
		}
		out, _ := Normalize(nil, []byte(s))
		if _, err := pg.Parse(string(out)); err != nil {
			t.Errorf("%q\n normalized to %q, which does not parse: %v", s, out, err)
		}
		if again, _ := Normalize(nil, out); string(again) != string(out) {
			t.Errorf("Normalize(%q) not stable", s)
		}
		checkSpans(t, s, Parse(s))
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
	for _, s := range trickySQL {
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
