package planner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// tpcb-like is pgbench's default script.
const (
	pgbenchSelect  = "SELECT abalance FROM pgbench_accounts WHERE aid = 42;"
	pgbenchUpdateA = "UPDATE pgbench_accounts SET abalance = abalance + -4123 WHERE aid = 843211;"
	pgbenchUpdateT = "UPDATE pgbench_tellers SET tbalance = tbalance + -4123 WHERE tid = 7;"
	pgbenchInsert  = "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 843211, -4123, CURRENT_TIMESTAMP);"
)

func TestParseClassAndEffects(t *testing.T) {
	cases := []struct {
		sql     string
		class   Class
		eff     Effect
		replica bool
	}{
		// pgbench
		{pgbenchSelect, ClassRead, 0, true},
		{pgbenchUpdateA, ClassWrite, 0, false},
		{pgbenchUpdateT, ClassWrite, 0, false},
		{pgbenchInsert, ClassWrite, 0, false},
		{"BEGIN;", ClassTxControl, 0, true},
		{"END;", ClassTxControl, 0, true},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = $1", ClassRead, 0, true},

		// reads
		{"VALUES (1), (2)", ClassRead, 0, true},
		{"TABLE t", ClassRead, 0, true},
		{"SHOW search_path", ClassRead, 0, true},
		{"SELECT now(), random(), lower('X')", ClassRead, 0, true},
		{"EXPLAIN SELECT 1", ClassRead, 0, true},
		{"EXPLAIN INSERT INTO t VALUES (1)", ClassRead, 0, true},
		{"EXPLAIN (ANALYZE false) DELETE FROM t", ClassRead, 0, true},
		{"EXPLAIN SELECT pg_advisory_lock(1)", ClassRead, 0, true},
		{"SELECT currval('s')", ClassRead, EffCurrval, false},
		{"", ClassRead, 0, true},
		{";;", ClassRead, 0, true},

		// writes
		{"DELETE FROM t WHERE x = 1", ClassWrite, 0, false},
		{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", ClassWrite, 0, false},
		{"SELECT * FROM t FOR UPDATE", ClassWrite, 0, false},
		{"SELECT * FROM t FOR SHARE SKIP LOCKED", ClassWrite, 0, false},
		{"SELECT * FROM t FOR NO KEY UPDATE NOWAIT", ClassWrite, 0, false},
		{"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", ClassWrite, 0, false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", ClassRead, 0, true},
		{"SELECT * INTO u FROM t", ClassWrite, 0, false},
		{"SELECT * INTO TEMP u FROM t", ClassWrite, EffTemp, false},
		{"CALL proc(1)", ClassWrite, 0, false},
		{"DO $$BEGIN END$$", ClassWrite, 0, false},
		{"DO $$BEGIN CREATE TEMP TABLE x (); END$$", ClassWrite, EffPin | EffGUC, false},
		{"DO LANGUAGE plpgsql 'BEGIN PERFORM pg_advisory_lock(1); END'", ClassWrite, EffPin | EffGUC, false},
		{"SELECT nextval('s')", ClassWrite, EffNextval, false},
		{"SELECT setval('s', 1)", ClassWrite, EffNextval, false},
		{"SELECT pg_catalog.nextval('s')", ClassWrite, EffNextval, false},
		{"SELECT txid_current()", ClassWrite, 0, false},
		{"SELECT pg_notify('c', 'x')", ClassWrite, 0, false},
		{"SELECT lo_import('/tmp/x')", ClassWrite, 0, false},
		{"SELECT pg_advisory_xact_lock(1)", ClassWrite, 0, false},
		{"SELECT pg_advisory_lock(1)", ClassWrite, EffAdvisoryLock, false},
		{"SELECT pg_advisory_lock_shared(1)", ClassWrite, EffAdvisoryLock, false},
		{"SELECT pg_try_advisory_lock(1)", ClassWrite, EffAdvisoryLock, false},
		{"SELECT pg_try_advisory_lock_shared(1, 2)", ClassWrite, EffAdvisoryLock, false},
		{"SELECT pg_advisory_unlock(1)", ClassWrite, EffMayRelease, false},
		{"SELECT pg_advisory_unlock_all()", ClassWrite, EffMayRelease, false},
		{"SELECT set_config('a.b', 'c', false)", ClassWrite, EffGUC, false},
		{"SELECT set_config('a.b', 'c', $1)", ClassWrite, EffGUC, false},
		{"SELECT set_config('a.b', 'c', true)", ClassWrite, 0, false},
		{"SELECT set_config('a.b', 'c', 'on')", ClassWrite, 0, false},
		{"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", ClassWrite, 0, false},
		{"EXPLAIN (ANALYZE, BUFFERS) SELECT nextval('s')", ClassWrite, EffNextval, false},
		{"EXPLAIN ANALYZE SELECT 1", ClassRead, 0, true},
		{"SELECT 1; UPDATE t SET x = 1", ClassWrite, 0, false},

		// transaction control
		{"START TRANSACTION ISOLATION LEVEL REPEATABLE READ", ClassTxControl, 0, true},
		{"BEGIN READ WRITE", ClassTxControl, 0, false},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", ClassTxControl, 0, false},
		{"COMMIT", ClassTxControl, 0, true},
		{"ROLLBACK", ClassTxControl, 0, true},
		{"SAVEPOINT a", ClassTxControl, 0, true},
		{"RELEASE SAVEPOINT a", ClassTxControl, 0, true},
		{"ROLLBACK TO SAVEPOINT a", ClassTxControl, 0, true},
		{"PREPARE TRANSACTION 'g'", ClassTxControl, 0, false},
		{"COMMIT PREPARED 'g'", ClassTxControl, 0, false},
		{"ROLLBACK PREPARED 'g'", ClassTxControl, 0, false},

		// session
		{"SET search_path = app", ClassSession, EffGUC, true},
		{"SET SESSION work_mem = '1MB'", ClassSession, EffGUC, true},
		{"SET TIME ZONE 'UTC'", ClassSession, EffGUC, true},
		{"SET LOCAL statement_timeout = 0", ClassSession, 0, true},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ClassSession, 0, true},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", ClassSession, EffGUC, true},
		{"RESET work_mem", ClassSession, EffGUC | EffReset, true},
		{"RESET ALL", ClassSession, EffGUC | EffMayRelease | EffReset, true},
		{"SET ROLE bob", ClassSession, EffGUC | EffRole, true},
		{"SET LOCAL ROLE bob", ClassSession, 0, true},
		{"SET ROLE NONE", ClassSession, EffGUC | EffMayRelease, true},
		{"RESET ROLE", ClassSession, EffGUC | EffMayRelease | EffReset, true},
		{"SET SESSION AUTHORIZATION bob", ClassSession, EffGUC | EffRole, true},
		{"SET SESSION AUTHORIZATION DEFAULT", ClassSession, EffGUC | EffMayRelease | EffReset, true},
		{"RESET SESSION AUTHORIZATION", ClassSession, EffGUC | EffMayRelease | EffReset, true},
		{"PREPARE p(int, text) AS SELECT $1, $2", ClassSession, EffPrepare, true},
		{"PREPARE p AS INSERT INTO t VALUES (nextval('s'))", ClassSession, EffPrepare, true},
		{"EXECUTE p(1, 'a')", ClassSession, EffExecute, false},
		{"EXECUTE p(nextval('s'))", ClassWrite, EffExecute | EffNextval, false},
		{"EXPLAIN EXECUTE p(1)", ClassRead, EffExecute, false},
		{"SELECT lastval()", ClassRead, EffCurrval, false},
		{"SELECT name FROM pg_prepared_statements", ClassRead, EffPreparedView, true},
		{"SELECT * FROM pg_catalog . pg_prepared_statements p, pg_prepared_statements", ClassRead, EffPreparedView, true},
		{"SELECT * FROM myschema.pg_prepared_statements", ClassRead, 0, true},
		{"EXPLAIN ANALYZE EXECUTE p(1)", ClassWrite, EffExecute, false},
		{"CREATE TABLE t AS EXECUTE p(1)", ClassUtility, EffExecute, false},
		{"DEALLOCATE p", ClassSession, EffDeallocate, true},
		{"DEALLOCATE PREPARE p", ClassSession, EffDeallocate, true},
		{"DEALLOCATE ALL", ClassSession, EffDeallocateAll, true},
		{"DEALLOCATE PREPARE ALL", ClassSession, EffDeallocateAll, true},
		{"DISCARD ALL", ClassSession, EffGUC | EffDiscardAll | EffMayRelease | EffReset | EffDiscardSeq, true},
		{"DISCARD SEQUENCES", ClassSession, EffMayRelease | EffDiscardSeq, true},
		{"BEGIN READ ONLY", ClassTxControl, EffReadOnlyTx, true},
		{"START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", ClassTxControl, EffReadOnlyTx, true},
		{"BEGIN READ WRITE", ClassTxControl, 0, false},
		{"BEGIN", ClassTxControl, 0, true},
		{"DISCARD TEMP", ClassSession, EffMayRelease, true},
		{"DISCARD PLANS", ClassSession, EffMayRelease, true},
		{"LISTEN chan", ClassSession, EffListen, false},
		{"UNLISTEN *", ClassSession, EffMayRelease, false},
		{"NOTIFY chan, 'x'", ClassSession, 0, false},
		{"LOAD 'auto_explain'", ClassSession, EffLoad, true},
		{"DECLARE c CURSOR FOR SELECT 1", ClassSession, 0, true},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", ClassSession, EffHoldCursor, true},
		{"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", ClassWrite, 0, false},
		{"FETCH 10 FROM c", ClassSession, 0, true},
		{"MOVE NEXT IN c", ClassSession, 0, true},
		{"CLOSE c", ClassSession, EffMayRelease, true},
		{"CLOSE ALL", ClassSession, EffMayRelease, true},

		// utility
		{"CREATE TABLE t (x int)", ClassUtility, 0, false},
		{"CREATE TEMP TABLE t (x int)", ClassUtility, EffTemp, false},
		{"CREATE TEMPORARY TABLE t (x int)", ClassUtility, EffTemp, false},
		{"create global temporary table t (x int)", ClassUtility, EffTemp, false},
		{"CREATE TEMP VIEW v AS SELECT 1", ClassUtility, EffTemp, false},
		{"CREATE TEMP SEQUENCE s", ClassUtility, EffTemp, false},
		{"CREATE TEMP TABLE u AS SELECT * FROM t", ClassUtility, EffTemp, false},
		{"CREATE TABLE pg_temp.t (x int)", ClassUtility, EffTemp, false},
		{"SELECT * FROM pg_temp.t", ClassRead, EffTemp, true},
		{"SELECT pg_temp.f()", ClassRead, EffTemp, false},
		{"SELECT 'pg_temp'", ClassRead, 0, true},
		{"DROP TABLE t", ClassUtility, EffMayRelease, false},
		{"DROP FUNCTION f", ClassUtility, EffMayRelease | EffFunctionDDL, false},
		{"VACUUM t", ClassUtility, 0, false},
		{"ANALYZE t", ClassUtility, 0, false},
		{"COPY t FROM STDIN", ClassUtility, 0, false},
		{"COPY t TO STDOUT", ClassUtility, 0, true},
		{"COPY (SELECT * FROM t) TO STDOUT", ClassUtility, 0, true},
		{"GRANT SELECT ON t TO bob", ClassUtility, 0, false},
		{"CHECKPOINT", ClassUtility, 0, false},
		{"ALTER SYSTEM SET work_mem = '1MB'", ClassUtility, 0, false},
		{"LOCK TABLE t", ClassUtility, 0, false},
		{"CREATE TABLE t (x int); SELECT 1", ClassUtility, 0, false},
		{"BEGIN; SET x.y = 1; COMMIT", ClassSession, EffGUC, true},

		// did not parse: the lexical scanner decides, conservatively
		{"SELEC 1", ClassUnknown, 0, false},
		{"SET search_path = ", ClassUnknown, EffPin | EffGUC, false},
		{"DISCARD EVERYTHING", ClassUnknown, EffPin | EffGUC | EffMayRelease, false},
		{"SELECT 1\x00", ClassUnknown, 0, false},
	}
	for _, c := range cases {
		p := Parse(c.sql)
		// EffMayAdvance has a test of its own (TestPreparedViewsAndSequences).
		if p.Class != c.class || p.Effects&^EffMayAdvance != c.eff || p.ReplicaOK != c.replica {
			t.Errorf("Parse(%q) = %v %v replica=%v, want %v %v replica=%v (err %v)",
				c.sql, p.Class, p.Effects, p.ReplicaOK, c.class, c.eff, c.replica, p.Err)
		}
		if (p.Err != nil) != (c.class == ClassUnknown) {
			t.Errorf("Parse(%q).Err = %v", c.sql, p.Err)
		}
		checkSpans(t, c.sql, p)
	}
}

func TestParseNames(t *testing.T) {
	cases := []struct {
		sql, name, nameText string
	}{
		{"PREPARE p(int, text) AS SELECT $1, $2", "p", "p"},
		{"PREPARE Foo AS SELECT 1", "foo", "Foo"},
		{`EXECUTE "MixedCase"`, "MixedCase", `"MixedCase"`},
		{`EXECUTE "with ""quotes"""(1)`, `with "quotes"`, `"with ""quotes"""`},
		{"DEALLOCATE PREPARE x", "x", "x"},
		{"DEALLOCATE x", "x", "x"},
		{"DEALLOCATE ALL", "", ""},
		{"DEALLOCATE PREPARE", "prepare", "PREPARE"},
		{"DEALLOCATE prepare prepare", "prepare", "prepare"},
		{"  /* a /* nested */ comment */ -- line\n\tprepare /* here */ Q1 as select 1", "q1", "Q1"},
		{"execute -- c\n\"Q\"", "Q", `"Q"`},
		{"deallocate /**/ prepare /**/ s_1", "s_1", "s_1"},
		{"SELECT 1; PREPARE a AS SELECT 2; EXECUTE a", "a", "a"},
		{"EXPLAIN EXECUTE p(1)", "p", "p"},
		{"explain (analyze, costs off) execute P(1)", "p", "P"},
		{"EXPLAIN ANALYZE VERBOSE EXECUTE \"Q\"", "Q", `"Q"`},
		{"CREATE TABLE t (a, b) AS EXECUTE p(1, 'execute x')", "p", "p"},
		{"CREATE TABLE execute AS EXECUTE execute", "execute", "execute"},
		{"CREATE TEMP TABLE IF NOT EXISTS \"execute\" WITH (fillfactor = 70) AS EXECUTE q WITH NO DATA", "q", "q"},
	}
	for _, c := range cases {
		p := Parse(c.sql)
		if p.Err != nil {
			t.Fatalf("Parse(%q): %v", c.sql, p.Err)
		}
		st := p.Stmts[len(p.Stmts)-1]
		if st.Name != c.name {
			t.Errorf("Parse(%q).Name = %q, want %q", c.sql, st.Name, c.name)
		}
		if got := c.sql[st.NameSpan.Loc:st.NameSpan.End()]; got != c.nameText {
			t.Errorf("Parse(%q) NameSpan text = %q, want %q", c.sql, got, c.nameText)
		}
		checkSpans(t, c.sql, p)
	}
}

func TestPreparedViewsAndSequences(t *testing.T) {
	sql := `SELECT a.name FROM pg_prepared_statements a JOIN pg_catalog . "pg_prepared_statements" b USING (name) ` +
		`WHERE EXISTS (SELECT 1 FROM pg_prepared_statements)`
	p := Parse(sql)
	var got []string
	for _, v := range p.PreparedViews {
		got = append(got, fmt.Sprint(sql[v.Span.Loc:v.Span.End()], " ", v.Aliased))
	}
	want := []string{"pg_prepared_statements true", `pg_catalog . "pg_prepared_statements" true`, "pg_prepared_statements false"}
	if strings.Join(got, "|") != strings.Join(want, "|") || p.Effects&EffPreparedView == 0 {
		t.Fatalf("PreparedViews = %q (effects %v), want %q", got, p.Effects, want)
	}
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{"SELECT 1", false}, {"SELECT currval('s')", false}, {"SELECT nextval('s')", true},
		{"INSERT INTO t VALUES (1)", true}, {"SELECT f()", true}, {"EXECUTE p", true},
		{"COPY t FROM STDIN", true}, {"BEGIN", false}, {"SET x = 1", false},
	} {
		if got := Parse(c.sql).Effects&EffMayAdvance != 0; got != c.want {
			t.Errorf("Parse(%q) may advance sequences: %v, want %v", c.sql, got, c.want)
		}
	}
}

func TestParseMultiStatement(t *testing.T) {
	sql := "BEGIN; PREPARE s AS SELECT 1;\n UPDATE pgbench_tellers SET tbalance = 1 WHERE tid = 2 ; LISTEN c; END"
	p := Parse(sql)
	want := []struct {
		class Class
		eff   Effect
		text  string
	}{
		{ClassTxControl, 0, "BEGIN"},
		{ClassSession, EffPrepare, "PREPARE s AS SELECT 1"},
		{ClassWrite, EffMayAdvance, "UPDATE pgbench_tellers SET tbalance = 1 WHERE tid = 2"},
		{ClassSession, EffListen, "LISTEN c"},
		{ClassTxControl, 0, "END"},
	}
	if len(p.Stmts) != len(want) {
		t.Fatalf("%d statements, want %d", len(p.Stmts), len(want))
	}
	for i, w := range want {
		st := p.Stmts[i]
		text := strings.TrimSpace(sql[st.Span.Loc:st.Span.End()])
		if st.Class != w.class || st.Effects != w.eff || text != w.text {
			t.Errorf("stmt %d = %v %v %q, want %v %v %q", i, st.Class, st.Effects, text, w.class, w.eff, w.text)
		}
	}
	if p.Class != ClassWrite || p.Effects != EffPrepare|EffListen|EffMayAdvance || p.ReplicaOK {
		t.Errorf("plan = %v %v %v", p.Class, p.Effects, p.ReplicaOK)
	}
	if !slices.Equal(p.Tables, []string{"pgbench_tellers"}) {
		t.Errorf("tables = %q", p.Tables)
	}
}

func TestParseTablesFunctionsParams(t *testing.T) {
	sql := "WITH w AS (SELECT * FROM s.a) SELECT myf(1), app.g($1), lower('x'), interval '1 day', -2.5e3, " +
		"NULL, true FROM w JOIN b ON b.id = w.id JOIN s.a ON true WHERE c = E'it\\'s' AND d = $$x$$"
	p := Parse(sql)
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	if want := []string{"b", "s.a"}; !slices.Equal(p.Tables, want) {
		t.Errorf("tables = %q, want %q", p.Tables, want)
	}
	if want := []string{"app.g", "myf"}; !slices.Equal(p.Functions, want) {
		t.Errorf("functions = %q, want %q", p.Functions, want)
	}
	var got []string
	for _, s := range p.Params {
		got = append(got, sql[s.Loc:s.End()])
	}
	want := []string{"1", "$1", "'x'", "'1 day'", "-2.5e3", `E'it\'s'`, "$$x$$"}
	if !slices.Equal(got, want) {
		t.Errorf("params = %q, want %q", got, want)
	}
	if p.ReplicaOK {
		t.Error("ReplicaOK with user functions of unknown volatility")
	}
}

// checkSpans asserts what FuzzParse asserts.
func checkSpans(t *testing.T, sql string, p *Plan) {
	t.Helper()
	n := int32(len(sql))
	in := func(s Span) bool { return s.Loc >= 0 && s.Len >= 0 && s.End() <= n }
	for _, st := range p.Stmts {
		if !in(st.Span) {
			t.Fatalf("%q: span %v outside the text", sql, st.Span)
		}
		if st.NameSpan != (Span{}) && (!in(st.NameSpan) || st.NameSpan.Loc < st.Span.Loc || st.NameSpan.End() > st.Span.End()) {
			t.Fatalf("%q: name span %v outside statement span %v", sql, st.NameSpan, st.Span)
		}
		if st.Name != "" && st.NameSpan == (Span{}) {
			t.Fatalf("%q: name %q without a span", sql, st.Name)
		}
	}
	for _, s := range p.Params {
		if !in(s) || s.Len == 0 {
			t.Fatalf("%q: param span %v outside the text", sql, s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{pgbenchSelect, pgbenchUpdateA, pgbenchInsert, "BEGIN; END;",
		`EXECUTE "MixedCase"(1)`, "DEALLOCATE PREPARE x", "PREPARE p(int, text) AS SELECT $1",
		"/* c */ prepare q as select 1", "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"SELECT set_config('a', 'b', false)", "SELECT interval '1 day', -1, $$x$$, E'\\''", "SELEC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		p := Parse(sql)
		if p == nil {
			t.Fatal("nil plan")
		}
		if (p.Err != nil) != (p.Class == ClassUnknown) {
			t.Fatalf("class %v with err %v", p.Class, p.Err)
		}
		if p.Effects&(EffectSession|EffectReset) != 0 || p.Effects > effLast<<1-1 {
			t.Fatalf("unknown effect bits %b", p.Effects)
		}
		checkSpans(t, sql, p)
	})
}

func TestSettings(t *testing.T) {
	cases := map[string]string{
		"SET myapp.Tenant = 'x'":          "myapp.tenant",
		"RESET a.b; SET work_mem = '1MB'": "a.b",
		"SELECT set_config('c.d', 'v', false), set_config('work_mem', '1MB', false)": "c.d",
		"SELECT set_config($1, 'v', false)":                                          "",
		"SET LOCAL x.y = 1; SET x.y = 2":                                             "x.y",
	}
	for sql, want := range cases {
		if got := strings.Join(Parse(sql).Settings, ","); got != want {
			t.Errorf("%s: settings %q, want %q", sql, got, want)
		}
	}
}

func TestFunctionDDL(t *testing.T) {
	for sql, want := range map[string]bool{
		"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'": true,
		"ALTER FUNCTION f() VOLATILE":     true,
		"DROP FUNCTION f()":               true,
		"DROP PROCEDURE p()":              true,
		"ALTER FUNCTION f() RENAME TO g":  true,
		"ALTER FUNCTION f() SET SCHEMA s": true,
		"CREATE EXTENSION pgcrypto":       true,
		"DROP SCHEMA s CASCADE":           true,
		"DROP TABLE t":                    false,
		"ALTER TABLE t RENAME TO u":       false,
		"SELECT f()":                      false,
	} {
		if got := Parse(sql).Effects&EffFunctionDDL != 0; got != want {
			t.Errorf("%s: EffFunctionDDL %v, want %v", sql, got, want)
		}
	}
}

func TestCacheUnknown(t *testing.T) {
	c := NewCache(1 << 20)
	p := c.Plan([]byte("SELECT f(1), g(2), now()"))
	if got := strings.Join(c.Unknown(p, nil), ","); got != "f,g" {
		t.Fatalf("unknown %q", got)
	}
	c.SetVolatility("f", VolatilityImmutable)
	if got := strings.Join(c.Unknown(p, nil), ","); got != "g" {
		t.Fatalf("unknown after SetVolatility %q", got)
	}
}
