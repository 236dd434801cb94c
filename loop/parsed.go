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
// by belay: ParseComplete and ReadyForQuery idle, with no server. The statement is then prepared
// where the client uses it, as every statement is (ensure). This is what
// belay does already when the server it holds has the statement: Postgres
// is not asked again, so a statement whose table was dropped since fails
// when it runs, not when it is prepared.

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
// server, when it is a unit of one named Parse of a known statement and a
// Sync, and nothing else (a PQprepare); it reports whether it did. Anything else (a
// name in use, a statement with effects belay follows, one not known to
// parse, more input behind the Sync) is left to a server.
func (s *session) answerPrepare(c gnet.Conn, data []byte) bool {
	if s.p.live.Load().session || !s.r.empty() || s.t.pending > 0 {
		return false
	}
	parses, synced := 0, false
	for off := 0; off < len(data); {
		typ, bodyLen, bad, ok := s.checkHeader(data[off:])
		if bad != nil || !ok || len(data)-off-5 < bodyLen {
			return false
		}
		end := off + 5 + bodyLen
		switch typ {
		case codec.MsgParse:
			if parses > 0 {
				return false // PQprepare sends one; two of a name would need Postgres's 42P05
			}
			if _, _, ok := s.knownParse(data[off+5 : end]); !ok {
				return false
			}
			parses++
		case codec.MsgSync:
			if end != len(data) || parses == 0 {
				return false
			}
			synced = true
		default:
			return false
		}
		off = end
	}
	if !synced {
		return false
	}
	out := make([]byte, 0, 11)
	for off := 0; off < len(data); {
		_, bodyLen, _, _ := s.checkHeader(data[off:])
		end := off + 5 + bodyLen
		if data[off] == codec.MsgParse {
			m, plan, _ := s.knownParse(data[off+5 : end])
			st := &clientStmt{cname: string(m.Name), eff: plan.Effects}
			st.setText(m, &s.p.stale)
			s.stmts().named[st.cname] = st
			s.noteFunctions(plan)
			out = append(out, codec.MsgParseComplete, 0, 0, 0, 4)
		}
		off = end
	}
	out = append(out, codec.MsgReadyForQuery, 0, 0, 0, 5, codec.TxIdle)
	s.stats.Received(len(data))
	s.in.Consume(c, len(data))
	s.stats.Sent(len(out))
	_, _ = s.write(out)
	return true
}

// knownParse reads a Parse body: ok when it names a statement, the name is
// free, belay follows none of its effects (no SQL PREPARE, SET, view of
// the prepared statements), and it parsed before under the client's
// settings (parsedStmts).
func (s *session) knownParse(body []byte) (m codec.Parse, plan *planner.Plan, ok bool) {
	m, err := codec.ParseParse(body)
	if err != nil || len(m.Name) == 0 {
		return m, nil, false
	}
	if s.ps != nil {
		if _, used := s.ps.named[string(m.Name)]; used {
			return m, nil, false
		}
	}
	plan = s.plan(m.Query)
	if plan.Effects&(sqlStmtEffects|planner.EffPreparedView|planner.EffGUC) != 0 {
		return m, nil, false
	}
	sname := s.p.stale.current(serverStmtName(m.Query, m.ParamOIDs))
	return m, plan, s.p.parsed.has(parsedKey{s.pool, s.sig, sname})
}
