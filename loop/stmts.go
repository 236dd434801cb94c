package loop

import (
	"encoding/hex"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
)

// Prepared statements under transaction pooling.
//
// A client's statements are its own: a name it prepares maps to a
// server-side name, and the statement is prepared, lazily, on whichever
// server the client holds when it uses it. Protocol-level statements are
// named after a 128-bit hash of their text and parameter types, so clients
// preparing the same query share one statement per server; statements of
// SQL PREPARE get a fresh name each (two clients' PREPARE p may differ).
// Each server keeps a bounded set (poolcore.Statements) and belay closes what
// it evicts. The client never sees a server-side name: belay answers a Parse
// the server already knows and a Close itself, drops the answers to what it
// slipped in, and shows the client's names in error messages (replies).

// clientStmt is one prepared statement of a client.
type clientStmt struct {
	sname   string         // its name on servers
	parse   []byte         // a Parse message that prepares it as sname (protocol statements)
	prepare string         // SQL that prepares it as sname (SQL PREPARE)
	eff     planner.Effect // what executing it does to the session
}

// stmtState is a client's prepared statements, allocated on first use.
type stmtState struct {
	named      map[string]*clientStmt
	unnamed    []byte // the Parse message of its unnamed statement
	unnamedEff planner.Effect
	hasUnnamed bool
}

var stmtSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// serverStmtName names a protocol-level statement by its text and parameter
// types: "b" and 32 hex digits of two independent 64-bit hashes (seeded per
// process, as the names live no longer than its server connections).
func serverStmtName(query, types []byte) string {
	var sum [16]byte
	for i, seed := range stmtSeeds {
		var h maphash.Hash
		h.SetSeed(seed)
		_, _ = h.Write(query)
		_ = h.WriteByte(0)
		_, _ = h.Write(types)
		v := h.Sum64()
		for j := 0; j < 8; j++ {
			sum[8*i+j] = byte(v >> (8 * j))
		}
	}
	var b [33]byte
	b[0] = 'b'
	hex.Encode(b[1:], sum[:])
	return string(b[:])
}

func (s *session) stmts() *stmtState {
	if s.ps == nil {
		s.ps = &stmtState{named: make(map[string]*clientStmt)}
	}
	return s.ps
}

// rewriter assembles what forward writes to the server: runs of the client's
// bytes as they came, and messages belay rewrote or slipped in. It copies
// only once something differs.
type rewriter struct {
	data []byte // the client's input
	run  int    // start of the run of client bytes not yet copied to out
	out  []byte // nil while everything is forwarded as it came
	sc   *poolcore.Server
	s    *session
}

// replace drops the client's message data[from:to] and writes what enc
// appends in its place (enc nil: nothing).
func (w *rewriter) replace(from, to int, enc func(dst []byte) []byte) {
	w.begin(from)
	if enc != nil {
		w.out = enc(w.out)
	}
	w.run = to
}

// begin copies the run up to from, so that something can be inserted there.
func (w *rewriter) begin(from int) {
	if w.out == nil {
		w.out = w.s.loop.Scratch()
	}
	w.out = append(w.out, w.data[w.run:from]...)
	w.run = from
}

// bytes is what to write for the client's input up to end.
func (w *rewriter) bytes(end int) []byte {
	if w.out == nil {
		return w.data[:end]
	}
	w.out = append(w.out, w.data[w.run:end]...)
	w.run = end
	return w.out
}

// ensure makes st exist on the server before the message at off: it slips in
// Closes for what the server's set evicts and st's Parse. It reports false
// when st cannot be prepared inside a batch (a SQL PREPARE's statement).
func (w *rewriter) ensure(at int, st *clientStmt) bool {
	sc := w.sc
	if sc.Stmts.Has(st.sname) {
		return true
	}
	if st.parse == nil {
		return false
	}
	w.begin(at)
	w.evict()
	w.out = append(w.out, st.parse...)
	sc.Stmts.Add(st.sname)
	w.s.r.push(reply{kind: rParse, own: true, sname: st.sname})
	return true
}

// evict closes what the server's set must give up before it takes a new name.
func (w *rewriter) evict() {
	for {
		name, ok := w.sc.Stmts.Evict()
		if !ok {
			return
		}
		w.out = codec.AppendClose(w.out, 'S', []byte(name))
		w.s.r.push(reply{kind: rClose, own: true, sname: name})
	}
}

// parse handles a Parse message at data[off:end].
func (w *rewriter) parse(off, end int, m codec.Parse) {
	s, sc := w.s, w.sc
	ps := s.stmts()
	plan := s.plan(m.Query)
	if plan.Effects&planner.EffGUC != 0 {
		s.noteCustom(m.Query)
	}
	if plan.Effects&sqlStmtEffects != 0 {
		// SQL PREPARE, EXECUTE or DEALLOCATE through the extended protocol
		// would reach the server under the client's names: pin the client
		// instead of rewriting it, and reset the server when it leaves.
		s.pin()
		s.pinForever = true
	}
	if len(m.Name) == 0 {
		ps.unnamed = append(ps.unnamed[:0], w.data[off:end]...)
		ps.unnamedEff, ps.hasUnnamed = plan.Effects, true
		sc.Unnamed = s
		s.noteEffects(plan.Effects)
		s.r.push(reply{kind: rParse, unnamed: true})
		return
	}
	if old, ok := ps.named[string(m.Name)]; ok {
		// Postgres refuses a name in use (42P05): so does the server, asked
		// to prepare the old statement's server-side name again. (A SQL
		// PREPARE's statement cannot be prepared inside a batch: then the
		// server refuses a query of belay's own text, 42601, under that name.)
		q := m
		if !w.ensure(off, old) {
			q = codec.Parse{Query: []byte("belay: duplicate prepared statement")}
		}
		q.Name = []byte(old.sname)
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendParse(dst, q) })
		s.r.push(reply{kind: rParse, fix: []string{old.sname, string(m.Name)}})
		return
	}
	name := string(m.Name)
	st := &clientStmt{sname: serverStmtName(m.Query, m.ParamOIDs), eff: plan.Effects}
	st.parse = codec.AppendParse(nil, codec.Parse{Name: []byte(st.sname), Query: m.Query, ParamOIDs: m.ParamOIDs, NumParams: m.NumParams})
	ps.named[name] = st
	if sc.Stmts.Has(st.sname) {
		w.replace(off, end, nil)
		s.r.push(reply{kind: rSynthParse, cname: name, stmt: st})
		return
	}
	w.begin(off)
	w.evict()
	w.replace(off, end, func(dst []byte) []byte { return append(dst, st.parse...) })
	sc.Stmts.Add(st.sname)
	s.r.push(reply{kind: rParse, sname: st.sname, cname: name, stmt: st})
}

// statement resolves the statement a Bind or a Describe names, slipping in
// what the server needs first. It returns the server-side name to use
// (nil: the name as it came) and the names to fix in an error.
func (w *rewriter) statement(off int, name []byte) (sname []byte, fix []string) {
	s, sc := w.s, w.sc
	if len(name) == 0 {
		ps := s.ps
		switch {
		case ps != nil && ps.hasUnnamed && sc.Unnamed != s:
			// Its unnamed statement is on another server, or another client's
			// replaced it here.
			w.begin(off)
			w.out = append(w.out, ps.unnamed...)
			s.r.push(reply{kind: rParse, own: true, unnamed: true})
			sc.Unnamed = s
		case (ps == nil || !ps.hasUnnamed) && sc.Unnamed != nil && sc.Unnamed != s:
			// Another client's unnamed statement: Postgres must answer this
			// client that it has none.
			w.begin(off)
			w.out = codec.AppendClose(w.out, 'S', nil)
			s.r.push(reply{kind: rClose, own: true})
			sc.Unnamed = nil
		}
		if ps != nil && ps.hasUnnamed {
			s.noteEffects(ps.unnamedEff)
		}
		return nil, nil
	}
	if s.ps == nil {
		return nil, nil
	}
	st, ok := s.ps.named[string(name)]
	if !ok {
		return nil, nil // Postgres reports it missing, with the client's name
	}
	s.noteEffects(st.eff)
	if !w.ensure(off, st) {
		fix = []string{st.sname, string(name)}
	}
	return []byte(st.sname), fix
}

// bind handles a Bind at data[off:end].
func (w *rewriter) bind(off, end int, m codec.Bind) {
	sname, fix := w.statement(off, m.Statement)
	if sname != nil {
		m.Statement = sname
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendBind(dst, m) })
	}
	w.s.r.push(reply{kind: rBind, fix: fix})
}

// describe handles a Describe at data[off:end].
func (w *rewriter) describe(off, end int, kind byte, name []byte) {
	if kind != 'S' {
		w.s.r.push(reply{kind: rDescPortal})
		return
	}
	sname, fix := w.statement(off, name)
	if sname != nil {
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendDescribe(dst, 'S', sname) })
	}
	w.s.r.push(reply{kind: rDescStmt, fix: fix})
}

// close handles a Close at data[off:end]. A named statement is the client's
// alone to forget: the server keeps it for whoever prepares it next, and
// belay answers CloseComplete (closing a name that does not exist is no error
// in Postgres either).
func (w *rewriter) close(off, end int, kind byte, name []byte) {
	s := w.s
	if kind == 'S' && len(name) > 0 {
		if s.ps != nil {
			delete(s.ps.named, string(name))
		}
		w.replace(off, end, nil)
		s.r.push(reply{kind: rSynthClose})
		return
	}
	if kind == 'S' {
		if s.ps != nil {
			s.ps.hasUnnamed = false
		}
		w.sc.Unnamed = nil
	}
	s.r.push(reply{kind: rClose})
}

// undo takes back what a failed or skipped message was to create.
func (s *session) undo(e *reply) {
	sc := s.server
	switch e.kind {
	case rParse:
		if e.sname != "" && sc != nil {
			sc.Stmts.Remove(e.sname)
		}
		if e.unnamed && sc != nil {
			sc.Unnamed = nil
			if !e.own && s.ps != nil {
				s.ps.hasUnnamed = false
			}
		}
		fallthrough
	case rSynthParse:
		if e.cname != "" && s.ps != nil && s.ps.named[e.cname] == e.stmt {
			delete(s.ps.named, e.cname)
		}
	case rClose:
		if e.own && e.sname != "" && sc != nil {
			sc.Stmts.Add(e.sname) // the Close was skipped: still prepared
		}
	}
}

// fixError rewrites the names in an ErrorResponse body (pairs of server-side
// and client names) and returns the whole message.
func fixError(dst, body []byte, fix []string) []byte {
	f, err := codec.ParseErrorFields(body)
	if err != nil {
		return codec.AppendFrame(dst, codec.MsgErrorResponse, body)
	}
	msg := string(f.Message)
	for i := 0; i+1 < len(fix); i += 2 {
		msg = strings.ReplaceAll(msg, `"`+fix[i]+`"`, `"`+fix[i+1]+`"`)
	}
	e := codec.ErrorResponse{Severity: string(f.Severity), Code: sqlstate.Code(f.Code), Message: msg,
		Detail: string(f.Detail), Hint: string(f.Hint)}
	return codec.AppendErrorResponse(dst, e)
}

// --- SQL PREPARE, EXECUTE, DEALLOCATE and DISCARD ALL ------------------------

const sqlStmtEffects = planner.EffPrepare | planner.EffExecute | planner.EffDeallocate |
	planner.EffDeallocateAll | planner.EffDiscardAll

// sqlQuery handles a Query whose statements use prepared statements by name
// or drop them. It returns the rewritten Query message (nil: forward as it
// came), or, in missing, a statement the server must prepare first: the
// caller prepares it with belay's own query and handles the Query again.
func (s *session) sqlQuery(q []byte, tried *clientStmt) (msg []byte, missing *clientStmt, e reply) {
	e = reply{kind: rQuery}
	p := planner.Parse(string(q))
	if p.Err != nil {
		return nil, nil, e
	}
	ps := s.stmts()
	sc := s.server
	// This Query's view of the client's names, as its statements change it.
	view := make(map[string]*clientStmt, len(ps.named))
	for k, v := range ps.named {
		view[k] = v
	}
	known := func(st *clientStmt) bool { return st == tried || sc.Stmts.Has(st.sname) }
	// First: does the server lack a statement this Query uses?
	for _, st := range p.Stmts {
		switch {
		case st.Effects&planner.EffDeallocateAll != 0, st.Effects&planner.EffDiscardAll != 0:
			clear(view)
		case st.Effects&planner.EffPrepare != 0:
			if old := view[st.Name]; old != nil && old.sname != "" && !known(old) {
				return nil, old, e
			}
			view[st.Name] = &clientStmt{}
		case st.Effects&(planner.EffExecute|planner.EffDeallocate) != 0:
			if old := view[st.Name]; old != nil && old.sname != "" && !known(old) {
				return nil, old, e
			}
			if st.Effects&planner.EffDeallocate != 0 {
				delete(view, st.Name)
			}
		}
	}
	clear(view)
	for k, v := range ps.named {
		view[k] = v
	}
	var b strings.Builder
	last := 0
	rename := func(span planner.Span, name string) {
		b.Write(q[last:span.Loc])
		b.WriteString(name)
		last = int(span.Loc + span.Len)
	}
	for i, st := range p.Stmts {
		switch {
		case st.Effects&planner.EffPrepare != 0:
			if old := view[st.Name]; old != nil {
				rename(st.NameSpan, old.sname) // Postgres's 42P05, shown with the client's name
				e.fix = append(e.fix, old.sname, st.Name)
				continue
			}
			name := "s" + strconv.FormatUint(s.p.stmtSeq.Add(1), 10)
			end := int(st.Span.Loc + st.Span.Len)
			ns := &clientStmt{sname: name, prepare: "PREPARE " + name + string(q[st.NameSpan.Loc+st.NameSpan.Len:end]),
				eff: st.Effects &^ planner.EffPrepare} // what its body does, when executed
			rename(st.NameSpan, name)
			view[st.Name] = ns
			cname := st.Name
			e.conf = append(e.conf, confirm{i, func() { ps.named[cname] = ns; sc.Stmts.Add(name) }})
		case st.Effects&planner.EffExecute != 0:
			if old := view[st.Name]; old != nil {
				rename(st.NameSpan, old.sname)
				e.fix = append(e.fix, old.sname, st.Name)
				s.noteEffects(old.eff)
			}
		case st.Effects&planner.EffDeallocate != 0:
			if old := view[st.Name]; old != nil {
				rename(st.NameSpan, old.sname)
				e.fix = append(e.fix, old.sname, st.Name)
				delete(view, st.Name)
				cname := st.Name
				e.conf = append(e.conf, confirm{i, func() {
					if ps.named[cname] == old {
						delete(ps.named, cname)
					}
					sc.Stmts.Remove(old.sname)
				}})
			}
		case st.Effects&planner.EffDeallocateAll != 0:
			clear(view)
			e.conf = append(e.conf, confirm{i, func() { clear(ps.named); sc.Stmts.Reset() }})
		case st.Effects&planner.EffDiscardAll != 0:
			clear(view)
			e.conf = append(e.conf, confirm{i, func() { s.discarded(sc) }})
		}
	}
	if last == 0 {
		return nil, nil, e
	}
	b.Write(q[last:])
	return codec.AppendQuery(nil, b.String()), nil, e
}

// discarded follows a client's DISCARD ALL: it holds no prepared statement,
// no session setting but its startup parameters, and nothing that pins it.
// The server lost belay's statements and the client's parameters with it.
func (s *session) discarded(sc *poolcore.Server) {
	if s.ps != nil {
		clear(s.ps.named)
		s.ps.hasUnnamed = false
	}
	sc.Stmts.Reset()
	sc.Unnamed = nil
	sc.AppliedSig = ""
	s.resetSettings()
	s.unpin()
}
