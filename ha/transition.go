package ha

import (
	"errors"
	"fmt"
)

// Errors of the transitions, for errors.Is.
var (
	// ErrStaleTerm: the caller acted on a shard's term that is no longer
	// the current one (someone else changed the primary since).
	ErrStaleTerm = errors.New("ha: stale term")
	// ErrNotLeader: the orchestrator that asked no longer leads (its
	// election key is gone or another's): it must not publish.
	ErrNotLeader = errors.New("ha: not the leading orchestrator")
	// ErrNoShard: the shard has no record.
	ErrNoShard = errors.New("ha: no such shard")
	// ErrNoNode: the node has no record in the shard.
	ErrNoNode = errors.New("ha: no such node")
	// ErrIsPrimary: the node is its shard's primary.
	ErrIsPrimary = errors.New("ha: node is its shard's primary")
)

// ChangePrimary decides the record of shard once node primary takes over
// from the primary of term: the term becomes term+1. It is the only way a
// shard's primary changes, and it refuses (ErrStaleTerm) unless term is the
// shard's current term, so two deciders acting on the same term cannot both
// win: the store writes the result only if the shard's record is still the
// one t was read with (a compare-and-swap). The new primary must be a node
// of the shard, up. Pure.
func (t *Topology) ChangePrimary(shard string, term uint64, primary string) (ShardRecord, error) {
	s := t.Shard(shard)
	if s == nil || s.Term == 0 {
		return ShardRecord{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	if s.Term != term {
		return ShardRecord{}, fmt.Errorf("%w: shard %q is at term %d, not %d", ErrStaleTerm, shard, s.Term, term)
	}
	n := t.Node(primary)
	if n == nil || n.Shard != shard {
		return ShardRecord{}, fmt.Errorf("%w: %q in shard %q", ErrNoNode, primary, shard)
	}
	if n.State != StateUp {
		return ShardRecord{}, fmt.Errorf("ha: node %q is %s: it cannot become shard %q's primary", primary, n.State, shard)
	}
	return ShardRecord{Term: term + 1, Primary: primary}, nil
}

// ClearPrimary decides the record of shard once its primary of term stops
// being the primary before another is named (a switchover's hold): term+1
// with no primary, so that every proxy holds the primary's work until a
// primary of a newer term is published. From the current term only, as
// ChangePrimary. Pure.
func (t *Topology) ClearPrimary(shard string, term uint64) (ShardRecord, error) {
	s := t.Shard(shard)
	if s == nil || s.Term == 0 {
		return ShardRecord{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	if s.Term != term {
		return ShardRecord{}, fmt.Errorf("%w: shard %q is at term %d, not %d", ErrStaleTerm, shard, s.Term, term)
	}
	return ShardRecord{Term: term + 1}, nil
}

// CheckRemove reports whether node may be removed from t: not while it is
// its shard's primary (change the primary first), since a shard whose
// primary has no record is an invalid topology. Removing a node that has
// no record is not an error. Pure.
func (t *Topology) CheckRemove(node string) error {
	n := t.Node(node)
	if n != nil && n.Role == RolePrimary {
		return fmt.Errorf("%w: %q of shard %q", ErrIsPrimary, node, n.Shard)
	}
	return nil
}

// CheckSuccessor reports why next must not replace prev as the current
// snapshot of a cluster: a shard's term went backwards (terms fence: an
// older term is ignored, whoever brings it). A shard that disappears, or
// a prev of nil, is no objection. Pure.
func CheckSuccessor(prev, next *Topology) error {
	if prev == nil {
		return nil
	}
	for _, s := range next.Shards {
		if p := prev.Shard(s.Name); p != nil && s.Term < p.Term {
			return fmt.Errorf("%w: shard %q went back from term %d to %d", ErrStaleTerm, s.Name, p.Term, s.Term)
		}
	}
	return nil
}
