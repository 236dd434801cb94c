package ha

import (
	"sync"
	"time"
)

// The hold (issue H, the proxy's side of a failover), after Vitess's
// vtgate/buffer/shard_buffer.go. From the moment a proxy knows a shard's
// primary lost (a server connection to it died, a connection to it failed,
// its health check said down) until a newer term publishes a primary, the
// work for the primary that was not sent yet waits instead of failing, for
// at most the hold's bound; then it fails with an error that says the
// primary is unavailable, and keeps failing at once until a primary is
// back. Hold only decides: the proxy parks and wakes its clients.

// HoldState is where a Hold is.
type HoldState uint8

const (
	// HoldIdle: the primary is believed to serve; work is sent.
	HoldIdle HoldState = iota
	// HoldHolding: the primary was lost less than the bound ago; work
	// waits for a primary of a newer term.
	HoldHolding
	// HoldExpired: the bound passed and no newer primary came; work fails
	// at once until one comes (or the lost primary answers again).
	HoldExpired
)

func (s HoldState) String() string {
	switch s {
	case HoldIdle:
		return "idle"
	case HoldHolding:
		return "holding"
	case HoldExpired:
		return "expired"
	}
	return "HoldState(?)"
}

// HoldDecision is what Admit says of a unit of work for the primary.
type HoldDecision uint8

const (
	Send HoldDecision = iota // to the primary, now
	Wait                     // hold it; the hold's end wakes it (Gen changes)
	Fail                     // answer it with an error: the primary is unavailable
)

func (d HoldDecision) String() string {
	switch d {
	case Send:
		return "send"
	case Wait:
		return "wait"
	case Fail:
		return "fail"
	}
	return "HoldDecision(?)"
}

// DefaultHoldBound is how long work waits for a new primary by default.
const DefaultHoldBound = 10 * time.Second

// Hold is the hold of one shard's primary. It owns no goroutine and reads
// no clock: every method takes the time. Safe for concurrent use; the
// goroutines that touch it in a proxy are:
//   - each event loop, when it routes a unit of work to the primary
//     (Admit), and when a server connection to the primary dies or a
//     connection to it fails (Lost);
//   - the proxy's ticker goroutine, which applies each new topology
//     (Published), feeds the primary's health checks (Lost, Recovered) and
//     ends a hold whose bound passed (Tick); when Gen changes it wakes the
//     held clients on every loop.
type Hold struct {
	bound time.Duration

	mu sync.Mutex // guards the fields below
	st HoldState
	// term is the newest term known (published, or reported lost).
	term uint64
	// lostTerm is the term whose primary was lost (HoldHolding,
	// HoldExpired); a primary published with a newer term ends the hold.
	lostTerm uint64
	// noPrimary: the hold began because the topology of lostTerm names no
	// primary; one published with that term ends it too.
	noPrimary bool
	since     time.Time // when the primary was lost
	gen       uint64    // counts the changes held work must be woken for
}

// NewHold is a hold whose work waits up to bound (DefaultHoldBound if 0;
// negative: it never holds, work for a lost primary fails at once).
func NewHold(bound time.Duration) *Hold {
	if bound == 0 {
		bound = DefaultHoldBound
	}
	return &Hold{bound: bound}
}

// Bound is how long work waits.
func (h *Hold) Bound() time.Duration { return h.bound }

// State is where the hold is, the term it knows, and since when the primary
// is lost (zero when idle).
func (h *Hold) State() (HoldState, uint64, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st, h.term, h.since
}

// Gen changes whenever held work is to be woken: the hold ended, or its
// bound passed.
func (h *Hold) Gen() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gen
}

// Lost reports the primary of term lost at now. A report for an older
// term than the newest known is ignored (its loss is already repaired). It
// says whether a hold began.
func (h *Hold) Lost(now time.Time, term uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if term < h.term {
		return false
	}
	h.term = term
	switch h.st {
	case HoldIdle:
		h.begin(now, term, false)
		return true
	case HoldHolding, HoldExpired:
		// Already lost; a second report changes nothing.
	}
	return false
}

// begin starts a hold. Under mu.
func (h *Hold) begin(now time.Time, term uint64, noPrimary bool) {
	h.st, h.lostTerm, h.noPrimary, h.since = HoldHolding, term, noPrimary, now
	if h.bound < 0 {
		h.st = HoldExpired
		h.gen++
	}
}

// end returns to idle and wakes the held work. Under mu.
func (h *Hold) end() {
	h.st, h.lostTerm, h.noPrimary, h.since = HoldIdle, 0, false, time.Time{}
	h.gen++
}

// Published reports a topology of term, which names a primary or not. A
// primary of a term newer than the lost one ends the hold; a topology
// with no primary begins one. It says whether held work is to be woken.
func (h *Hold) Published(now time.Time, term uint64, hasPrimary bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if term < h.term {
		return false // an older topology: never acted on
	}
	h.term = term
	switch h.st {
	case HoldIdle:
		if !hasPrimary {
			h.begin(now, term, true)
		}
		return false
	case HoldHolding, HoldExpired:
		if hasPrimary && (term > h.lostTerm || h.noPrimary) {
			h.end()
			return true
		}
	}
	return false
}

// Recovered reports that the primary of term, once lost, answers again (a
// health check that began after the loss succeeded): the hold ends, as
// long as no newer term is known. It says whether held work is to be woken.
func (h *Hold) Recovered(now time.Time, term uint64, checkedAt time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.st {
	case HoldIdle:
		return false
	case HoldHolding, HoldExpired:
		if term == h.lostTerm && term == h.term && !h.noPrimary && checkedAt.After(h.since) {
			h.end()
			return true
		}
	}
	return false
}

// Tick ends the waiting of a hold whose bound passed: it says whether held
// work is to be woken (to fail).
func (h *Hold) Tick(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expire(now)
}

// expire moves a hold past its bound to HoldExpired. Under mu.
func (h *Hold) expire(now time.Time) bool {
	if h.st == HoldHolding && !now.Before(h.since.Add(h.bound)) {
		h.st = HoldExpired
		h.gen++
		return true
	}
	return false
}

// Admit decides a unit of work for the primary at now, and says the hold's
// generation (a held unit is woken when it changes) and until when it may
// wait.
func (h *Hold) Admit(now time.Time) (d HoldDecision, gen uint64, deadline time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(now)
	switch h.st {
	case HoldIdle:
		return Send, h.gen, time.Time{}
	case HoldHolding:
		return Wait, h.gen, h.since.Add(h.bound)
	case HoldExpired:
		return Fail, h.gen, time.Time{}
	}
	panic("BUG: a hold in an unknown state")
}
