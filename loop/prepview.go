package loop

import (
	"slices"
	"strconv"
	"strings"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/planner"
)

// The view pg_prepared_statements. Directly, a session sees its own
// prepared statements there, under its own names. The server belay holds
// has statements of other clients too, under belay's names, and may lack
// some of this client's (they are prepared lazily). So where a client's
// text reads the view, belay first prepares every statement of the client
// on the server, then replaces the view with a subquery: the server's rows
// of the client's statements, with the client's names and texts (the names
// and texts are literals of the subquery). The other columns are the
// server's: prepare_time is when belay prepared it on that server, and
// generic_plans and custom_plans count the uses of every client sharing it
// there. A client with more statements than a server keeps
// (max_prepared_statements) sees those that fit. A named statement that
// reads the view is mapped again whenever it is used.

// viewReplacements adds to reps the subquery for each reference to
// pg_prepared_statements in a text (views, the plan's PreparedViews). A
// reference without an alias gets the view's name as one, which is how the
// client's text refers to its columns.
func (s *session) viewReplacements(reps []replacement, views []planner.ViewRef) []replacement {
	if len(views) == 0 {
		return reps
	}
	sub := s.preparedView()
	for _, v := range views {
		with := sub
		if !v.Aliased {
			with += " pg_prepared_statements"
		}
		reps = append(reps, replacement{span: v.Span, with: with})
	}
	return reps
}

// preparedView is the subquery that stands for pg_prepared_statements: the
// rows of the client's statements, under its names. Its columns are the
// view's, in its order, for the server's version.
func (s *session) preparedView() string {
	var b strings.Builder
	b.WriteString("(SELECT ")
	for i, c := range preparedViewColumns(s.serverVersion()) {
		if i > 0 {
			b.WriteString(", ")
		}
		switch c {
		case "name", "statement":
			b.WriteString("belay_v." + c)
		default:
			b.WriteString("belay_p." + c)
		}
	}
	b.WriteString(" FROM pg_catalog.pg_prepared_statements belay_p JOIN (VALUES ('', '', '')")
	if s.ps != nil {
		names := make([]string, 0, len(s.ps.named))
		for n := range s.ps.named {
			names = append(names, n)
		}
		slices.Sort(names) // the same statements give the same text
		for _, n := range names {
			st := s.ps.named[n]
			b.WriteString(", (")
			b.WriteString(quoteLiteral(st.sname))
			b.WriteString(", ")
			b.WriteString(quoteLiteral(n))
			b.WriteString(", ")
			b.WriteString(quoteLiteral(st.clientText()))
			b.WriteString(")")
		}
	}
	b.WriteString(") belay_v (sname, name, statement) ON belay_p.name = belay_v.sname)")
	return b.String()
}

// clientText is the statement's text as the client wrote it.
func (st *clientStmt) clientText() string {
	switch {
	case st.text != "":
		return st.text
	case st.orig != nil:
		return string(st.orig.Query)
	case st.parse != nil:
		if m, err := codec.ParseParse(st.parse[5:]); err == nil {
			return string(m.Query)
		}
	}
	return ""
}

// serverVersion is the major version of the server the client holds, from
// its server_version (0 if unknown).
func (s *session) serverVersion() int {
	if s.server == nil {
		return 0
	}
	v := s.server.Params["server_version"]
	if i := strings.IndexAny(v, ". "); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// preparedViewColumns are pg_prepared_statements's columns in Postgres
// major version v (13 and older: the first five; unknown: the newest).
func preparedViewColumns(v int) []string {
	switch {
	case v > 0 && v <= 13:
		return []string{"name", "statement", "prepare_time", "parameter_types", "from_sql"}
	case v > 0 && v <= 15:
		return []string{"name", "statement", "prepare_time", "parameter_types", "from_sql", "generic_plans", "custom_plans"}
	}
	return []string{"name", "statement", "prepare_time", "parameter_types", "result_types", "from_sql", "generic_plans", "custom_plans"}
}

// ensureNamed prepares every named statement of the client on the server
// before the message at at (quiet: before a Query).
func (w *rewriter) ensureNamed(at int, quiet bool) {
	if w.s.ps == nil {
		return
	}
	for _, st := range w.s.ps.named {
		w.ensure(at, st, quiet)
	}
}
