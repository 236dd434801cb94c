package planner

import (
	"testing"
)

// TestLiterals: the spans Normalize replaces, numbered as it numbers them,
// read back with LiteralValue.
func TestLiterals(t *testing.T) {
	for _, c := range []struct {
		sql  string
		base int
		want []string // each literal's value, in $k order
	}{
		{"SELECT * FROM a WHERE k = 42 AND s = 'it''s'", 0, []string{"42", "it's"}},
		{"SELECT * FROM a WHERE k = $1 AND j = 7", 1, []string{"7"}},
		{"SELECT * FROM a WHERE s = E'a\\tb\\x41\\101\\u00e9\\'' AND t = $$x'y$$", 0, []string{"a\tbAAé'", "x'y"}},
		{"SELECT * FROM a WHERE s = 'ab'\n  'cd' AND n = N'z'", 0, []string{"abcd", "z"}},
		{"INSERT INTO a (k, v) VALUES (1.5, 'x'), (2e3, '')", 0, []string{"1.5", "x", "2e3", ""}},
		{"SET x = 5", 0, nil}, // never normalized
	} {
		spans, base := Literals([]byte(c.sql), nil)
		if base != c.base || len(spans) != len(c.want) {
			t.Errorf("%q: base %d, %d spans; want %d, %d", c.sql, base, len(spans), c.base, len(c.want))
			continue
		}
		for i, sp := range spans {
			v, ok := LiteralValue([]byte(c.sql[sp.Loc:sp.End()]))
			if !ok || v != c.want[i] {
				t.Errorf("%q: $%d = %q (%v), want %q", c.sql, base+i+1, v, ok, c.want[i])
			}
		}
		// The numbering agrees with the plan of the normalized text.
		_, n := Normalize(nil, []byte(c.sql))
		if n != len(spans) {
			t.Errorf("%q: Normalize replaced %d, Literals found %d", c.sql, n, len(spans))
		}
	}
}

// TestLiteralValue: what is and is not read.
func TestLiteralValue(t *testing.T) {
	for lit, want := range map[string]string{
		"42": "42", "-7": "-7", "- 7": "-7", "+3": "3", ".5": ".5", "'x'": "x", "E'\\\\'": "\\",
		"$tag$a$b$tag$": "a$b", "'a' -- c\n 'b'": "ab",
	} {
		if got, ok := LiteralValue([]byte(lit)); !ok || got != want {
			t.Errorf("LiteralValue(%q) = %q, %v; want %q", lit, got, ok, want)
		}
	}
	for _, lit := range []string{"", "B'101'", "X'ff'", "1abc", "E'\\xff'", "E'\\u12'", "'unterminated"} {
		if got, ok := LiteralValue([]byte(lit)); ok {
			t.Errorf("LiteralValue(%q) = %q, true; want false", lit, got)
		}
	}
}

// TestLiteralsNormalizedPlan: the key filter of a normalized plan names a
// $k whose value Literals and LiteralValue give.
func TestLiteralsNormalizedPlan(t *testing.T) {
	sql := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = 4711")
	c := NewCache(1 << 20)
	c.Plan(sql)
	p := c.Plan(sql)
	if !p.Normalized(sql) {
		t.Fatal("the plan is not of the normalized text")
	}
	spans, base := Literals(sql, nil)
	v := p.Stmts[0].KeyFilters[0].Values[0]
	k := v.Param - base - 1
	if k < 0 || k >= len(spans) {
		t.Fatalf("$%d is no literal (base %d, %d spans)", v.Param, base, len(spans))
	}
	if got, _ := LiteralValue(sql[spans[k].Loc:spans[k].End()]); got != "4711" {
		t.Errorf("$%d = %q", v.Param, got)
	}
}
