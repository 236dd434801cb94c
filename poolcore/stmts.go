package poolcore

// Statements is the set of prepared statements belay created on one server
// connection, by their server-side names. It is bounded: Add beyond Max
// returns the least recently used name, which the caller deallocates on the
// server (a Close message) before anything else is sent (Evict).
//
// A name can also be unsure: belay sent a Parse or Close for it and the
// client left before the server answered, so whether the server has it is
// not known (Forget). Has says no; the next Add says to close it first,
// which Postgres accepts whether or not the statement exists.
//
// Belongs to its server's event loop: not safe for concurrent use.
type Statements struct {
	used   map[string]uint64 // name → tick of its last use
	unsure map[string]struct{}
	tick   uint64
	// Max bounds the set (DefaultMaxStatements when 0).
	Max int
}

// DefaultMaxStatements bounds the prepared statements kept per server
// connection unless Options.MaxPreparedStatements says otherwise (PgBouncer's
// max_prepared_statements default is 200).
const DefaultMaxStatements = 200

// Has says whether name is prepared on the server, and counts it as used.
func (st *Statements) Has(name string) bool {
	if _, ok := st.used[name]; !ok {
		return false
	}
	st.tick++
	st.used[name] = st.tick
	return true
}

// Add records name as prepared. It never evicts: a caller that can send the
// server a Close first makes room with Evict; one that learns of a statement
// after the fact (a client's SQL PREPARE) may take the set past Max until
// the next Evict. closeFirst: name was unsure (Forget), and a caller about
// to prepare it sends a Close for it first.
func (st *Statements) Add(name string) (closeFirst bool) {
	if st.used == nil {
		st.used = make(map[string]uint64)
	}
	st.tick++
	st.used[name] = st.tick
	if _, ok := st.unsure[name]; ok {
		delete(st.unsure, name)
		return true
	}
	return false
}

// Forget makes name unsure: what was sent to create or close it may or may
// not have happened. tooMany: the unsure names passed the set's bound, and
// the caller has the connection reset (DISCARD ALL, then Reset) rather than
// remember more.
func (st *Statements) Forget(name string) (tooMany bool) {
	delete(st.used, name)
	if st.unsure == nil {
		st.unsure = make(map[string]struct{})
	}
	st.unsure[name] = struct{}{}
	return len(st.unsure) > st.limit()
}

func (st *Statements) limit() int {
	if st.Max <= 0 {
		return DefaultMaxStatements
	}
	return st.Max
}

// Evict drops and returns the least recently used name while the set is at
// or over its bound (ok false when there is room). The caller closes it on
// the server before anything else is sent there.
func (st *Statements) Evict() (name string, ok bool) {
	if len(st.used) < st.limit() {
		return "", false
	}
	oldest := ^uint64(0)
	for n, t := range st.used { // O(limit), only when a full set takes a new name
		if t < oldest {
			oldest, name = t, n
		}
	}
	delete(st.used, name)
	return name, true
}

// Remove forgets name (it was closed, or its Parse failed).
func (st *Statements) Remove(name string) { delete(st.used, name) }

// Reset forgets every statement, the unsure ones too (the server ran DISCARD
// ALL or DEALLOCATE ALL).
func (st *Statements) Reset() {
	clear(st.used)
	clear(st.unsure)
}

// Len is the number of statements prepared.
func (st *Statements) Len() int { return len(st.used) }
