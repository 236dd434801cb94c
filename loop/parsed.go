package loop

import (
	"sync"
	"sync/atomic"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Preparing a known statement without a server.
//
// libpq's PQprepare sends a Parse and a Sync and blocks until they are
// answered; pgbench -M prepared calls it on each connection for each
// command the first time it runs it, in the thread that drives that
// connection and many others. Outside a transaction the Sync needs a
// server, so under transaction pooling a thread whose other clients hold
// every server mid-transaction waits for a server they cannot release
// until the thread sends their next command: pgbench -M prepared's TPC-B
// with more clients than servers stalls for good (PgBouncer's too).
//
// So a unit that only prepares a named statement (a Parse and a Sync)
// that has parsed before on a server of the client's pool under the
// client's settings (the same text, parameter types and session
// signature, by the server-side name they share: stmts.go) is answered
// by belay: ParseComplete and ReadyForQuery idle, with no server. The
// statement is then prepared where the client uses it, as every statement
// is (ensure). This is what belay does already when the server it holds
// has the statement: Postgres is not asked again, so a statement whose
// table was dropped since fails when it runs, not when it is prepared.

// parsedStmts is the statements known to parse: parsedKey → struct{}.
// Shared by the loops: safe for concurrent use.
type parsedStmts struct {
	m sync.Map
	n atomic.Int64 // entries, for the bound
}

// parsedKey is a statement's server-side name in a pool, with the session
// signature it parsed under.
type parsedKey struct {
	pool       *poolcore.Pool
	sig, sname string
}

// maxParsed bounds parsedStmts: past it the set starts again (a statement
// then goes to a server once more before belay answers it alone).
const maxParsed = 1 << 14

func (t *parsedStmts) note(k parsedKey) {
	if _, loaded := t.m.LoadOrStore(k, struct{}{}); !loaded && t.n.Add(1) > maxParsed {
		t.m.Clear()
		t.n.Store(0)
	}
}

func (t *parsedStmts) has(k parsedKey) bool {
	_, ok := t.m.Load(k)
	return ok
}

// noteParsed records that the Parse the server answers now with
// ParseComplete parsed, when it is one of a statement shared by name and
// the server runs under the client's settings.
func (s *session) noteParsed() {
	if e := s.r.head(); e != nil && e.kind == rParse && e.sname != "" && s.server != nil && s.server.AppliedSig == s.sig {
		s.p.parsed.note(parsedKey{s.pool, s.sig, e.sname})
	}
}

// answerPrepare answers data, the client's input while it holds no
// server, starting with a Parse whose body is bodyLen bytes, when it is a
// PQprepare: that one named Parse, of a known statement, and a Sync, and
// nothing else. It reports whether it did. Anything else (a name in use, a
// statement with effects belay follows, one not known to parse, more
// input behind the Sync) is left to a server.
func (s *session) answerPrepare(c gnet.Conn, data []byte, bodyLen int) bool {
	end := 5 + bodyLen
	if len(data) != end+5 || s.p.live.Load().session || !s.r.empty() || s.t.pending > 0 {
		return false
	}
	if typ, syncLen, bad, ok := s.checkHeader(data[end:]); bad != nil || !ok || typ != codec.MsgSync || syncLen != 0 {
		return false
	}
	st, plan := s.knownParse(data[5:end])
	if st == nil {
		return false
	}
	s.stmts().named[st.cname] = st
	s.noteFunctions(plan)
	out := []byte{codec.MsgParseComplete, 0, 0, 0, 4, codec.MsgReadyForQuery, 0, 0, 0, 5, codec.TxIdle}
	s.stats.Received(len(data))
	s.in.Consume(c, len(data))
	s.stats.Sent(len(out))
	_, _ = s.write(out)
	return true
}

// knownParse reads a Parse body and returns the client's statement it
// makes, with its plan, when it names a statement, the name is free,
// belay follows none of its effects (no SQL PREPARE, SET, view of the
// prepared statements), and it parsed before under the client's settings
// (parsedStmts); nil otherwise.
func (s *session) knownParse(body []byte) (*clientStmt, *planner.Plan) {
	m, err := codec.ParseParse(body)
	if err != nil || len(m.Name) == 0 {
		return nil, nil
	}
	if s.ps != nil {
		if _, used := s.ps.named[string(m.Name)]; used {
			return nil, nil
		}
	}
	plan := s.plan(m.Query)
	if plan.Effects&(sqlStmtEffects|planner.EffPreparedView|planner.EffGUC) != 0 {
		return nil, nil
	}
	st := &clientStmt{cname: string(m.Name), eff: plan.Effects}
	st.setText(m, &s.p.stale)
	if !s.p.parsed.has(parsedKey{s.pool, s.sig, st.sname}) {
		return nil, nil
	}
	return st, plan
}
