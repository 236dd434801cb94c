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
