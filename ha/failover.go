package ha

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Failover decisions (issue H), as a pure state machine after etcd-io/raft's
// RawNode: the leading orchestrator's shell measures a shard (ShardView),
// feeds it to Decider.Step with the time, carries out the actions it gets
// back, and reports their effects through its next measurement. The
// decider keeps only what it decided; everything it needs to know of the
// world comes in the view, so a new leader that takes over in the middle of
// a failover finishes it from what it sees, and exactly one replica is
// ever promoted for one failure.
//
// Zero lost commits comes from synchronous replication (ANY k of the
// replicas): an acknowledged commit is on at least k replicas, so among any
// n-k+1 of them is one that has it. The decider fails over only when that
// many replicas answer, promotes the one that received the most WAL, and
// first detaches every replica from the old primary (so that it cannot
// acknowledge a commit on one of them after the choice).

// NodeView is what the orchestrator's check saw of a node.
type NodeView struct {
	Name       string
	Addr       string
	Reachable  bool // the check answered
	InRecovery bool // a standby
	// Timeline is the node's timeline (a promotion starts a new one): of
	// its last checkpoint for a primary, of the WAL it received for a
	// standby.
	Timeline uint32
	// A standby's WAL receiver: streaming from a primary, and from whom
	// (its primary_conninfo's host:port; "" detached).
	Streaming bool
	Upstream  string
	// Received is a standby's WAL received and flushed, a primary's WAL
	// flushed.
	Received LSN
	Replayed LSN
	// Busy counts the client transactions open on the node (other than
	// the orchestrator's): a switchover's drain waits for none.
	Busy int
	// Fenced: its synchronous standby is FenceStandby, so it acknowledges
	// no commit (a switchover fenced it).
	Fenced bool
	// SyncNames is its synchronous_standby_names.
	SyncNames string
}

// ShardView is one measurement of a shard: the topology's record of it and
// what the checks saw of each node.
type ShardView struct {
	Shard   string
	Term    uint64
	Primary string // the topology's primary
	Nodes   []NodeView
}

// node is the view of name, or nil.
func (v *ShardView) node(name string) *NodeView {
	for i := range v.Nodes {
		if v.Nodes[i].Name == name {
			return &v.Nodes[i]
		}
	}
	return nil
}

// Analysis names the condition of a shard, after Vitess VTOrc's: each has
// its recovery (Decider).
type Analysis uint8

const (
	// Healthy: the primary answers; every standby that answers follows it.
	Healthy Analysis = iota
	// ReplicaNotFollowing: a standby that answers does not follow the
	// primary (detached by a failover that did not happen, or new): it is
	// pointed at the primary.
	ReplicaNotFollowing
	// StalePrimary: a node that is not the primary is not a standby either,
	// on an older timeline than the primary's (an old primary back): it is
	// rewound and made a standby of the primary (it can acknowledge no
	// commit meanwhile: no standby follows it).
	StalePrimary
	// PrimaryUnreachable: the primary does not answer here, but a standby
	// still streams from it: the orchestrator is cut off, not the primary.
	// No failover.
	PrimaryUnreachable
	// DeadPrimary: the primary does not answer and no standby streams from
	// it, and enough standbys answer to be sure one has every acknowledged
	// commit. Fail over once this held for Decider.DeadAfter.
	DeadPrimary
	// DeadPrimaryTooFewReplicas: DeadPrimary, but too few standbys answer:
	// the newest acknowledged commit may be on one that does not. Wait.
	DeadPrimaryTooFewReplicas
	// PromotedReplica: a node that is not the topology's primary is the
	// newest primary (not a standby, on a newer timeline than any other): a
	// failover promoted it and was interrupted before it was published.
	// Finish it.
	PromotedReplica
	// SplitBrain: several nodes that are not standbys, none newer than the
	// others. Act on nothing; an operator must look.
	SplitBrain
)

var analysisNames = [...]string{"Healthy", "ReplicaNotFollowing", "StalePrimary", "PrimaryUnreachable", "DeadPrimary",
	"DeadPrimaryTooFewReplicas", "PromotedReplica", "SplitBrain"}

func (a Analysis) String() string {
	if int(a) < len(analysisNames) {
		return analysisNames[a]
	}
	return "Analysis(?)"
}

// newest is the reachable node that is not a standby, on the newest
// timeline; "" when there is none, or when two share the newest timeline.
func (v *ShardView) newest() (name string, tie bool) {
	var best *NodeView
	for i := range v.Nodes {
		n := &v.Nodes[i]
		if !n.Reachable || n.InRecovery {
			continue
		}
		switch {
		case best == nil || n.Timeline > best.Timeline:
			best, tie = n, false
		case n.Timeline == best.Timeline:
			tie = true
		}
	}
	if best == nil || tie {
		return "", tie
	}
	return best.Name, false
}

// Analyze names v's condition, for a shard replicated synchronously to
// syncQuorum standbys (ANY syncQuorum).
func Analyze(v ShardView, syncQuorum int) Analysis {
	newest, tie := v.newest()
	p := v.node(v.Primary)
	switch {
	case tie:
		return SplitBrain
	case newest != "" && newest != v.Primary:
		return PromotedReplica
	case newest == v.Primary:
		for _, n := range v.Nodes {
			if n.Name != v.Primary && n.Reachable && !n.InRecovery {
				return StalePrimary
			}
		}
		for _, n := range v.Nodes {
			if n.Name != v.Primary && n.Reachable && n.Upstream != p.Addr {
				return ReplicaNotFollowing
			}
		}
		return Healthy
	}
	standbys, reachable := 0, 0
	for _, n := range v.Nodes {
		if n.Name == v.Primary {
			continue
		}
		standbys++
		if !n.Reachable {
			continue
		}
		reachable++
		if n.Streaming && p != nil && n.Upstream == p.Addr {
			return PrimaryUnreachable
		}
	}
	if standbys == 0 || reachable < standbys-syncQuorum+1 {
		return DeadPrimaryTooFewReplicas
	}
	return DeadPrimary
}

// Action is something the shell carries out for the decider.
type Action interface{ String() string }

// Detach stops the WAL receivers of Nodes (primary_conninfo emptied, then a
// reload), so that the old primary cannot acknowledge a commit on them.
type Detach struct{ Nodes []string }

// Promote promotes Node (pg_promote: it replays what it received first).
type Promote struct{ Node string }

// Follow points the standbys Nodes at the primary To (primary_conninfo,
// reload; recovery_target_timeline is latest).
type Follow struct {
	Nodes []string
	To    string
}

// Rejoin makes Node, an old primary, a standby of To: stopped, rewound
// (pg_rewind) to To's timeline, started as a standby.
type Rejoin struct {
	Node string
	To   string
}

// SetSync sets synchronous replication on the new primary Node: ANY Quorum
// of Standbys, before it is published, so that no commit is acknowledged
// with fewer copies than the policy asks.
type SetSync struct {
	Node     string
	Quorum   int
	Standbys []string
}

// Publish makes Primary the shard's primary in the topology at term Term+1,
// if its term is still Term (ha.Topology.ChangePrimary, a compare-and-swap).
type Publish struct {
	Shard   string
	Term    uint64
	Primary string
}

func (a Detach) String() string  { return "detach " + strings.Join(a.Nodes, ",") }
func (a Promote) String() string { return "promote " + a.Node }
func (a Follow) String() string  { return "follow " + strings.Join(a.Nodes, ",") + " -> " + a.To }
func (a Rejoin) String() string  { return "rejoin " + a.Node + " -> " + a.To }
func (a SetSync) String() string {
	return fmt.Sprintf("set-sync %s ANY %d (%s)", a.Node, a.Quorum, strings.Join(a.Standbys, ","))
}
func (a Publish) String() string {
	return fmt.Sprintf("publish %s term %d->%d primary %s", a.Shard, a.Term, a.Term+1, a.Primary)
}

// Decider decides the failovers of one shard. Pure: no I/O, no goroutine,
// the time comes with each Step. Not safe for concurrent use (the leading
// orchestrator's shell owns it).
type Decider struct {
	// DeadAfter is how long DeadPrimary must hold before a failover.
	DeadAfter time.Duration
	// SyncQuorum is the shard's synchronous replication quorum (ANY k; 1).
	SyncQuorum int

	deadSince time.Time // when DeadPrimary was first seen, in this run of it
	candidate string    // the standby this failover promotes ("" none under way)
}

// Step takes a measurement of the shard at now and returns its analysis and
// what to do. Actions are idempotent: the shell carries them out, and the
// next view shows their effect; until it does, Step asks again.
func (d *Decider) Step(now time.Time, v ShardView) (Analysis, []Action) {
	q := max(d.SyncQuorum, 1)
	a := Analyze(v, q)
	if a != DeadPrimary {
		d.deadSince = time.Time{}
	}
	switch a {
	case Healthy, PrimaryUnreachable, SplitBrain, DeadPrimaryTooFewReplicas:
		if c := v.node(d.candidate); d.candidate != "" && (a == Healthy || c == nil || c.InRecovery) {
			d.candidate = "" // the primary is back before anything was promoted
		}
		if d.candidate == "" {
			if a == Healthy {
				if s, ok := syncRejoined(v, q); ok {
					return a, []Action{s}
				}
			}
			return a, nil
		}
		return a, d.next(v, q) // (cannot happen: a promoted candidate is PromotedReplica)
	case ReplicaNotFollowing, StalePrimary:
		d.candidate = ""
		return a, repair(v)
	case DeadPrimary:
		if d.candidate == "" {
			if d.deadSince.IsZero() {
				d.deadSince = now
			}
			if now.Sub(d.deadSince) < d.DeadAfter {
				return a, nil
			}
			d.candidate = chooseCandidate(v)
		}
	case PromotedReplica:
		// Ours, or another leader's interrupted before it was published:
		// either way the newest primary is the one to finish with.
		d.candidate, _ = v.newest()
	}
	return a, d.next(v, q)
}

// next is the step of the failover to d.candidate that v shows undone.
func (d *Decider) next(v ShardView, quorum int) []Action {
	c := v.node(d.candidate)
	if c == nil || !c.Reachable {
		d.candidate = "" // gone before its promotion: decide again
		return nil
	}
	if c.InRecovery {
		// Before the promotion: every standby off the old primary (so that
		// it acknowledges no commit after the choice), then the one that
		// received most is promoted.
		var detach []string
		for _, n := range v.Nodes {
			if n.Name != v.Primary && n.Reachable && n.InRecovery && (n.Streaming || n.Upstream != "") {
				detach = append(detach, n.Name)
			}
		}
		if len(detach) > 0 {
			return []Action{Detach{Nodes: detach}}
		}
		// Its synchronous replication is set while it is a standby (where
		// it does nothing), so that it acknowledges no commit with fewer
		// copies than the policy asks from its first moment as a primary.
		if others := d.others(v, c.Name); len(others) > 0 {
			return []Action{SetSync{Node: c.Name, Quorum: min(quorum, len(others)), Standbys: others}, Promote{Node: c.Name}}
		}
		return []Action{Promote{Node: c.Name}}
	}
	// Promoted: the other standbys follow it, it replicates synchronously
	// to them, and the topology names it.
	var acts []Action
	var follow []string
	others := d.others(v, c.Name)
	for _, n := range v.Nodes {
		if n.Name != v.Primary && n.Name != c.Name && n.Reachable && n.InRecovery && n.Upstream != c.Addr {
			follow = append(follow, n.Name)
		}
	}
	if len(follow) > 0 {
		acts = append(acts, Follow{Nodes: follow, To: c.Name})
	}
	if len(others) > 0 {
		acts = append(acts, SetSync{Node: c.Name, Quorum: min(quorum, len(others)), Standbys: others})
	}
	return append(acts, Publish{Shard: v.Shard, Term: v.Term, Primary: c.Name})
}

// syncRejoined is the SetSync that adds to the primary's synchronous
// standbys those streaming from it that it does not name: an old primary
// rejoined as a standby after a failover (which left it out, not to wait
// for a node that may never come back), or a node added later. Names are
// only added, never dropped, and the quorum raised to the policy's where
// it was lower for want of standbys; a primary whose setting is not belay's
// ANY form (or fenced) is left as it is.
func syncRejoined(v ShardView, quorum int) (SetSync, bool) {
	p := v.node(v.Primary)
	if p == nil || !p.Reachable || p.InRecovery || p.Fenced {
		return SetSync{}, false
	}
	k, names, ok := parseSyncNames(p.SyncNames)
	if !ok {
		return SetSync{}, false
	}
	add := false
	for _, n := range v.Nodes {
		if n.Name != p.Name && n.Reachable && n.InRecovery && n.Streaming && n.Upstream == p.Addr && !slices.Contains(names, n.Name) {
			names, add = append(names, n.Name), true
		}
	}
	if !add && k >= min(quorum, len(names)) {
		return SetSync{}, false
	}
	slices.Sort(names)
	return SetSync{Node: p.Name, Quorum: min(quorum, len(names)), Standbys: names}, true
}

// others are the nodes of v that stay standbys of candidate: all but the
// old primary and candidate (the old primary comes back as a standby too,
// but only once rejoined; until then it is not counted on for a copy).
func (d *Decider) others(v ShardView, candidate string) []string {
	var out []string
	for _, n := range v.Nodes {
		if n.Name != v.Primary && n.Name != candidate {
			out = append(out, n.Name)
		}
	}
	return out
}

// repair points the standbys that do not follow the primary at it and
// rejoins old primaries to it.
func repair(v ShardView) []Action {
	p := v.node(v.Primary)
	var follow []string
	var acts []Action
	for _, n := range v.Nodes {
		switch {
		case n.Name == v.Primary || !n.Reachable:
		case !n.InRecovery:
			acts = append(acts, Rejoin{Node: n.Name, To: v.Primary})
		case n.Upstream != p.Addr:
			follow = append(follow, n.Name)
		}
	}
	if len(follow) > 0 {
		acts = append([]Action{Follow{Nodes: follow, To: v.Primary}}, acts...)
	}
	return acts
}

// chooseCandidate is the reachable standby that received the most WAL (by
// name among equals).
func chooseCandidate(v ShardView) string {
	var best *NodeView
	for i := range v.Nodes {
		n := &v.Nodes[i]
		if n.Name == v.Primary || !n.Reachable || !n.InRecovery {
			continue
		}
		if best == nil || n.Received > best.Received || n.Received == best.Received && cmp.Less(n.Name, best.Name) {
			best = n
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}
