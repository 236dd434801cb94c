package fairness

import (
	"fmt"
	"time"
)

// ID names a user of an Allocator (the order Add returned them in, from 0).
type ID int32

// None is the ID of nobody.
const None ID = -1

// Drop is Take's answer when the budget shrank below the servers open: close
// the server, and open none in its place.
const Drop ID = -2

// Limits shape one user's share.
type Limits struct {
	// Weight scales the user's cut of a contended budget (0 means 1).
	Weight int
	// Min is the share the user is guaranteed while its demand reaches it
	// (0: none). Minimums are met before anything is shared by weight.
	Min int
	// Max is the most servers the user may hold (0: only the budget bounds it).
	Max int
}

// Validate reports limits that make no sense.
func (l Limits) Validate() error {
	switch {
	case l.Weight < 0 || l.Min < 0 || l.Max < 0:
		return fmt.Errorf("weight, min and max must not be negative (got %d, %d, %d)", l.Weight, l.Min, l.Max)
	case l.Weight > MaxWeight:
		return fmt.Errorf("weight %d is above %d", l.Weight, MaxWeight)
	case l.Max > 0 && l.Min > l.Max:
		return fmt.Errorf("min %d is above max %d", l.Min, l.Max)
	}
	return nil
}

// MaxWeight bounds Limits.Weight (weights are ratios; 1000:1 is plenty).
const MaxWeight = 1000

// Load is what a user's owner reports: its clients connected (Clients), in
// a transaction (Busy), and waiting that no login in flight will serve
// (Waiting). WaitingSince is when the oldest of those began to wait
// (meaningless when Waiting is 0).
//
// Demand is Busy+Waiting, smoothed over the window, but never above Clients:
// a client between transactions may be back in a moment, a client gone will
// not, so the servers of a user whose clients left are free at once.
type Load struct {
	Clients, Busy, Waiting int
	WaitingSince           time.Duration
}

// DefaultWindow is how long a peak of demand is remembered (between one and
// two windows): long enough that a user's clients pausing between
// transactions do not give its servers away, short enough that the servers
// of a user that went quiet are shared out within seconds.
const DefaultWindow = time.Second

// DefaultStarveAfter is how long a user's oldest waiter may wait before the
// user wins ties for the odd slot (see shares): with more users than slots,
// the slots then take turns instead of one user waiting for ever.
const DefaultStarveAfter = time.Second

type user struct {
	lim  Limits
	held int // servers open or being opened
	load Load

	// peak is the highest demand reported in the window that began at
	// winStart; prevPeak that of the window before it.
	peak, prevPeak int
	winStart       time.Duration

	share   int
	deficit int // DRR credit
	starved bool
}

func (u *user) weight() int {
	if u.lim.Weight <= 0 {
		return 1
	}
	return u.lim.Weight
}

// demand is the smoothed demand: the higher of the last two windows' peaks,
// at most the clients connected now.
func (u *user) demand() int { return min(max(u.peak, u.prevPeak), u.load.Clients) }

// limit is what the user may hold at most, budget aside.
func (u *user) limit() int {
	if u.lim.Max > 0 {
		return u.lim.Max
	}
	return int(^uint(0) >> 1)
}

// wants says the user has waiting clients that another server would serve.
func (u *user) wants() bool { return u.load.Waiting > 0 && u.held < u.limit() }

// Allocator shares a budget of server connections between users. It is a
// pure state machine: not safe for concurrent use, no clock of its own.
type Allocator struct {
	budget      int // 0: unlimited
	open        int // sum of held
	window      time.Duration
	starveAfter time.Duration

	users []user
	free  []ID // removed users' IDs, for Add to reuse
	stale bool // shares must be recomputed

	cur      int  // DRR cursor
	credited bool // users[cur] already got its quantum this visit

	heap []int // scratch for shares
}

// New returns an Allocator for a budget of servers (0: unlimited), with the
// default window and starvation delay.
func New(budget int) *Allocator {
	return &Allocator{budget: max(budget, 0), window: DefaultWindow, starveAfter: DefaultStarveAfter}
}

// SetWindow changes how long a peak of demand is remembered.
func (a *Allocator) SetWindow(d time.Duration) { a.window, a.stale = max(d, 1), true }

// SetBudget changes the budget (0: unlimited). Servers above a smaller
// budget are not closed: the budget is honoured again as they go.
func (a *Allocator) SetBudget(n int) { a.budget, a.stale = max(n, 0), true }

// Budget is the budget (0: unlimited).
func (a *Allocator) Budget() int { return a.budget }

// Open is the number of servers held by all users.
func (a *Allocator) Open() int { return a.open }

// Add registers a user and returns its ID (a removed user's, if any).
func (a *Allocator) Add(l Limits) ID {
	a.stale = true
	if n := len(a.free); n > 0 {
		id := a.free[n-1]
		a.free = a.free[:n-1]
		a.users[id] = user{lim: l}
		return id
	}
	a.users = append(a.users, user{lim: l})
	return ID(len(a.users) - 1)
}

// Remove forgets a user that holds no server; a later Add may reuse its
// ID. Until then it is a user with no demand, which nothing is given to.
func (a *Allocator) Remove(id ID) {
	if a.users[id].held != 0 {
		panic("BUG: fairness: Remove of a user that holds servers")
	}
	a.users[id] = user{}
	a.free = append(a.free, id)
	a.stale = true
}

// SetLimits changes a user's limits (a reload). Servers above a smaller Max
// are not closed here: Take answers Drop for them as they are released.
func (a *Allocator) SetLimits(id ID, l Limits) { a.users[id].lim, a.stale = l, true }

// Limits are a user's limits.
func (a *Allocator) Limits(id ID) Limits { return a.users[id].lim }

// Report records a user's load at now. Its demand (Busy+Waiting) raises the
// user's share at once; a drop shows after the window.
func (a *Allocator) Report(id ID, l Load, now time.Duration) {
	u := &a.users[id]
	old, d := u.demand(), l.Busy+l.Waiting
	u.load = l
	if now-u.winStart >= a.window {
		if now-u.winStart < 2*a.window {
			u.prevPeak = u.peak
		} else {
			u.prevPeak = 0
		}
		u.peak, u.winStart = d, now
	} else if d > u.peak {
		u.peak = d
	}
	starved := l.Waiting > 0 && now-l.WaitingSince >= a.starveAfter
	a.stale = a.stale || u.demand() != old || starved != u.starved
	u.starved = starved
}

// Held is the number of servers id holds.
func (a *Allocator) Held(id ID) int { return a.users[id].held }

// Demand is id's smoothed demand.
func (a *Allocator) Demand(id ID) int { return a.users[id].demand() }

// Share is id's fair share of the budget.
func (a *Allocator) Share(id ID) int {
	a.refresh()
	return a.users[id].share
}

// Grow asks whether id may open one more server now. It may while the budget
// has room and id is under its Max; the server then counts as id's.
func (a *Allocator) Grow(id ID) bool {
	u := &a.users[id]
	if (a.budget > 0 && a.open >= a.budget) || u.held >= u.limit() {
		return false
	}
	a.grant(u)
	return true
}

func (a *Allocator) grant(u *user) {
	u.held++
	a.open++
	if u.load.Waiting > 0 {
		u.load.Waiting-- // the login in flight will serve one of them
	}
	a.stale = true
}

// Closed records that a server of id closed. Its slot is free: call Next.
func (a *Allocator) Closed(id ID) {
	u := &a.users[id]
	if u.held <= 0 {
		panic("BUG: fairness: Closed for a user that holds no server")
	}
	u.held--
	a.open--
	a.stale = true
}

// Next says who should open a server in a free slot of the budget: a user
// short of its share first, else any user with waiting clients, in
// round-robin order weighted by deficit. The server then counts as that
// user's. None when nobody waits or the budget has no room.
func (a *Allocator) Next() ID {
	if a.budget > 0 && a.open >= a.budget {
		return None
	}
	a.refresh()
	id := a.pick(func(u *user) bool { return u.wants() && u.held < u.share })
	if id == None {
		id = a.pick((*user).wants)
	}
	if id != None {
		a.grant(&a.users[id])
	}
	return id
}

// Take asks whether a free server of from (just released, or idle) should
// go to another user: yes when from holds more than its share and some user
// with waiting clients holds less than its own. The slot then counts as the
// receiver's, who must open a server in it once from's is closed; None means
// from keeps its server. Drop means close it: the budget shrank below the
// servers open, or from's Max did.
func (a *Allocator) Take(from ID) ID {
	a.refresh()
	f := &a.users[from]
	if f.held > f.limit() || (f.held > f.share && a.budget > 0 && a.open > a.budget) {
		f.held--
		a.open--
		a.stale = true
		return Drop
	}
	if f.held <= f.share {
		return None
	}
	to := a.pick(func(u *user) bool { return u.wants() && u.held < u.share })
	if to == None {
		return None
	}
	f.held--
	a.open--
	a.grant(&a.users[to])
	return to
}

// Contended says some user with waiting clients holds less than its share,
// or the budget shrank below the servers open: servers of users above
// their share should be offered to Take when free.
func (a *Allocator) Contended() bool {
	a.refresh()
	if a.budget > 0 && a.open > a.budget {
		return true
	}
	for i := range a.users {
		if u := &a.users[i]; u.wants() && u.held < u.share {
			return true
		}
	}
	return false
}

// Over says id holds more than its share.
func (a *Allocator) Over(id ID) bool {
	a.refresh()
	return a.users[id].held > a.users[id].share
}

// pick is deficit round-robin over the users for which ok holds: each visit
// credits a user its weight, and a slot costs the highest weight among them,
// so a user of weight 3 is picked three times for each pick of a user of
// weight 1. A user that does not qualify when visited loses its credit.
func (a *Allocator) pick(ok func(*user) bool) ID {
	cost := 0
	for i := range a.users {
		if u := &a.users[i]; ok(u) {
			cost = max(cost, u.weight())
		}
	}
	if cost == 0 {
		return None
	}
	n := len(a.users)
	// Every qualifying user of the highest weight gets a slot at its first
	// visit, so two rounds are enough.
	for step := 0; step <= 2*n; step++ {
		u := &a.users[a.cur]
		if ok(u) {
			if !a.credited {
				u.deficit += u.weight()
				a.credited = true
			}
			if u.deficit >= cost {
				u.deficit -= cost
				return ID(a.cur)
			}
		} else {
			u.deficit = 0
		}
		a.cur = (a.cur + 1) % n
		a.credited = false
	}
	panic("BUG: fairness: deficit round-robin found nobody")
}

// refresh recomputes the shares if anything they depend on changed.
func (a *Allocator) refresh() {
	if !a.stale {
		return
	}
	a.stale = false
	a.computeShares()
}

// computeShares is weighted max-min fairness in whole servers: each user's
// cap is its smoothed demand (bounded by Max); minimums are met first, then
// the rest of the budget goes one server at a time to the user whose share
// after it, divided by its weight, is smallest. Ties go to a starved user
// (its oldest waiter waited longer than starveAfter), then to the user that
// already holds more servers (no login is spent on a tie), then to the
// lower ID.
func (a *Allocator) computeShares() {
	for i := range a.users {
		a.users[i].share = 0
	}
	left := a.budget
	if left == 0 {
		for i := range a.users {
			u := &a.users[i]
			u.share = min(u.demand(), u.limit())
		}
		return
	}
	left = a.fill(left, func(u *user) int { return min(u.lim.Min, u.demand(), u.limit()) })
	a.fill(left, func(u *user) int { return min(u.demand(), u.limit()) })
}

// fill raises shares towards capOf, one server at a time in max-min order,
// until left is spent; it returns what is left.
func (a *Allocator) fill(left int, capOf func(*user) int) int {
	h := a.heap[:0]
	for i := range a.users {
		if a.users[i].share < capOf(&a.users[i]) {
			h = append(h, i)
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		a.down(h, i)
	}
	for left > 0 && len(h) > 0 {
		u := &a.users[h[0]]
		u.share++
		left--
		if u.share >= capOf(u) {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		a.down(h, 0)
	}
	a.heap = h[:0]
	return left
}

// before orders users for the next server of a fill (see computeShares).
func (a *Allocator) before(i, j int) bool {
	u, v := &a.users[i], &a.users[j]
	// (u.share+1)/u.w < (v.share+1)/v.w, without division.
	l, r := (u.share+1)*v.weight(), (v.share+1)*u.weight()
	if l != r {
		return l < r
	}
	if u.starved != v.starved {
		return u.starved
	}
	if u.held != v.held {
		return u.held > v.held
	}
	return i < j
}

func (a *Allocator) down(h []int, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && a.before(h[r], h[l]) {
			m = r
		}
		if !a.before(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
