package planner

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestCacheHitsAndNormalization(t *testing.T) {
	c := NewCache(1 << 20)
	p1 := c.Plan([]byte("SELECT abalance FROM pgbench_accounts WHERE aid = 42;"))
	p2 := c.Plan([]byte("SELECT abalance FROM pgbench_accounts WHERE aid = 43;"))
	if p1 != p2 {
		t.Fatal("literals differ: plans not shared")
	}
	if p1.Class != ClassRead || !p1.ReplicaOK || p1.Text != "SELECT abalance FROM pgbench_accounts WHERE aid = $1;" {
		t.Fatalf("plan = %+v", p1)
	}
	if !p1.Normalized([]byte("SELECT abalance FROM pgbench_accounts WHERE aid = 42;")) {
		t.Fatal("Normalized = false")
	}
	raw := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
	p3 := c.Plan(raw)
	if p3 == p1 || p3.Text != string(raw) || p3.Normalized(raw) {
		t.Fatal("a text without literals is its own key")
	}
	if p4 := c.Plan(raw); p4 != p3 {
		t.Fatal("raw hit missed")
	}
	s := c.Stats()
	if s.Hits != 2 || s.Misses != 2 || s.Entries != 2 || s.Bytes <= 0 {
		t.Fatalf("stats = %+v", s)
	}
	if n := testing.AllocsPerRun(100, func() { c.Plan(raw) }); n != 0 {
		t.Fatalf("raw hit: %v allocs", n)
	}
	q := []byte(pgbenchUpdateA)
	c.Plan(q)
	if n := testing.AllocsPerRun(100, func() { c.Plan(q) }); n != 0 {
		t.Fatalf("normalized hit: %v allocs", n)
	}
}

func TestCacheNormalizedDoesNotParse(t *testing.T) {
	c := NewCache(1 << 20)
	// The original fails to parse too: cached under the raw key, Unknown.
	bad := []byte("SELECT 1 FROM")
	p := c.Plan(bad)
	if p.Class != ClassUnknown || p.Text != string(bad) {
		t.Fatalf("plan = %v %q", p.Class, p.Text)
	}
	if c.Plan(bad) != p {
		t.Fatal("an unparseable text is cached too")
	}
	// Should a normalized text not parse where the original does (none is
	// known), the original is planned and cached under its own bytes.
	q := []byte("SELECT 'x'::time(3)")
	p = c.miss(q, []byte("SELECT $1::time($2)"), 2)
	if p.Err != nil || p.Text != string(q) || c.Plan(q) != p {
		t.Fatalf("plan = %v %q", p.Err, p.Text)
	}
}

func TestCacheBoundedAndAdmission(t *testing.T) {
	c := NewCache(16 << 10)
	hot := []byte("SELECT * FROM hot WHERE id = $1")
	for range 20 {
		c.Plan(hot)
	}
	for i := range 2000 {
		q := fmt.Appendf(nil, "SELECT * FROM cold_%d", i)
		c.Plan(q)
		c.Plan(q) // the second miss wins admission against a one-hit victim
		if s := c.Stats(); s.Bytes > 16<<10 {
			t.Fatalf("bytes %d over the bound", s.Bytes)
		}
	}
	s := c.Stats()
	if s.Evictions == 0 || s.Rejected == 0 {
		t.Fatalf("stats = %+v", s)
	}
	before := c.Stats().Misses
	c.Plan(hot)
	if c.Stats().Misses != before {
		t.Fatal("the frequent entry was evicted by one-hit wonders")
	}
	// A plan larger than the whole cache is rejected, and still returned.
	big := []byte("SELECT " + string(make([]byte, 0)) + "x FROM t WHERE y IN (" + repeat("1,", 10000) + "1)")
	if p := c.Plan(big); p == nil || p.Err != nil {
		t.Fatal("big plan not returned")
	}
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

func TestCacheVolatilityInvalidation(t *testing.T) {
	c := NewCache(1 << 20)
	q := []byte("SELECT app.price($1), lower($2)")
	p := c.Plan(q)
	if p.ReplicaOK || len(p.Functions) != 1 || p.Functions[0] != "app.price" {
		t.Fatalf("plan = %v %q", p.ReplicaOK, p.Functions)
	}
	other := []byte("SELECT * FROM t")
	po := c.Plan(other)

	c.SetVolatility("app.price", VolatilityStable) // step 1: O(1)
	p2 := c.Plan(q)                                // step 2: re-planned at lookup
	if !p2.ReplicaOK {
		t.Fatal("stable function: not ReplicaOK after SetVolatility")
	}
	if p.ReplicaOK {
		t.Fatal("the old plan was modified")
	}
	if c.Plan(other) != po {
		t.Fatal("a plan without functions was replaced")
	}
	if s := c.Stats(); s.Replans != 1 || s.Misses != 2 {
		t.Fatalf("stats = %+v", s)
	}
	c.SetVolatility("app.price", VolatilityVolatile)
	if c.Plan(q).ReplicaOK {
		t.Fatal("volatile function: ReplicaOK")
	}
	c.SetVolatility("app.price", VolatilityImmutable)
	if !c.Plan(q).ReplicaOK {
		t.Fatal("immutable function: not ReplicaOK")
	}
	c.InvalidateFunctions()
	if c.Plan(q).ReplicaOK {
		t.Fatal("after InvalidateFunctions the volatility is unknown again")
	}
	// A write stays a write whatever its functions are.
	w := []byte("UPDATE t SET x = app.price(1)")
	c.SetVolatility("app.price", VolatilityImmutable)
	if c.Plan(w).ReplicaOK {
		t.Fatal("a write is ReplicaOK")
	}
	// A plan admitted after SetVolatility is planned with it.
	if !c.Plan([]byte("SELECT app.price(2)")).ReplicaOK {
		t.Fatal("new plan ignores known volatility")
	}
}

var sinkPlan *Plan

func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(64 << 20)
	q := []byte("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
	c.Plan(q)
	b.ReportAllocs()
	for b.Loop() {
		sinkPlan = c.Plan(q)
	}
}

func BenchmarkCacheHitNormalized(b *testing.B) {
	c := NewCache(64 << 20)
	qs := make([][]byte, 1024)
	for i := range qs {
		qs[i] = []byte("SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(100000+i*7919) + ";")
	}
	c.Plan(qs[0])
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkPlan = c.Plan(qs[i&1023])
		i++
	}
}

func BenchmarkCacheMiss(b *testing.B) {
	c := NewCache(64 << 20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkPlan = c.Plan([]byte("SELECT abalance FROM pgbench_accounts_" + strconv.Itoa(i) + " WHERE aid = $1"))
		i++
	}
}

func BenchmarkParse(b *testing.B) {
	for _, q := range []struct{ name, sql string }{
		{"select", pgbenchSelect}, {"update", pgbenchUpdateA}, {"insert", pgbenchInsert},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkPlan = Parse(q.sql)
			}
		})
	}
}

var sinkN int

func BenchmarkNormalize(b *testing.B) {
	buf := make([]byte, 0, 256)
	for _, q := range []struct{ name, sql string }{
		{"select", pgbenchSelect}, {"update", pgbenchUpdateA}, {"insert", pgbenchInsert},
	} {
		b.Run(q.name, func(b *testing.B) {
			s := []byte(q.sql)
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				buf, sinkN = Normalize(buf[:0], s)
			}
		})
	}
}

// check verifies the cache's invariants: the LRU list holds exactly the
// map's entries, and the accounted bytes are their sum and within the bound.
func (c *Cache) check(t *testing.T) {
	t.Helper()
	n, bytes := 0, 0
	for e := c.lru.next; e != &c.lru; e = e.next {
		if e.next.prev != e {
			t.Fatal("BUG: broken LRU links")
		}
		if c.m[e.key] != e {
			t.Fatalf("BUG: list entry %q not in the map", e.key)
		}
		n++
		bytes += e.size
	}
	if n != len(c.m) || bytes != c.bytes || c.bytes > c.max {
		t.Fatalf("BUG: %d listed, %d mapped, bytes %d (sum %d, max %d)", n, len(c.m), c.bytes, bytes, c.max)
	}
}

func TestCacheRandomOps(t *testing.T) {
	c := NewCache(8 << 10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 4000 {
		k := int(r.ExpFloat64() * 50)
		switch r.IntN(20) {
		case 0:
			c.SetVolatility(fmt.Sprintf("f%d", k%5), Volatility(r.IntN(4)))
		case 1:
			c.InvalidateFunctions()
		default:
			q := fmt.Appendf(nil, "SELECT f%d(%d) FROM t%d WHERE a = %d", k%5, i, k, r.IntN(100))
			p := c.Plan(q)
			if p == nil || p.Err != nil || len(p.Functions) != 1 {
				t.Fatalf("Plan(%q) = %+v", q, p)
			}
			if want := c.vol[p.Functions[0]]; p.ReplicaOK != (want == VolatilityImmutable || want == VolatilityStable) {
				t.Fatalf("Plan(%q).ReplicaOK = %v with volatility %v", q, p.ReplicaOK, want)
			}
		}
		if i%100 == 0 {
			c.check(t)
		}
	}
	c.check(t)
	if s := c.Stats(); s.Hits == 0 || s.Evictions == 0 || s.Replans == 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestSketchAges(t *testing.T) {
	var s sketch
	s.init(16)
	for range 15 {
		s.add(42)
	}
	if got := s.estimate(42); got != 15 {
		t.Fatalf("estimate = %d, want 15 (saturated)", got)
	}
	for i := range s.reset {
		s.add(uint64(i) * 0x9e3779b97f4a7c15)
	}
	if got := s.estimate(42); got >= 15 {
		t.Fatalf("estimate after aging = %d", got)
	}
}
