package twopc

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestGID(t *testing.T) {
	tx := TxID{0xde, 0xad, 0xbe, 0xef, 15: 1}
	g := GID(tx, 3)
	if g != "belay:deadbeef000000000000000000000001:3" {
		t.Fatalf("GID = %q", g)
	}
	if got, shard, ok := ParseGID(g); !ok || got != tx || shard != 3 {
		t.Fatalf("ParseGID(%q) = %v, %d, %v", g, got, shard, ok)
	}
	if len(g) > 200 {
		t.Fatalf("a GID of %d bytes: Postgres takes at most 200", len(g))
	}
	for _, bad := range []string{"", "other:1", "belay:", "belay:xyz:1", "belay:deadbeef000000000000000000000001",
		"belay:deadbeef000000000000000000000001:-1", "belay:deadbeef000000000000000000000001:01", "belay:deadbeef000000000000000000000001:x"} {
		if _, _, ok := ParseGID(bad); ok {
			t.Errorf("ParseGID(%q) accepted", bad)
		}
	}
	for _, d := range []Decision{Commit, Abort} {
		if got, err := ParseDecision(d.String()); err != nil || got != d {
			t.Errorf("ParseDecision(%q) = %v, %v", d, got, err)
		}
	}
}

// TestCoordinatorPaths: every prepare succeeds and Commit is recorded; one
// fails; the record holds a resolver's Abort; the record's write has no
// known outcome.
func TestCoordinatorPaths(t *testing.T) {
	c := NewCoordinator([]int{2, 0, 2})
	if acts := c.Start(); !slices.Equal(acts, []Action{{OpPrepare, 0}, {OpPrepare, 2}}) {
		t.Fatalf("Start: %v", acts)
	}
	if acts := c.Prepared(0, nil); acts != nil {
		t.Fatalf("after one prepare: %v", acts)
	}
	if acts := c.Prepared(2, nil); !slices.Equal(acts, []Action{{OpRecordCommit, -1}}) {
		t.Fatalf("after all prepared: %v", acts)
	}
	if o, _ := c.Outcome(); o != Pending {
		t.Fatalf("outcome before the record: %v", o)
	}
	if acts := c.Recorded(Commit, nil); !slices.Equal(acts, []Action{{OpCommitPrepared, 0}, {OpCommitPrepared, 2}}) {
		t.Fatalf("after Commit recorded: %v", acts)
	}
	if o, _ := c.Outcome(); o != Committed || c.Done() {
		t.Fatalf("outcome %v, done %v", o, c.Done())
	}
	c.Finished(0, nil)
	c.Finished(2, errors.New("down: the resolver finishes it"))
	if !c.Done() {
		t.Fatal("not done after the second phase")
	}

	boom := errors.New("23505")
	c = NewCoordinator([]int{0, 1, 2})
	c.Start()
	c.Prepared(1, boom)
	c.Prepared(0, nil)
	if acts := c.Prepared(2, nil); !slices.Equal(acts, []Action{{OpRollbackPrepared, 0}, {OpRollback, 1}, {OpRollbackPrepared, 2}}) {
		t.Fatalf("after a failed prepare: %v", acts)
	}
	if o, err := c.Outcome(); o != Aborted || err != boom {
		t.Fatalf("outcome %v, %v", o, err)
	}

	c = NewCoordinator([]int{0, 1})
	c.Start()
	c.Prepared(0, nil)
	c.Prepared(1, nil)
	if acts := c.Recorded(Abort, nil); !slices.Equal(acts, []Action{{OpRollbackPrepared, 0}, {OpRollbackPrepared, 1}}) {
		t.Fatalf("after Abort found: %v", acts)
	}
	if o, err := c.Outcome(); o != Aborted || !errors.Is(err, ErrAbortedByResolver) {
		t.Fatalf("outcome %v, %v", o, err)
	}

	c = NewCoordinator([]int{0, 1})
	c.Start()
	c.Prepared(0, nil)
	c.Prepared(1, nil)
	if acts := c.Recorded(None, errors.New("etcd: context deadline exceeded")); acts != nil || !c.Done() {
		t.Fatalf("after an unknown record: %v, done %v", acts, c.Done())
	}
	if o, _ := c.Outcome(); o != Unknown {
		t.Fatalf("outcome %v", o)
	}
}

func TestResolve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	grace := 30 * time.Second
	for _, c := range []struct {
		d    Decision
		age  time.Duration
		want Op
	}{
		{Commit, time.Second, OpCommitPrepared},
		{Abort, time.Second, OpRollbackPrepared},
		{None, time.Second, 0},
		{None, grace, OpRecordAbort},
		{Commit, time.Hour, OpCommitPrepared},
	} {
		if got := Resolve(c.d, t0, t0.Add(c.age), grace); got != c.want {
			t.Errorf("Resolve(%v, age %v) = %v, want %v", c.d, c.age, got, c.want)
		}
	}
}

// shardState is a simulated shard's part of the transaction.
type shardState uint8

const (
	open shardState = iota
	prepared
	committed
	rolledBack
)

// TestAtomicity simulates the protocol over shards that fail to prepare,
// an etcd whose write may be lost or raced by a resolver, and a
// coordinator that may crash after any action; then the sessions end
// (open transactions roll back) and the resolver runs on every shard past
// the grace. Every shard must end committed, or every shard rolled back;
// a client told Committed must find all committed, one told Aborted all
// rolled back.
func TestAtomicity(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range 20000 {
		n := 2 + r.IntN(3)
		shards := make([]int, n)
		st := make(map[int]shardState, n)
		for i := range shards {
			shards[i] = i
			st[i] = open
		}
		var record Decision // etcd
		recordOnce := func(d Decision) Decision {
			if record == None {
				record = d
			}
			return record
		}
		c := NewCoordinator(shards)
		crashAfter := r.IntN(3 * n) // actions carried out before a crash
		if r.IntN(3) == 0 {
			crashAfter = 1 << 30
		}
		done := 0
		queue := c.Start()
		for len(queue) > 0 && done < crashAfter {
			a := queue[0]
			queue = queue[1:]
			done++
			var more []Action
			switch a.Op {
			case OpPrepare:
				var err error
				if r.IntN(4) == 0 {
					err = errors.New("prepare failed")
					st[a.Shard] = rolledBack // a failed PREPARE rolls back
				} else {
					st[a.Shard] = prepared
				}
				more = c.Prepared(a.Shard, err)
			case OpRollback:
				if st[a.Shard] == open {
					st[a.Shard] = rolledBack
				}
				more = c.Finished(a.Shard, nil)
			case OpCommitPrepared:
				if r.IntN(5) == 0 {
					more = c.Finished(a.Shard, errors.New("down"))
					break
				}
				st[a.Shard] = committed
				more = c.Finished(a.Shard, nil)
			case OpRollbackPrepared:
				st[a.Shard] = rolledBack
				more = c.Finished(a.Shard, nil)
			case OpRecordCommit:
				switch r.IntN(4) {
				case 0: // a resolver came first
					recordOnce(Abort)
					more = c.Recorded(recordOnce(Commit), nil)
				case 1: // unknown: written or not
					if r.IntN(2) == 0 {
						recordOnce(Commit)
					}
					more = c.Recorded(None, errors.New("timeout"))
				default:
					more = c.Recorded(recordOnce(Commit), nil)
				}
			default:
				t.Fatalf("run %d: unexpected %v", run, a)
			}
			queue = append(queue, more...)
		}
		outcome, _ := c.Outcome()
		// The sessions end: what is open rolls back.
		for s, v := range st {
			if v == open {
				st[s] = rolledBack
			}
		}
		// The resolver, past the grace.
		t0 := time.Unix(0, 0)
		for s, v := range st {
			if v != prepared {
				continue
			}
			op := Resolve(record, t0, t0.Add(time.Hour), time.Minute)
			if op == OpRecordAbort {
				op = Resolve(recordOnce(Abort), t0, t0.Add(time.Hour), time.Minute)
			}
			switch op {
			case OpCommitPrepared:
				st[s] = committed
			case OpRollbackPrepared:
				st[s] = rolledBack
			default:
				t.Fatalf("run %d: the resolver did %v", run, op)
			}
		}
		var commits, rollbacks int
		for _, v := range st {
			switch v {
			case committed:
				commits++
			case rolledBack:
				rollbacks++
			default:
				t.Fatalf("run %d: a shard left %v", run, v)
			}
		}
		if commits > 0 && rollbacks > 0 {
			t.Fatalf("run %d: %d shards committed, %d rolled back (outcome %v, record %v)", run, commits, rollbacks, outcome, record)
		}
		if outcome == Committed && commits != n || outcome == Aborted && rollbacks != n {
			t.Fatalf("run %d: told %v, %d of %d committed", run, outcome, commits, n)
		}
	}
}
