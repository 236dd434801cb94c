package planner

import (
	"hash/maphash"
	"math/bits"
)

// Cache is the plan cache of one event loop. It is NOT safe for concurrent
// use: each loop owns one and calls it from its own goroutine only.
//
// Entries are keyed on the raw SQL bytes, or on the normalized text when the
// plan was made from it. Memory is bounded by an accounted size (key plus an
// estimate of the plan). A full cache evicts its least recently used entry,
// but only for a newcomer that a TinyLFU admission policy (a count-min
// sketch of recent access frequencies, halved periodically) finds more
// frequent than that victim; otherwise the newcomer is rejected (and still
// returned to the caller), and the victim that won moves to the front.
//
// Plans that call user functions depend on server state (their volatility).
// SetVolatility and InvalidateFunctions mark every such entry stale in O(1)
// by bumping a generation; a stale entry is re-planned at its next lookup
// (its ReplicaOK is recomputed: a parse does not depend on server state).
type Cache struct {
	max   int
	bytes int
	m     map[string]*entry
	lru   entry // sentinel: lru.next is the most recent, lru.prev the victim
	sk    sketch
	seed  maphash.Seed
	buf   []byte // normalization scratch
	vol   map[string]Volatility
	gen   uint64
	stats CacheStats
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	Hits      uint64 // lookups answered from the cache (raw or normalized)
	Misses    uint64 // lookups that parsed
	Evictions uint64 // entries evicted to make room
	Rejected  uint64 // new plans the admission policy (or their size) kept out
	Replans   uint64 // stale entries re-planned at lookup
	Entries   int
	Bytes     int // accounted size of the entries
}

type entry struct {
	key        string
	plan       *Plan
	hash       uint64
	size       int
	gen        uint64
	prev, next *entry
}

// entryOverhead estimates an entry's fixed cost: the entry, its map slot,
// the Plan struct.
const entryOverhead = 96 + 48 + 200

// NewCache returns a cache holding at most maxBytes of accounted size.
func NewCache(maxBytes int) *Cache {
	c := &Cache{
		max:  maxBytes,
		m:    make(map[string]*entry),
		seed: maphash.MakeSeed(),
		vol:  make(map[string]Volatility),
		buf:  make([]byte, 0, 1024),
	}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	width := maxBytes / 256
	width = max(1024, min(width, 1<<20))
	c.sk.init(width)
	return c
}

// Plan returns the plan of sql: an exact hit on the raw bytes first, then on
// the normalized text; on a miss it parses the normalized text (or the
// original if the normalized one does not parse), admits the plan and
// returns it. It never returns nil. A hit allocates nothing.
//
// Plans are shared and immutable: callers must not modify them. The spans
// of a plan refer to plan.Text, which is the NORMALIZED text when the plan
// was made from it (plan.Normalized(sql) tells); a proxy that needs exact
// spans of sql calls Parse(sql). Names and NameSpans agree in both texts (a
// name comes before any literal of its statement).
func (c *Cache) Plan(sql []byte) *Plan {
	if e, ok := c.m[string(sql)]; ok {
		return c.hit(e)
	}
	var n int
	c.buf, n = Normalize(c.buf[:0], sql)
	if n > 0 {
		if e, ok := c.m[string(c.buf)]; ok {
			return c.hit(e)
		}
	}
	return c.miss(sql, c.buf, n)
}

// miss plans sql whose normalized form is norm (n literals replaced) and
// admits the plan.
func (c *Cache) miss(sql, norm []byte, n int) *Plan {
	c.stats.Misses++
	var p *Plan
	if n > 0 {
		p = Parse(string(norm))
		if p.Err != nil {
			// Only a text that parsed is cached under its normalized key, so a
			// hit there never hides a text whose original parses.
			p = Parse(string(sql))
		}
	} else {
		p = Parse(string(sql))
	}
	p = c.applyVolatility(p)
	c.admit(p.Text, p)
	return p
}

func (c *Cache) hit(e *entry) *Plan {
	c.stats.Hits++
	c.sk.add(e.hash)
	if e.gen != c.gen {
		e.gen = c.gen
		if len(e.plan.Functions) > 0 {
			e.plan = c.applyVolatility(e.plan)
			c.stats.Replans++
		}
	}
	if c.lru.next != e {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.plan
}

func (c *Cache) admit(key string, p *Plan) {
	size := len(key) + p.size() + entryOverhead
	h := maphash.String(c.seed, key)
	c.sk.add(h)
	if size > c.max {
		c.stats.Rejected++
		return
	}
	if c.bytes+size > c.max {
		f := c.sk.estimate(h)
		for c.bytes+size > c.max {
			v := c.lru.prev
			if f <= c.sk.estimate(v.hash) {
				// The victim is at least as popular: it stays, and moves to the
				// front so that the next newcomer faces another one.
				c.unlink(v)
				c.pushFront(v)
				c.stats.Rejected++
				return
			}
			c.remove(v)
			c.stats.Evictions++
		}
	}
	e := &entry{key: key, plan: p, hash: h, size: size, gen: c.gen}
	c.m[key] = e
	c.pushFront(e)
	c.bytes += size
}

func (c *Cache) remove(e *entry) {
	c.unlink(e)
	delete(c.m, e.key)
	c.bytes -= e.size
}

func (c *Cache) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	s := c.stats
	s.Entries, s.Bytes = len(c.m), c.bytes
	return s
}

// SetVolatility records what the server says of the user function fn
// (written as in Plan.Functions). Entries calling any user function become
// stale (step 1, O(1)) and are re-planned at their next lookup (step 2).
func (c *Cache) SetVolatility(fn string, v Volatility) {
	if old, ok := c.vol[fn]; ok && old == v {
		return
	}
	c.vol[fn] = v
	c.gen++
}

// Unknown appends to dst the user functions of p whose volatility the cache
// does not know (what a caller should ask the server about, then report
// with SetVolatility).
func (c *Cache) Unknown(p *Plan, dst []string) []string {
	for _, fn := range p.Functions {
		if _, ok := c.vol[fn]; !ok {
			dst = append(dst, fn)
		}
	}
	return dst
}

// InvalidateFunctions forgets every known volatility (call it after DDL on
// functions) and marks the entries calling user functions stale, in O(1).
func (c *Cache) InvalidateFunctions() {
	clear(c.vol)
	c.gen++
}

// applyVolatility returns p, or a copy of it whose ReplicaOK reflects the
// known volatility of its user functions.
func (c *Cache) applyVolatility(p *Plan) *Plan {
	if len(p.Functions) == 0 {
		return p
	}
	ok := p.replicaBase
	for _, fn := range p.Functions {
		if v := c.vol[fn]; v != VolatilityImmutable && v != VolatilityStable {
			ok = false
			break
		}
	}
	if ok == p.ReplicaOK {
		return p
	}
	q := *p
	q.ReplicaOK = ok
	return &q
}

// size estimates the bytes a plan holds beyond the Plan struct and its Text
// (which shares the cache key).
func (p *Plan) size() int {
	n := len(p.Stmts)*104 + len(p.Params)*8 + len(p.PreparedViews)*12 + (len(p.Tables)+len(p.Functions))*16
	for _, s := range p.Stmts {
		n += len(s.Name) + s.keysSize()
	}
	for _, s := range p.Tables {
		n += len(s)
	}
	for _, s := range p.Functions {
		n += len(s)
	}
	if p.Err != nil {
		n += 64 + len(p.Err.Error())
	}
	return n
}

// sketch is a count-min sketch of 4 rows of saturating 4-bit counters (held
// in bytes), halved after 10 × width additions so that old popularity fades.
type sketch struct {
	t     []uint8
	mask  uint64
	adds  int
	reset int
}

func (s *sketch) init(width int) {
	w := 1 << bits.Len(uint(width-1))
	s.t = make([]uint8, w)
	s.mask = uint64(w - 1)
	s.reset = 10 * w
}

func (s *sketch) index(h uint64, i int) uint64 {
	h2 := h>>32 | 1
	return (h + uint64(i)*h2) & s.mask
}

func (s *sketch) add(h uint64) {
	for i := 0; i < 4; i++ {
		if j := s.index(h, i); s.t[j] < 15 {
			s.t[j]++
		}
	}
	s.adds++
	if s.adds >= s.reset {
		for i := range s.t {
			s.t[i] >>= 1
		}
		s.adds /= 2
	}
}

func (s *sketch) estimate(h uint64) uint8 {
	m := uint8(255)
	for i := 0; i < 4; i++ {
		m = min(m, s.t[s.index(h, i)])
	}
	return m
}
