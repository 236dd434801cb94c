package planner

import "testing"

func TestSessionEffects(t *testing.T) {
	cases := []struct {
		sql  string
		want Effect
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 42", 0},
		{"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1", 0},
		{"BEGIN; UPDATE t SET x = 1; END;", 0},
		{"set search_path = app", EffectSession},
		{"SET LOCAL statement_timeout = 0", 0},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", EffectSession},
		{"begin; set work_mem='1MB'; commit", EffectSession},
		{"  /* c */ -- x\n PREPARE p AS SELECT 1", EffectSession},
		{"EXECUTE p", 0},
		{"DEALLOCATE p", EffectSession},
		{"LISTEN chan", EffectSession},
		{"UNLISTEN *", 0},
		{"NOTIFY chan, 'set'", 0},
		{"CREATE TEMP TABLE t (x int)", EffectSession},
		{"create global temporary table t (x int)", EffectSession},
		{"CREATE TABLE pg_temp.t (x int)", EffectSession},
		{"SELECT * INTO TEMP t FROM x", EffectSession},
		{"CREATE TABLE t (x int)", 0},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", EffectSession},
		{"DECLARE c CURSOR FOR SELECT 1", 0},
		{"SELECT pg_advisory_lock(1)", EffectSession},
		{"SELECT pg_advisory_xact_lock(1)", 0},
		{"SELECT set_config('a.b', 'c', false)", EffectSession},
		{"DISCARD ALL", EffectSession | EffectReset},
		{"LOAD 'auto_explain'", EffectSession},
		{"RESET ALL", EffectSession},
		{"SELECT 'set x = 1; listen y'", 0},
		{"SELECT $$ SET x $$, $tag$ ; LISTEN z $tag$", 0},
		{"SELECT E'it\\'s; SET x' AS s", 0},
		{`SELECT "set" FROM "listen"`, 0},
		{"SELECT 1 /* ; SET x = 1 /* nested */ ; */", 0},
		{"SELECT 1; SET x = 1", EffectSession},
		{"SELECT $1::int", 0},
		{"", 0},
		{";;;", 0},
	}
	for _, c := range cases {
		if got := SessionEffects([]byte(c.sql)); got != c.want {
			t.Errorf("SessionEffects(%q) = %b, want %b", c.sql, got, c.want)
		}
	}
}

func FuzzSessionEffects(f *testing.F) {
	for _, s := range []string{"SET x=1", "SELECT $a$ x $a$", "/* /* */", "E'\\", "$1$", "'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		e := SessionEffects([]byte(sql))
		if e&^(EffectSession|EffectReset) != 0 {
			t.Fatalf("unknown bits %b", e)
		}
		if e&EffectReset != 0 && e&EffectSession == 0 {
			t.Fatalf("reset without session effect")
		}
	})
}

var sink Effect

func BenchmarkSessionEffectsPgbench(b *testing.B) {
	q := []byte("UPDATE pgbench_accounts SET abalance = abalance + -4123 WHERE aid = 843211;")
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		sink = SessionEffects(q)
	}
}
