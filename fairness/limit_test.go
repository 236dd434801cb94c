package fairness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// simNode is a Postgres node as the Limiter sees it, a closed queueing
// network with a capacity knee: Cores run each query's CPU seconds,
// shared by the queries on the CPU (processor sharing), and every query
// also pays a fixed Latency off the CPU (the round trips between proxy
// and server, overlapped between queries). Up to the knee,
// Cores*(CPU+Latency)/CPU queries at once, throughput grows with them;
// beyond it only the time in the queue does. Clients closed-loop clients
// keep it busy: each holds a server while in a transaction, and between
// its queries there waits Think (a client's round trip inside a
// transaction: the server is held, nothing runs). IdleHeld servers are
// held by clients idle in a transaction. Noise is the relative spread of
// each tick's throughput.
type simNode struct {
	Cores          float64
	CPU, Latency   time.Duration
	Think          time.Duration
	Clients        int
	IdleHeld       int
	Noise          float64
	rng            *rand.Rand
	queries        float64
	exec           time.Duration
	now            time.Duration
	lastX, lastRun float64
}

// cpuTime is a query's time on the CPU with m queries there.
func (n *simNode) cpuTime(m float64) float64 { return n.CPU.Seconds() * max(1, m/n.Cores) }

// step runs the node for dt under budget and returns the sample at its end.
func (n *simNode) step(dt time.Duration, budget int) Sample {
	held := min(float64(budget), float64(n.Clients+n.IdleHeld))
	active := max(0, held-float64(n.IdleHeld)) // held by clients at work
	// A server at work runs a query (Latency, then its CPU time) and then
	// waits Think; find the fixed point of the queries on the CPU.
	f, th := n.Latency.Seconds(), n.Think.Seconds()
	onCPU := active
	for range 200 {
		c := n.cpuTime(onCPU)
		onCPU = 0.5*onCPU + 0.5*active*c/(f+c+th)
	}
	c := n.cpuTime(onCPU)
	running := active * (f + c) / (f + c + th)
	x := 0.0
	if active > 0 {
		x = active / (f + c + th)
	}
	if n.Noise > 0 {
		x *= 1 + n.Noise*n.rng.NormFloat64()
	}
	x = max(x, 0)
	n.queries += x * dt.Seconds()
	n.exec += time.Duration(running * float64(dt))
	n.now += dt
	n.lastX, n.lastRun = x, running
	waiting := max(0, n.Clients+n.IdleHeld-budget)
	return Sample{Queries: uint64(n.queries), Exec: n.exec, Held: int(math.Round(held)), Waiting: waiting}
}

// best is the most throughput any budget gets from n, and the smallest
// budget that gets it within 1%.
func (n *simNode) best() (float64, int) {
	top, at := 0.0, 0
	for b := 1; b <= 200; b++ {
		m := *n
		m.Noise = 0
		m.step(time.Millisecond, b)
		if m.lastX > top*1.01 {
			top, at = m.lastX, b
		}
	}
	return top, at
}

// run drives l with n for d in ticks of 100 ms and returns the limits
// seen, one per tick.
func run(l *Limiter, n *simNode, d time.Duration) []int {
	var seen []int
	for end := n.now + d; n.now < end; {
		s := n.step(100*time.Millisecond, l.Budget())
		l.Observe(n.now, s)
		if l.Limit() < l.Config().Min || l.Limit() > l.Config().Max || l.Budget() > l.Config().Max || l.Budget() < l.Limit() && l.Budget() < l.Config().Max {
			panic(fmt.Sprintf("limit %d budget %d out of [%d, %d]", l.Limit(), l.Budget(), l.Config().Min, l.Config().Max))
		}
		seen = append(seen, l.Limit())
	}
	return seen
}

func newSim(seed uint64) *simNode {
	return &simNode{Cores: 2, CPU: 100 * time.Microsecond, Latency: 60 * time.Microsecond, Clients: 100,
		Noise: 0.05, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// meanX is n's mean throughput under l over d.
func meanX(l *Limiter, n *simNode, d time.Duration) float64 {
	q0, t0 := n.queries, n.now
	run(l, n, d)
	return (n.queries - q0) / (n.now - t0).Seconds()
}

func TestLimiterSettlesNearTheKnee(t *testing.T) {
	for seed := range uint64(20) {
		n := newSim(seed)
		l := NewLimiter(LimiterConfig{Max: 100})
		run(l, n, 20*time.Second)
		top, knee := n.best()
		x := meanX(l, n, 30*time.Second)
		if x < 0.9*top {
			t.Errorf("seed %d: %.0f q/s at limit %d, the best is %.0f (budget %d); %s", seed, x, l.Limit(), top, knee, l.Reason())
		}
		// A queue inside Postgres costs every query latency: the limit
		// keeps it within about twice the capacity.
		if lim := l.Limit(); lim > 3*knee+2 {
			t.Errorf("seed %d: limit %d for a knee at %d: %s", seed, lim, knee, l.Reason())
		}
	}
}

func TestLimiterSteadyUnderSteadyLoad(t *testing.T) {
	for seed := range uint64(20) {
		n := newSim(seed)
		l := NewLimiter(LimiterConfig{Max: 100})
		run(l, n, 20*time.Second)
		c0, p0 := l.Changes(), l.Probes()
		seen := run(l, n, 120*time.Second)
		// At most a few moves of one step; probes every minute and checks
		// every 15 s, each a move there and one back.
		if ch := l.Changes() - c0; ch > 4 {
			t.Errorf("seed %d: %d changes of the limit in 120 s of steady load (%v)", seed, ch, distinct(seen))
		}
		if pr := l.Probes() - p0; pr > 2*(120/15+120/60+1) {
			t.Errorf("seed %d: %d moves for probes in 120 s of steady load (%v)", seed, pr, distinct(seen))
		}
	}
}

func distinct(v []int) map[int]int {
	m := map[int]int{}
	for _, x := range v {
		m[x]++
	}
	return m
}

func TestLimiterFollowsCapacity(t *testing.T) {
	for seed := range uint64(10) {
		n := newSim(seed)
		n.Cores = 4
		l := NewLimiter(LimiterConfig{Max: 100})
		run(l, n, 30*time.Second)
		before := l.Limit()
		// The node's CPU quota is halved.
		n.Cores = 2
		_, knee := n.best()
		seen := run(l, n, 5*time.Second)
		if after := seen[len(seen)-1]; after >= before || after > 2*knee+3 {
			t.Errorf("seed %d: limit %d before the quota was halved, %d 5 s after (knee now %d): %s", seed, before, after, knee, l.Reason())
		}
		// Doubled again: it grows back, to the node's best throughput
		// (not necessarily to the same limit: anywhere in the band is
		// at rest).
		n.Cores = 4
		low := seen[len(seen)-1]
		seen = run(l, n, 30*time.Second)
		top, knee := n.best()
		if last := seen[len(seen)-1]; last <= low || last < knee {
			t.Errorf("seed %d: limit %d 30 s after the quota came back, %d before it, %d while halved (knee %d): %s", seed, last, before, low, knee, l.Reason())
		}
		if x := meanX(l, n, 10*time.Second); x < 0.95*top {
			t.Errorf("seed %d: %.0f q/s after the quota came back at limit %d, the best is %.0f: %s", seed, x, l.Limit(), top, l.Reason())
		}
	}
}

func TestLimiterHeavyStorm(t *testing.T) {
	n := newSim(1)
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 20*time.Second)
	settled := l.Limit()
	top0, _ := n.best()
	x0 := meanX(l, n, 10*time.Second)
	// Every query now costs 20 ms of CPU: the limit falls fast, and the
	// heavy queries still run as fast as the node can.
	n.CPU = 20 * time.Millisecond
	n.Latency = 0
	seen := run(l, n, 3*time.Second)
	if seen[len(seen)-1] >= settled {
		t.Fatalf("limit %d 3 s into the storm, %d before: %s", seen[len(seen)-1], settled, l.Reason())
	}
	top, _ := n.best()
	if x := meanX(l, n, 20*time.Second); x < 0.85*top {
		t.Errorf("storm: %.0f q/s at limit %d, the best is %.0f: %s", x, l.Limit(), top, l.Reason())
	}
	// The storm passes: the limit comes back.
	n.CPU, n.Latency = 100*time.Microsecond, 60*time.Microsecond
	run(l, n, 30*time.Second)
	if x := meanX(l, n, 10*time.Second); x < 0.9*top0 || l.Limit() < settled-2 {
		t.Errorf("after the storm: %.0f q/s at limit %d (before it: %.0f at %d): %s", x, l.Limit(), x0, settled, l.Reason())
	}
}

func TestLimiterWorkGetsLighter(t *testing.T) {
	n := newSim(3)
	n.CPU = 400 * time.Microsecond
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 20*time.Second)
	n.CPU = 50 * time.Microsecond // the baseline is four times too slow now
	run(l, n, 20*time.Second)
	top, knee := n.best()
	if x := meanX(l, n, 10*time.Second); x < 0.9*top || l.Limit() > 3*knee+2 {
		t.Errorf("%.0f q/s at limit %d; best %.0f at %d: %s", x, l.Limit(), top, knee, l.Reason())
	}
}

// A client holding a server in a transaction between its queries (TPC-B's
// round trips) or idle in one does not run a query: the budget has room
// for it on top of the limit.
func TestLimiterBudgetCountsHeldServersThatRunNothing(t *testing.T) {
	n := newSim(4)
	n.Think = 200 * time.Microsecond
	n.IdleHeld = 6
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 30*time.Second)
	top, _ := n.best()
	if x := meanX(l, n, 10*time.Second); x < 0.9*top {
		t.Errorf("%.0f q/s at limit %d budget %d, the best %.0f: %s", x, l.Limit(), l.Budget(), top, l.Reason())
	}
	if l.Budget() < l.Limit()+n.IdleHeld {
		t.Errorf("budget %d for limit %d with %d servers idle in a transaction", l.Budget(), l.Limit(), n.IdleHeld)
	}
}

// With fewer clients than the limit nothing waits: the limit does not grow,
// and nothing probes (a light load is its own baseline).
func TestLimiterLightLoad(t *testing.T) {
	n := newSim(5)
	n.Clients = 2
	l := NewLimiter(LimiterConfig{Max: 20})
	run(l, n, 60*time.Second)
	if l.Changes() != 0 || l.Limit() != 20 {
		t.Errorf("limit %d after %d changes with 2 clients: %s", l.Limit(), l.Changes(), l.Reason())
	}
	if l.Baseline() == 0 {
		t.Errorf("no baseline from a light load: %s", l.Reason())
	}
}

// An idle node (no queries) learns nothing and changes nothing.
func TestLimiterIdle(t *testing.T) {
	l := NewLimiter(LimiterConfig{Max: 10})
	for i := range 600 {
		l.Observe(time.Duration(i)*100*time.Millisecond, Sample{Held: 3})
	}
	if l.Changes() != 0 || l.Limit() != 10 || l.Budget() != 10 {
		t.Errorf("idle: limit %d, budget %d, %d changes", l.Limit(), l.Budget(), l.Changes())
	}
}

func TestLimiterSetMax(t *testing.T) {
	n := newSim(6)
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 20*time.Second)
	settled := l.Limit()
	l.SetMax(3)
	if l.Limit() > 3 || l.Budget() > 3 {
		t.Fatalf("limit %d budget %d under a ceiling of 3", l.Limit(), l.Budget())
	}
	run(l, n, 10*time.Second)
	if l.Limit() > 3 {
		t.Fatalf("limit %d under a ceiling of 3", l.Limit())
	}
	l.SetMax(100)
	l.SetMin(5)
	if l.Limit() < 5 {
		t.Fatalf("limit %d under a floor of 5", l.Limit())
	}
	run(l, n, 30*time.Second)
	if l.Limit() < settled-2 {
		t.Errorf("limit %d after the ceiling was raised again, %d before", l.Limit(), settled)
	}
}

// Random nodes: the limit stays in [Min, Max] (run checks every tick), and
// the throughput is near the best a fixed budget gets.
func TestLimiterRandomNodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 40 {
		n := newSim(uint64(100 + i))
		n.Cores = float64(1 + rng.IntN(32))
		n.CPU = time.Duration(20+rng.IntN(2000)) * time.Microsecond
		n.Latency = time.Duration(rng.IntN(300)) * time.Microsecond
		n.Clients = 1 + rng.IntN(300)
		if rng.IntN(3) == 0 {
			n.Think = time.Duration(rng.IntN(500)) * time.Microsecond
		}
		maxB := 1 + rng.IntN(200)
		l := NewLimiter(LimiterConfig{Max: maxB})
		run(l, n, 40*time.Second)
		top := 0.0
		for b := 1; b <= maxB; b++ {
			m := *n
			m.Noise = 0
			m.step(time.Millisecond, b)
			top = max(top, m.lastX)
		}
		if x := meanX(l, n, 20*time.Second); x < 0.85*top {
			t.Errorf("node %d (%.0f cores, %s CPU, %s latency, %s think, %d clients, max %d): %.0f q/s at limit %d, the best %.0f: %s",
				i, n.Cores, n.CPU, n.Latency, n.Think, n.Clients, maxB, x, l.Limit(), top, l.Reason())
		}
	}
}

// Queries that turn slow without using more CPU (they wait on locks, on
// I/O): a long queue on an old baseline is measured again before the
// limit is cut, and the node keeps its throughput.
func TestLimiterWorkTurnsSlowNotHeavy(t *testing.T) {
	n := newSim(8)
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 20*time.Second)
	n.Latency = 10 * time.Millisecond
	run(l, n, 20*time.Second)
	top, knee := n.best()
	if x := meanX(l, n, 10*time.Second); x < 0.85*top {
		t.Errorf("%.0f q/s at limit %d; best %.0f at %d: %s", x, l.Limit(), top, knee, l.Reason())
	}
}

// Servers logging in (a start, a failover onto the node: work arriving at
// once on servers whose caches are cold) are no measure of the node: the
// limit does not move while they do, and measures once they are done.
func TestLimiterColdServers(t *testing.T) {
	n := newSim(9)
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 20*time.Second) // settled, with a baseline
	settled := l.Limit()
	l.SetMax(200)
	logins := uint64(0)
	for range 30 { // 3 s of a burst: slow queries, servers logging in
		n.CPU = 2 * time.Millisecond
		s := n.step(100*time.Millisecond, l.Budget())
		logins += 10
		s.Logins = logins
		l.Observe(n.now, s)
		if l.Limit() != settled {
			t.Fatalf("the limit moved from %d to %d while servers logged in: %s", settled, l.Limit(), l.Reason())
		}
	}
	// The logins are over; the node is slower for good: the limit follows.
	for range 50 {
		s := n.step(100*time.Millisecond, l.Budget())
		s.Logins = logins
		l.Observe(n.now, s)
	}
	if l.Limit() >= settled {
		t.Errorf("limit %d 5 s after the logins, %d before, on a node 20 times slower: %s", l.Limit(), settled, l.Reason())
	}
}

// A start: clients arrive over two seconds and the throughput rises with
// them. The first probe waits for the load to stop rising, and a tick of
// the probe's window slowed by something else (logins, a client's
// arrival) does not make its baseline.
func TestLimiterProbesAfterTheRamp(t *testing.T) {
	n := newSim(11)
	n.Cores, n.Noise = 16, 0 // the knee at 25.6 queries at once
	l := NewLimiter(LimiterConfig{Max: 100})
	const rampEnd = 2 * time.Second // 2 clients more each tick, up to 40
	var probedAt time.Duration
	probing := 0 // ticks of the probe so far
	for tick := 0; tick < 100 && probedAt == 0; tick++ {
		n.Clients = min(40, 2*(tick+1))
		cpu := n.CPU
		if l.Probing() {
			if probing++; probing == 5 { // past the half window the pools settle in
				n.CPU = 10 * cpu // one tick of the probe ten times slower
			}
		}
		s := n.step(100*time.Millisecond, l.Budget())
		n.CPU = cpu
		l.Observe(n.now, s)
		if !l.Probing() && l.Baseline() > 0 {
			probedAt = n.now
		}
	}
	if probedAt == 0 || probing < 5 {
		t.Fatalf("no probe of 5 ticks in 10 s (%d): %s", probing, l.Reason())
	}
	if probedAt < rampEnd {
		t.Errorf("probed at %v, while the clients still arrived (until %v)", probedAt, rampEnd)
	}
	// At 2 queries at once each takes Latency+CPU: nothing waits.
	if want := n.Latency + n.CPU; l.Baseline() > want*11/10 {
		t.Errorf("baseline %v after a probe with one slow tick, %v without: %s", l.Baseline(), want, l.Reason())
	}
}

// A limit settled low on CPU-bound work, whose half is the floor (no check
// of the queue can run at half of it), still finds out within CheckEvery,
// not ProbeEvery, that work turned slow without using the CPU: a probe
// stands in for the check.
func TestLimiterLowLimitWorkTurnsSlow(t *testing.T) {
	n := newSim(9)
	n.CPU, n.Latency, n.Clients = 9*time.Millisecond, 200*time.Microsecond, 40
	l := NewLimiter(LimiterConfig{Max: 30})
	run(l, n, 30*time.Second)
	if lim := l.Limit(); lim/2 > l.Config().Min {
		t.Fatalf("CPU-bound work settled the limit at %d, not at one whose half is the floor (%d): %s", lim, l.Config().Min, l.Reason())
	}
	t.Logf("CPU-bound: limit %d: %s", l.Limit(), l.Reason())
	n.CPU, n.Latency = 100*time.Microsecond, 20*time.Millisecond
	seen := run(l, n, l.Config().CheckEvery+10*time.Second)
	if last := seen[len(seen)-1]; last < 20 {
		t.Errorf("work that only waits: the limit is %d after %s (want 20 or more): %s", last, l.Config().CheckEvery+10*time.Second, l.Reason())
	}
}

// A check that finds each query slower at half the limit learns nothing
// of the queue: fewer queries at once do not wait longer, so the node
// changed during the check's window (its machine busy with other work).
// The baseline stands; taking that time as the baseline would inflate the
// capacity and hide the queue.
func TestLimiterCheckSlowerKeepsBaseline(t *testing.T) {
	n := newSim(10)
	l := NewLimiter(LimiterConfig{Max: 100})
	run(l, n, 10*time.Second)
	for deadline := n.now + 3*l.Config().CheckEvery; !l.Probing() || !strings.HasPrefix(l.Reason(), "check:"); {
		if n.now > deadline {
			t.Fatalf("no check within %s: limit %d: %s", 3*l.Config().CheckEvery, l.Limit(), l.Reason())
		}
		run(l, n, 100*time.Millisecond)
	}
	base := l.Baseline()
	n.CPU *= 4 // the node's machine busy with something else, for the check's window
	for l.Probing() {
		run(l, n, 100*time.Millisecond)
	}
	n.CPU /= 4
	if got := l.Baseline(); got != base {
		t.Errorf("the baseline went from %s to %s after a check that ran slower at half the limit: %s", base, got, l.Reason())
	}
	if !strings.Contains(l.Reason(), "slower at half the limit") {
		t.Errorf("reason %q", l.Reason())
	}
}

// A baseline measured too high hides the queue: the limit sits in the
// band of a capacity that is not there, and neither a check (the queue is
// real at half the limit either way) nor growth shows it. The first
// probe, at the start among cold servers on a busy machine, is the one
// that reads it so (TestAdaptiveLimitUnderQuota in CI: 13.9 ms per query
// where 3.8 is right, the limit 6 on one core), so it is measured again
// CheckEvery later; startRecheckWindows later when the start probed in a
// hurry (startProbe).
func TestLimiterStartBaselineTooHigh(t *testing.T) {
	for _, hurried := range []bool{false, true} {
		n := newSim(11)
		n.CPU, n.Latency, n.Clients, n.Cores = 4*time.Millisecond, 200*time.Microsecond, 40, 1
		l := NewLimiter(LimiterConfig{Min: 1, Max: 30})
		run(l, n, 10*time.Second)
		right := l.Baseline()
		// Now as if the first probe had read 2.8 times the time: the limit
		// settles at 6 on the capacity that makes (2.7 on one core), its
		// queue within the band, so it neither grows nor shrinks.
		l.base, l.baseAt, l.startAt, l.hurried = right*28/10, n.now, n.now, hurried
		l.set(6, "as the start left it", 0)
		d := l.startRecheck() + 5*time.Second
		run(l, n, d)
		if got := l.Baseline(); got > 2*right {
			t.Errorf("hurried %v: the start's baseline is still %s (right: %s) after %s: limit %d: %s", hurried, got, right, d, l.Limit(), l.Reason())
		}
		t.Logf("hurried %v: limit %d, baseline %s after %s: %s", hurried, l.Limit(), l.Baseline(), d, l.Reason())
	}
}

// A start in front of a loaded node (a proxy restarted, clients queued for
// the ceiling at once): the first probe begins as soon as the ceiling's
// servers are all held and clients wait, not windows later, and the limit
// then climbs from the floor by doubling until a queue shows, never going
// back to the ceiling. Over the first ten seconds (a benchmark's run,
// with the start's baseline probed again after startRecheckWindows) the
// node does nearly its best.
func TestLimiterStartsLowWhenClientsWait(t *testing.T) {
	for seed := range uint64(10) {
		n := newSim(200 + seed)
		l := NewLimiter(LimiterConfig{Max: 20})
		top, knee := n.best()
		probedAt, most := time.Duration(0), 0
		q0 := n.queries
		for n.now < 10*time.Second {
			s := n.step(100*time.Millisecond, l.Budget())
			l.Observe(n.now, s)
			if probedAt == 0 && l.Probing() {
				probedAt = n.now
			}
			if probedAt != 0 && !l.Probing() {
				most = max(most, l.Limit())
			}
		}
		x := (n.queries - q0) / n.now.Seconds()
		if probedAt == 0 || probedAt > 300*time.Millisecond {
			t.Errorf("seed %d: the start's probe began at %v, want within the first ticks: %s", seed, probedAt, l.Reason())
		}
		if most > 3*knee || most >= l.Config().Max {
			t.Errorf("seed %d: the limit went up to %d after the start's probe (knee %d, ceiling %d)", seed, most, knee, l.Config().Max)
		}
		if x < 0.9*top {
			t.Errorf("seed %d: %.0f queries/s over the first 10 s, the best fixed budget does %.0f (knee %d); limit %d: %s", seed, x, top, knee, l.Limit(), l.Reason())
		}
	}
}

// A limit started at a prior below the ceiling starts there, within [Min,
// Max], and is not probed in a hurry: clients waiting for it are measured
// as any other load, and it still finds the knee.
func TestLimiterStartsAtItsPrior(t *testing.T) {
	for _, c := range []struct{ start, min, max, want int }{{5, 0, 20, 5}, {1, 3, 20, 3}, {50, 0, 20, 20}} {
		if l := NewLimiter(LimiterConfig{Start: c.start, Min: c.min, Max: c.max}); l.Limit() != c.want || l.Budget() != c.want {
			t.Errorf("start %d in [%d, %d]: limit %d, budget %d; want %d", c.start, c.min, c.max, l.Limit(), l.Budget(), c.want)
		}
	}
	n := newSim(300)
	l := NewLimiter(LimiterConfig{Start: 5, Max: 20})
	s := n.step(100*time.Millisecond, l.Budget())
	l.Observe(n.now, s)
	s = n.step(100*time.Millisecond, l.Budget())
	l.Observe(n.now, s)
	if l.Probing() || l.Limit() != 5 {
		t.Errorf("limit %d, probing %v with %d clients waiting at the prior: %s", l.Limit(), l.Probing(), s.Waiting, l.Reason())
	}
	run(l, n, 20*time.Second)
	top, knee := n.best()
	if x := meanX(l, n, 20*time.Second); x < 0.9*top {
		t.Errorf("%.0f queries/s from a start at 5, the best fixed budget does %.0f (knee %d); limit %d: %s", x, top, knee, l.Limit(), l.Reason())
	}
}
