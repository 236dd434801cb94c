package fairness

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

const ms = time.Millisecond

// report sets a user's load as busy = min(clients, held), the rest waiting.
func report(a *Allocator, id ID, clients int, now time.Duration) {
	busy := min(clients, a.Held(id))
	a.Report(id, Load{Clients: clients, Busy: busy, Waiting: clients - busy, WaitingSince: now}, now)
}

func TestQuietTakesItsShareFromNoisy(t *testing.T) {
	a := New(10)
	noisy, quiet := a.Add(Limits{}), a.Add(Limits{})
	report(a, noisy, 100, 0)
	for a.Grow(noisy) {
	}
	if a.Held(noisy) != 10 || a.Open() != 10 {
		t.Fatalf("noisy holds %d, open %d; want the whole budget", a.Held(noisy), a.Open())
	}
	if a.Contended() {
		t.Fatal("contended with one user")
	}
	if a.Take(noisy) != None {
		t.Fatal("a lone user gave a server away")
	}
	report(a, quiet, 4, ms)
	if a.Grow(quiet) {
		t.Fatal("grew past the budget")
	}
	if !a.Contended() || a.Share(quiet) != 4 || a.Share(noisy) != 6 {
		t.Fatalf("contended %v, shares quiet %d noisy %d; want true, 4, 6", a.Contended(), a.Share(quiet), a.Share(noisy))
	}
	for i := range 4 {
		if to := a.Take(noisy); to != quiet {
			t.Fatalf("release %d of noisy went to %d, want quiet", i, to)
		}
	}
	if to := a.Take(noisy); to != None {
		t.Fatal("noisy gave a fifth server away")
	}
	if a.Contended() || a.Held(noisy) != 6 || a.Held(quiet) != 4 || a.Open() != 10 {
		t.Fatalf("noisy %d quiet %d open %d", a.Held(noisy), a.Held(quiet), a.Open())
	}
}

func TestShares(t *testing.T) {
	type u struct {
		lim    Limits
		demand int
	}
	cases := []struct {
		name   string
		budget int
		users  []u
		want   []int
	}{
		{"equal", 10, []u{{Limits{}, 100}, {Limits{}, 100}}, []int{5, 5}},
		{"small user gets its demand", 10, []u{{Limits{}, 100}, {Limits{}, 3}}, []int{7, 3}},
		{"weights", 12, []u{{Limits{Weight: 3}, 100}, {Limits{Weight: 1}, 100}}, []int{9, 3}},
		{"max", 10, []u{{Limits{Max: 2}, 100}, {Limits{}, 100}}, []int{2, 8}},
		{"min first", 10, []u{{Limits{Min: 7}, 100}, {Limits{Weight: 5}, 100}}, []int{7, 3}},
		{"min only as far as demand", 10, []u{{Limits{Min: 7}, 2}, {Limits{}, 100}}, []int{2, 8}},
		{"three users, odd slot to the lower ID", 10, []u{{Limits{}, 100}, {Limits{}, 100}, {Limits{}, 100}}, []int{4, 3, 3}},
		{"under budget: everyone its demand", 10, []u{{Limits{}, 3}, {Limits{}, 4}}, []int{3, 4}},
		{"no demand, no share", 10, []u{{Limits{Min: 3}, 0}, {Limits{}, 100}}, []int{0, 10}},
		{"unlimited budget", 0, []u{{Limits{}, 30}, {Limits{Max: 5}, 30}}, []int{30, 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := New(c.budget)
			for _, x := range c.users {
				id := a.Add(x.lim)
				report(a, id, x.demand, 0)
			}
			for i, w := range c.want {
				if got := a.Share(ID(i)); got != w {
					t.Errorf("user %d: share %d, want %d", i, got, w)
				}
			}
			if want := referenceShares(a); fmt.Sprint(want) != fmt.Sprint(c.want) {
				t.Errorf("the reference says %v", want)
			}
		})
	}
}

func TestTiesStayWithTheHolder(t *testing.T) {
	a := New(10)
	x, y, z := a.Add(Limits{}), a.Add(Limits{}), a.Add(Limits{})
	report(a, z, 100, 0)
	for a.Grow(z) {
	}
	report(a, x, 100, 0)
	report(a, y, 100, 0)
	// z holds everything: the odd slot of 4/3/3 is z's, so only 6 move.
	if a.Share(z) != 4 {
		t.Fatalf("z's share %d, want 4 (it holds the servers)", a.Share(z))
	}
	moved := 0
	for a.Take(z) != None {
		moved++
	}
	if moved != 6 || a.Held(x) != 3 || a.Held(y) != 3 {
		t.Fatalf("moved %d, x %d, y %d", moved, a.Held(x), a.Held(y))
	}
}

func TestDemandIsSmoothedOverTheWindow(t *testing.T) {
	a := New(10)
	a.SetWindow(100 * ms)
	noisy, quiet := a.Add(Limits{}), a.Add(Limits{})
	report(a, noisy, 100, 0)
	report(a, quiet, 4, 0)
	if a.Share(quiet) != 4 {
		t.Fatal("quiet's share", a.Share(quiet))
	}
	// quiet's 4 clients pause between transactions: its demand flickers.
	pause := func(working int, now time.Duration) { a.Report(quiet, Load{Clients: 4, Busy: working}, now) }
	pause(1, 50*ms)
	pause(0, 120*ms)
	if a.Share(quiet) != 4 {
		t.Fatalf("a flicker of demand cut quiet's share to %d", a.Share(quiet))
	}
	// Quiet for two whole windows: the share follows.
	pause(0, 250*ms)
	pause(1, 360*ms)
	if a.Share(quiet) != 1 || a.Share(noisy) != 9 {
		t.Fatalf("after two quiet windows: quiet %d noisy %d, want 1, 9", a.Share(quiet), a.Share(noisy))
	}
	// Clients that leave take their demand with them at once.
	report(a, quiet, 4, 362*ms)
	report(a, quiet, 0, 364*ms)
	if a.Share(quiet) != 0 {
		t.Fatalf("quiet's clients left, its share is still %d", a.Share(quiet))
	}
	// A rise shows at once.
	report(a, quiet, 6, 370*ms)
	if a.Share(quiet) != 5 {
		t.Fatalf("a rise to 6: share %d, want 5", a.Share(quiet))
	}
}

func TestNextIsDeficitRoundRobin(t *testing.T) {
	a := New(8)
	a.SetWindow(ms)
	heavy, light := a.Add(Limits{Weight: 3}), a.Add(Limits{Weight: 1})
	other := a.Add(Limits{})
	report(a, other, 100, 0)
	for a.Grow(other) {
	}
	// other's clients went away; heavy and light wait, and other's servers
	// close one by one: the freed slots go 3:1.
	now := 10 * ms
	var got []ID
	for range 8 {
		now += 10 * ms
		a.Report(other, Load{Clients: 100}, now) // connected, not working
		report(a, heavy, 100, now)
		report(a, light, 100, now)
		a.Closed(other)
		got = append(got, a.Next())
	}
	n := map[ID]int{}
	for _, id := range got[:4] {
		n[id]++
	}
	if n[heavy] != 3 || n[light] != 1 {
		t.Fatalf("slots went %v; want heavy 3, light 1 in every four", got)
	}
	if a.Held(heavy) != 6 || a.Held(light) != 2 {
		t.Fatalf("heavy %d light %d, want their shares 6 and 2", a.Held(heavy), a.Held(light))
	}
	if a.Next() != None {
		t.Fatal("Next with a full budget")
	}
}

func TestStarvedUserWinsTies(t *testing.T) {
	// Eleven users of one client each and ten slots: the one left out waits
	// starveAfter, then wins the tie and takes a slot at a release.
	a := New(10)
	var ids []ID
	for range 11 {
		ids = append(ids, a.Add(Limits{}))
	}
	for _, id := range ids[:10] {
		report(a, id, 1, 0)
		if !a.Grow(id) {
			t.Fatal("no room")
		}
	}
	last := ids[10]
	report(a, last, 1, 0)
	if a.Grow(last) || a.Share(last) != 0 {
		t.Fatalf("the eleventh: share %d", a.Share(last))
	}
	a.Report(last, Load{Clients: 1, Waiting: 1, WaitingSince: 0}, DefaultStarveAfter)
	if a.Share(last) != 1 {
		t.Fatal("a starved user did not win the tie")
	}
	taken := false
	for _, id := range ids[:10] {
		if a.Take(id) == last {
			taken = true
			break
		}
	}
	if !taken {
		t.Fatal("no release went to the starved user")
	}
}

func TestBudgetLimitsAndValidate(t *testing.T) {
	a := New(0)
	u := a.Add(Limits{Max: 3})
	report(a, u, 10, 0)
	n := 0
	for a.Grow(u) {
		n++
	}
	if n != 3 {
		t.Fatalf("unlimited budget, max 3: grew %d", n)
	}
	a.SetBudget(2)
	a.Closed(u)
	if a.Next() != None {
		t.Fatal("Next above a smaller budget")
	}
	for _, l := range []Limits{{Weight: -1}, {Min: 3, Max: 2}, {Weight: MaxWeight + 1}} {
		if l.Validate() == nil {
			t.Errorf("%+v passed Validate", l)
		}
	}
}

// referenceShares is the simple allocator the real one is held to: give
// minimums, then one server at a time to the user whose share after it,
// per unit of weight, is lowest (ties as computeShares breaks them), by
// scanning every user each time.
func referenceShares(a *Allocator) []int {
	s := make([]int, len(a.users))
	left := a.budget
	if left == 0 {
		for i := range a.users {
			s[i] = min(a.users[i].demand(), a.users[i].limit())
		}
		return s
	}
	for phase := range 2 {
		for ; left > 0; left-- {
			best := -1
			for i := range a.users {
				u := &a.users[i]
				c := min(u.demand(), u.limit())
				if phase == 0 {
					c = min(c, u.lim.Min)
				}
				if s[i] >= c {
					continue
				}
				if best < 0 {
					best = i
					continue
				}
				b := &a.users[best]
				l, r := (s[i]+1)*b.weight(), (s[best]+1)*u.weight()
				if l < r || (l == r && (u.starved && !b.starved ||
					u.starved == b.starved && u.held > b.held)) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			s[best]++
		}
	}
	return s
}

// TestPropertyAgainstReference drives the allocator with random arrivals,
// departures, releases, closes and budget changes, as poolcore would, and
// checks after every step that the books balance, and after the load settles
// that every user holds exactly the reference allocator's share and that the
// outcome is max-min fair (no server could move from one user to another and
// raise the lower of the two).
func TestPropertyAgainstReference(t *testing.T) {
	for seed := int64(1); seed <= 1000; seed++ {
		r := rand.New(rand.NewSource(seed))
		budget := 1 + r.Intn(20)
		a := New(budget)
		a.SetWindow(100 * ms)
		n := 1 + r.Intn(6)
		clients := make([]int, n)
		for range n {
			l := Limits{Weight: 1 + r.Intn(4)}
			if r.Intn(3) == 0 {
				l.Min = r.Intn(4)
			}
			if r.Intn(3) == 0 {
				l.Max = l.Min + 1 + r.Intn(8)
			}
			a.Add(l)
		}
		now := time.Duration(0)
		ceiling := budget // open may only exceed the budget after it shrank, and then only shrink
		check := func(step string) {
			t.Helper()
			sum := 0
			for i := range n {
				u := &a.users[i]
				sum += u.held
				if u.held < 0 || (u.lim.Max > 0 && u.held > u.lim.Max) {
					t.Fatalf("seed %d %s: user %d holds %d (max %d)", seed, step, i, u.held, u.lim.Max)
				}
			}
			if sum != a.open || a.open > ceiling {
				t.Fatalf("seed %d %s: held %d, open %d, budget %d", seed, step, sum, a.open, a.budget)
			}
			ceiling = max(a.budget, min(ceiling, a.open))
		}
		// serve is what poolcore does for a user: waiting clients ask to
		// grow; each server is offered to Take when released.
		serve := func(i int) {
			id := ID(i)
			report(a, id, clients[i], now)
			if clients[i] > a.Held(id) {
				a.Grow(id)
			}
			if a.Held(id) > 0 {
				a.Take(id)
			}
		}
		for step := range 400 {
			now += time.Duration(r.Intn(20)) * ms
			i := r.Intn(n)
			switch k := r.Intn(10); {
			case k < 3: // clients arrive or leave
				clients[i] = max(0, clients[i]+r.Intn(9)-4)
				report(a, ID(i), clients[i], now)
			case k < 8:
				serve(i)
			case k < 9: // a server breaks
				if a.Held(ID(i)) > 0 {
					a.Closed(ID(i))
					for a.Next() != None {
					}
				}
			default:
				if r.Intn(10) == 0 { // an operator changes the budget
					budget = 1 + r.Intn(20)
					a.SetBudget(budget)
					ceiling = max(budget, a.open)
					for a.Next() != None {
					}
				}
			}
			check(fmt.Sprint("step ", step))
		}
		// Settle: the same load for a few windows, every user served in
		// turn until nothing moves.
		for round := 0; round < 40; round++ {
			now += 60 * ms
			for i := range n {
				serve(i)
			}
		}
		check("settled")
		a.refresh()
		ref := referenceShares(a)
		for i := range n {
			u := &a.users[i]
			if u.share != ref[i] {
				t.Fatalf("seed %d: user %d share %d, reference %d (all: %v)", seed, i, u.share, ref[i], ref)
			}
			c := min(clients[i], u.limit())
			if u.held < min(c, u.share) {
				t.Fatalf("seed %d: user %d holds %d below its share %d with %d clients", seed, i, u.held, u.share, clients[i])
			}
		}
		// Max-min: a user holding fewer than it wants (the budget is full,
		// or it would have grown) is at least as well off, per weight, as
		// any user above its minimum would be after giving it one server.
		for i := range n {
			u := &a.users[i]
			if u.held >= min(clients[i], u.limit()) {
				continue
			}
			if a.budget > 0 && a.open < a.budget {
				t.Fatalf("seed %d: user %d wants more, the budget has room", seed, i)
			}
			for j := range n {
				v := &a.users[j]
				if j == i || v.held <= min(v.lim.Min, clients[j]) {
					continue
				}
				if v.held*u.weight() > (u.held+1)*v.weight() {
					t.Fatalf("seed %d: user %d (%d held, weight %d, wants %d) below user %d (%d held, weight %d)",
						seed, i, u.held, u.weight(), clients[i], j, v.held, v.weight())
				}
			}
		}
	}
}

// BenchmarkTake is the decision at a release while the budget is contended
// (poolcore makes it under the node's lock, after reporting the loads), on a
// budget of 100 shared by 20 users: "keeps" when the releasing user is at its
// share (nothing changed, the shares are not recomputed), "moves" when a
// server changes hands each time (the shares are recomputed at the next
// decision; a move costs a login anyway).
func BenchmarkTake(b *testing.B) {
	setup := func() (*Allocator, []ID) {
		a := New(100)
		ids := make([]ID, 20)
		for i := range ids {
			ids[i] = a.Add(Limits{})
			report(a, ids[i], 50, 0)
			for range 5 {
				a.Grow(ids[i])
			}
		}
		return a, ids
	}
	b.Run("keeps", func(b *testing.B) {
		a, ids := setup()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			id := ids[i%len(ids)]
			report(a, id, 50, time.Duration(i))
			if a.Take(id) != None {
				b.Fatal("a user at its share gave a server away")
			}
		}
	})
	b.Run("moves", func(b *testing.B) {
		a, ids := setup()
		report(a, ids[0], 1, 0) // ids[0] is now above its share of 1
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			// ids[0] gives a server to another user, and gets it back.
			to := a.Take(ids[0])
			if to == None {
				b.Fatal("no move")
			}
			a.Closed(to)
			report(a, to, 50, 0) // its clients wait again
			a.users[ids[0]].held++
			a.open++
		}
	})
}

// TestSetLimitsShrinksMax: a reload that lowers a user's Max drops its
// servers above it as they are released, and its share follows.
func TestSetLimitsShrinksMax(t *testing.T) {
	a := New(10)
	u, v := a.Add(Limits{}), a.Add(Limits{})
	report(a, u, 8, 0)
	for a.Grow(u) {
	}
	if a.Held(u) != 10 {
		t.Fatalf("u holds %d, want 10", a.Held(u))
	}
	a.SetLimits(u, Limits{Weight: 1, Max: 6})
	if got := a.Limits(u); got.Max != 6 {
		t.Fatalf("limits %+v", got)
	}
	for i := range 4 {
		if to := a.Take(u); to != Drop {
			t.Fatalf("release %d above the new max: %d, want Drop", i, to)
		}
	}
	if to := a.Take(u); to != None || a.Held(u) != 6 || a.Open() != 6 {
		t.Fatalf("at the new max: Take %d, held %d, open %d", to, a.Held(u), a.Open())
	}
	report(a, v, 4, ms)
	if !a.Grow(v) {
		t.Fatal("v cannot use the room the shrink left")
	}
}

// TestRemoveReusesTheID: a removed user takes no share and its ID goes to
// the next user added, with that user's limits and nothing of the old one.
func TestRemoveReusesTheID(t *testing.T) {
	a := New(10)
	gone, stays := a.Add(Limits{Weight: 5, Min: 3}), a.Add(Limits{})
	report(a, gone, 2, 0)
	report(a, gone, 0, 0)
	a.Remove(gone)
	report(a, stays, 20, ms)
	if a.Share(stays) != 10 {
		t.Fatalf("share %d after the other user was removed, want the whole budget", a.Share(stays))
	}
	if id := a.Add(Limits{Weight: 1}); id != gone || a.Limits(id) != (Limits{Weight: 1}) || a.Demand(id) != 0 || a.Held(id) != 0 {
		t.Fatalf("Add after Remove: id %d (want %d), limits %+v, demand %d, held %d", id, gone, a.Limits(id), a.Demand(id), a.Held(id))
	}
	if id := a.Add(Limits{}); id != 2 {
		t.Fatalf("the next Add got %d, want a new ID 2", id)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Remove of a user holding a server did not panic")
		}
	}()
	for a.Grow(stays) {
	}
	a.Remove(stays)
}
