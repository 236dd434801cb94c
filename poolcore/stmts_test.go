package poolcore

import "testing"

func TestStatementsEvictLeastRecentlyUsed(t *testing.T) {
	st := Statements{Max: 3}
	for _, n := range []string{"a", "b", "c"} {
		if ev, ok := st.Evict(); ok {
			t.Fatalf("Evict before Add(%s) gave %q below the bound", n, ev)
		}
		st.Add(n)
	}
	if !st.Has("a") { // a is now the most recently used
		t.Fatal("a missing")
	}
	if ev, ok := st.Evict(); !ok || ev != "b" {
		t.Fatalf("evicted %q, want b (least recently used)", ev)
	}
	st.Add("d")
	if st.Has("b") || !st.Has("c") || !st.Has("d") || st.Len() != 3 {
		t.Fatalf("set after eviction wrong: len %d", st.Len())
	}
	st.Add("e") // past the bound: allowed, the next Evict makes room
	if st.Len() != 4 {
		t.Fatalf("len %d after Add past the bound", st.Len())
	}
	if _, ok := st.Evict(); !ok || st.Len() != 3 {
		t.Fatalf("Evict over the bound left %d", st.Len())
	}
	st.Remove("c")
	st.Reset()
	if st.Len() != 0 || st.Has("a") {
		t.Fatal("Reset left names")
	}
}

// TestStatementsUnsure: a forgotten name is not had; the next Add of it
// says to close it first, once; Reset forgets unsure names too; past Max
// unsure names Forget asks for a reset.
func TestStatementsUnsure(t *testing.T) {
	st := Statements{Max: 2}
	if st.Add("a") {
		t.Fatal("Add of a new name said close first")
	}
	if st.Forget("a") || st.Has("a") || st.Len() != 0 {
		t.Fatal("a forgotten name is still had, or one unsure name is too many")
	}
	if !st.Add("a") {
		t.Fatal("Add of an unsure name did not say close first")
	}
	if st.Add("a") || !st.Has("a") {
		t.Fatal("Add said close first twice, or lost the name")
	}
	st.Forget("b")
	st.Reset()
	if st.Add("b") {
		t.Fatal("Reset kept an unsure name")
	}
	st.Forget("x")
	st.Forget("y")
	if !st.Forget("z") {
		t.Fatal("three unsure names under Max 2 were not too many")
	}
}

func BenchmarkStatementsHas(b *testing.B) {
	st := Statements{}
	st.Add("b0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		if !st.Has("b0123456789abcdef0123456789abcdef") {
			b.Fatal("missing")
		}
	}
}
