package planner

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// What a statement fixes about its rows' columns, for hash sharding (issue
// J): the planner knows no sharding schema (a plan is cached by its text,
// the schema may change), so it records every column the statement pins to
// constants and every row an INSERT writes, and the router, which knows
// which tables are sharded and on which column, decides.

// CopyDir is a COPY statement's direction.
type CopyDir uint8

const (
	NotCopy  CopyDir = iota
	CopyFrom         // COPY table FROM: rows come from the client (or a file)
	CopyTo           // COPY table or (query) TO: rows go to the client (or a file)
)

// KeyValue is a constant a column is compared with or set to: a parameter
// ($Param) or a literal (Const: its value as Postgres reads it, the digits
// of a number or a string's characters), possibly under a cast.
type KeyValue struct {
	Param int    // n of $n; 0 for a literal
	Const string // a literal's value
	Span  Span   // where it is written in Plan.Text (the $n or literal)
	// Negate: the value is minus the parameter or literal (-$1: a
	// normalized -7 is a minus before its $k).
	Negate bool
}

// KeyFilter says that the rows of Table a statement reads, changes or
// deletes all have Column equal to one of Values: a conjunct of the top
// level of its WHERE clause `col = v`, `v = col` or `col IN (v, ...)`.
type KeyFilter struct {
	Table  string // the relation, as written (schema-qualified if written so)
	Column string
	Values []KeyValue
}

// InsertRows are the rows an INSERT ... VALUES writes into Table: Rows[i][j]
// is row i's value of Columns[j], nil where it is not a constant (an
// expression, DEFAULT). Columns is nil when the INSERT names none (the
// table's own order, which the planner does not know).
type InsertRows struct {
	Table   string
	Columns []string
	Rows    [][]*KeyValue
}

// keys fills st's KeyFilters, Insert, SetColumns, Target, Copy and
// NoTxBlock from the statement.
func (w *walker) keys(st *Stmt, node *pg.Node) {
	switch n := node.GetNode().(type) {
	case *pg.Node_SelectStmt:
		s := n.SelectStmt
		if s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED && s.Op != pg.SetOperation_SETOP_NONE {
			return // UNION and the like: each arm has its own WHERE
		}
		st.KeyFilters = w.filters(newScope(nil, s.FromClause), s.WhereClause)
		st.Concat = concat(s)
		st.Materializes = s.IntoClause != nil
		for _, f := range s.FromClause {
			rowSources(f, false, &st.RowSources)
		}
	case *pg.Node_CreateTableAsStmt:
		st.Materializes = true
	case *pg.Node_UpdateStmt:
		u := n.UpdateStmt
		st.KeyFilters, st.Target = w.filters(newScope(u.Relation, u.FromClause), u.WhereClause), relName(u.Relation)
		st.Returning = len(u.ReturningList) > 0
		for _, t := range u.TargetList {
			if r := t.GetResTarget(); r != nil {
				st.SetColumns = append(st.SetColumns, r.Name)
			}
		}
	case *pg.Node_DeleteStmt:
		d := n.DeleteStmt
		st.KeyFilters, st.Target = w.filters(newScope(d.Relation, d.UsingClause), d.WhereClause), relName(d.Relation)
		st.Returning = len(d.ReturningList) > 0
	case *pg.Node_VacuumStmt:
		st.NoTxBlock = n.VacuumStmt.IsVacuumcmd // VACUUM (ANALYZE alone runs in one)
	case *pg.Node_IndexStmt:
		st.NoTxBlock = n.IndexStmt.Concurrent
	case *pg.Node_DropStmt:
		st.NoTxBlock = n.DropStmt.Concurrent
	case *pg.Node_ReindexStmt:
		for _, p := range n.ReindexStmt.Params {
			if d := p.GetDefElem(); d != nil && d.Defname == "concurrently" {
				st.NoTxBlock = optionOn(d.Arg)
			}
		}
	case *pg.Node_CopyStmt:
		st.Copy = CopyTo
		if n.CopyStmt.IsFrom {
			st.Copy, st.Target = CopyFrom, relName(n.CopyStmt.Relation)
			st.CopyIn = copyIn(n.CopyStmt)
		}
	case *pg.Node_InsertStmt:
		in := n.InsertStmt
		ins := &InsertRows{Table: relName(in.Relation)}
		st.Target, st.Returning = ins.Table, len(in.ReturningList) > 0
		if oc := in.OnConflictClause; oc != nil {
			for _, t := range oc.TargetList { // ON CONFLICT DO UPDATE SET
				if r := t.GetResTarget(); r != nil {
					st.SetColumns = append(st.SetColumns, r.Name)
				}
			}
		}
		for _, c := range in.Cols {
			if r := c.GetResTarget(); r != nil {
				ins.Columns = append(ins.Columns, r.Name)
			}
		}
		sel := in.SelectStmt.GetSelectStmt()
		if sel == nil || len(sel.ValuesLists) == 0 {
			st.Insert = ins // INSERT ... SELECT or DEFAULT VALUES: no rows known
			return
		}
		for _, l := range sel.ValuesLists {
			items := l.GetList().GetItems()
			row := make([]*KeyValue, len(items))
			for j, it := range items {
				if v, ok := w.value(it); ok {
					row[j] = &v
				}
			}
			ins.Rows = append(ins.Rows, row)
		}
		st.Insert = ins
	}
}

// optionOn is a Boolean option's value as Postgres reads it (defGetBoolean):
// true without one.
func optionOn(arg *pg.Node) bool {
	switch a := arg.GetNode().(type) {
	case nil:
		return true
	case *pg.Node_Boolean:
		return a.Boolean.Boolval
	case *pg.Node_Integer:
		return a.Integer.Ival != 0
	case *pg.Node_String_:
		switch strings.ToLower(a.String_.Sval) {
		case "false", "off", "0", "no":
			return false
		}
	}
	return true
}

// scope is the relations of a statement's FROM (or UPDATE's, DELETE's)
// whose columns its WHERE clause may name: the base tables of the FROM
// list and of its inner joins, by alias or name.
type scope struct {
	rels []scopeRel
	// opaque: a subquery, function or outer join is in the FROM list too,
	// so an unqualified column may be its.
	opaque bool
}

type scopeRel struct {
	name, schema, alias string
}

// newScope is the scope of a statement's target relation (nil for a
// SELECT) and its FROM (or USING) list.
func newScope(target *pg.RangeVar, from []*pg.Node) scope {
	var sc scope
	sc.add(target)
	for _, f := range from {
		sc.from(f)
	}
	return sc
}

func (sc *scope) add(r *pg.RangeVar) {
	if r == nil {
		return
	}
	sr := scopeRel{name: r.Relname, schema: r.Schemaname}
	if r.Alias != nil {
		sr.alias = r.Alias.Aliasname
	}
	sc.rels = append(sc.rels, sr)
}

func (sc *scope) from(n *pg.Node) {
	switch f := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		sc.add(f.RangeVar)
	case *pg.Node_JoinExpr:
		if f.JoinExpr.Jointype == pg.JoinType_JOIN_INNER && f.JoinExpr.Alias == nil {
			sc.from(f.JoinExpr.Larg)
			sc.from(f.JoinExpr.Rarg)
			return
		}
		sc.opaque = true
	default:
		sc.opaque = true
	}
}

// column resolves a column reference to the table it belongs to and its
// name: qualified by an alias, a table name or schema.table; unqualified
// only when the scope has exactly one relation and nothing opaque.
func (sc *scope) column(c *pg.ColumnRef) (table, col string, ok bool) {
	var f []string
	for _, n := range c.Fields {
		s := n.GetString_()
		if s == nil {
			return "", "", false // table.*
		}
		f = append(f, s.Sval)
	}
	match := func(i int) (string, string, bool) {
		r := sc.rels[i]
		name := r.name
		if r.schema != "" {
			name = r.schema + "." + name
		}
		return name, f[len(f)-1], true
	}
	switch len(f) {
	case 1:
		if len(sc.rels) == 1 && !sc.opaque {
			return match(0)
		}
	case 2:
		found := -1
		for i, r := range sc.rels {
			if r.alias == f[0] || r.alias == "" && r.name == f[0] {
				if found >= 0 {
					return "", "", false // ambiguous
				}
				found = i
			}
		}
		if found >= 0 {
			return match(found)
		}
	case 3:
		for i, r := range sc.rels {
			if r.alias == "" && r.schema == f[0] && r.name == f[1] {
				return match(i)
			}
		}
	}
	return "", "", false
}

// filters are the top-level conjuncts of where that pin a column of sc to
// constants.
func (w *walker) filters(sc scope, where *pg.Node) []KeyFilter {
	var out []KeyFilter
	var visit func(n *pg.Node)
	visit = func(n *pg.Node) {
		switch e := n.GetNode().(type) {
		case *pg.Node_BoolExpr:
			if e.BoolExpr.Boolop == pg.BoolExprType_AND_EXPR {
				for _, a := range e.BoolExpr.Args {
					visit(a)
				}
			}
		case *pg.Node_AExpr:
			if f, ok := w.filter(sc, e.AExpr); ok {
				out = append(out, f)
			}
		}
	}
	visit(where)
	return out
}

// filter reads `col = v`, `v = col` or `col IN (v, ...)`.
func (w *walker) filter(sc scope, a *pg.A_Expr) (KeyFilter, bool) {
	if len(a.Name) != 1 || a.Name[0].GetString_().GetSval() != "=" {
		return KeyFilter{}, false
	}
	switch a.Kind {
	case pg.A_Expr_Kind_AEXPR_OP:
		col, val := a.Lexpr, a.Rexpr
		if col.GetColumnRef() == nil {
			col, val = val, col
		}
		c := col.GetColumnRef()
		if c == nil {
			return KeyFilter{}, false
		}
		table, name, ok := sc.column(c)
		if !ok {
			return KeyFilter{}, false
		}
		v, ok := w.value(val)
		if !ok {
			return KeyFilter{}, false
		}
		return KeyFilter{Table: table, Column: name, Values: []KeyValue{v}}, true
	case pg.A_Expr_Kind_AEXPR_IN:
		c := a.Lexpr.GetColumnRef()
		if c == nil {
			return KeyFilter{}, false
		}
		table, name, ok := sc.column(c)
		if !ok {
			return KeyFilter{}, false
		}
		items := a.Rexpr.GetList().GetItems()
		if len(items) == 0 {
			return KeyFilter{}, false
		}
		f := KeyFilter{Table: table, Column: name, Values: make([]KeyValue, 0, len(items))}
		for _, it := range items {
			v, ok := w.value(it)
			if !ok {
				return KeyFilter{}, false
			}
			f.Values = append(f.Values, v)
		}
		return f, true
	}
	return KeyFilter{}, false
}

// value reads a constant: a literal or $n, possibly cast (`'…'::uuid`,
// `$1::int8`). NULL is no value (a key equal to NULL matches no row).
func (w *walker) value(n *pg.Node) (KeyValue, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		return w.value(tc.Arg)
	}
	if a := n.GetAExpr(); a != nil && a.Kind == pg.A_Expr_Kind_AEXPR_OP && a.Lexpr == nil && len(a.Name) == 1 &&
		a.Name[0].GetString_().GetSval() == "-" {
		v, ok := w.value(a.Rexpr)
		v.Negate = !v.Negate
		return v, ok
	}
	switch v := n.GetNode().(type) {
	case *pg.Node_ParamRef:
		return KeyValue{Param: int(v.ParamRef.Number), Span: w.span(v.ParamRef.Location)}, v.ParamRef.Number > 0
	case *pg.Node_AConst:
		c := v.AConst
		var s string
		switch x := c.Val.(type) {
		case *pg.A_Const_Ival:
			s = strconv.FormatInt(int64(x.Ival.GetIval()), 10)
		case *pg.A_Const_Sval:
			s = x.Sval.GetSval()
		case *pg.A_Const_Fval:
			// An integer beyond int32 is a Float node; an integer beyond
			// bigint, or a number with a fraction or exponent, is a numeric
			// PostgreSQL compares with the key (bigint = numeric) or rounds
			// into it: no key value of its own.
			s = x.Fval.GetFval()
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return KeyValue{}, false
			}
		default:
			return KeyValue{}, false // NULL, booleans, bit strings
		}
		return KeyValue{Const: s, Span: w.span(c.Location)}, true
	}
	return KeyValue{}, false
}

// span is the literal or parameter written at loc (empty if none is).
func (w *walker) span(loc int32) Span {
	if e := literalEnd(w.sql, int(loc)); e > int(loc) {
		return Span{loc, int32(e) - loc}
	}
	return Span{}
}

// rowSources appends the relations of FROM item n whose rows each row of
// the join holds one of (not on the nullable side of an outer join: under
// nullable), as written.
func rowSources(n *pg.Node, nullable bool, out *[]string) {
	switch f := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		if !nullable {
			*out = append(*out, relName(f.RangeVar))
		}
	case *pg.Node_JoinExpr:
		j := f.JoinExpr
		t := j.Jointype
		rowSources(j.Larg, nullable || t == pg.JoinType_JOIN_RIGHT || t == pg.JoinType_JOIN_FULL, out)
		rowSources(j.Rarg, nullable || t == pg.JoinType_JOIN_LEFT || t == pg.JoinType_JOIN_FULL, out)
	case *pg.Node_RangeSubselect:
		// A subquery that only filters and projects its FROM's rows (as
		// Concat's) passes them on, one output row per joined row.
		if sub := f.RangeSubselect.Subquery.GetSelectStmt(); sub != nil && !f.RangeSubselect.Lateral && concat(sub) {
			for _, n := range sub.FromClause {
				rowSources(n, nullable, out)
			}
		}
	}
}

// relName is a RangeVar's name as written.
func relName(r *pg.RangeVar) string {
	if r == nil {
		return ""
	}
	if r.Schemaname != "" {
		return r.Schemaname + "." + r.Relname
	}
	return r.Relname
}

// keysSize estimates the bytes st's KeyFilters, Insert and SetColumns hold
// (Cache's accounting).
func (st *Stmt) keysSize() int {
	n := len(st.KeyFilters)*56 + len(st.SetColumns)*16 + len(st.Target) + len(st.Relations)*16 + len(st.RowSources)*16
	for _, r := range st.Relations {
		n += len(r)
	}
	for _, r := range st.RowSources {
		n += len(r)
	}
	for _, f := range st.KeyFilters {
		n += len(f.Table) + len(f.Column) + len(f.Values)*48
		for _, v := range f.Values {
			n += len(v.Const)
		}
	}
	for _, c := range st.SetColumns {
		n += len(c)
	}
	if in := st.Insert; in != nil {
		n += 80 + len(in.Table) + len(in.Columns)*16
		for _, c := range in.Columns {
			n += len(c)
		}
		for _, r := range in.Rows {
			n += 24 + len(r)*8
			for _, v := range r {
				if v != nil {
					n += 48 + len(v.Const)
				}
			}
		}
	}
	if st.CopyIn != nil {
		n += st.CopyIn.size()
	}
	return n
}

// plainSelect: no clause that shapes the result beyond a select list over
// a FROM and a WHERE.
func plainSelect(s *pg.SelectStmt) bool {
	return len(s.SortClause) == 0 && s.LimitCount == nil && s.LimitOffset == nil && len(s.DistinctClause) == 0 &&
		len(s.GroupClause) == 0 && s.HavingClause == nil && len(s.WindowClause) == 0 && len(s.LockingClause) == 0 &&
		s.IntoClause == nil && s.WithClause == nil && len(s.ValuesLists) == 0
}

// concat says whether a SELECT's result over parts of its tables is the
// concatenation of the parts' results (Stmt.Concat).
func concat(s *pg.SelectStmt) bool {
	if !plainSelect(s) {
		return false
	}
	for _, t := range s.TargetList {
		if mayAggregate(t) {
			return false
		}
	}
	return true
}

// mayAggregate says whether an expression of a select list may aggregate
// rows (not inside a subquery of its own): a built-in aggregate, a call
// with aggregate syntax or a window, or a call of a function that is not
// built in (a user's aggregate is called as a function is).
func mayAggregate(n *pg.Node) bool {
	found := false
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		switch x := m.Interface().(type) {
		case *pg.SubLink:
			return false // its own query aggregates its own rows
		case *pg.FuncCall:
			name, qualified := funcName(x)
			found = found || x.AggStar || x.AggDistinct || len(x.AggOrder) > 0 || x.AggFilter != nil || x.AggWithinGroup || x.Over != nil ||
				isAggregate(name) || qualified || !isBuiltin(name)
		}
		return !found
	})
	return found
}

// walk visits m and the messages in it, depth first, while visit says so.
func walk(m protoreflect.Message, visit func(protoreflect.Message) bool) {
	if !visit(m) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(l.Get(i).Message(), visit)
			}
		} else {
			walk(v.Message(), visit)
		}
		return true
	})
}

// funcName is a call's function name, and whether it is qualified by a
// schema other than pg_catalog.
func funcName(f *pg.FuncCall) (string, bool) {
	var parts []string
	for _, n := range f.Funcname {
		parts = append(parts, n.GetString_().GetSval())
	}
	switch len(parts) {
	case 0:
		return "", true
	case 1:
		return parts[0], false
	}
	return parts[len(parts)-1], parts[len(parts)-2] != "pg_catalog"
}
