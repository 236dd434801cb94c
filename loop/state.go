package loop

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"strconv"
	"strings"

	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/panjf2000/gnet/v2"
)

// Session state that follows the client.
//
// A client's settings are what Postgres itself reports as set in its
// session: after a transaction in which the client may have changed one (SET,
// RESET, set_config, DISCARD ALL: the planner says EffGUC), belay asks the
// server before it lets it go — pg_settings where source = 'session', plus
// current_setting of the custom names (myapp.x) the client set, which
// pg_settings does not list. Reading the outcome rather than replaying the
// client's SQL gets SET inside a rolled-back transaction, RESET, SET LOCAL and
// set_config right without a second interpreter of Postgres's rules. The
// settings become the client's signature: the SQL that applies them (after
// RESET ALL) on whichever server it lands next, and the key servers are
// matched on, so a server already in that state is preferred.
//
// State that cannot move — LISTEN, temporary objects, WITH HOLD cursors,
// session advisory locks, a changed role, LOAD — pins the client to its
// server. After anything that may release it (UNLISTEN, DISCARD, CLOSE, DROP,
// an unlock, RESET ROLE) the same query counts what still holds the server,
// and at zero the pin ends.

// setting is one session setting of a client.
type setting struct{ name, value string }

// stateQuery is belay's question to a server about its session: one row per
// session setting, then a row with a NULL name whose value counts what pins
// the session to the server.
func stateQuery(user string, custom []string) string {
	var b strings.Builder
	b.WriteString("SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session'")
	for _, n := range custom {
		b.WriteString(" UNION ALL SELECT ")
		b.WriteString(quoteLiteral(n))
		b.WriteString(", pg_catalog.current_setting(")
		b.WriteString(quoteLiteral(n))
		b.WriteString(", true)")
	}
	b.WriteString(" UNION ALL SELECT NULL, ((SELECT count(*) FROM pg_catalog.pg_listening_channels())" +
		" + (SELECT count(*) FROM pg_catalog.pg_cursors WHERE is_holdable)" +
		" + (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())" +
		" + (SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())" +
		" + (session_user <> current_user OR session_user <> ")
	b.WriteString(quoteLiteral(user))
	b.WriteString(")::int)::text")
	return b.String()
}

// settingsSQL is the statement that gives a server session these settings
// (sorted by name); it is also the signature servers are matched on. It uses
// set_config, which takes a value as Postgres's startup packet does (a list
// such as search_path=a,b stays a list), and E” literals, which read the same
// whatever standard_conforming_strings says.
func settingsSQL(set []setting) string {
	if len(set) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, p := range set {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("pg_catalog.set_config(")
		b.WriteString(quoteLiteral(p.name))
		b.WriteString(", ")
		b.WriteString(quoteLiteral(p.value))
		b.WriteString(", false)")
	}
	return b.String()
}

// dropReserved handles a failure to apply the client's settings on a server
// where an extension now reserves the prefix of one of its custom settings
// (SET plpgsql.extra_foo = ... made a placeholder on a server where plpgsql
// was not loaded; it is loaded here, and Postgres refuses the name): the
// setting is dropped from the client's session with the WARNING Postgres
// gives when the library is loaded in the session, and the rest applied.
// It returns false when perr is not that.
func (s *session) dropReserved(perr *poolcore.PgError) bool {
	if sqlstate.Code(perr.Code) != sqlstate.InvalidName || s.st == nil {
		return false
	}
	for i, st := range s.st.settings {
		dot := strings.IndexByte(st.name, '.')
		if dot < 0 || !strings.Contains(perr.Message, `"`+st.name+`"`) {
			continue
		}
		s.st.settings = append(s.st.settings[:i:i], s.st.settings[i+1:]...)
		s.st.custom = slices.DeleteFunc(s.st.custom, func(n string) bool { return strings.EqualFold(n, st.name) })
		s.sig = settingsSQL(s.st.settings)
		if s.c != nil {
			b := codec.AppendNoticeResponse(s.loop.Scratch(), codec.ErrorResponse{Severity: "WARNING", Code: sqlstate.InvalidName,
				Message: fmt.Sprintf("invalid configuration parameter name %q, removing it", st.name),
				Detail:  fmt.Sprintf("%q is now a reserved prefix.", st.name[:dot])})
			_, _ = s.write(b)
			s.loop.KeepScratch(b)
		}
		return true
	}
	return false
}

// quoteLiteral quotes s as an escape string literal.
func quoteLiteral(s string) string {
	if !strings.ContainsAny(s, `'\`) {
		return "E'" + s + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`)
	return "E'" + r.Replace(s) + "'"
}

// sortSettings orders set by name, the last value of a name winning.
func sortSettings(set []setting) []setting {
	sort.SliceStable(set, func(i, j int) bool { return strings.ToLower(set[i].name) < strings.ToLower(set[j].name) })
	out := set[:0]
	for _, p := range set {
		if n := len(out); n > 0 && strings.EqualFold(out[n-1].name, p.name) {
			out[n-1] = p
			continue
		}
		out = append(out, p)
	}
	return out
}

// sessionState is what a client changed beyond its startup parameters,
// allocated when it first does.
type sessionState struct {
	custom   []string  // custom setting names it set (pg_settings does not list them)
	settings []setting // its settings, as the server last reported them
	// held are the ParameterStatus belay kept from the client while a RESET
	// put a startup parameter to the server's default rather than to the
	// client's value, with the value the client had; once they are restored
	// it reports those that changed, then heldRFQ, the ReadyForQuery it
	// kept back meanwhile (0: none).
	held    []setting
	heldRFQ byte
}

// holdStatus says whether a ParameterStatus for name must wait: a reset is
// under way and name is one of the client's startup parameters.
func (s *session) holdStatus(name []byte, sc *poolcore.Server) bool {
	if !s.resetting {
		return false
	}
	for _, p := range s.start {
		if !strings.EqualFold(p.name, string(name)) {
			continue
		}
		if s.st == nil {
			s.st = &sessionState{}
		}
		for _, h := range s.st.held {
			if h.name == string(name) {
				return true
			}
		}
		s.st.held = append(s.st.held, setting{string(name), sc.Params[string(name)]})
		return true
	}
	return false
}

// reportHeld sends the client what belay held back during a reset: the
// ParameterStatus of the startup parameters whose value changed for the
// client, as the server has them now, then the ReadyForQuery.
func (s *session) reportHeld(sc *poolcore.Server) {
	s.resetting = false
	if s.st == nil || (len(s.st.held) == 0 && s.st.heldRFQ == 0) {
		return
	}
	b := s.loop.Scratch()
	for _, h := range s.st.held {
		if v := sc.Params[h.name]; v != h.value {
			b = codec.AppendParameterStatus(b, h.name, v)
		}
	}
	if s.st.heldRFQ != 0 {
		b = codec.AppendReadyForQuery(b, s.st.heldRFQ)
	}
	s.st.held, s.st.heldRFQ = s.st.held[:0], 0
	if s.c != nil {
		_, _ = s.write(b)
	}
	s.loop.KeepScratch(b)
}

// noteEffects records what a statement the client sends does to its
// session. On the loop.
func (s *session) noteEffects(e planner.Effect) {
	if e == 0 {
		return
	}
	if e&planner.EffMayAdvance != 0 {
		s.seqTouched = true // seq.go
	}
	if e&planner.EffDiscardSeq != 0 {
		s.seq, s.seqTouched = nil, true // its values are gone; so are everyone's on this server
	}
	if e&planner.EffGUC != 0 {
		s.checkState = true
	}
	if e&planner.EffReset != 0 && len(s.start) > 0 {
		s.resetting = true
	}
	if e&planner.EffFunctionDDL != 0 {
		s.p.invalidateFunctions(s.loop)
	}
	if e&planner.EffPin != 0 {
		s.pin()
	}
	if e&planner.EffLoad != 0 {
		s.pinForever = true // a loaded library cannot be unloaded
	}
	if e&planner.EffMayRelease != 0 && s.t.pinned {
		s.checkState = true
	}
}

// noteCustom records the custom setting names a Query sets (myapp.tenant):
// Postgres lists them nowhere, so belay asks for each by name. The text is
// planned again, uncached: normalization may have replaced a set_config's
// name with a parameter.
func (s *session) noteCustom(q []byte) {
	for _, n := range planner.Parse(string(q)).Settings {
		if s.st == nil {
			s.st = &sessionState{}
		}
		if !containsFold(s.st.custom, n) {
			s.st.custom = append(s.st.custom, n)
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// pin keeps the client on its server (counted in belay_pins_total).
func (s *session) pin() {
	if !s.t.pinned {
		s.t.pinned = true
		s.p.pins.Add(1)
		s.stats.Pinned(1)
		s.p.metrics.pins.Inc()
	}
}

func (s *session) unpin() {
	if s.t.pinned && !s.pinForever {
		s.t.pinned = false
		s.p.pins.Add(-1)
		s.stats.Pinned(-1)
	}
}

// resetSettings drops what the client set: only its startup parameters
// remain (DISCARD ALL).
func (s *session) resetSettings() {
	s.st = nil
	s.sig = s.startSig
}

// askState runs the state query on sc, which the client holds idle, and then
// releases the server or keeps it pinned. On the loop.
func (s *session) askState(sc *poolcore.Server) {
	s.checkState = false
	var custom []string
	if s.st != nil {
		custom = s.st.custom
	}
	var got []setting
	pins := -1
	sc.ExecRows(stateQuery(s.key.User, custom), func(cols [][]byte) {
		if len(cols) != 2 {
			return
		}
		if cols[0] == nil {
			pins, _ = strconv.Atoi(string(cols[1]))
			return
		}
		if cols[1] == nil || (len(cols[1]) == 0 && containsFold(custom, string(cols[0]))) {
			return // a custom setting reset, or never set
		}
		got = append(got, setting{string(cols[0]), string(cols[1])})
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if err != nil {
			// The client's own transaction state is fine (it was idle), so
			// this is belay's problem: keep the client where it is.
			s.p.log.Warn("cannot read session state", "err", err)
			s.pin()
			s.pinForever = true
			s.reportHeld(sc)
			s.afterState(sc)
			return
		}
		s.settled(sc, got, pins)
	})
}

// settled takes in what the server said about the client's session.
func (s *session) settled(sc *poolcore.Server, got []setting, pins int) {
	// A startup parameter RESET went back to the server's default, not to
	// what the client asked for at startup as Postgres would: put it back.
	missing := false
	for _, p := range s.start {
		found := false
		for _, g := range got {
			if strings.EqualFold(g.name, p.name) {
				found = true
				break
			}
		}
		if !found {
			got = append(got, setting{p.name, p.value})
			missing = true
		}
	}
	got = sortSettings(got)
	if s.st == nil {
		s.st = &sessionState{}
	}
	s.st.settings = got
	s.noteRouteSettings(got)
	s.sig = settingsSQL(got)
	if pins == 0 {
		s.unpin()
	}
	if missing {
		sc.Exec(s.sig, func(sc *poolcore.Server, err *poolcore.PgError) {
			if err == nil {
				sc.AppliedSig = s.sig
			}
			s.reportHeld(sc)
			s.afterState(sc)
		})
		return
	}
	sc.AppliedSig = s.sig
	s.reportHeld(sc)
	s.afterState(sc)
}

// settle goes on once belay's own questions about the server are answered:
// the session's state next, if the client may have changed it.
func (s *session) settle(sc *poolcore.Server) {
	if s.needLSN() && s.state != sClosing && s.server == sc {
		s.learnLSN(sc, s.settle) // read-your-writes (cluster.go)
		return
	}
	if s.checkState && s.state != sClosing && s.server == sc {
		s.askState(sc)
		return
	}
	s.afterState(sc)
}

// afterState releases the server unless the client is still pinned, then
// goes on with what the client sent meanwhile.
func (s *session) afterState(sc *poolcore.Server) {
	if s.state == sClosing || s.server != sc {
		s.giveBack(sc)
		return
	}
	if s.t.releasable() && s.r.empty() {
		s.release(sc)
	}
	s.resumeWork()
	s.closeIfDrained() // a shutdown waits for nothing more of it
}

// --- what plans know of the server: functions' volatility --------------------

// A plan that calls a user function can run on a replica only if the
// function does not write; only the server knows (pg_proc.provolatile). The
// plan cache learns it in two steps: after the transaction of a client whose
// plans called functions this loop's cache does not know, belay asks the
// client's server (under the client's search_path) and reports the answer
// with SetVolatility, which marks the plans calling user functions stale;
// each is re-derived at its next lookup. DDL on functions through belay
// forgets what every loop learnt (InvalidateFunctions).

// noteFunctions records the user functions of plan this loop's cache does
// not know yet.
func (s *session) noteFunctions(plan *planner.Plan) {
	if len(plan.Functions) == 0 {
		return
	}
	c := s.p.plans[s.loop.Index()]
	for _, fn := range c.Unknown(plan, nil) {
		if !slices.Contains(s.fns, fn) {
			s.fns = append(s.fns, fn)
		}
	}
}

// volatilityQuery asks for the volatility of each function, as the session
// resolves its name: the most volatile of its overloads; NULL when there is
// none.
func volatilityQuery(fns []string) string {
	var b strings.Builder
	for i, fn := range fns {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		schema, name, qualified := strings.Cut(fn, ".")
		if !qualified {
			schema, name = "", fn
		}
		b.WriteString("SELECT " + quoteLiteral(fn) + ", (SELECT max(p.provolatile)::text FROM pg_catalog.pg_proc p" +
			" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = " + quoteLiteral(name))
		if qualified {
			b.WriteString(" AND n.nspname = " + quoteLiteral(schema) + ")")
		} else {
			b.WriteString(" AND n.nspname = ANY (pg_catalog.current_schemas(true)))")
		}
	}
	return b.String()
}

// learnFunctions asks sc, which the client holds idle, about s.fns, reports
// the answers to this loop's plan cache, then goes on with next.
func (s *session) learnFunctions(sc *poolcore.Server, next func(sc *poolcore.Server)) {
	fns := s.fns
	s.fns = nil
	c := s.p.plans[s.loop.Index()]
	sc.ExecRows(volatilityQuery(fns), func(cols [][]byte) {
		if len(cols) != 2 {
			return
		}
		v := planner.VolatilityVolatile // unknown here: assume the worst
		if len(cols[1]) == 1 {
			switch cols[1][0] {
			case 'i':
				v = planner.VolatilityImmutable
			case 's':
				v = planner.VolatilityStable
			}
		}
		c.SetVolatility(string(cols[0]), v)
	}, func(sc *poolcore.Server, err *poolcore.PgError) {
		if err != nil {
			s.p.log.Debug("cannot read functions' volatility", "err", err)
		}
		next(sc)
	})
}

// invalidateFunctions makes every loop's plan cache forget what it learnt of
// functions (a client ran DDL on functions). On the loop of the client.
func (p *Proxy) invalidateFunctions(here *poolcore.Loop) {
	p.plans[here.Index()].InvalidateFunctions()
	for i := range p.plans {
		if i == here.Index() {
			continue
		}
		if l := p.pools.Loop(i); l != nil {
			c := p.plans[i]
			_ = l.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
				c.InvalidateFunctions()
				return nil
			}))
		}
	}
}
