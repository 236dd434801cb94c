package loop

import (
	"context"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Sequences. currval(seq) and lastval() report what nextval last returned
// in the session, and a serial column's default calls nextval, so that
// applications (and older ORMs) read the id an INSERT just made with a
// currval in a later transaction. Under transaction pooling that later
// transaction may land on another server, where currval is not defined
// (55000), or worse, reports another client's nextval.
//
// So belay remembers where a client's last transaction that may have
// advanced a sequence ran (seq: any write, COPY, DDL, CALL, DO, EXECUTE, a
// user function or nextval: planner's EffMayAdvance), and each server counts
// such transactions (poolcore.Server.SeqMark, which the client notes when
// it releases the server). The server reports the client's own values while
// the count has not moved since. Then:
//
//   - a client with sequence state prefers that server whenever it is idle;
//   - a transaction that begins by reading currval or lastval waits for that
//     server if another client holds it (up to seqWait);
//   - a statement that reads them on a server whose sequence state is not
//     the client's gets a DISCARD SEQUENCES of belay's own first, so that
//     Postgres answers 55000 "not yet defined in this session": never
//     another client's value. That happens when another client's
//     transaction that may have advanced a sequence ran on the server in
//     between, when the server closed, or inside a transaction that began
//     on another server.
//
// Clients that never write, or never read currval, pay one pointer test per
// transaction.

// seqWait bounds how long a transaction that begins with currval waits for
// the server holding the client's sequence state.
const seqWait = time.Second

// seqOwn says whether the server the client holds reports the client's own
// sequence values: its transaction advanced one there, or the server is
// where it last did and nobody's has since.
func (s *session) seqOwn() bool {
	return s.seqTouched || (s.seq != nil && s.server == s.seq && s.seq.SeqMark == s.seqMark)
}

// seqRelease notes, as the client lets sc go, that its transaction may have
// advanced a sequence there.
func (s *session) seqRelease(sc *poolcore.Server) {
	if !s.seqTouched {
		return
	}
	s.seqTouched = false
	sc.SeqMark++
	s.seq, s.seqMark = sc, sc.SeqMark
}

// release gives the server back to the pool at the end of the client's
// transaction.
func (s *session) release(sc *poolcore.Server) {
	s.seqRelease(sc)
	s.server = nil
	s.pool.Release(sc)
	s.unitDone()
	s.txBegin = ""
	s.dropParts()
}

// acquire takes a server for the client: the one holding its sequence state
// if that one is idle, else any (nil: it waits).
func (s *session) acquire() *poolcore.Server {
	if s.seq != nil && s.seq.SeqMark == s.seqMark {
		if got, _ := s.pool.AcquireServer(s.loop, s, s.seq, false); got {
			return s.seq
		}
	}
	return s.pool.Acquire(s.loop, s, s.sig)
}

// seqMove is called before a new transaction's first message goes to the
// server the client holds, which is not the one holding its sequence state:
// if that message reads currval or lastval, the client gives its server
// back and takes that one, waiting for it if another client holds it. It
// returns false when the client keeps its server.
func (s *session) seqMove(c gnet.Conn) bool {
	if s.seq == nil || s.seq == s.server || s.seq.SeqMark != s.seqMark || !s.t.idle() || s.t.pinned ||
		!s.readsSequences(s.in.Bytes(c)) {
		return false
	}
	got, waiting := s.pool.AcquireServer(s.loop, s, s.seq, true)
	if !got && !waiting {
		return false
	}
	s.giveBack(s.server)
	if got {
		s.server = s.seq
		return true
	}
	s.waiting, s.waitSeq = true, s.seq
	sc, el := s.seq, s.loop.EventLoop()
	time.AfterFunc(seqWait, func() {
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			if s.waitSeq == sc && !s.done {
				s.stopWaiting()
				s.seq = nil // its values stay out of reach: the statement gets 55000
				s.resumeWork()
			}
			return nil
		}))
	})
	return true
}

// readsSequences says whether the first message of data reads currval or
// lastval without advancing a sequence first.
func (s *session) readsSequences(data []byte) bool {
	typ, bodyLen, err := codec.PeekHeader(data, codec.MaxProtocolMessage)
	if err != nil || len(data) < 5+bodyLen {
		return false
	}
	body := data[5 : 5+bodyLen]
	var eff planner.Effect
	switch typ {
	case codec.MsgQuery:
		q, err := codec.QueryText(body)
		if err != nil {
			return false
		}
		eff = s.plan(q).Effects
	case codec.MsgParse:
		m, err := codec.ParseParse(body)
		if err != nil {
			return false
		}
		eff = s.plan(m.Query).Effects
	case codec.MsgBind:
		m, err := codec.ParseBind(body)
		if err != nil || s.ps == nil {
			return false
		}
		if len(m.Statement) == 0 {
			eff = s.ps.unnamedEff
		} else if st := s.ps.named[string(m.Statement)]; st != nil {
			eff = st.eff
		}
	}
	return reads(eff)
}

// reads says whether a statement with effects eff reads currval or lastval
// that an earlier transaction set.
func reads(eff planner.Effect) bool {
	return eff&planner.EffCurrval != 0 && eff&planner.EffMayAdvance == 0
}

// guardSequences makes sure that a statement with effects eff, about to run
// on the client's server, reports the client's own sequence values or
// Postgres's 55000, never another client's: where the server's state is not
// the client's, it slips in a DISCARD SEQUENCES of belay's own before the
// message at at (quiet: before a Query, whose own Sync the caller adds).
// It returns whether it did.
func (w *rewriter) guardSequences(at int, eff planner.Effect, quiet bool) bool {
	s := w.s
	if !reads(eff) || s.seqOwn() {
		return false
	}
	w.runOwn(at, "DISCARD SEQUENCES", reply{kind: rExecute, own: true, quiet: quiet})
	w.sc.SeqMark++ // whoever had sequence state here lost it
	return true
}

// stopWaiting takes the client off whatever wait for a server it is in.
func (s *session) stopWaiting() {
	if !s.waiting {
		return
	}
	s.waiting = false
	if s.waitSeq != nil {
		s.waitSeq.Unwant(s)
		s.waitSeq = nil
		return
	}
	s.pool.CancelWait(s.loop, s)
}
