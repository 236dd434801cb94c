package poolcore

// Statements is the set of prepared statements belay created on one server
// connection, by their server-side names. It is bounded: Add beyond Max
// returns the least recently used name, which the caller deallocates on the
// server (a Close message) before anything else is sent (Evict).
//
// Belongs to its server's event loop: not safe for concurrent use.
type Statements struct {
	used map[string]uint64 // name → tick of its last use
	tick uint64
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
// the next Evict.
func (st *Statements) Add(name string) {
	if st.used == nil {
		st.used = make(map[string]uint64)
	}
	st.tick++
	st.used[name] = st.tick
}

// Evict drops and returns the least recently used name while the set is at
// or over its bound (ok false when there is room). The caller closes it on
// the server before anything else is sent there.
func (st *Statements) Evict() (name string, ok bool) {
	limit := st.Max
	if limit <= 0 {
		limit = DefaultMaxStatements
	}
	if len(st.used) < limit {
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

// Reset forgets every statement (the server ran DISCARD ALL or DEALLOCATE ALL).
func (st *Statements) Reset() { clear(st.used) }

// Len is the number of statements prepared.
func (st *Statements) Len() int { return len(st.used) }
