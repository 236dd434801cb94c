package twopc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TxID names a distributed transaction: 16 random bytes, hex in GIDs and
// etcd keys.
type TxID [16]byte

func (t TxID) String() string { return hex.EncodeToString(t[:]) }

// ParseTxID reads a TxID from its String form.
func ParseTxID(s string) (TxID, error) {
	var t TxID
	if len(s) != 2*len(t) {
		return t, fmt.Errorf("twopc: %q is not a transaction id", s)
	}
	if _, err := hex.Decode(t[:], []byte(s)); err != nil {
		return t, fmt.Errorf("twopc: %q is not a transaction id", s)
	}
	return t, nil
}

// gidPrefix marks the prepared transactions of belay's among a shard's
// (pg_prepared_xacts.gid).
const gidPrefix = "belay:"

// GID is the global identifier of tx's prepared transaction on shard.
func GID(tx TxID, shard int) string { return gidPrefix + tx.String() + ":" + strconv.Itoa(shard) }

// ParseGID reads a GID; ok is false for another's prepared transaction.
func ParseGID(gid string) (tx TxID, shard int, ok bool) {
	rest, found := strings.CutPrefix(gid, gidPrefix)
	if !found {
		return tx, 0, false
	}
	id, sh, found := strings.Cut(rest, ":")
	if !found {
		return tx, 0, false
	}
	tx, err := ParseTxID(id)
	if err != nil {
		return tx, 0, false
	}
	shard, err = strconv.Atoi(sh)
	if err != nil || shard < 0 || strconv.Itoa(shard) != sh {
		return tx, 0, false
	}
	return tx, shard, true
}

// Decision is what became of a distributed transaction.
type Decision uint8

const (
	None   Decision = iota // not decided (no record)
	Commit                 // committed: every shard commits its part
	Abort                  // aborted: every shard rolls its part back
)

func (d Decision) String() string {
	switch d {
	case Commit:
		return "commit"
	case Abort:
		return "abort"
	}
	return "none"
}

// ParseDecision reads a Decision from its String form.
func ParseDecision(s string) (Decision, error) {
	switch s {
	case "commit":
		return Commit, nil
	case "abort":
		return Abort, nil
	}
	return None, fmt.Errorf("twopc: unknown decision %q", s)
}

// Op is something the coordinator or the resolver asks to be done.
type Op uint8

const (
	OpPrepare  Op = 1 + iota // PREPARE TRANSACTION GID(tx, shard) on Shard
	OpRollback               // ROLLBACK (an open transaction that did not prepare) on Shard
	OpCommitPrepared
	OpRollbackPrepared
	OpRecordCommit // write the decision Commit unless one is there; report with Recorded
	OpRecordAbort  // write the decision Abort unless one is there
)

func (o Op) String() string {
	return [...]string{"?", "prepare", "rollback", "commit prepared", "rollback prepared", "record commit", "record abort"}[min(int(o), 6)]
}

// Action is an Op on Shard (-1 for the records' Ops).
type Action struct {
	Op    Op
	Shard int
}

// Outcome is what the client is told of its COMMIT.
type Outcome uint8

const (
	Pending   Outcome = iota // not known yet
	Committed                // COMMIT acknowledged
	Aborted                  // rolled back: the error of the shard that failed, or 40001
	Unknown                  // 08007: the decision's write has no known outcome
)

// Coordinator drives the two-phase commit of one transaction over the
// shards it wrote on. Feed it each Action's result; it returns the next
// Actions. Pure; not safe for concurrent use.
type Coordinator struct {
	shards   []int
	prepared map[int]bool
	waiting  int // prepares not answered yet
	failed   error
	phase    phase
	outcome  Outcome
	left     int // second-phase actions not finished
}

type phase uint8

const (
	preparing phase = iota
	recording
	finishing
	done
)

// ErrAbortedByResolver: the decision found was Abort: a resolver settled
// the transaction while its coordinator was slow.
var ErrAbortedByResolver = errors.New("twopc: the transaction was aborted by a resolver before its commit was recorded")

// NewCoordinator is the coordinator of a transaction that wrote on shards
// (two or more, distinct).
func NewCoordinator(shards []int) *Coordinator {
	s := slices.Clone(shards)
	slices.Sort(s)
	return &Coordinator{shards: slices.Compact(s), prepared: map[int]bool{}}
}

// Start is the first phase: a prepare on every shard.
func (c *Coordinator) Start() []Action {
	acts := make([]Action, 0, len(c.shards))
	for _, s := range c.shards {
		acts = append(acts, Action{OpPrepare, s})
	}
	c.waiting = len(c.shards)
	return acts
}

// Prepared takes the result of shard's prepare. Once all are in: if all
// prepared, the decision is to be recorded; else the shards that prepared
// roll back their prepared part, the others their open transaction.
func (c *Coordinator) Prepared(shard int, err error) []Action {
	if c.phase != preparing || !slices.Contains(c.shards, shard) {
		return nil
	}
	c.waiting--
	if err != nil {
		if c.failed == nil {
			c.failed = err
		}
	} else {
		c.prepared[shard] = true
	}
	if c.waiting > 0 {
		return nil
	}
	if c.failed == nil {
		c.phase = recording
		return []Action{{OpRecordCommit, -1}}
	}
	c.outcome = Aborted
	return c.second(OpRollbackPrepared, true)
}

// second is the second phase with op on the prepared shards (and, with
// rollbackOthers, a rollback of the others' open transactions).
func (c *Coordinator) second(op Op, rollbackOthers bool) []Action {
	c.phase = finishing
	var acts []Action
	for _, s := range c.shards {
		switch {
		case c.prepared[s]:
			acts = append(acts, Action{op, s})
		case rollbackOthers:
			acts = append(acts, Action{OpRollback, s})
		}
	}
	c.left = len(acts)
	if c.left == 0 {
		c.phase = done
	}
	return acts
}

// Recorded takes the outcome of OpRecordCommit: the decision the record
// holds afterwards (Commit: ours, written or found; Abort: a resolver's),
// or err when the write's outcome is not known.
func (c *Coordinator) Recorded(d Decision, err error) []Action {
	if c.phase != recording {
		return nil
	}
	switch {
	case err != nil || d == None:
		// Not known whether Commit is recorded: the resolver decides;
		// nothing may be rolled back here.
		c.phase, c.outcome = done, Unknown
		return nil
	case d == Commit:
		c.outcome = Committed
		return c.second(OpCommitPrepared, false)
	}
	c.outcome, c.failed = Aborted, ErrAbortedByResolver
	return c.second(OpRollbackPrepared, false)
}

// Finished takes the result of a second-phase action on shard. A failure
// leaves that shard's prepared part to the resolver, which reads the same
// decision; the outcome stands.
func (c *Coordinator) Finished(shard int, err error) []Action {
	if c.phase != finishing {
		return nil
	}
	if c.left--; c.left <= 0 {
		c.phase = done
	}
	return nil
}

// Outcome is what the client is to be told, once Done; err is why it was
// aborted (a shard's prepare error, or ErrAbortedByResolver).
func (c *Coordinator) Outcome() (Outcome, error) { return c.outcome, c.failed }

// Done says the coordinator has nothing left to do. The client may be
// answered once the outcome is no longer Pending, before the second phase
// is done (the decision is durable).
func (c *Coordinator) Done() bool { return c.phase == done }

// Resolve says what to do with belay's prepared transaction found on a
// shard, prepared at preparedAt (pg_prepared_xacts.prepared), given the
// decision recorded for it: carry out a decision; with none, wait while
// the coordinator may still record one (grace after the prepare), then
// record Abort (and, once that write tells the decision, call Resolve
// again with it).
func Resolve(d Decision, preparedAt, now time.Time, grace time.Duration) Op {
	switch d {
	case Commit:
		return OpCommitPrepared
	case Abort:
		return OpRollbackPrepared
	}
	if now.Sub(preparedAt) < grace {
		return 0 // wait
	}
	return OpRecordAbort
}
