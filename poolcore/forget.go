package poolcore

import "time"

// forgetAfter is how long a pool that never logged in stays after
// Manager.Pool last returned it, though it is unused: far longer than the
// moment between a client getting its pool and joining it (one callback on
// its loop), so that a pool is never forgotten under a client about to use
// it.
const forgetAfter = 2 * time.Second

// forgetUnused forgets the pools that never logged in a server and have
// nothing left: no client, no server open or logging in, no cancel in
// flight. A mistyped database (or a user Postgres refuses) leaves such a
// pool once its client got the login error; forgotten, it no longer shows
// in SHOW POOLS, DATABASES or FAIRNESS, nor in the metrics, and its place in
// the fairness allocator goes to the next pool. A pool that logged in once
// is kept, with its counters, as PgBouncer keeps its pools. From Tick.
func (m *Manager) forgetUnused() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, p := range m.pools {
		if p.loggedIn.Load() || now-p.touched.Load() < int64(forgetAfter) || !p.unused() {
			continue
		}
		delete(m.pools, k)
		p.n.forget(p)
		if m.opts.OnForgetPool != nil {
			m.opts.OnForgetPool(p)
		}
		m.log.Debug("forgot a pool that never logged in", "pool", k)
	}
}

// unused says p has no client, no server (open or logging in) and no cancel
// in flight. Safe for concurrent use (atomics).
func (p *Pool) unused() bool {
	if p.open.Load() != 0 || p.cancels.Load() != 0 {
		return false
	}
	for i := range p.perLoop {
		lp := &p.perLoop[i]
		if lp.clients.Load() != 0 || lp.nWait.Load() != 0 || lp.dialing.Load() != 0 || lp.held.Load() != 0 {
			return false
		}
	}
	return true
}
