package loop

import (
	"context"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Read-your-writes in a cluster (README, "The cluster"). The guarantee: once
// a client's unit of work that ran on the primary and may have written has
// ended, every later read of that client sees it and everything committed
// on the primary before it. belay learns the primary's WAL position at the
// end of such a unit (askLSN, pipelined; learnLSN, a question of its own at
// the release); a read then goes only to a replica known to have replayed
// that far (router.Session.MinLSN), or asked first (verifyReplay), else to
// the primary.

// verifyTries and verifyPause bound the wait of a read for its replica to
// replay the client's last write: up to verifyTries questions, verifyPause
// apart, then the read goes to the primary.
const (
	verifyTries = 8
	verifyPause = time.Millisecond
)

// verifyReplay asks sc, on the replica the client's read was routed to,
// whether it replayed the client's last write, before the read runs there;
// if it did not after verifyTries questions, the read goes to the primary.
// On the loop.
func (s *session) verifyReplay(sc *poolcore.Server) {
	cs := s.cl
	var at ha.LSN
	cs.attempts++
	cs.verifying = true
	sc.ExecRows("SELECT pg_catalog.pg_last_wal_replay_lsn()::text", func(cols [][]byte) {
		if len(cols) == 1 {
			at, _ = ha.ParseLSN(string(cols[0]))
		}
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if s.state == sClosing || s.server != sc {
			cs.verifying = false
			s.giveBack(sc)
			return
		}
		node := cs.node
		if err == nil && at >= cs.verify {
			cs.verify, cs.verifying = 0, false
			for old := node.replayed.Load(); uint64(at) > old && !node.replayed.CompareAndSwap(old, uint64(at)); old = node.replayed.Load() {
			}
			s.resumeWork()
			return
		}
		if err == nil && cs.attempts < verifyTries {
			el := s.loop.EventLoop()
			time.AfterFunc(verifyPause, func() {
				_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
					if !s.done && s.server == sc && cs.verify != 0 {
						s.verifyReplay(sc)
					} else {
						cs.verifying = false
					}
					return nil
				}))
			})
			return
		}
		// Not in time: the primary serves this read.
		cs.verify, cs.toPrimary, cs.verifying = 0, true, false
		node.notReplayed.Add(1)
		s.giveBack(sc)
		s.unitDone()
		s.resumeWork()
	})
}

// lsnSQL asks the primary for its WAL position.
const lsnSQL = "SELECT pg_catalog.pg_current_wal_lsn()::text"

// askLSN slips belay's question for the primary's WAL position in after the
// client's messages up to at, which end an autocommit unit that may have
// written (a Sync or a Query, and no transaction control in it): the server
// answers it right after the client's ReadyForQuery, and is released once
// it did, with no round trip of belay's own. noteLSN reads the answer.
func (w *rewriter) askLSN(at int) {
	w.begin(at)
	w.out = codec.AppendQuery(w.out, lsnSQL)
	w.s.r.push(reply{kind: rQuery, own: true, lsn: true})
	w.s.cl.txWrite = false // asked: nothing to ask at the release
	w.s.cl.lsnOwed = true  // what the client sends next waits for the release
}

// noteLSN reads the DataRow of askLSN's question.
func (s *session) noteLSN(body []byte) {
	cols, err := codec.ParseDataRow(body, nil)
	if err != nil || len(cols) != 1 || cols[0] == nil {
		return
	}
	if l, err := ha.ParseLSN(string(cols[0])); err == nil && l > s.cl.minLSN {
		s.cl.minLSN = l
	}
}

// noteUnit notes what a statement of the client's current unit means for
// askLSN (tx: txControl of its plan), and for a failover (failover.go: a
// transaction control statement of unknown kind was sent).
func (s *session) noteUnit(tx bool) {
	if cs := s.cl; cs != nil && tx {
		cs.unitTx, cs.pendTx, cs.pendUnsure = true, true, true
	}
}

// txControl says whether a plan holds transaction control (BEGIN, COMMIT,
// ...), or what may (EXECUTE, a text that did not parse).
func txControl(plan *planner.Plan) bool {
	if plan.Effects&planner.EffExecute != 0 {
		return true
	}
	for _, st := range plan.Stmts {
		if st.Class == planner.ClassTxControl || st.Class == planner.ClassUnknown {
			return true
		}
	}
	return false
}

// needLSN says the client's transaction that just ended on the primary may
// have written, and its WAL position is to be asked (learnLSN); not while the
// proxy closes its clients as they go idle (they read no more).
func (s *session) needLSN() bool {
	if s.cl == nil || !s.cl.txWrite {
		return false
	}
	if s.p.level.Load() == levelServers {
		s.cl.txWrite = false
		return false
	}
	return true
}

// learnLSN asks sc, the primary, where its WAL is now, after the client's
// transaction that may have written: the client's reads must see that far.
// Then next.
func (s *session) learnLSN(sc *poolcore.Server, next func(sc *poolcore.Server)) {
	cs := s.cl
	cs.txWrite = false
	sc.ExecRows(lsnSQL, func(cols [][]byte) {
		if len(cols) == 1 {
			if l, err := ha.ParseLSN(string(cols[0])); err == nil && l > cs.minLSN {
				cs.minLSN = l
			}
		}
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if err != nil {
			s.p.log.Debug("cannot read the primary's WAL position", "err", err)
		}
		next(sc)
	})
}
