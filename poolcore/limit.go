package poolcore

import (
	"net"
	"runtime"
	"time"

	"github.com/belaydb/belay/fairness"
)

// The adaptive limit (Tunables.AdaptiveLimit): a fairness.Limiter per node
// reads, at each Tick, the queries its pools' clients ended and their time
// (LoopStats, clamped per query), the servers held and the clients
// waiting, and sets the allocator's budget: the limit on queries running
// at once, plus the servers held that run nothing, under the ceiling. The
// fair shares are cut from that budget. Nothing of it is on the data path
// but one more atomic add per query.

// setCeiling makes ceiling (0: none) the node's hard budget and sets the
// allocator's: the limiter's when the adaptive limit is on, else the
// ceiling itself. Under n.mu (or before n is shared).
func (n *node) setCeiling(ceiling int) {
	n.ceiling = ceiling
	switch {
	case !n.adaptive || ceiling <= 0:
		n.limiter = nil
	case n.limiter == nil:
		n.limiter = fairness.NewLimiter(fairness.LimiterConfig{Min: n.limitMin, Max: ceiling, Start: n.startLimit()})
	default:
		n.limiter.SetMax(ceiling)
		n.limiter.SetMin(n.limitMin)
	}
	n.alloc.SetBudget(n.budget())
}

// startLimit is the limit a node starts at before its limiter measured
// anything: for a node on this machine (every address a loopback one or a
// Unix socket directory: the pooler beside its node, belay proxy beside
// its server), twice this machine's cores plus one, the classic pool size
// (PostgreSQL's wiki: twice the cores plus the disks); else 0, the
// ceiling. The limiter measures from there either way; the prior spares
// a start the seconds at a ceiling of many times the cores, which ran a
// CPU-bound node at 0.6 of its best in belay bench's sweeps.
func (n *node) startLimit() int {
	addrs := n.addrs.Load()
	if addrs == nil || len(*addrs) == 0 {
		return 0
	}
	for _, a := range *addrs {
		if !localAddr(a) {
			return 0
		}
	}
	return 2*runtime.NumCPU() + 1
}

// localAddr says whether a server address (host:port) is on this machine:
// a Unix socket directory, localhost or a loopback address.
func localAddr(addr string) bool {
	if network, _ := serverNetwork(addr); network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// budget is what the allocator shares. Under n.mu.
func (n *node) budget() int {
	if n.limiter != nil {
		return n.limiter.Budget()
	}
	return n.ceiling
}

// adapt gives the limiter the node's sample at now and applies a new
// budget. Under n.mu.
func (n *node) adapt(now int64) {
	if n.limiter == nil {
		return
	}
	s := fairness.Sample{Logins: n.logins.Load()}
	for _, p := range n.pools {
		if p == nil {
			continue
		}
		for i := range p.perLoop {
			lp := &p.perLoop[i]
			s.Queries += lp.stats.queries.Load()
			s.Exec += time.Duration(lp.stats.execNanos.Load())
			s.Held += int(lp.active.Load())
			s.Waiting += max(0, int(lp.nWait.Load()))
		}
	}
	// A pool forgotten takes its counters with it: the limiter starts its
	// window over when they go back.
	was := n.limiter.Limit()
	if n.limiter.Observe(time.Duration(now), s) {
		n.alloc.SetBudget(n.limiter.Budget())
	}
	if l := n.limiter.Limit(); l != was && n.log != nil {
		n.log.Info("node limit changed", "node", n.name, "from", was, "to", l, "budget", n.limiter.Budget(), "reason", n.limiter.Reason())
	}
}

// LimitStats is the node's adaptive limit, for SHOW and metrics.
type LimitStats struct {
	Adaptive bool // off: Budget is the ceiling
	Ceiling  int  // the hard budget (0: none)
	Limit    int  // queries running at once (the ceiling when off)
	Probing  bool // Limit is lowered for a probe or a check now
	Reason   string
	Changes  uint64 // of the limit's course
	Probes   uint64 // moves into a probe or a check, and back
	Last     fairness.Measure
	Baseline time.Duration
}

func (n *node) limitStats() LimitStats {
	if n.limiter == nil {
		return LimitStats{Ceiling: n.ceiling, Limit: n.ceiling}
	}
	l := n.limiter
	return LimitStats{Adaptive: true, Ceiling: n.ceiling, Limit: l.Limit(), Probing: l.Probing(), Reason: l.Reason(), Changes: l.Changes(), Probes: l.Probes(),
		Last: l.Last(), Baseline: l.Baseline()}
}
