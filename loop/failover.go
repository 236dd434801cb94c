package loop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/shard"
	"github.com/panjf2000/gnet/v2"
)

// The proxy's side of a failover (issue H): a pause, never a lie.
//
// The hold. From the moment the primary is known lost (a server connection
// to it died, a connection to it failed, its health check said down) until
// the topology publishes a primary of a newer term, a unit of work routed
// to the primary that was not sent yet waits: the client is put on its
// loop's held list with its input unread, and woken on its loop (Execute)
// when the hold ends, to be routed anew, to the new primary. The decision
// is ha.Hold's (pure, one per proxy: the cluster's hold); the proxy's
// ticker feeds it the topology and the primary's health, ends a hold whose
// bound passed, and wakes the loops. A unit that meets an expired hold is
// answered ERROR 57P03 ("the primary is unavailable") and the client keeps
// its connection. Reads keep going to replicas meanwhile. A login that
// comes while a switchover's hold leaves the cluster with no primary waits
// on the held list the same way (holdLogin), rather than failing.
//
// In flight when its server died (serverGone): only what provably never
// reached a server is sent again (a gateway's unit its pooler answered
// FATAL 08001 or 57P03 before anything else: neverSent), and a read-only
// autocommit unit (a read on a replica or on the primary, retryUnit); on
// the primary it waits out the hold first. Otherwise, with every whole
// message of the server's answers forwarded so far, the client is told:
//   - inside a transaction, with no transaction control in flight: ERROR
//     40001 ("the transaction was lost with its server in a failover"),
//     ReadyForQuery 'E', and the session is in a failed transaction that
//     belay plays itself (lostTx): ROLLBACK is answered ROLLBACK, COMMIT
//     ROLLBACK as Postgres does, anything else 25P02, until then;
//   - idle inside a transaction: the same, told at its next statement;
//   - a COMMIT, or any transaction control, or an autocommit statement
//     that may write, whose answer had not come: ERROR 08007
//     (transaction_resolution_unknown), ReadyForQuery 'I', never resent.
//
// A client pinned to its server (session state that cannot move), in a
// COPY, or given part of a message when the server died is closed (FATAL
// 08006) as before: its session cannot be told the truth in-band.
//
// A primary cut off by a partition, or frozen, does not die: its
// connections stay open, silent, and TCP gives up on them only after
// minutes. So when a view of a newer term names another primary, every
// client still holding a server on the old one (work in flight, or a
// transaction open there) has that server abandoned (abandonOld): the
// session is told its server is gone and answers its client as above,
// and the connection is closed. A client still waiting for a server of the
// old primary (its pool's budget taken by the silent servers, or a
// connection being made to it) is taken off that wait and routed again:
// its unit never reached a server. Each loop does this for its own
// sessions, on the loop.

var (
	// errHeld: the unit waits for the hold to end.
	errHeld = errors.New("held for a failover")
	// errPrimaryUnavailable: the hold expired with no new primary.
	errPrimaryUnavailable = errors.New("the primary is unavailable")
	// errPrimaryGone is why a read on the primary is sent again after its
	// server said FATAL.
	errPrimaryGone = errors.New("the primary ended the session")
)

// lostTx is a session whose transaction was lost with its server, or that
// owes the client the end of an extended batch it answered an error to.
// On the session's loop.
type lostTx struct {
	aborted bool // in a failed transaction belay plays until ROLLBACK
	told    bool // the client was told the transaction is lost (40001)
	// skip: belay answered an error for an extended batch whose Sync has
	// not come; what comes up to it is dropped and the Sync answered
	// ReadyForQuery(skipStatus).
	skip       bool
	skipStatus byte
}

// heldSessions are one loop's held clients; the loop's alone.
type heldSessions map[*session]struct{}

// routeNext says what clientData does after routeCluster.
type routeNext uint8

const (
	routeGo    routeNext = iota // the unit is routed: take a server
	routeStop                   // return the action
	routeAgain                  // a unit was answered by belay: look at the next
)

// routeCluster routes the client's next unit of work, whose first message
// starts data, or answers it in the server's stead (a failed transaction,
// an expired hold), or holds it. On the loop, from clientData.
func (s *session) routeCluster(c gnet.Conn, data []byte) (gnet.Action, routeNext) {
	cs := s.cl
	if lt := cs.lost; lt != nil {
		return s.playLost(c, lt)
	}
	if s.deferBegin(c, data) {
		return gnet.None, routeAgain // a sharded cluster's BEGIN waits for its shard (shards.go)
	}
	var refused *shard.Error
	err := s.routeWork(data)
	cs = s.cl // another shard's state, if the unit moved there
	on, spreads := asSpreadOn(err)
	switch {
	case err == nil:
		return gnet.None, routeGo
	case errors.Is(err, errHeld):
		cs.c.held[s.loop.Index()][s] = struct{}{}
		cs.held = true
		return s.boundWaiting(c), routeStop
	case errors.Is(err, errPrimaryUnavailable):
		return s.answerRouted(c, codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.CannotConnectNow,
			Message: "the primary is unavailable: no new primary was published within the failover hold",
			Detail:  fmt.Sprintf("belay held the work for %v (failover_hold).", cs.c.hold.Bound())})
	case spreads:
		if set := s.p.sharding.set.Load(); set != nil {
			serr := s.startSpread(set, data, on)
			if serr == nil {
				return s.boundWaiting(c), routeStop // answered when every shard settled (spread.go)
			}
			if errors.As(serr, &refused) {
				return s.answerRouted(c, codec.ErrorResponse{Severity: "ERROR", Code: refused.Code, Message: refused.Message})
			}
		}
		return s.answerRouted(c, codec.ErrorResponse{Severity: "ERROR", Code: errScatter.Code, Message: errScatter.Message})
	case errors.As(err, &refused):
		// Where the unit cannot run on shards (shards.go).
		return s.answerRouted(c, codec.ErrorResponse{Severity: "ERROR", Code: refused.Code, Message: refused.Message})
	default:
		return s.fatal(fatalf(sqlstate.ConnectionFailure, "belay: %v", err)), routeStop
	}
}

// answerRouted answers a unit that can go nowhere with e, as Postgres
// answers an error outside a transaction; a client whose BEGIN belay
// answered and has not sent (a sharded cluster's, shards.go) is in a
// transaction as it sees it, which the error would abort: it is ended
// (FATAL, e's code), its transaction having run nothing.
func (s *session) answerRouted(c gnet.Conn, e codec.ErrorResponse) (gnet.Action, routeNext) {
	if s.cl.begin != nil {
		e.Severity = "FATAL"
		e.Detail = strings.TrimSpace(e.Detail + " belay ends the connection: its transaction had run nothing.")
		return s.fatal(e), routeStop
	}
	if !s.answerUnit(c, &e, "", 'I') {
		return s.boundWaiting(c), routeStop
	}
	return gnet.None, routeAgain
}

// admitPrimary asks the hold whether a unit of work may go to the primary
// of view v now: nil, errHeld or errPrimaryUnavailable. A primary whose
// health check says down is lost. On the loop (routeWork).
func (s *session) admitPrimary(v *clusterView) error {
	h := s.cl.c.hold
	now := time.Now()
	if v.primary >= 0 {
		if hl := v.nodes[v.primary].health.Current(); hl != nil && !hl.Up {
			s.cl.c.lost(now, v.term, hl.Err)
		}
	}
	switch d, _, _ := h.Admit(now); d {
	case ha.Wait:
		return errHeld
	case ha.Fail:
		return errPrimaryUnavailable
	}
	return nil
}

// lost reports the primary of term lost. Any goroutine.
func (c *cluster) lost(now time.Time, term uint64, why string) {
	if c.hold.Lost(now, term) {
		c.p.log.Warn("the primary is lost: holding its work for a new primary", "term", term, "bound", c.hold.Bound(), "why", why)
		if st, _, _ := c.hold.State(); st == ha.HoldExpired {
			c.wakeHeld()
		}
	}
}

// holdTick feeds the hold the primary's health and the time, and wakes
// the held clients when it says so. From the ticker goroutine (OnTick),
// after apply.
func (c *cluster) holdTick(now time.Time) {
	v := c.view.Load()
	if v == nil {
		return
	}
	wake := false
	if v.primary >= 0 {
		if hl := v.nodes[v.primary].health.Current(); hl != nil {
			if !hl.Up {
				c.lost(now, v.term, hl.Err)
			} else if !hl.InRecovery && c.hold.Recovered(now, v.term, hl.At) { // (back as a standby, it is no primary)
				c.p.log.Info("the lost primary answers again: its held work goes on", "node", v.nodes[v.primary].name, "term", v.term)
				wake = true
			}
		}
	}
	if c.hold.Tick(now) {
		c.p.log.Warn("no new primary within the failover hold: its work fails until one comes", "bound", c.hold.Bound())
		wake = true
	}
	if wake {
		c.wakeHeld()
	}
}

// published tells the hold of a new view, and has the loops abandon the
// servers of an older term's primary that still carry work (abandonOld).
// From apply (under c.mu).
func (c *cluster) published(v *clusterView) {
	if c.hold.Published(time.Now(), v.term, v.primary >= 0) {
		c.p.log.Info("a new primary is published: the held work goes to it", "term", v.term)
		c.wakeHeld()
	}
	if v.primary >= 0 {
		c.abandonOld(v)
	}
}

// abandonOld has each loop abandon its clients' servers on a primary that
// v, of a newer term, no longer names (abandonServer). A primary that died
// closed those connections itself; one cut off by a partition, or frozen,
// answers nothing and resets nothing, and TCP gives up on a connection
// only after minutes: until then its clients would wait for an answer
// that cannot come. Any goroutine (from apply, under c.mu).
func (c *cluster) abandonOld(v *clusterView) {
	primary, term := v.nodes[v.primary].name, v.term
	for i := range c.p.sessions {
		l := c.p.pools.Loop(i)
		if l == nil {
			continue
		}
		_ = l.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			var stale, waiting []*session
			for s := range c.p.sessions[i] {
				switch {
				case s.servesOldPrimary(c, term, primary):
					stale = append(stale, s)
				case s.waitsOnOldPrimary(c, term, primary):
					waiting = append(waiting, s)
				}
				s.abandonParts(c, primary) // its transaction's parts there (xshard.go)
			}
			for _, s := range stale {
				s.abandonServer(term, primary)
			}
			for _, s := range waiting {
				s.rerouteWaiting()
			}
			return nil
		}))
	}
}

// servesOldPrimary says the client holds a server on a node it was routed
// to as an old primary (routedToOldPrimary). On the loop.
func (s *session) servesOldPrimary(c *cluster, term uint64, primary string) bool {
	return s.routedToOldPrimary(c, term, primary) && s.server != nil
}

// waitsOnOldPrimary says the client waits for a server of such a node,
// its unit not begun: in the queue of that node's pool (its budget taken
// by servers a partition made silent) or for a connection to it that will
// not be made. Nothing of the unit reached a server. On the loop.
func (s *session) waitsOnOldPrimary(c *cluster, term uint64, primary string) bool {
	return s.routedToOldPrimary(c, term, primary) && s.server == nil && s.waiting && s.state == sReady
}

// routedToOldPrimary says the client's work was routed to a node of
// cluster c as the primary of a term older than term, which names another
// node primary (terms are a shard's own: another shard's term says nothing
// of c's nodes). On the loop.
func (s *session) routedToOldPrimary(c *cluster, term uint64, primary string) bool {
	cs := s.cl
	return !s.done && cs != nil && cs.c == c && cs.node != nil && cs.node.primary && cs.term < term && cs.node.name != primary
}

// rerouteWaiting takes a client that waits on an old primary
// (waitsOnOldPrimary) off that wait and routes its unit again, to the
// primary now published. On the loop.
func (s *session) rerouteWaiting() {
	s.stopWaiting()
	s.unitDone()
	s.resumeWork()
}

// errAbandoned is why a client's server on an old primary is given up.
var errAbandoned = errors.New("belay gave up the connection: a newer term names another primary")

// abandonServer gives up the client's server on an old primary (see
// abandonOld) as if it had died: the client is answered as serverGone
// says (a read sent again, 08007 for an unknown outcome, 40001 for a
// transaction lost), and the connection is closed. On the loop.
func (s *session) abandonServer(term uint64, primary string) {
	sc := s.server
	if s.cliRemain > 0 {
		sc.Torn() // part of a client's message went to it: no Terminate after it
	}
	s.p.log.Warn("abandoning a server on the old primary", "node", s.cl.node.name, "term", s.cl.term,
		"new_term", term, "new_primary", primary)
	// The session forgets sc first (s.server = nil): the ServerLost that
	// poolcore sends when sc's close is done is then ignored.
	s.ServerLost(sc, fmt.Errorf("%w (%s at term %d)", errAbandoned, primary, term))
	sc.Close()
}

// wakeHeld routes every held client again, each on its loop. Any
// goroutine.
func (c *cluster) wakeHeld() {
	for i := range c.held {
		l := c.p.pools.Loop(i)
		if l == nil {
			continue
		}
		_ = l.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			m := c.held[i]
			if len(m) == 0 {
				return nil
			}
			c.held[i] = heldSessions{}
			for s := range m {
				if f := s.heldLogin; f != nil {
					s.heldLogin = nil
					if !s.done && f() == gnet.Close {
						s.closeClient()
					}
					continue
				}
				if s.cl != nil {
					s.cl.held = false
				}
				if !s.done {
					s.resumeWork()
				}
			}
			return nil
		}))
	}
}

// holdLogin puts a client whose login needs the primary while a
// switchover's hold leaves the cluster without one on its loop's held list:
// its login goes on when the hold ends (wakeHeld), to the new primary, as
// the work of the clients logged in does, and fails as before if the hold
// expires. It returns false when the login need not wait. On the loop.
func (s *session) holdLogin(st *startup, cred poolcore.Credentials) bool {
	c := s.p.cluster
	if c == nil || c.view.Load().primary >= 0 {
		return false
	}
	if d, _, _ := c.hold.Admit(time.Now()); d != ha.Wait {
		return false
	}
	s.heldLogin = func() gnet.Action { return s.authenticated(st, cred) }
	c.held[s.loop.Index()][s] = struct{}{}
	return true
}

// unhold takes the client off its loop's held list. At close.
func (s *session) unhold() {
	if s.heldLogin != nil {
		s.heldLogin = nil
		delete(s.p.cluster.held[s.loop.Index()], s)
	}
	if cs := s.cl; cs != nil && cs.held {
		cs.held = false
		delete(cs.c.held[s.loop.Index()], s)
	}
}

// holdAfter handles a connection to the primary that failed for a client
// whose unit of work has not started: the primary is lost, and the work
// routed again (to wait for the new one). It returns false for everything
// else. From ServerFailed.
func (s *session) holdAfter(err error) bool {
	cs := s.cl
	if cs == nil || cs.node == nil || !cs.node.primary || s.state != sReady || s.server != nil || errors.Is(err, poolcore.ErrQueryWaitTimeout) {
		return false
	}
	var pe *poolcore.PgError
	if errors.As(err, &pe) {
		switch sqlstate.Code(pe.Code) {
		case sqlstate.AdminShutdown, sqlstate.CrashShutdown, sqlstate.CannotConnectNow:
		default:
			return false // the client's own (authentication, a database that does not exist, too many connections)
		}
	}
	s.suspectNode(err.Error())
	cs.c.lost(time.Now(), cs.term, err.Error())
	s.unitDone()
	s.resumeWork()
	return true
}

// nodeGoing reads a server's ErrorResponse in a cluster: errNeverSent when
// a pooler says the client's unit never reached its node (only while none
// of the unit's answers reached the client: unanswered), errReplicaGone
// when the node is going away under a read or on the primary, nil for
// any other error.
func (s *session) nodeGoing(body []byte, unanswered bool) error {
	cs := s.cl
	switch {
	case cs == nil:
		return nil
	case cs.unsent && unanswered && neverSent(body):
		return errNeverSent
	case (cs.armed || cs.node != nil && cs.node.primary) && replicaGone(body):
		return errReplicaGone
	}
	return nil
}

// nodeLost closes sc, whose node is going away or never got the unit
// (nodeGoing says why), and tells the client what became of its work
// (serverGone), or closes the client when it cannot be told. The caller
// has consumed the server's input.
func (s *session) nodeLost(sc *poolcore.Server, why error) {
	s.server = nil
	s.dropParts()
	s.srvDrop = 0
	sc.Close()
	if !s.serverGone(sc, why) {
		s.r.reset()
		s.kill(codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.ConnectionFailure,
			Message: "server closed the connection unexpectedly"})
	}
}

// serverGone handles the loss of the client's server (it closed, broke, or
// said FATAL) in a cluster: a read, or a unit its pooler never sent, is
// sent again (retryUnit), else the client is told what became of its work
// (see the top of this file) and keeps its connection. It returns false when the client must be closed.
// The caller has forgotten the server; s.srvRemain and s.cliRemain are as
// they were when it died.
func (s *session) serverGone(sc *poolcore.Server, err error) bool {
	cs := s.cl
	torn := s.srvRemain > 0 || s.cliRemain > 0
	s.srvRemain, s.cliRemain, s.srvDrop = 0, 0, 0
	node := cs.node
	if node != nil && node.primary {
		s.suspectNode(err.Error())
		cs.c.lost(time.Now(), cs.term, err.Error())
	}
	if errors.Is(err, errReplicaGone) && node != nil && node.primary {
		err = errPrimaryGone
	}
	if !torn && s.retryUnit(err) {
		return true
	}
	if torn || s.state != sReady || s.t.pinned || s.t.copyIn || s.resetting || s.c == nil || node == nil {
		return false
	}
	owed := s.r.clientRFQs()
	inTx := s.t.status != codec.TxIdle // as of the last ReadyForQuery
	// What was in flight may have committed: a COMMIT (or transaction
	// control of unknown kind), or an autocommit statement. It leaves the
	// client outside a transaction only if it is known to end one, or is
	// autocommit; otherwise the client is in a failed transaction, which
	// it must roll back (never told 'I' while it believes it is inside
	// one: its next statements would run on their own).
	maybeCommit := cs.pendEnd || cs.pendUnsure || !inTx && !cs.pendTx
	endsIdle := cs.pendEnd || !inTx && !cs.pendTx
	var first *codec.ErrorResponse
	after := byte(codec.TxIdle)
	switch {
	case owed == 0 && !s.t.openBatch:
		if inTx {
			cs.lost = &lostTx{aborted: true} // told at its next statement
		}
	case maybeCommit:
		first = &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TransactionResolutionUnknown,
			Message: "the server was lost before it answered: whether the transaction committed is unknown",
			Detail:  fmt.Sprintf("The server of node %s closed: %v. belay does not send it again.", node.name, err)}
	default:
		first = &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TRSerializationFailure,
			Message: "the transaction was lost with its server in a failover; retry it",
			Detail:  fmt.Sprintf("The server of node %s closed: %v.", node.name, err)}
	}
	if first != nil && !endsIdle {
		after = codec.TxFailed
		cs.lost = &lostTx{aborted: true, told: true}
	}
	if first != nil {
		b := s.loop.Scratch()
		for i := 0; i < owed; i++ {
			e := first
			if i > 0 && after == codec.TxFailed {
				e = &errInFailedTx
			}
			b = codec.AppendErrorResponse(b, *e)
			b = codec.AppendReadyForQuery(b, after)
		}
		if s.t.openBatch {
			// The batch's Sync is yet to come: its error now, its
			// ReadyForQuery at the Sync.
			e := first
			if owed > 0 && after == codec.TxFailed {
				e = &errInFailedTx
			}
			b = codec.AppendErrorResponse(b, *e)
			if cs.lost == nil {
				cs.lost = &lostTx{}
			}
			cs.lost.skip, cs.lost.skipStatus = true, after
		}
		s.stats.Sent(len(b))
		_, _ = s.write(b)
		s.loop.KeepScratch(b)
	}
	s.p.log.Info("a client's server died under its work", "node", node.name, "answered", owed, "in_transaction", inTx, "err", err)
	s.forgetServerWork(sc)
	s.resumeWork()
	return true
}

// forgetServerWork drops what the session followed of its work on sc,
// which is gone.
func (s *session) forgetServerWork(sc *poolcore.Server) {
	s.r.abandon()
	s.t = newTracker()
	s.unitDone()
	s.cl.pendTx, s.cl.pendEnd, s.cl.pendUnsure = false, false, false
	if s.seq == sc {
		s.seq = nil
	}
	s.waitSeq, s.seqTouched = nil, false
	s.checkState, s.fns = false, s.fns[:0]
	s.qStart, s.xStart = 0, 0
	if s.idleTx != nil {
		s.idleTx.since = time.Time{}
	}
	if sc.Unnamed == s {
		sc.Unnamed = nil
	}
}

// errInFailedTx is Postgres's answer to a statement in a failed transaction.
var errInFailedTx = codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.InFailedSQLTransaction,
	Message: "current transaction is aborted, commands ignored until end of transaction block"}

// clientRFQs counts the ReadyForQuerys owed to the client (its Query,
// FunctionCall and Sync messages not yet answered).
func (r *replies) clientRFQs() int {
	n := 0
	for i := r.h; i < len(r.q); i++ {
		if e := &r.q[i]; !e.own && (e.kind == rSync || e.kind == rQuery) {
			n++
		}
	}
	return n
}

// playLost answers the client's next unit as Postgres would in the state
// lt says, with no server. On the loop.
func (s *session) playLost(c gnet.Conn, lt *lostTx) (gnet.Action, routeNext) {
	data := s.in.Bytes(c)
	if lt.skip {
		// Drop through the batch's Sync.
		for off := 0; off < len(data); {
			typ, bodyLen, err := codec.PeekHeader(data[off:], codec.MaxProtocolMessage)
			if err != nil || len(data)-off < 5+bodyLen {
				s.in.Consume(c, off)
				return s.boundWaiting(c), routeStop
			}
			off += 5 + bodyLen
			if typ == codec.MsgSync {
				s.in.Consume(c, off)
				lt.skip = false
				b := codec.AppendReadyForQuery(s.loop.Scratch(), lt.skipStatus)
				_, _ = s.write(b)
				s.loop.KeepScratch(b)
				s.settleLost()
				return gnet.None, routeAgain
			}
		}
		s.in.Consume(c, len(data))
		return gnet.None, routeStop
	}
	if !lt.aborted {
		s.settleLost()
		return gnet.None, routeAgain
	}
	var ok bool
	switch q := unitQuery(data); {
	case isTxEnd(q, false): // ROLLBACK
		ok = s.answerUnit(c, nil, "ROLLBACK", codec.TxIdle)
		lt.aborted = !ok
	case isTxEnd(q, true) && lt.told: // COMMIT of a failed transaction: Postgres rolls it back
		ok = s.answerUnit(c, nil, "ROLLBACK", codec.TxIdle)
		lt.aborted = !ok
	case isTxEnd(q, true):
		ok = s.answerUnit(c, &errLostTx, "", codec.TxIdle)
		lt.aborted = !ok
	case !lt.told:
		ok = s.answerUnit(c, &errLostTx, "", codec.TxFailed)
		lt.told = ok
	default:
		ok = s.answerUnit(c, &errInFailedTx, "", codec.TxFailed)
	}
	if !ok {
		return s.boundWaiting(c), routeStop
	}
	s.settleLost()
	return gnet.None, routeAgain
}

// settleLost forgets a lostTx with nothing left to play.
func (s *session) settleLost() {
	if lt := s.cl.lost; lt != nil && !lt.aborted && !lt.skip {
		s.cl.lost = nil
	}
}

// errLostTx is what a client learns of its transaction lost while it was
// idle in it, at its next statement.
var errLostTx = codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TRSerializationFailure,
	Message: "the transaction was lost with its server in a failover; retry it"}

// unitQuery is the SQL of a unit that is one simple Query (nil otherwise).
func unitQuery(data []byte) []byte {
	typ, bodyLen, err := codec.PeekHeader(data, codec.MaxProtocolMessage)
	if err != nil || typ != codec.MsgQuery || len(data) < 5+bodyLen {
		return nil
	}
	q, err := codec.QueryText(data[5 : 5+bodyLen])
	if err != nil {
		return nil
	}
	return q
}

// isTxEnd says q is one COMMIT (commit true) or ROLLBACK statement, in
// any of their spellings (END, ABORT, WORK, TRANSACTION, a semicolon).
func isTxEnd(q []byte, commit bool) bool {
	f := bytes.Fields(bytes.ToLower(bytes.TrimRight(bytes.TrimSpace(q), "; \t\r\n")))
	if len(f) == 0 || len(f) > 2 {
		return false
	}
	if len(f) == 2 && string(f[1]) != "work" && string(f[1]) != "transaction" {
		return false
	}
	if commit {
		return string(f[0]) == "commit" || string(f[0]) == "end"
	}
	return string(f[0]) == "rollback" || string(f[0]) == "abort"
}

// answerUnit answers the client's first whole unit of work (a Query or
// FunctionCall, or extended messages through their Sync) in the server's
// stead, and drops it: the error e, or CommandComplete tag, then
// ReadyForQuery status. It returns false (and drops nothing) while the
// unit is not all in.
func (s *session) answerUnit(c gnet.Conn, e *codec.ErrorResponse, tag string, status byte) bool {
	return s.replyUnit(c, answerMsgs(e, tag), status)
}

// answerMsgs appends the error e, or else CommandComplete tag.
func answerMsgs(e *codec.ErrorResponse, tag string) func(b []byte) []byte {
	return func(b []byte) []byte {
		if e != nil {
			return codec.AppendErrorResponse(b, *e)
		}
		return codec.AppendFrame(b, codec.MsgCommandComplete, append([]byte(tag), 0))
	}
}

// replyUnit drops the client's unit of work at the start of its input and
// answers it with what msgs appends, then ReadyForQuery status. It returns
// false (and drops nothing) while the unit is not all in.
func (s *session) replyUnit(c gnet.Conn, msgs func(b []byte) []byte, status byte) bool {
	end := firstUnitEnd(s.in.Bytes(c))
	if end < 0 {
		return false
	}
	s.in.Consume(c, end)
	s.reply(msgs, status)
	return true
}

// reply sends the client what msgs appends, then ReadyForQuery status.
func (s *session) reply(msgs func(b []byte) []byte, status byte) {
	b := msgs(s.loop.Scratch())
	b = codec.AppendReadyForQuery(b, status)
	s.stats.Sent(len(b))
	_, _ = s.write(b)
	s.loop.KeepScratch(b)
}

// noteQueryUnit notes a Query's plan for askLSN (noteUnit) and which
// transaction control it sends, for a failover: pendEnd if one of its
// statements ends the transaction (COMMIT, END, ROLLBACK, ABORT, PREPARE
// TRANSACTION), pendUnsure if one is of unknown kind (EXECUTE, a text
// that did not parse).
func (s *session) noteQueryUnit(plan *planner.Plan, q []byte) {
	cs := s.cl
	if cs == nil || !txControl(plan) {
		return
	}
	cs.unitTx, cs.pendTx = true, true
	if plan.Effects&planner.EffExecute != 0 {
		cs.pendUnsure = true
	}
	for _, st := range plan.Stmts {
		switch st.Class {
		case planner.ClassUnknown:
			cs.pendUnsure = true
		case planner.ClassTxControl:
			if st.Span.Loc < 0 || int(st.Span.End()) > len(q) {
				cs.pendUnsure = true
				continue
			}
			switch txKind(q[st.Span.Loc:st.Span.End()]) {
			case txEnds:
				cs.pendEnd = true
			case txOther:
			default:
				cs.pendUnsure = true
			}
		}
	}
	if len(plan.Stmts) == 0 && plan.Class == planner.ClassUnknown {
		cs.pendUnsure = true
	}
}

// txKind classes a transaction control statement by its first words.
type txClass uint8

const (
	txUnsure txClass = iota
	txEnds           // COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION (not ROLLBACK TO, not COMMIT PREPARED)
	txOther          // BEGIN, START TRANSACTION, SAVEPOINT, RELEASE, ROLLBACK TO
)

func txKind(stmt []byte) txClass {
	f := bytes.Fields(bytes.ToLower(stripComments(stmt)))
	if len(f) == 0 {
		return txUnsure
	}
	switch string(f[0]) {
	case "begin", "start", "savepoint", "release":
		return txOther
	case "commit", "end":
		if len(f) > 1 && string(f[1]) == "prepared" {
			return txUnsure // another transaction's
		}
		return txEnds
	case "rollback", "abort":
		for _, w := range f[1:] {
			if string(w) == "to" {
				return txOther // ROLLBACK TO SAVEPOINT
			}
			if string(w) == "prepared" {
				return txUnsure
			}
		}
		return txEnds
	case "prepare":
		return txEnds // PREPARE TRANSACTION: the transaction ends (prepared)
	}
	return txUnsure
}

// stripComments drops leading comments and white space of a statement.
func stripComments(b []byte) []byte {
	for {
		b = bytes.TrimLeft(b, " \t\r\n\f")
		switch {
		case bytes.HasPrefix(b, []byte("--")):
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				return nil
			}
			b = b[i+1:]
		case bytes.HasPrefix(b, []byte("/*")):
			i := bytes.Index(b, []byte("*/"))
			if i < 0 {
				return nil
			}
			b = b[i+2:]
		default:
			return b
		}
	}
}
