package loop

import (
	"bytes"
	"encoding/hex"
	"hash/maphash"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
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
	sname   string // its name on servers
	snameB  []byte // the same, for the messages that carry it
	parse   []byte // a Parse message that prepares it as sname (protocol statements)
	prepare string // SQL that prepares it as sname (SQL PREPARE)
	cname   string // the client's name for it
	text    string // a SQL PREPARE's: the client's whole text (pg_prepared_statements shows it)
	// readOnly: a replica could run it (the planner's ReplicaOK); hint: the
	// route a leading comment of its text asks for (cluster.go).
	readOnly bool
	hint     router.Route
	tx       bool // txControl of its plan
	// plan and sql: its plan and text, for a sharded cluster's router
	// (shards.go), set in any cluster (one may become sharded while the
	// client keeps its statements).
	plan *planner.Plan
	sql  []byte
	view bool           // its text reads pg_prepared_statements: mapped again at each use
	eff  planner.Effect // what executing it does to the session
	deps []*clientStmt  // the statements its text EXECUTEs (nil: unknown name), as mapped
	refs []string       // the names its text EXECUTEs
	// With deps: the Parse as the client sent it. EXECUTE finds its
	// statement by name when it runs, so when the client's names point
	// elsewhere (DEALLOCATE p; PREPARE p AS ...) the text is mapped again.
	orig *codec.Parse
	// What running it does to the client's names, for a SQL PREPARE,
	// DEALLOCATE or DISCARD ALL sent through Parse: early (a PREPARE) when
	// the Execute goes out, so that what follows in the same batch sees the
	// name, returning its undo should the Execute fail; exec (the others)
	// when Postgres reports it complete.
	early func() (undo func())
	exec  func()
	// fix shows errors of a Bind or Describe of it with the client's name;
	// execFix errors of running it (a text belay rewrote, a SQL PREPARE or
	// DEALLOCATE through Parse): nil when nothing needs fixing.
	fix, execFix *errFix
}

// stmtState is a client's prepared statements, allocated on first use.
type stmtState struct {
	named       map[string]*clientStmt
	unnamed     []byte // the Parse message of its unnamed statement
	unnamedEff  planner.Effect
	unnamedDeps []*clientStmt
	unnamedRun  *clientStmt // its exec and execFix, if it has them
	unnamedView bool        // its text reads pg_prepared_statements
	// unnamedReadOnly and unnamedHint: clientStmt's readOnly and hint.
	unnamedReadOnly bool
	unnamedHint     router.Route
	unnamedTx       bool
	unnamedPlan     *planner.Plan // in a cluster: its plan and text (clientStmt's plan and sql)
	unnamedSQL      []byte
	hasUnnamed      bool
	// portals maps the portals whose statement has an exec to it (nil
	// until there is one).
	portals map[string]*clientStmt
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

// ensure makes st exist on the server before the message at off: it slips
// in Closes for what the server's set evicts and st's Parse, or for a SQL
// PREPARE's statement, its PREPARE run through a portal of belay's own
// (which works inside a client's batch and leaves the client's unnamed
// statement and portal alone). quiet marks what goes before a client's
// Query: errors there are not shown.
func (w *rewriter) ensure(at int, st *clientStmt, quiet bool) {
	w.ensureAll(at, st.deps, quiet)
	sc := w.sc
	if sc.Stmts.Has(st.sname) {
		return
	}
	w.begin(at)
	w.evict(quiet)
	w.add(st.sname, quiet)
	if st.parse != nil {
		w.out = append(w.out, st.parse...)
		w.s.r.push(reply{kind: rParse, own: true, quiet: quiet, sname: st.sname})
		return
	}
	w.runOwn(at, st.prepare, reply{kind: rExecute, own: true, quiet: quiet, sname: st.sname, fix: st.fix})
}

// runOwn slips in sql before the message at at, run through a statement and
// portal of belay's own, which works inside a client's batch and leaves the
// client's unnamed statement and portal alone; exec is the reply entry of
// its Execute (own; quiet before a Query).
func (w *rewriter) runOwn(at int, sql string, exec reply) {
	w.begin(at)
	// Closing first makes it idempotent: an earlier run may have failed
	// before its statement was closed.
	w.out = codec.AppendClose(w.out, 'S', ownName)
	w.out = codec.AppendClose(w.out, 'P', ownName)
	w.out = codec.AppendParse(w.out, codec.Parse{Name: ownName, Query: []byte(sql)})
	w.out = codec.AppendBind(w.out, codec.Bind{Portal: ownName, Statement: ownName, Rest: noParams})
	w.out = codec.AppendExecute(w.out, ownName, 0)
	for _, k := range []replyKind{rClose, rClose, rParse, rBind} {
		w.s.r.push(reply{kind: k, own: true, quiet: exec.quiet})
	}
	w.s.r.push(exec)
}

// ownSync ends what belay slipped in before a client's Query with a Sync of
// its own, quietly: an error there is not shown (the client's statement then
// fails on its own).
func (w *rewriter) ownSync() {
	w.out = codec.AppendSync(w.out)
	w.s.r.push(reply{kind: rSync, own: true, quiet: true})
}

// ensureAll ensures each statement of list (nil entries skipped).
func (w *rewriter) ensureAll(at int, list []*clientStmt, quiet bool) {
	for _, d := range list {
		if d != nil {
			w.ensure(at, d, quiet)
		}
	}
}

// ownName names the statement and portal through which belay runs a SQL
// PREPARE of its own.
var ownName = []byte("belay.prepare")

// noParams is the rest of a Bind without parameters or result formats.
var noParams = []byte{0, 0, 0, 0, 0, 0}

// evict closes what the server's set must give up before it takes a new name.
func (w *rewriter) evict(quiet bool) {
	for {
		name, ok := w.sc.Stmts.Evict()
		if !ok {
			return
		}
		w.out = codec.AppendClose(w.out, 'S', []byte(name))
		w.s.r.push(reply{kind: rClose, own: true, quiet: quiet, sname: name})
	}
}

// add records name as prepared on the server, about to be: a name whose
// state there was unknown (poolcore.Statements.Forget) is closed first,
// which Postgres does without complaint for a name it lacks.
func (w *rewriter) add(name string, quiet bool) {
	if w.sc.Stmts.Add(name) {
		w.out = codec.AppendClose(w.out, 'S', []byte(name))
		w.s.r.push(reply{kind: rClose, own: true, quiet: quiet, sname: name, unsure: true})
	}
}

// unsettle follows a client that left with answers still owed by sc:
// whatever a Parse or Close not yet answered was to do to a statement may
// or may not have happened (the drain that follows cancels what runs), and
// nor may a client's DEALLOCATE ALL or DISCARD ALL. Such names become
// unsure, and an unknown effect has the server reset when it returns to
// the pool.
func (s *session) unsettle(sc *poolcore.Server) {
	for i := s.r.h; i < len(s.r.q); i++ {
		e := &s.r.q[i]
		switch {
		case e.sname != "" && (e.kind == rParse || e.own && (e.kind == rClose || e.kind == rExecute)):
			forget(sc, e.sname)
		case len(e.conf) > 0:
			sc.Dirty = true
		}
	}
}

// forget makes name unsure on sc; past the bound of unsure names the
// server is reset when released.
func forget(sc *poolcore.Server, name string) {
	if sc.Stmts.Forget(name) {
		sc.Dirty = true
	}
}

// parse handles a Parse message at data[off:end].
func (w *rewriter) parse(off, end int, m codec.Parse) {
	s, sc := w.s, w.sc
	ps := s.stmts()
	plan := s.plan(m.Query)
	planned := m.Query // the text plan is of (m.Query may be rewritten below)
	s.noteFunctions(plan)
	if plan.Effects&planner.EffGUC != 0 {
		s.noteCustom(m.Query)
	}
	var deps []*clientStmt
	var refs []string
	var orig *codec.Parse
	var run *clientStmt // exec and execFix of a SQL PREPARE, DEALLOCATE or DISCARD ALL, or of a text rewritten
	view := plan.Effects&planner.EffPreparedView != 0
	if plan.Effects&sqlStmtEffects&^planner.EffExecute != 0 {
		var q []byte
		if q, run = w.sqlThroughParse(off, m.Query); run != nil && q != nil {
			m.Query = q
			if len(m.Name) == 0 {
				w.replace(off, end, func(dst []byte) []byte { return codec.AppendParse(dst, m) })
			}
		}
	} else if plan.Effects&(sqlStmtEffects|planner.EffPreparedView) != 0 {
		var fix *errFix
		o := codec.Parse{Query: bytes.Clone(m.Query), ParamOIDs: bytes.Clone(m.ParamOIDs), NumParams: m.NumParams}
		m.Query, refs, deps, fix = s.mapText(m.Query)
		if refs != nil || view {
			orig = &o
		}
		if view {
			w.ensureNamed(off, false)
		}
		if fix != nil {
			run = &clientStmt{execFix: fix}
			w.ensureAll(off, deps, false)
			// The text changed: the Parse is re-encoded below (named) or
			// here (unnamed).
			if len(m.Name) == 0 {
				w.replace(off, end, func(dst []byte) []byte { return codec.AppendParse(dst, m) })
			}
		}
	}
	var parseFix *errFix // its errors are about the text sent
	if run != nil {
		parseFix = run.execFix
	}
	if len(m.Name) == 0 {
		ps.unnamed = codec.AppendParse(ps.unnamed[:0], m)
		ps.unnamedEff, ps.unnamedDeps, ps.unnamedRun, ps.unnamedView, ps.hasUnnamed = plan.Effects, deps, run, view, true
		if s.cl != nil {
			w := workOf(plan, m.Query)
			ps.unnamedReadOnly, ps.unnamedHint, ps.unnamedTx = w.ReadOnly, w.Hint, txControl(plan)
			ps.unnamedPlan, ps.unnamedSQL = plan, append(ps.unnamedSQL[:0], planned...)
		}
		sc.Unnamed = s
		s.noteEffects(plan.Effects)
		s.r.push(reply{kind: rParse, unnamed: true, fix: parseFix})
		return
	}
	name := string(m.Name)
	if old, ok := ps.named[name]; ok {
		// Postgres refuses a name in use (42P05): so does the server, asked
		// to prepare the old statement's server-side name again.
		w.ensure(off, old, false)
		q := m
		q.Name = []byte(old.sname)
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendParse(dst, q) })
		s.r.push(reply{kind: rParse, fix: old.fix})
		return
	}
	st := &clientStmt{cname: name, eff: plan.Effects, deps: deps, refs: refs, orig: orig, view: view}
	if s.cl != nil {
		w := workOf(plan, m.Query)
		st.readOnly, st.hint, st.tx = w.ReadOnly, w.Hint, txControl(plan)
		st.plan, st.sql = plan, append([]byte(nil), planned...)
	}
	if run != nil {
		st.early, st.exec, st.execFix = run.early, run.exec, run.execFix
	}
	st.setText(m, &s.p.stale)
	ps.named[name] = st
	if sc.Stmts.Has(st.sname) {
		w.replace(off, end, nil)
		s.r.push(reply{kind: rSynthParse, cname: name, stmt: st})
		return
	}
	w.begin(off)
	w.evict(false)
	w.add(st.sname, false)
	w.replace(off, end, func(dst []byte) []byte { return append(dst, st.parse...) })
	s.r.push(reply{kind: rParse, sname: st.sname, cname: name, stmt: st, fix: withName(parseFix, st)})
}

// Schema changes. Postgres keeps a protocol-level statement's result type
// fixed: after ALTER TABLE changes what `SELECT *` returns, or a type is
// dropped and created again under its name, using the statement fails
// (0A000 "cached plan must not change result type", XX000 "cache lookup
// failed for type N"), and a client that prepares the same text again gets
// a new plan. Statements shared by content would answer that new Parse from
// the stale one, on every server that has it. So when a Bind or Describe of
// a shared statement fails so, its name moves to a new generation (the
// hash name with "_N"): whoever prepares the text from then on gets a
// statement made after the change, on whichever server it lands, and
// clients still holding the old statement get the error where the server
// has it, as they would directly (and a fresh plan where belay prepares it
// again). The old statements age out of the servers' sets.

// staleStmts maps the hash names that went stale to their current
// generation. Safe for concurrent use: each Parse of a named statement
// reads it (one atomic load while nothing ever went stale), an error
// writes it.
type staleStmts struct {
	any atomic.Bool  // something went stale: look names up
	mu  sync.RWMutex // guards gen
	gen map[string]uint32
}

// maxStale bounds staleStmts: past it the generations start again (a
// statement still stale somewhere then fails once more and moves on).
const maxStale = 1 << 16

// current is the name under which base (a serverStmtName) is prepared now.
func (t *staleStmts) current(base string) string {
	if !t.any.Load() {
		return base
	}
	t.mu.RLock()
	g := t.gen[base]
	t.mu.RUnlock()
	if g == 0 {
		return base
	}
	return base + "_" + strconv.FormatUint(uint64(g), 10)
}

// outdated records that the statement named sname (a current() name)
// failed as stale: the next Parse of its text gets a new generation,
// unless another client's error did it already.
func (t *staleStmts) outdated(sname string) {
	base, g := sname, uint64(0)
	if i := strings.IndexByte(sname, '_'); i >= 0 {
		base = sname[:i]
		g, _ = strconv.ParseUint(sname[i+1:], 10, 32)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen == nil || len(t.gen) >= maxStale {
		t.gen = make(map[string]uint32)
	}
	if uint64(t.gen[base]) == g {
		t.gen[base] = uint32(g) + 1
	}
	t.any.Store(true)
}

// staleCodes are the errors of a statement whose plan a schema change
// outdated.
func staleCode(c sqlstate.Code) bool {
	return c == sqlstate.FeatureNotSupported || c == sqlstate.InternalError
}

// noteStale looks at an error the server sends for the reply at the head:
// a Bind or Describe of a shared statement that failed as stale outdates
// its name.
func (s *session) noteStale(body []byte) {
	e := s.r.head()
	if e == nil || e.stmt == nil || (e.kind != rBind && e.kind != rDescStmt) {
		return
	}
	if f, err := codec.ParseErrorFields(body); err == nil && staleCode(sqlstate.Code(f.Code)) {
		s.p.stale.outdated(e.stmt.sname)
		s.p.log.Info("a prepared statement's plan went stale; preparing it again from now on",
			"pool", s.key, "statement", e.stmt.sname, "code", string(f.Code))
	}
}

// setText makes m's text (mapped) what st prepares on servers, under the
// name of its current generation (staleStmts).
func (st *clientStmt) setText(m codec.Parse, stale *staleStmts) {
	st.sname = stale.current(serverStmtName(m.Query, m.ParamOIDs))
	st.snameB = []byte(st.sname)
	m.Name = st.snameB
	st.parse = codec.AppendParse(nil, m)
	st.fix = nameFix(st.sname, st.cname)
}

// withName is fix that also shows st's server-side name as the client's.
func withName(fix *errFix, st *clientStmt) *errFix {
	if fix == nil {
		return st.fix
	}
	return &errFix{names: append(append([]string(nil), st.fix.names...), fix.names...), edits: fix.edits}
}

// remap maps the text of a statement that EXECUTEs others again if the
// client's names point elsewhere now.
func (s *session) remap(st *clientStmt) {
	if st.orig == nil {
		return
	}
	same := !st.view // the client's statements are in its text
	for i, n := range st.refs {
		if s.ps.named[n] != st.deps[i] {
			same = false
		}
	}
	if same {
		return
	}
	m := *st.orig
	var fix *errFix
	m.Query, st.refs, st.deps, fix = s.mapText(m.Query)
	if st.view {
		if cur, err := codec.ParseParse(st.parse[5:]); err == nil && bytes.Equal(cur.Query, m.Query) {
			return
		}
	}
	st.execFix = fix
	st.setText(m, &s.p.stale)
}

// mapText maps a Parse's text: the names of SQL EXECUTE statements in it
// (pgx sends `EXECUTE p(1)` that way) and the view pg_prepared_statements.
// It returns the text, the names it executes and the statements they are
// now (nil for a name the client does not have: Postgres reports it), and
// how to fix errors about the text (nil: it did not change).
func (s *session) mapText(q []byte) (_ []byte, refs []string, deps []*clientStmt, fix *errFix) {
	p := planner.Parse(string(q))
	var reps []replacement
	for _, st := range p.Stmts {
		if st.Effects&planner.EffExecute == 0 {
			continue
		}
		var old *clientStmt
		if s.ps != nil {
			old = s.ps.named[st.Name]
		}
		refs, deps = append(refs, st.Name), append(deps, old)
		if old == nil {
			continue
		}
		reps = append(reps, replacement{st.NameSpan, old.sname, st.Name})
		s.noteEffects(old.eff)
	}
	reps = s.viewReplacements(reps, p.PreparedViews)
	if t, fix := splice(q, reps); t != nil {
		return t, refs, deps, fix
	}
	return q, refs, deps, nil
}

// sqlThroughParse maps a SQL PREPARE, DEALLOCATE or DISCARD ALL sent
// through Parse (psycopg 3 and JDBC send every statement so): it returns the
// mapped text (nil: as it came) and, in run, what executing it does to the
// client's names, applied when Postgres reports it complete. The names are
// mapped as they are when the Parse comes: a named statement run again later
// acts on the same names. A text with other statements as well is followed
// no further: it pins the client for good (its server is reset when it
// leaves), and Postgres refuses several statements in one Parse anyway.
func (w *rewriter) sqlThroughParse(off int, q []byte) (mapped []byte, run *clientStmt) {
	s := w.s
	ps := s.stmts()
	p := planner.Parse(string(q))
	if p.Err != nil || len(p.Stmts) != 1 {
		s.pin()
		s.pinForever = true
		return nil, nil
	}
	st := p.Stmts[0]
	rename := func(sname string) []byte {
		var text []byte
		text, run.execFix = splice(q, []replacement{{st.NameSpan, sname, st.Name}})
		return text
	}
	run = &clientStmt{}
	old := ps.named[st.Name]
	switch {
	case st.Effects&planner.EffPrepare != 0 && old != nil:
		w.ensure(off, old, false)
		return rename(old.sname), run // Postgres's 42P05, shown with the client's name
	case st.Effects&planner.EffPrepare != 0:
		ns := s.sqlStmt(st, q)
		run.early = func() func() {
			sc := s.server
			prev := ps.named[ns.cname]
			s.prepared(ns)
			return func() {
				if ps.named[ns.cname] == ns {
					if prev != nil {
						ps.named[ns.cname] = prev
					} else {
						delete(ps.named, ns.cname)
					}
				}
				sc.Stmts.Remove(ns.sname)
			}
		}
		return rename(ns.sname), run
	case st.Effects&planner.EffDeallocate != 0 && old != nil:
		w.ensure(off, old, false)
		run.exec = s.onDeallocate(st.Name, old)
		return rename(old.sname), run
	case st.Effects&planner.EffDeallocateAll != 0:
		run.exec = s.onDeallocateAll
	case st.Effects&planner.EffDiscardAll != 0:
		run.exec = s.onDiscardAll
	}
	return nil, run
}

// statement resolves the statement a Bind or a Describe names, slipping in
// what the server needs first. It returns the server-side name to use
// (nil: the name as it came) and what the client has of the statement (nil:
// nothing, or an unnamed statement with no SQL of its own to follow).
func (w *rewriter) statement(off int, name []byte) (sname []byte, st *clientStmt) {
	s, sc := w.s, w.sc
	if len(name) == 0 {
		ps := s.ps
		if ps != nil && ps.hasUnnamed {
			w.ensureAll(off, ps.unnamedDeps, false)
			if ps.unnamedView {
				w.ensureNamed(off, false)
			}
			s.noteEffects(ps.unnamedEff)
		}
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
			return nil, ps.unnamedRun
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
	s.remap(st)
	if st.view {
		w.ensureNamed(off, false)
	}
	w.ensure(off, st, false)
	if st.snameB == nil {
		st.snameB = []byte(st.sname)
	}
	return st.snameB, st
}

// bind handles a Bind at data[off:end].
func (w *rewriter) bind(off, end int, m codec.Bind) {
	sname, st := w.statement(off, m.Statement)
	if ps := w.s.ps; ps != nil {
		if sname != nil {
			w.guardSequences(off, st.eff, false)
			w.s.noteUnit(st.tx)
		} else if len(m.Statement) == 0 && ps.hasUnnamed {
			w.guardSequences(off, ps.unnamedEff, false)
			w.s.noteUnit(ps.unnamedTx)
		}
	}
	w.s.notePortal(m.Portal, st)
	e := reply{kind: rBind}
	if sname != nil {
		m.Statement = sname
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendBind(dst, m) })
		e.fix = st.fix
		if st.parse != nil {
			e.stmt = st // shared by content: it may go stale (noteStale)
		}
	}
	w.s.r.push(e)
}

// notePortal remembers which portals run a statement with something to
// follow when it runs (only once there is one: the map is nil otherwise).
func (s *session) notePortal(portal []byte, st *clientStmt) {
	ps := s.ps
	if ps == nil {
		return
	}
	if st == nil || (st.exec == nil && st.early == nil && st.execFix == nil) {
		if ps.portals != nil {
			delete(ps.portals, string(portal))
		}
		return
	}
	if ps.portals == nil {
		ps.portals = make(map[string]*clientStmt)
	}
	ps.portals[string(portal)] = st
}

// execute handles an Execute: the effect of the statement its portal runs
// takes hold when Postgres reports it complete.
func (s *session) execute(body []byte) reply {
	e := reply{kind: rExecute}
	if s.ps == nil || s.ps.portals == nil {
		return e
	}
	portal, _, err := codec.ParseExecute(body)
	if err != nil {
		return e
	}
	if st := s.ps.portals[string(portal)]; st != nil {
		e.fix = st.execFix
		if st.exec != nil {
			e.conf = []confirm{{0, st.exec}}
		}
		if st.early != nil {
			e.unexec = st.early()
		}
	}
	return e
}

// describe handles a Describe at data[off:end].
func (w *rewriter) describe(off, end int, kind byte, name []byte) {
	if kind != 'S' {
		w.s.r.push(reply{kind: rDescPortal})
		return
	}
	sname, st := w.statement(off, name)
	e := reply{kind: rDescStmt}
	if sname != nil {
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendDescribe(dst, 'S', sname) })
		e.fix = st.fix
		if st.parse != nil {
			e.stmt = st
		}
	}
	w.s.r.push(e)
}

// close handles a Close at data[off:end]. A named statement is the client's
// alone to forget: the server keeps it for whoever prepares it next, and
// belay answers CloseComplete (closing a name that does not exist is no error
// in Postgres either).
func (w *rewriter) close(off, end int, kind byte, name []byte) {
	s := w.s
	if kind == 'S' && len(name) > 0 {
		e := reply{kind: rSynthClose}
		if s.ps != nil {
			// Skipped after an error, the Close leaves the name (undo).
			e.cname = string(name)
			e.stmt = s.ps.named[e.cname]
			delete(s.ps.named, e.cname)
		}
		w.replace(off, end, nil)
		s.r.push(e)
		return
	}
	if kind == 'S' {
		if s.ps != nil {
			s.ps.hasUnnamed = false
		}
		w.sc.Unnamed = nil
	}
	if kind == 'P' && s.ps != nil && s.ps.portals != nil {
		delete(s.ps.portals, string(name))
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
	case rSynthClose:
		if e.stmt != nil && s.ps != nil && s.ps.named[e.cname] == nil {
			s.ps.named[e.cname] = e.stmt
		}
	case rQuery:
		if s.t.pending > 0 {
			s.t.pending-- // skipped: no ReadyForQuery comes for it
		}
	case rClose:
		switch {
		case !e.own || e.sname == "" || sc == nil:
		case e.unsure:
			forget(sc, e.sname) // the Close was skipped: still unknown
		default:
			sc.Stmts.Add(e.sname) // the Close was skipped: still prepared
		}
	case rExecute:
		if e.own && e.sname != "" && sc != nil {
			sc.Stmts.Remove(e.sname) // belay's PREPARE of a client's statement failed
		}
		if e.unexec != nil {
			e.unexec() // the client's PREPARE failed or was skipped
		}
	}
}

// --- SQL PREPARE, EXECUTE, DEALLOCATE and DISCARD ALL ------------------------

const sqlStmtEffects = planner.EffPrepare | planner.EffExecute | planner.EffDeallocate |
	planner.EffDeallocateAll | planner.EffDiscardAll

// sqlQuery handles a Query at data[off:end] whose statements use prepared
// statements by name or drop them: it prepares what the server lacks first
// (quietly, ending in a Sync of belay's own), rewrites the names, and
// returns the Query's reply entry, whose confirmations apply what each
// statement did once Postgres reports it complete.
func (w *rewriter) sqlQuery(off, end int, q []byte, injected bool) reply {
	s, sc := w.s, w.sc
	e := reply{kind: rQuery}
	p := planner.Parse(string(q))
	if p.Err != nil {
		if injected {
			w.ownSync()
		}
		return e
	}
	ps := s.stmts()
	// This Query's view of the client's names, as its statements change it.
	view := maps.Clone(ps.named)
	for _, st := range p.Stmts {
		switch {
		case st.Effects&(planner.EffDeallocateAll|planner.EffDiscardAll) != 0:
			clear(view)
		case st.Effects&(planner.EffPrepare|planner.EffExecute|planner.EffDeallocate) != 0:
			old := view[st.Name]
			if old != nil && old.sname != "" && !sc.Stmts.Has(old.sname) {
				w.ensure(off, old, true)
				injected = true
			}
			switch {
			case st.Effects&planner.EffDeallocate != 0:
				delete(view, st.Name)
			case st.Effects&planner.EffPrepare != 0 && old == nil:
				view[st.Name] = &clientStmt{} // prepared by this Query
			}
		}
	}
	if len(p.PreparedViews) > 0 && len(ps.named) > 0 {
		w.ensureNamed(off, true)
		injected = true
	}
	if injected {
		w.ownSync()
	}
	view = maps.Clone(ps.named)
	var reps []replacement
	rename := func(st planner.Stmt, old *clientStmt) {
		reps = append(reps, replacement{st.NameSpan, old.sname, st.Name})
	}
	for i, st := range p.Stmts {
		old := view[st.Name]
		switch {
		case st.Effects&planner.EffPrepare != 0:
			if old != nil {
				rename(st, old) // Postgres's 42P05, shown with the client's name
				continue
			}
			ns := s.sqlStmt(st, q)
			rename(st, ns)
			view[st.Name] = ns
			e.conf = append(e.conf, confirm{i, func() { s.prepared(ns) }})
		case st.Effects&planner.EffExecute != 0 && old != nil:
			rename(st, old)
			s.noteEffects(old.eff)
		case st.Effects&planner.EffDeallocate != 0 && old != nil:
			rename(st, old)
			delete(view, st.Name)
			e.conf = append(e.conf, confirm{i, s.onDeallocate(st.Name, old)})
		case st.Effects&planner.EffDeallocateAll != 0:
			clear(view)
			e.conf = append(e.conf, confirm{i, s.onDeallocateAll})
		case st.Effects&planner.EffDiscardAll != 0:
			clear(view)
			e.conf = append(e.conf, confirm{i, s.onDiscardAll})
		}
	}
	if b, fix := splice(q, s.viewReplacements(reps, p.PreparedViews)); b != nil {
		w.replace(off, end, func(dst []byte) []byte { return codec.AppendQuery(dst, string(b)) })
		e.fix = fix
	}
	return e
}

// What a client's SQL PREPARE, DEALLOCATE, DEALLOCATE ALL and DISCARD ALL
// do to its names and to the server it holds, whether they came in a Query
// or through Parse. They run while the server's answers are read, when
// s.server is the server that ran them.

// sqlStmt is the statement a SQL PREPARE st (in q) creates, under a fresh
// server-side name: two clients' PREPARE p may differ.
func (s *session) sqlStmt(st planner.Stmt, q []byte) *clientStmt {
	sname := "s" + strconv.FormatUint(s.p.stmtSeq.Add(1), 10)
	return &clientStmt{sname: sname, cname: st.Name, fix: nameFix(sname, st.Name), text: string(q),
		prepare: "PREPARE " + sname + string(q[st.NameSpan.End():st.Span.End()]),
		eff:     st.Effects &^ planner.EffPrepare} // what its body does, when executed
}

// prepared records that ns exists, for the client and on its server.
func (s *session) prepared(ns *clientStmt) {
	s.stmts().named[ns.cname] = ns
	if s.server != nil {
		s.server.Stmts.Add(ns.sname)
	}
}

// onDeallocate is what DEALLOCATE name does when name is old.
func (s *session) onDeallocate(name string, old *clientStmt) func() {
	return func() {
		if ps := s.stmts(); ps.named[name] == old {
			delete(ps.named, name)
		}
		if s.server != nil {
			s.server.Stmts.Remove(old.sname)
		}
	}
}

// onDeallocateAll is what DEALLOCATE ALL does.
func (s *session) onDeallocateAll() {
	clear(s.stmts().named)
	if s.server != nil {
		s.server.Stmts.Reset()
	}
}

// onDiscardAll is what DISCARD ALL does.
func (s *session) onDiscardAll() {
	if s.server != nil {
		s.discarded(s.server)
	}
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

// count is the number of the client's named prepared statements.
func (st *stmtState) count() int { return len(st.named) }

// adopt records the client's named statement m, whose Parse belay
// answered itself (a read of several shards, gatherext.go): like any
// other, it is prepared on a server when a unit uses it there. It returns
// false for a name in use, or a text of SQL-level prepared statements.
func (s *session) adopt(m codec.Parse) bool {
	ps := s.stmts()
	name := string(m.Name)
	plan := s.plan(m.Query)
	if _, ok := ps.named[name]; ok || plan.Effects&(sqlStmtEffects|planner.EffPreparedView) != 0 {
		return false
	}
	st := &clientStmt{cname: name, eff: plan.Effects}
	if s.cl != nil {
		w := workOf(plan, m.Query)
		st.readOnly, st.hint, st.tx = w.ReadOnly, w.Hint, txControl(plan)
		st.plan, st.sql = plan, bytes.Clone(m.Query)
	}
	st.setText(m, &s.p.stale)
	ps.named[name] = st
	return true
}
