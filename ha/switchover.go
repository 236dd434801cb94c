package ha

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// Planned switchover (issue H), as a pure state machine like Decider: the
// shell measures the shard (ShardView), steps the Switchover with the
// time, carries out the actions it returns, and the next measurement shows
// their effect. The sequence, each step waiting for the view to show the
// last one done:
//
//  1. hold (after a checkpoint on the old primary, for pg_rewind's sake,
//     and a switch to a new WAL segment, so that a standby whose WAL
//     receiver restarts below, which streams again from the start of its
//     segment, fetches little):
//     the topology is published with no primary at term T+1, so
//     every proxy holds new work for the primary (ha.Hold's noPrimary)
//     while the transactions already running on it go on;
//  2. drain: until no client transaction is open on the old primary
//     (NodeView.Busy), for at most Drain;
//  3. fence: the old primary can acknowledge no commit any more (its
//     synchronous_standby_names names a standby that does not exist) and
//     every client backend on it is ended (a transaction still running
//     past Drain is answered 40001 or 08007 by its proxy, never as
//     committed);
//  4. catch up: until the target has replayed everything the old primary
//     flushed once fenced, for at most CatchUp;
//  5. promote: synchronous replication set on the target (to every other
//     node, the old primary included, which rejoins as a standby), then
//     pg_promote;
//  6. publish: the other standbys follow the target, which is published as
//     the primary at term T+2: the proxies send the held work to it.
//
// Before the promotion, a failure (the target unreachable, a bound passed)
// aborts: the old primary is unfenced and published again at T+2, and the
// held work goes to it. After the promotion there is no way back: the
// switchover finishes, or, if the target dies too, the failover decider
// takes over. A leader that dies in the middle leaves a topology with no
// primary: the next leader's Decider sees the newest primary (the old one
// before the promotion, the target after it) as PromotedReplica and
// publishes it, which ends the hold either way.
//
// The old primary, fenced and no longer the topology's primary, is then a
// StalePrimary to the Decider: belay up rewinds it and restarts it as a
// standby (OrchOptions.Rejoin); without that hook it stays fenced and an
// operator is told.

// FenceStandby is the synchronous standby a fenced primary waits for: no
// standby has that name, so no commit is acknowledged.
const FenceStandby = "belay_fenced"

// SwitchoverPhase is where a Switchover is.
type SwitchoverPhase uint8

const (
	SwitchStart      SwitchoverPhase = iota // nothing done yet
	SwitchHolding                           // the topology with no primary asked for
	SwitchDraining                          // published: running transactions finish
	SwitchFencing                           // the old primary fenced and its clients ended, not yet seen
	SwitchCatchUp                           // fenced: the target replays what the old primary flushed
	SwitchPromoting                         // the target's promotion asked for
	SwitchPublishing                        // promoted: the target's publication asked for
	SwitchAborting                          // the old primary's return asked for
	SwitchDone                              // the target is the published primary
	SwitchFailed                            // aborted (the old primary published again) or given up
)

var switchPhaseNames = [...]string{"start", "holding", "draining", "fencing", "catch-up", "promoting", "publishing",
	"aborting", "done", "failed"}

func (p SwitchoverPhase) String() string {
	if int(p) < len(switchPhaseNames) {
		return switchPhaseNames[p]
	}
	return "SwitchoverPhase(?)"
}

// HoldPrimary publishes shard with no primary at term Term+1, if its term
// is still Term: every proxy holds the work for the primary.
type HoldPrimary struct {
	Shard string
	Term  uint64
}

// Checkpoint runs a CHECKPOINT on Node, then switches it to a new WAL
// segment (pg_switch_wal).
type Checkpoint struct{ Node string }

// Fence makes Node, a primary, unable to acknowledge a commit (its
// synchronous standby is FenceStandby, which never comes) and ends every
// client backend on it.
type Fence struct{ Node string }

func (a HoldPrimary) String() string {
	return fmt.Sprintf("hold %s term %d->%d (no primary)", a.Shard, a.Term, a.Term+1)
}
func (a Fence) String() string      { return "fence " + a.Node }
func (a Checkpoint) String() string { return "checkpoint " + a.Node }

// drainSettle is how long the drain waits at least, for the proxies to
// apply the hold (they watch etcd: milliseconds).
const drainSettle = 25 * time.Millisecond

// ErrSwitchover is the cause of a switchover that was refused or aborted
// (errors.Is); the error's text says why.
var ErrSwitchover = errors.New("ha: switchover")

// Switchover is one planned switchover of a shard's primary. Pure: no I/O,
// no goroutine, the time comes with each Step. Not safe for concurrent use
// (the leading orchestrator's shell owns it).
type Switchover struct {
	// Drain is how long transactions running on the old primary may take
	// to finish once new ones are held (2 s); CatchUp how long the target
	// may take to replay the old primary's WAL once fenced (5 s); Promote
	// how long its promotion and publication may take (10 s).
	Drain, CatchUp, Promote time.Duration
	// SyncQuorum is the shard's synchronous replication quorum (ANY k; 1).
	SyncQuorum int

	phase    SwitchoverPhase
	shard    string
	from, to string // the old primary, the target
	term     uint64 // the shard's term when it began
	since    time.Time
	fenceLSN LSN // the most WAL the fenced old primary was seen to have flushed
	err      error
}

// NewSwitchover begins a switchover of v's primary to the standby to ("":
// the standby that replayed most), checking that the shard is healthy and
// the target a reachable standby streaming from the primary.
func NewSwitchover(v ShardView, to string, syncQuorum int) (*Switchover, error) {
	if a := Analyze(v, max(syncQuorum, 1)); a != Healthy {
		return nil, fmt.Errorf("%w: shard %s is %s, not Healthy", ErrSwitchover, v.Shard, a)
	}
	p := v.node(v.Primary)
	if to == "" {
		for i := range v.Nodes {
			n := &v.Nodes[i]
			if n.Name == v.Primary || !n.Reachable || !n.Streaming {
				continue
			}
			if c := v.node(to); c == nil || n.Replayed > c.Replayed || n.Replayed == c.Replayed && cmp.Less(n.Name, to) {
				to = n.Name
			}
		}
		if to == "" {
			return nil, fmt.Errorf("%w: shard %s has no standby streaming from its primary", ErrSwitchover, v.Shard)
		}
	}
	t := v.node(to)
	switch {
	case t == nil:
		return nil, fmt.Errorf("%w: %s is not a node of shard %s", ErrSwitchover, to, v.Shard)
	case to == v.Primary:
		return nil, fmt.Errorf("%w: %s is already shard %s's primary", ErrSwitchover, to, v.Shard)
	case !t.Reachable || !t.InRecovery || !t.Streaming || t.Upstream != p.Addr:
		return nil, fmt.Errorf("%w: %s is not a standby streaming from the primary %s", ErrSwitchover, to, v.Primary)
	}
	return &Switchover{shard: v.Shard, from: v.Primary, to: to, term: v.Term}, nil
}

// From and To are the old primary and the target.
func (s *Switchover) From() string { return s.from }
func (s *Switchover) To() string   { return s.to }

// Phase is where the switchover is; Err why it failed (SwitchFailed).
func (s *Switchover) Phase() SwitchoverPhase { return s.phase }
func (s *Switchover) Err() error             { return s.err }

// Finished says whether it is over (done or failed).
func (s *Switchover) Finished() bool { return s.phase == SwitchDone || s.phase == SwitchFailed }

// HoldRefused reports that the hold could not be published (the term
// changed meanwhile): the switchover fails, having changed nothing. The
// other actions' failures are not reported: the next Step asks again,
// within its phase's bound.
func (s *Switchover) HoldRefused(err error) {
	if s.phase == SwitchHolding {
		s.fail(fmt.Errorf("%w: the hold was not published: %v", ErrSwitchover, err))
	}
}

func (s *Switchover) fail(err error) {
	s.phase, s.err = SwitchFailed, err
}

func (s *Switchover) abort(now time.Time, err error) {
	s.phase, s.err, s.since = SwitchAborting, err, now
}

func (s *Switchover) enter(now time.Time, p SwitchoverPhase) { s.phase, s.since = p, now }

// Step takes a measurement of the shard at now and returns what to do. As
// the Decider's, actions are idempotent: until the view shows one done,
// Step asks for it again.
func (s *Switchover) Step(now time.Time, v ShardView) []Action {
	drain, catchUp, promote := cmp.Or(s.Drain, 2*time.Second), cmp.Or(s.CatchUp, 5*time.Second), cmp.Or(s.Promote, 10*time.Second)
	first := s.phase == SwitchStart
	if first {
		s.enter(now, SwitchHolding)
	}
	from, to := v.node(s.from), v.node(s.to)
	held := v.Term == s.term+1 && v.Primary == ""
	// Another's change of the topology (a failover of a dead primary, an
	// operator) overrides the switchover.
	switch {
	case s.Finished():
		return nil
	case v.Term == s.term && v.Primary == s.from:
	case held:
	case v.Term == s.term+2 && v.Primary == s.to && s.phase >= SwitchPromoting:
		s.enter(now, SwitchDone)
		return nil
	case v.Term == s.term+2 && v.Primary == s.from && s.phase == SwitchAborting:
		s.fail(s.err)
		return nil
	default:
		s.fail(fmt.Errorf("%w: the topology changed under it (term %d, primary %q)", ErrSwitchover, v.Term, v.Primary))
		return nil
	}
	if to == nil || from == nil {
		s.fail(fmt.Errorf("%w: a node left the shard", ErrSwitchover))
		return nil
	}
	unreachable := func() error {
		switch {
		case !to.Reachable:
			return fmt.Errorf("%w: the target %s does not answer", ErrSwitchover, s.to)
		case !from.Reachable:
			return fmt.Errorf("%w: the primary %s does not answer", ErrSwitchover, s.from)
		}
		return nil
	}
	for {
		if s.phase >= SwitchDraining && s.phase <= SwitchCatchUp {
			if err := unreachable(); err != nil {
				s.abort(now, err)
			}
		}
		switch s.phase {
		case SwitchHolding:
			if !held {
				if now.Sub(s.since) >= promote {
					s.fail(fmt.Errorf("%w: the hold was not published within %v", ErrSwitchover, promote))
					return nil
				}
				if err := unreachable(); err != nil {
					s.fail(err)
					return nil
				}
				if first {
					// A checkpoint first, while the work flows: pg_rewind
					// needs the old primary's WAL from its last checkpoint
					// before the fork on, and a recent one keeps that short
					// (and kept: the shutdown before the rewind removes
					// only WAL older than it).
					return []Action{Checkpoint{Node: s.from}, HoldPrimary{Shard: s.shard, Term: s.term}}
				}
				return []Action{HoldPrimary{Shard: s.shard, Term: s.term}}
			}
			s.enter(now, SwitchDraining)
		case SwitchDraining:
			// Settle first: a proxy that saw the hold late may have just
			// begun a transaction.
			if (from.Busy > 0 || now.Sub(s.since) < drainSettle) && now.Sub(s.since) < drain {
				return nil
			}
			s.enter(now, SwitchFencing)
		case SwitchFencing:
			if !from.Fenced || from.Busy > 0 {
				if now.Sub(s.since) >= catchUp {
					s.abort(now, fmt.Errorf("%w: the primary %s was not fenced within %v", ErrSwitchover, s.from, catchUp))
					continue
				}
				return []Action{Fence{Node: s.from}}
			}
			s.enter(now, SwitchCatchUp)
		case SwitchCatchUp:
			if !to.InRecovery {
				s.enter(now, SwitchPromoting) // promoted already (a step whose view came late)
				continue
			}
			// Everything the old primary flushed since it was fenced too
			// (nothing acknowledged: what a rogue client committed).
			s.fenceLSN = max(s.fenceLSN, from.Received)
			if to.Replayed < s.fenceLSN {
				if now.Sub(s.since) >= catchUp {
					s.abort(now, fmt.Errorf("%w: the target %s replayed %s of the primary's %s within %v",
						ErrSwitchover, s.to, to.Replayed, s.fenceLSN, catchUp))
					continue
				}
				return nil
			}
			s.enter(now, SwitchPromoting)
			return []Action{s.setSync(v, s.to), Promote{Node: s.to}}
		case SwitchPromoting:
			if to.InRecovery {
				if now.Sub(s.since) >= promote {
					s.fail(fmt.Errorf("%w: the target %s was not promoted within %v", ErrSwitchover, s.to, promote))
					return nil
				}
				return []Action{s.setSync(v, s.to), Promote{Node: s.to}}
			}
			s.enter(now, SwitchPublishing)
		case SwitchPublishing:
			if now.Sub(s.since) >= promote {
				s.fail(fmt.Errorf("%w: the target %s, promoted, was not published within %v (the failover decider finishes it)",
					ErrSwitchover, s.to, promote))
				return nil
			}
			var acts []Action
			var follow []string
			for _, n := range v.Nodes {
				if n.Name != s.from && n.Name != s.to && n.Reachable && n.InRecovery && n.Upstream != to.Addr {
					follow = append(follow, n.Name)
				}
			}
			if len(follow) > 0 {
				acts = append(acts, Follow{Nodes: follow, To: s.to})
			}
			return append(acts, Publish{Shard: s.shard, Term: s.term + 1, Primary: s.to})
		case SwitchAborting:
			if now.Sub(s.since) >= promote {
				s.fail(fmt.Errorf("%v; and the primary %s could not be published again within %v", s.err, s.from, promote))
				return nil
			}
			var acts []Action
			if from.Fenced {
				acts = append(acts, s.setSync(v, s.from))
			}
			if held {
				acts = append(acts, Publish{Shard: s.shard, Term: s.term + 1, Primary: s.from})
			} else if len(acts) == 0 {
				s.fail(s.err) // the hold was never published: nothing to undo
				return nil
			}
			return acts
		default:
			return nil
		}
	}
}

// setSync is the synchronous replication of primary once the switchover
// is over: ANY quorum of every other node of the shard.
func (s *Switchover) setSync(v ShardView, primary string) SetSync {
	var others []string
	for _, n := range v.Nodes {
		if n.Name != primary {
			others = append(others, n.Name)
		}
	}
	return SetSync{Node: primary, Quorum: min(max(s.SyncQuorum, 1), len(others)), Standbys: others}
}
