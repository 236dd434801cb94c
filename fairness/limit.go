package fairness

import (
	"fmt"
	"math"
	"time"
)

// The defaults of LimiterConfig.
const (
	// DefaultLimitMin is the least limit: two queries may always run.
	DefaultLimitMin = 2
	// DefaultLimitWindow is the least span of one measurement.
	DefaultLimitWindow = 500 * time.Millisecond
	// DefaultLimitSamples is the least queries one measurement counts: fewer
	// make its mean service time too noisy to act on (a window is stretched
	// up to 8 times to gather them).
	DefaultLimitSamples = 40
	// DefaultProbeEvery is how old the baseline may grow while the node is
	// loaded before a probe measures it again.
	DefaultProbeEvery = 60 * time.Second
	// DefaultCheckEvery is how often, while clients wait for the limit, a
	// check halves it for one window to see whether the queue is real.
	DefaultCheckEvery = 15 * time.Second
)

// loginWeight is the queries one login counts for when a window's logins
// are weighed against its work (see decide): a login forks a backend and
// reads the catalog, and its first queries fill cold caches, a few
// milliseconds of the node's CPU, a hundred short queries' worth.
const loginWeight = 100

// tickSamples is the least queries of a tick whose mean time counts
// toward a probe's baseline (Measure.fastest).
const tickSamples = 20

// startRecheckWindows is the windows after which the baseline of a start probed
// in a hurry (startProbe: among cold servers and clients still
// connecting, which read it 1.8 to 3.6 times too high in front of
// pgbench's 100 clients) is probed again: soon, since a baseline too high
// hides the queue and nothing else shows it, but after the clients'
// arrival (decide does not probe while the load rises).
const startRecheckWindows = 6

// rising is how much more throughput than the window before makes a
// window part of a rising load, not to be probed in.
const rising = 1.25

// MaxQuerySample is the most of one query's time a measurement counts: a
// query that ran for a minute ran through every window of that minute, and
// lumping it into the one it ended in would read as a queue of a hundred.
// The owner clamps each query's time to it before summing (Sample.Exec).
const MaxQuerySample = DefaultLimitWindow

// LimiterConfig shapes a Limiter.
type LimiterConfig struct {
	// Min is the least limit (0: DefaultLimitMin); Max the ceiling, the
	// node's hard budget (max_db_connections). Max must be at least 1.
	Min, Max int
	// Start is the limit before anything is measured (0: Max), within
	// [Min, Max]: a prior, such as twice the cores of a node on the
	// owner's own machine plus one. A limit started below the ceiling is
	// measured as any other; only one started at the ceiling is probed at
	// once when clients wait for it (startProbe).
	Start int
	// Window is the least span of a measurement (0: DefaultLimitWindow).
	Window time.Duration
	// Samples is the least queries in a measurement (0: DefaultLimitSamples).
	Samples int
	// ProbeEvery is the most age of the baseline under load (0:
	// DefaultProbeEvery).
	ProbeEvery time.Duration
	// CheckEvery is the time between checks of the queue (0:
	// DefaultCheckEvery).
	CheckEvery time.Duration
}

// Sample is what the owner reads of its node at each tick. The counters are
// cumulative (the Limiter takes differences); Held and Waiting are levels.
type Sample struct {
	// Queries is the queries ended on the node so far.
	Queries uint64
	// Exec is their time so far, each clamped to MaxQuerySample: the time
	// integral of the queries executing on the node.
	Exec time.Duration
	// Held is the servers held by clients now (in a transaction, or pinned).
	Held int
	// Waiting is the clients waiting for a server now.
	Waiting int
	// Logins counts the servers that began to log in to the node so far.
	// A new server's first queries are slow (its caches are cold) and a
	// burst of them (a start, a failover onto the node) is no measure of
	// the node: see cold.
	Logins uint64
}

// Measure is one window's reading of the node.
type Measure struct {
	Span       time.Duration // how long the window was
	Throughput float64       // queries per second
	Running    float64       // queries executing, on average (Little: Exec/Span)
	Held       float64       // servers held, on average
	Service    time.Duration // mean query time (Running/Throughput)
	// Capacity is the queries the node runs at once without a queue: the
	// throughput times the baseline service time. Queue is what runs
	// beyond it, waiting inside Postgres (Running - Capacity, not below 0).
	Capacity, Queue float64
	Waited          bool   // some client waited for a server in the window
	Logins          uint64 // servers that began to log in during the window
	// fastest is the least mean query time of the window's ticks that
	// counted tickSamples queries or more (0: none).
	fastest time.Duration
}

// Limiter is an adaptive limit on the queries one Postgres node runs at
// once, after TCP Vegas and Netflix's concurrency-limits (see the package
// documentation, "The adaptive limit"). It is a pure state machine: no
// clock of its own, no I/O, not safe for concurrent use.
type Limiter struct {
	cfg    LimiterConfig
	limit  int
	budget int // limit + idle, at most Max
	idle   int // the servers held that run nothing, on average (see setBudget)
	reason string

	started  bool
	prevAt   time.Duration
	prev     Sample        // the last sample, for differences
	winStart time.Duration // the window began here; before settle nothing counts
	settle   time.Duration
	queries  uint64
	exec     time.Duration
	heldInt  float64 // Held integrated over the window, in server-seconds
	waited   bool
	// logins counts the logins of the window; burst says the window
	// before this one was a burst of them (see decide).
	logins  uint64
	burst   bool
	tickMin time.Duration // Measure.fastest, so far

	base   time.Duration // baseline service time (0: none yet)
	baseAt time.Duration
	// startAt is when the first probe measured the baseline (0: not
	// yet). Taken at the start, among cold servers and arriving clients,
	// it can read the baseline several times too high, and nothing else
	// shows a baseline too high: while baseAt is still startAt, it is
	// probed again sooner than ProbeEvery (startBase, startRecheck).
	startAt time.Duration
	// starting says the probe under way is the start's (startProbe), and
	// then that the limit grows by slow start: doubled each window while
	// the limit binds and the queue stays under the band's bottom.
	starting bool
	hurried  bool // the first probe was the start's (startProbe)
	probing  bool
	preProbe int
	// checking is a probe at half the limit (a check), begun when the
	// queries took checkRef each; checkedAt is when the last one ended.
	checking  bool
	checkRef  time.Duration
	checkedAt time.Duration
	// grownFrom is the throughput before the last growth (0: none to
	// check); shrunkFrom the throughput and the limit before the last
	// shrink.
	grownFrom  float64
	shrunkFrom struct {
		x     float64
		limit int
	}

	downVotes, upVotes int
	last               Measure
	changes, probes    uint64
}

// NewLimiter returns a Limiter at cfg.Max, the limit before anything is
// measured.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.Min <= 0 {
		cfg.Min = DefaultLimitMin
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultLimitWindow
	}
	if cfg.Samples <= 0 {
		cfg.Samples = DefaultLimitSamples
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = DefaultProbeEvery
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	cfg.Max = max(cfg.Max, 1)
	cfg.Min = min(cfg.Min, cfg.Max)
	n, reason := cfg.Max, "start: the ceiling, nothing measured yet"
	if cfg.Start > 0 && cfg.Start < cfg.Max {
		n = max(cfg.Start, cfg.Min)
		reason = fmt.Sprintf("start: %d, the prior, nothing measured yet", n)
	}
	return &Limiter{cfg: cfg, limit: n, budget: n, reason: reason}
}

// Limit is the most queries the node should run at once.
func (l *Limiter) Limit() int { return l.limit }

// Budget is the server connections the node may hold: the limit plus the
// servers held on average by clients that run nothing on them (idle in a
// transaction, pinned between transactions), at most the ceiling. It is
// what the Allocator shares.
func (l *Limiter) Budget() int { return l.budget }

// Probing says the limit is lowered for a probe or a check now: not the
// limit's course.
func (l *Limiter) Probing() bool { return l.probing }

// Reason says why the limit is what it is.
func (l *Limiter) Reason() string { return l.reason }

// Last is the last window's measurement.
func (l *Limiter) Last() Measure { return l.last }

// Baseline is the service time measured without a queue (0: none yet).
func (l *Limiter) Baseline() time.Duration { return l.base }

// Changes counts the changes of the limit, probes and checks aside.
func (l *Limiter) Changes() uint64 { return l.changes }

// Probes counts the moves of the limit for probes and checks (into one,
// and back).
func (l *Limiter) Probes() uint64 { return l.probes }

// Config is the Limiter's configuration, defaults filled in.
func (l *Limiter) Config() LimiterConfig { return l.cfg }

// SetMax changes the ceiling (a reload of max_db_connections): the limit
// is cut to it, or, when it was at the old ceiling, follows it up.
func (l *Limiter) SetMax(n int) {
	n = max(n, 1)
	if n == l.cfg.Max {
		return
	}
	atCeiling := l.limit >= l.cfg.Max
	l.cfg.Max = n
	l.cfg.Min = min(l.cfg.Min, n)
	switch {
	case l.limit > n:
		l.set(n, "ceiling: lowered", 0)
	case atCeiling:
		l.set(n, "ceiling: raised", 0)
	}
	l.preProbe = min(l.preProbe, n)
}

// SetMin changes the floor (a reload of adaptive_limit_min; 0:
// DefaultLimitMin), at most the ceiling; a limit below it is raised to it.
func (l *Limiter) SetMin(n int) {
	if n <= 0 {
		n = DefaultLimitMin
	}
	n = min(n, l.cfg.Max)
	if n == l.cfg.Min {
		return
	}
	l.cfg.Min = n
	if l.limit < n && !l.probing {
		l.set(n, "floor: raised", float64(l.idle))
	}
}

// Observe takes the node's sample at now and reports whether Budget
// changed.
func (l *Limiter) Observe(now time.Duration, s Sample) bool {
	if !l.started || s.Queries < l.prev.Queries || s.Exec < l.prev.Exec {
		// The first sample, or counters that went back (a node's pools
		// forgotten): start over from here.
		l.started, l.prev, l.prevAt = true, s, now
		l.restart(now)
		return false
	}
	dq, de := s.Queries-l.prev.Queries, s.Exec-l.prev.Exec
	dt := now - l.prevAt
	if s.Logins >= l.prev.Logins {
		l.logins += s.Logins - l.prev.Logins
	}
	l.prev, l.prevAt = s, now
	if dq == 0 && s.Held == 0 && s.Waiting == 0 && l.queries == 0 {
		// Nothing ran, nothing is held or waits: an idle node is no
		// measure, and a window begins when work does (not half idle,
		// which would read a start's first moments as a light load).
		l.restart(now)
		return false
	}
	if now <= l.settle {
		l.restart(now) // the pools still adjust to the last change
		return false
	}
	l.queries += dq
	l.exec += de
	if dq >= tickSamples {
		if ts := de / time.Duration(dq); l.tickMin == 0 || ts < l.tickMin {
			l.tickMin = ts
		}
	}
	l.heldInt += float64(s.Held) * dt.Seconds()
	l.waited = l.waited || s.Waiting > 0
	if l.startProbe(s) {
		return true
	}
	span := now - l.winStart
	if span < l.cfg.Window || (l.queries < uint64(l.cfg.Samples) && span < 8*l.cfg.Window) {
		return false
	}
	if l.queries == 0 {
		// Nothing ran for 8 windows. If clients waited meanwhile, the
		// servers held run nothing (idle in a transaction, pinned) and
		// keep them out: the budget makes room for them on top of the
		// limit, and a probe is given up.
		before := l.budget
		if l.waited {
			idle := l.heldInt / span.Seconds()
			if l.probing {
				l.probing, l.checking = false, false
				l.measure(l.preProbe, "probe: given up, clients waited and nothing ran", idle)
			}
			l.setBudget(idle)
		}
		l.restart(now)
		return l.budget != before
	}
	secs := span.Seconds()
	m := Measure{Span: span, Throughput: float64(l.queries) / secs, Running: l.exec.Seconds() / secs,
		Held: l.heldInt / secs, Waited: l.waited, Logins: l.logins}
	m.Service = time.Duration(float64(l.exec) / float64(l.queries))
	m.fastest = l.tickMin
	l.restart(now)
	before := l.budget
	l.decide(now, &m)
	l.last = m
	return l.budget != before
}

// startProbe begins the first probe at once, mid-window, when nothing is
// measured yet and clients wait for a limit that binds (every server of
// it held): a start, a proxy restarted in front of a busy node. Measuring
// the node at the ceiling first costs the most there is to lose: at a
// start every window is a burst of logins or a rising load (decide waits
// them out), and a CPU-bound node run at a ceiling of ten times its
// cores did three fifths of its best in `belay bench`'s sweeps, for the
// two to three seconds before the first probe. After this probe the limit
// climbs from Min by slow start, as TCP's does: doubled at each window
// whose queue stays under the band and whose limit binds, until one
// queues more, where the rules of decide take over. A load that never
// fills the ceiling (a few clients, short queries) is measured as before:
// the limit stays at the ceiling until a window shows a queue. A limit
// started at a prior below the ceiling (LimiterConfig.Start) is not
// probed in a hurry: it is a guess of the right place already.
func (l *Limiter) startProbe(s Sample) bool {
	if l.base != 0 || l.probing || l.limit < l.cfg.Max || l.limit <= l.cfg.Min || s.Waiting == 0 || s.Held < l.limit {
		return false
	}
	before := l.budget
	l.probe(fmt.Sprintf("probe: %d clients wait at the start, nothing measured yet", s.Waiting), l.cfg.Min, float64(l.idle))
	l.starting, l.hurried = true, true
	return l.budget != before
}

// restart begins a new window at now.
func (l *Limiter) restart(now time.Duration) {
	l.winStart, l.queries, l.exec, l.heldInt, l.waited, l.logins, l.tickMin = now, 0, 0, 0, false, 0, 0
}

// low says m ran at most Min queries at once because no more were asked
// for (no client waited: not servers still logging in, whose first
// queries fill their caches): its service time is a baseline, free of a
// queue the limit could shorten.
func (l *Limiter) low(m *Measure) bool { return m.Running <= float64(l.cfg.Min)+0.25 && !m.Waited }

// startBase says the baseline is still the first probe's (startAt).
func (l *Limiter) startBase() bool { return l.startAt != 0 && l.baseAt == l.startAt }

// startRecheck is how old the start's baseline grows before it is probed
// again: startRecheckWindows windows after a probe made in a hurry (startProbe),
// CheckEvery after one made once the load stopped rising.
func (l *Limiter) startRecheck() time.Duration {
	if l.hurried {
		return startRecheckWindows * l.cfg.Window
	}
	return l.cfg.CheckEvery
}

// decide moves the limit after the measurement m.
func (l *Limiter) decide(now time.Duration, m *Measure) {
	idle := max(0, m.Held-m.Running) // servers held that run nothing
	switch {
	case l.probing && l.checking:
		l.probing, l.checking, l.checkedAt = false, false, now
		switch {
		case m.Service*4 > l.checkRef*5:
			// Half the queries at once took longer each, by more than a
			// fifth: fewer queries do not wait longer on each other or on
			// anything else, so the node changed during the window (its
			// machine busy with other work, a quota cut). The check
			// tells nothing; the baseline stands. (Taking this time as
			// the baseline, as a check within a fifth does, doubled it
			// and so the capacity in a run of TestAdaptiveLimitUnderQuota
			// beside CI's tests: 43 ms at 2 running after 22 ms at 5.)
			l.measure(l.preProbe, fmt.Sprintf("checked: at %d running %s per query, %s at %d: slower at half the limit, the node changed; the baseline stands",
				l.limit, round(m.Service), round(l.checkRef), l.preProbe), idle)
		case m.Service*5 > l.checkRef*4:
			// Half the queries at once took about as long each: they
			// wait on something other than each other. What looked like
			// a queue is their own time: the baseline.
			l.base, l.baseAt = m.Service, now
			l.measure(l.preProbe, fmt.Sprintf("checked: at %d running %s per query, %s at %d: no queue, the baseline now",
				l.limit, round(m.Service), round(l.checkRef), l.preProbe), idle)
		default:
			l.measure(l.preProbe, fmt.Sprintf("checked: at %d running %s per query, %s at %d: the queue is real",
				l.limit, round(m.Service), round(l.checkRef), l.preProbe), idle)
		}
		return
	case l.probing:
		l.probing = false
		// The least of the window's ticks, when they each counted
		// enough queries: a tick of the node busy with something else
		// (logins, clients arriving) is no baseline, and a baseline too
		// low is what the checks correct (a baseline too high hides the
		// queue; nothing shows it).
		l.base, l.baseAt = m.Service, now
		if m.fastest > 0 && m.fastest < m.Service {
			l.base = m.fastest
		}
		if l.startAt == 0 {
			l.startAt = now
		}
		why := fmt.Sprintf("probed: %s per query with at most %d running", round(l.base), l.cfg.Min)
		if l.starting {
			// The start's probe: no window before it to read; climb.
			l.measure(min(l.preProbe, 2*l.cfg.Min), why+"; slow start from here", idle)
			return
		}
		// The window before the probe, read with the baseline it lacked
		// (l.last is still that window's): a queue above the band there
		// means going back only to cut again (at a start, the ceiling's
		// logins and two windows of them): go to the target at once.
		if pre := l.last; pre.Throughput > 0 {
			capacity := pre.Throughput * l.base.Seconds()
			alpha, beta := band(capacity)
			if q := pre.Running - capacity; q > beta {
				if to := max(l.cfg.Min, int(math.Ceil(capacity+(alpha+beta)/2))); to < l.preProbe {
					l.measure(l.preProbe, why, idle) // the probe ends
					l.shrink(to, &pre, fmt.Sprintf("%s; %.1f queued before it over a capacity of %.1f (band %.1f-%.1f)", why, q, capacity, alpha, beta), idle)
					return
				}
			}
		}
		l.measure(l.preProbe, why, idle)
		return
	}
	logins := float64(m.Logins)
	burst, before := logins >= max(3, m.Held/4) && logins*loginWeight >= m.Throughput*m.Span.Seconds(), l.burst
	l.burst = burst
	if burst || before {
		// A quarter of the servers held or more logged in during this
		// window or the one before, and they are no small part of its
		// work: a start, or work arriving at once (a failover onto this
		// node), on servers whose first queries fill their caches. Such
		// a window says nothing of the node at its pace. (A login now
		// and then, a slot moving between loops or users, is no burst;
		// nor are twenty logins among ten thousand queries: a start in
		// front of short queries is measured from its first window.)
		l.reason = "steady: servers logging in, the node not measured"
		l.setBudget(idle)
		return
	}
	switch {
	case l.limit <= l.cfg.Min && m.Running <= float64(l.cfg.Min)+0.25:
		// At the floor every window is a probe: the work as it is now
		// (heavier, perhaps) at the least concurrency.
		l.base, l.baseAt = m.Service, now
	case l.low(m):
		// The least of the baselines while they are fresh: a light load
		// is noisy, and a window of a few slow queries is no baseline.
		if l.base == 0 || now-l.baseAt > l.cfg.ProbeEvery || m.Service < l.base {
			l.base = m.Service
		}
		l.baseAt = now
	}
	if l.base == 0 || now-l.baseAt > l.cfg.ProbeEvery || l.startBase() && now-l.baseAt > l.startRecheck() {
		if prev := l.last.Throughput; l.limit > l.cfg.Min && m.Throughput > rising*prev {
			// The load still rises (clients arriving, a start; the first
			// window has none before it to tell): a probe now would
			// measure the node busy with that, not its pace.
			l.reason = "steady: the load rises, the baseline is " + ageText(l.base, now-l.baseAt)
			l.setBudget(idle)
			return
		}
		if l.limit > l.cfg.Min {
			why := "probe: the baseline is " + ageText(l.base, now-l.baseAt)
			if l.startBase() {
				why += ", the start's"
			}
			l.probe(why, l.cfg.Min, idle)
			return
		}
		l.base, l.baseAt = m.Service, now // at the floor every window is a baseline
	}
	m.Capacity = m.Throughput * l.base.Seconds()
	m.Queue = max(0, m.Running-m.Capacity)
	alpha, beta := band(m.Capacity)
	target := int(math.Ceil(m.Capacity + (alpha+beta)/2))
	running := min(l.limit, int(math.Ceil(m.Running)))
	binding := m.Waited && m.Running >= float64(l.limit)-1

	what := fmt.Sprintf("%.1f queued over a capacity of %.1f (band %.1f-%.1f), %s per query, baseline %s",
		m.Queue, m.Capacity, alpha, beta, round(m.Service), round(l.base))
	if l.starting {
		if binding && m.Queue < alpha && l.limit < l.cfg.Max {
			l.set(min(l.cfg.Max, 2*l.limit), "slow start: clients wait, "+what, idle)
			return
		}
		l.starting = false // the rules below from here
	}
	if s := l.shrunkFrom; s.x > 0 {
		l.shrunkFrom.x = 0
		// Had the queue been real, fewer queries at once would have done
		// as much; if the throughput fell by half as much as the limit or
		// more, the baseline is wrong (the queries got slower without
		// using more of the node). Measure it again.
		cut := float64(s.limit-l.limit) / float64(s.limit)
		if m.Throughput < s.x*(1-cut/2) {
			l.probe(fmt.Sprintf("probe: the cut from %d to %d cost throughput (%.0f/s after %.0f/s)", s.limit, l.limit, m.Throughput, s.x), l.cfg.Min, idle)
			return
		}
	}
	if g := l.grownFrom; g > 0 {
		l.grownFrom = 0
		if binding && m.Throughput < 1.03*g && m.Queue < alpha {
			// More queries ran but no more were done, and yet the
			// baseline sees no queue: the baseline is wrong (the work got
			// lighter per query). Measure it again.
			l.probe(fmt.Sprintf("probe: growth to %d gained no throughput (%.0f/s after %.0f/s)", l.limit, m.Throughput, g), l.cfg.Min, idle)
			return
		}
	}
	if m.Queue > 2*beta && now-l.baseAt > 10*l.cfg.Window {
		// A queue this long, on a baseline this old, may be the work
		// changing (slower queries that wait on something else than the
		// CPU): measure before cutting.
		l.probe(fmt.Sprintf("probe: %.1f queued on a baseline %s old", m.Queue, (now-l.baseAt).Round(time.Second)), l.cfg.Min, idle)
		return
	}
	if binding && m.Queue >= alpha && l.limit > l.cfg.Min && now-max(l.checkedAt, l.baseAt) > l.cfg.CheckEvery {
		// Clients wait on a queue the limit keeps: is it one? Halve the
		// limit for a window; a queue that is real drains and the time
		// per query falls, one of queries that wait on something else
		// (locks, I/O, a sleep) does not.
		if l.limit/2 <= l.cfg.Min {
			// Half the limit is the floor: a probe measures there, and
			// a limit this low would otherwise keep a stale baseline
			// until ProbeEvery (CPU-bound work turned into work that
			// waits, whose queue the old baseline puts within the band).
			l.probe(fmt.Sprintf("probe: is the queue of %.1f real? (half the limit is the floor)", m.Queue), l.cfg.Min, idle)
			return
		}
		l.probe(fmt.Sprintf("check: is the queue of %.1f real?", m.Queue), l.limit/2, idle)
		l.checking, l.checkRef = true, m.Service
		return
	}
	switch {
	case m.Queue > 2*beta:
		l.downVotes, l.upVotes = 0, 0
		l.shrink(max(l.cfg.Min, target, running/2), m, "shrink fast: "+what, idle)
	case m.Queue > beta:
		l.upVotes = 0
		if l.downVotes++; l.downVotes >= 2 {
			l.downVotes = 0
			l.shrink(max(l.cfg.Min, target, running-max(1, running/4)), m, "shrink: "+what, idle)
		} else {
			l.setBudget(idle)
		}
	case m.Queue < alpha && binding && l.limit < l.cfg.Max:
		l.downVotes = 0
		if l.upVotes++; l.upVotes >= 2 {
			l.upVotes = 0
			step := 1
			if m.Queue < alpha/2 {
				step = max(1, l.limit/4)
			}
			l.grownFrom = m.Throughput
			l.set(min(l.cfg.Max, l.limit+step), "grow: clients wait, "+what, idle)
		} else {
			l.setBudget(idle)
		}
	default:
		l.downVotes, l.upVotes = 0, 0
		l.reason = "steady: " + what
		l.setBudget(idle)
	}
}

// band is the queue kept for a capacity: at least alpha, at most beta.
func band(capacity float64) (alpha, beta float64) {
	alpha = max(1, 0.75*capacity)
	return alpha, max(alpha+1.5, 1.5*capacity)
}

// shrink sets the limit to n below it, and remembers what to check the cut
// against.
func (l *Limiter) shrink(n int, m *Measure, reason string, idle float64) {
	if from := min(l.limit, int(math.Ceil(m.Running))); n < from {
		l.shrunkFrom.x, l.shrunkFrom.limit = m.Throughput, from
	}
	l.set(n, reason, idle)
}

// probe drops the limit to Min for one window, to measure the service time
// without a queue (or to half of it for a check), then restores it.
func (l *Limiter) probe(why string, to int, idle float64) {
	l.probing, l.checking, l.preProbe, l.starting = true, false, l.limit, false
	l.downVotes, l.upVotes, l.grownFrom, l.shrunkFrom.x = 0, 0, 0, 0
	l.measure(to, why, idle)
}

// measure moves the limit to n for a probe or a check, or back after
// one: not a change of the limit's course (Probes counts them).
func (l *Limiter) measure(n int, reason string, idle float64) {
	c := l.changes
	l.set(n, reason, idle)
	if l.changes != c {
		l.changes, l.probes = c, l.probes+1
	}
}

// set moves the limit to n (within Min and Max) for reason, and the
// budget with it.
func (l *Limiter) set(n int, reason string, idle float64) {
	n = min(max(n, l.cfg.Min), l.cfg.Max)
	if n != l.limit {
		l.changes++
		// The next window starts once the pools have closed or logged in
		// servers for the new limit.
		l.settle = l.prevAt + l.cfg.Window/2
		l.restart(l.settle)
	}
	l.limit, l.reason = n, reason
	l.setBudget(idle)
}

// setBudget is the limit plus idle, the servers held that run nothing,
// in whole servers. The idle part moves only when it is off by three
// quarters of a server or more: a budget that flickers by one costs a
// server closed and one logged in each time.
func (l *Limiter) setBudget(idle float64) {
	if math.Abs(idle-float64(l.idle)) >= 0.75 {
		l.idle = int(math.Round(idle))
	}
	l.budget = min(l.cfg.Max, l.limit+l.idle)
}

// round is d to three significant digits or so, for reasons.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func ageText(base, age time.Duration) string {
	if base == 0 {
		return "not measured yet"
	}
	return fmt.Sprintf("%s old", age.Round(time.Second))
}
