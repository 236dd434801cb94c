package planner

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/shard"
	pg "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Gather is how a SELECT that reads every shard runs: SQL on each shard,
// then Merge over their rows.
type Gather struct {
	SQL   string
	Merge shard.Merge
	// LimitParam and OffsetParam are the parameters (from 1; 0: none)
	// that give the LIMIT and OFFSET: the caller sets Merge's Limit and
	// Offset from their bound values (ParamLimit).
	LimitParam, OffsetParam int
}

// PlanGather plans a scatter-gather of the one SELECT of sql (uncached:
// the loop keeps plans). The SELECT may aggregate (count, sum, min, max,
// avg, with FILTER), GROUP BY expressions, filter groups with a HAVING
// that compares aggregates or group keys with numeric constants (joined by
// AND), be DISTINCT, ORDER BY expressions, and LIMIT and OFFSET by
// constants. Anything else is refused with an *shard.Error of 0A000 that
// names the construct: a window function, DISTINCT ON, an aggregate of
// DISTINCT values or in an expression, GROUPING SETS, a set operation, a
// WITH, FOR UPDATE, FETCH ... WITH TIES.
//
// Each shard runs the SELECT with the client's columns (avg(x) as sum(x)
// and count(x)) and after them the hidden ones the merge needs; without
// grouping or DISTINCT, its ORDER BY and LIMIT (OFFSET added to it: each
// shard's first limit+offset rows hold the answer's); with them, neither
// (every group is merged before any is cut).
func PlanGather(sql string) (*Gather, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, &shard.Error{Code: sqlstate.SyntaxError, Message: err.Error()}
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, refuse("a statement other than one SELECT")
	}
	s := proto.Clone(tree.Stmts[0].Stmt.GetSelectStmt()).(*pg.SelectStmt)
	g := &gatherer{s: s, keys: map[string]int{}}
	if err := g.plan(); err != nil {
		return nil, err
	}
	out, err := pg.Deparse(&pg.ParseResult{Version: tree.Version, Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: s}}}}})
	if err != nil {
		return nil, refuse("a SELECT belay cannot rewrite for the shards (%v)", err)
	}
	return &Gather{SQL: out, Merge: g.m, LimitParam: g.limitParam, OffsetParam: g.offsetParam}, nil
}

// ParamLimit is a LIMIT's or OFFSET's bound parameter as the merge takes
// it: v (text, or binary with bin), null meaning none (-1 for a LIMIT,
// 0 for an OFFSET, as PostgreSQL reads LIMIT NULL); a negative one is
// PostgreSQL's error (2201W, 2201X).
func ParamLimit(v []byte, bin, null, offset bool) (int64, error) {
	switch {
	case null && offset:
		return 0, nil
	case null:
		return -1, nil
	}
	var n int64
	var err error
	if bin {
		switch len(v) {
		case 8:
			n = int64(binary.BigEndian.Uint64(v))
		case 4:
			n = int64(int32(binary.BigEndian.Uint32(v)))
		case 2:
			n = int64(int16(binary.BigEndian.Uint16(v)))
		default:
			err = fmt.Errorf("a binary LIMIT of %d bytes", len(v))
		}
	} else {
		n, err = strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
	}
	switch {
	case err != nil:
		return 0, &shard.Error{Code: sqlstate.InvalidTextRepresentation, Message: fmt.Sprintf("invalid input syntax for type bigint: %q", v)}
	case n < 0 && offset:
		return 0, &shard.Error{Code: sqlstate.InvalidRowCountInResultOffsetClause, Message: "OFFSET must not be negative"}
	case n < 0:
		return 0, &shard.Error{Code: sqlstate.InvalidRowCountInLimitClause, Message: "LIMIT must not be negative"}
	}
	return n, nil
}

func refuse(format string, args ...any) error {
	return &shard.Error{Code: sqlstate.FeatureNotSupported, Message: "a read of several shards: " + fmt.Sprintf(format, args...)}
}

// gatherer rewrites one SELECT (s, a copy) and builds its Merge.
type gatherer struct {
	s *pg.SelectStmt
	m shard.Merge
	// limitParam, offsetParam: LIMIT $n, OFFSET $n (Gather's).
	limitParam, offsetParam int
	targets                 []*pg.Node // the shard's select list
	aggs                    []shard.Agg
	grouped                 bool
	// keys maps an expression's exprKey to its shard column, for the
	// client's columns and hidden ones alike.
	keys map[string]int
	// names maps a client's column name (alias or the column's own) to
	// its client column; "" names are left out.
	names map[string]int
}

var gatherAggs = map[string]shard.Agg{"count": shard.AggCount, "sum": shard.AggSum, "min": shard.AggMin, "max": shard.AggMax}

func (g *gatherer) plan() error {
	s := g.s
	switch {
	case s.Op != pg.SetOperation_SETOP_NONE:
		return refuse("UNION, INTERSECT or EXCEPT")
	case s.WithClause != nil:
		return refuse("WITH")
	case len(s.LockingClause) > 0:
		return refuse("FOR UPDATE or FOR SHARE")
	case s.IntoClause != nil:
		return refuse("SELECT INTO")
	case len(s.WindowClause) > 0:
		return refuse("a window function")
	case len(s.ValuesLists) > 0:
		return refuse("VALUES")
	case s.LimitOption == pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		return refuse("FETCH FIRST ... WITH TIES")
	case s.GroupDistinct:
		return refuse("GROUP BY DISTINCT")
	}
	for _, d := range s.DistinctClause {
		if d != nil && d.Node != nil {
			return refuse("DISTINCT ON")
		}
	}
	g.m.Distinct = len(s.DistinctClause) > 0
	g.m.Limit, g.m.Offset = -1, 0
	var err error
	if p := s.LimitCount.GetParamRef(); p != nil {
		g.limitParam = int(p.Number)
	} else if g.m.Limit, err = constant(s.LimitCount, "LIMIT", -1); err != nil {
		return err
	}
	if p := s.LimitOffset.GetParamRef(); p != nil {
		g.offsetParam = int(p.Number)
	} else if g.m.Offset, err = constant(s.LimitOffset, "OFFSET", 0); err != nil {
		return err
	}
	g.grouped = len(s.GroupClause) > 0 || s.HavingClause != nil
	for _, t := range s.TargetList {
		if agg, _, err := aggCall(t.GetResTarget().GetVal()); err != nil {
			return err
		} else if agg != "" {
			g.grouped = true
		}
	}
	g.names = map[string]int{}
	for _, t := range s.TargetList {
		if err := g.target(t.GetResTarget()); err != nil {
			return err
		}
	}
	if g.m.Star && g.grouped {
		return refuse("* in a select list with aggregates or GROUP BY")
	}
	if g.grouped {
		for i, k := range s.GroupClause {
			col, err := g.groupKey(k)
			if err != nil {
				return err
			}
			g.m.Keys = append(g.m.Keys, col)
			s.GroupClause[i] = intConst(int64(col + 1)) // the shard groups by the column the merge does
		}
		if err := g.having(s.HavingClause); err != nil {
			return err
		}
	}
	for _, o := range s.SortClause {
		if err := g.sortKey(o.GetSortBy()); err != nil {
			return err
		}
	}
	if g.grouped {
		g.m.Aggs = g.aggs
	}
	s.TargetList = g.targets
	s.HavingClause = nil
	switch {
	case g.grouped || g.m.Distinct:
		s.SortClause, s.LimitCount, s.LimitOffset = nil, nil, nil
	case g.limitParam != 0 || g.offsetParam != 0:
		// Each shard returns the first LIMIT + OFFSET rows of its own:
		// $l::int8 + $o::int8 (NULL for LIMIT NULL: all of them).
		if g.limitParam != 0 || g.m.Limit >= 0 {
			s.LimitCount = plus(limitTerm(g.limitParam, g.m.Limit), limitTerm(g.offsetParam, g.m.Offset))
		}
		s.LimitOffset = nil
	case g.m.Limit >= 0:
		s.LimitCount, s.LimitOffset = intConst(g.m.Limit+g.m.Offset), nil
	default:
		s.LimitOffset = nil
	}
	return nil
}

// limitTerm is parameter n cast to bigint, or the constant v without one.
func limitTerm(n int, v int64) *pg.Node {
	if n == 0 {
		return intConst(v)
	}
	return &pg.Node{Node: &pg.Node_TypeCast{TypeCast: &pg.TypeCast{
		Arg:      &pg.Node{Node: &pg.Node_ParamRef{ParamRef: &pg.ParamRef{Number: int32(n), Location: -1}}},
		TypeName: &pg.TypeName{Names: []*pg.Node{pg.MakeStrNode("pg_catalog"), pg.MakeStrNode("int8")}, Typemod: -1, Location: -1},
		Location: -1,
	}}}
}

// plus is a + b.
func plus(a, b *pg.Node) *pg.Node {
	return &pg.Node{Node: &pg.Node_AExpr{AExpr: &pg.A_Expr{Kind: pg.A_Expr_Kind_AEXPR_OP,
		Name: []*pg.Node{pg.MakeStrNode("+")}, Lexpr: a, Rexpr: b, Location: -1}}}
}

// constant reads a LIMIT or OFFSET: an integer constant, or NULL / ALL
// (none: def).
func constant(n *pg.Node, what string, def int64) (int64, error) {
	if n == nil {
		return def, nil
	}
	c := n.GetAConst()
	switch {
	case c == nil:
		return 0, refuse("a %s that is not a constant", what)
	case c.Isnull:
		return def, nil
	case c.GetIval() != nil:
		if v := int64(c.GetIval().Ival); v >= 0 {
			return v, nil
		}
	}
	return 0, refuse("%s %s", what, strings.TrimSpace(fmt.Sprint(c.Val)))
}

func intConst(v int64) *pg.Node {
	if v > 1<<31-1 {
		return &pg.Node{Node: &pg.Node_AConst{AConst: &pg.A_Const{Val: &pg.A_Const_Fval{Fval: &pg.Float{Fval: fmt.Sprint(v)}}, Location: -1}}}
	}
	return pg.MakeAConstIntNode(v, -1)
}

// aggCall says whether n is a call of an aggregate belay merges (its
// name), and refuses the aggregates it does not. n with an aggregate
// anywhere else in it is refused too.
func aggCall(n *pg.Node) (string, *pg.FuncCall, error) {
	f := n.GetFuncCall()
	if f != nil {
		name, qualified := funcName(f)
		_, known := gatherAggs[name]
		if !qualified && (known || name == "avg") && f.Over == nil {
			switch {
			case f.AggDistinct:
				return "", nil, refuse("%s(DISTINCT ...)", name)
			case len(f.AggOrder) > 0 || f.AggWithinGroup:
				return "", nil, refuse("%s with ORDER BY", name)
			case f.AggStar != (name == "count" && len(f.Args) == 0) || !f.AggStar && len(f.Args) != 1 || f.FuncVariadic:
				return "", nil, refuse("%s with these arguments", name)
			}
			for _, a := range f.Args {
				if mayAggregate(a) {
					return "", nil, refuse("an aggregate of an aggregate")
				}
			}
			if f.AggFilter != nil && mayAggregate(f.AggFilter) {
				return "", nil, refuse("an aggregate in FILTER")
			}
			return name, f, nil
		}
	}
	if n != nil && mayAggregate(n) {
		if hasWindow(n) {
			return "", nil, refuse("a window function")
		}
		return "", nil, refuse("an aggregate inside an expression, or a function belay does not know not to be one")
	}
	return "", nil, nil
}

// hasWindow says whether n calls a function with OVER.
func hasWindow(n *pg.Node) bool {
	found := false
	walk(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if f, ok := m.Interface().(*pg.FuncCall); ok && f.Over != nil {
			found = true
		}
		_, sub := m.Interface().(*pg.SubLink)
		return !found && !sub
	})
	return found
}

// target adds a client's column.
func (g *gatherer) target(rt *pg.ResTarget) error {
	n := rt.GetVal()
	if c := n.GetColumnRef(); c != nil && len(c.Fields) > 0 && c.Fields[len(c.Fields)-1].GetAStar() != nil {
		if len(g.s.TargetList) > 1 {
			return refuse("* with other columns in the select list (name the columns)")
		}
		// SELECT *: the client's columns are the shard's, but for the hidden
		// ones after them.
		g.targets = append(g.targets, &pg.Node{Node: &pg.Node_ResTarget{ResTarget: rt}})
		g.aggs = append(g.aggs, shard.AggNone)
		g.m.Star = true
		return nil
	}
	name, f, err := aggCall(n)
	if err != nil {
		return err
	}
	out := len(g.m.Out)
	if label := columnLabel(rt); label != "" {
		if _, dup := g.names[label]; dup {
			g.names[label] = -1 // ambiguous
		} else {
			g.names[label] = out
		}
	}
	if name == "avg" {
		sum, count := g.avg(f)
		label := rt.Name
		if label == "" {
			label = "avg"
		}
		g.m.Out = append(g.m.Out, shard.Out{Col: sum, Count: count, Name: label})
		return nil
	}
	col := len(g.targets)
	g.targets = append(g.targets, &pg.Node{Node: &pg.Node_ResTarget{ResTarget: rt}})
	g.aggs = append(g.aggs, gatherAggs[name])
	g.keys[exprKey(n)] = col
	g.m.Out = append(g.m.Out, shard.Out{Col: col, Count: -1})
	return nil
}

// columnLabel is the name PostgreSQL gives a column: its alias, the last
// field of a column reference, or a function's name.
func columnLabel(rt *pg.ResTarget) string {
	if rt.Name != "" {
		return rt.Name
	}
	if c := rt.GetVal().GetColumnRef(); c != nil && len(c.Fields) > 0 {
		return c.Fields[len(c.Fields)-1].GetString_().GetSval()
	}
	return ""
}

// avg adds sum(x) and count(x) hidden columns for avg(x) (FILTER kept),
// or finds them: their shard columns.
func (g *gatherer) avg(f *pg.FuncCall) (int, int) {
	part := func(name string, agg shard.Agg) int {
		c := proto.Clone(f).(*pg.FuncCall)
		c.Funcname = []*pg.Node{pg.MakeStrNode(name)}
		n := &pg.Node{Node: &pg.Node_FuncCall{FuncCall: c}}
		return g.hidden(n, agg)
	}
	return part("sum", shard.AggSum), part("count", shard.AggCount)
}

// hidden is the shard column of expression n, added after the others if
// no column computes it yet.
func (g *gatherer) hidden(n *pg.Node, agg shard.Agg) int {
	k := exprKey(n)
	if col, ok := g.keys[k]; ok {
		return col
	}
	col := len(g.targets)
	// Named apart from the client's columns, so that the shards resolve
	// the client's ORDER BY names as the client's query does.
	name := fmt.Sprintf("belay_hidden_%d", col)
	g.targets = append(g.targets, &pg.Node{Node: &pg.Node_ResTarget{ResTarget: &pg.ResTarget{Name: name, Val: n, Location: -1}}})
	g.aggs = append(g.aggs, agg)
	g.keys[k] = col
	return col
}

// groupKey is the shard column of a GROUP BY item: a client's column by
// position or name, or an expression, hidden if not selected.
func (g *gatherer) groupKey(n *pg.Node) (int, error) {
	if n.GetGroupingSet() != nil {
		return 0, refuse("GROUPING SETS, ROLLUP or CUBE")
	}
	col, known := g.keys[exprKey(n)]
	switch c := n.GetColumnRef(); {
	case known:
	case n.GetAConst() != nil:
		out, ok, _ := g.outRef(n)
		if !ok {
			return 0, refuse("GROUP BY %s", deparseExpr(n))
		}
		o := g.m.Out[out]
		if o.Count >= 0 {
			return 0, refuse("GROUP BY an aggregate")
		}
		col = o.Col
	case c != nil && hasName(g.names, c):
		// PostgreSQL reads a GROUP BY name as an input column first, an
		// output column's only if there is no such input column: belay
		// cannot tell which.
		return 0, refuse("GROUP BY %s, the name of a column of the select list that is another expression", deparseExpr(n))
	default:
		if name, _, err := aggCall(n); err != nil || name != "" {
			return 0, refuse("GROUP BY an aggregate")
		}
		col = g.hidden(n, shard.AggNone)
	}
	if g.aggs[col] != shard.AggNone {
		return 0, refuse("GROUP BY an aggregate")
	}
	return col, nil
}

// hasName says whether column reference c is one name of names.
func hasName(names map[string]int, c *pg.ColumnRef) bool {
	if len(c.Fields) != 1 {
		return false
	}
	_, ok := names[c.Fields[0].GetString_().GetSval()]
	return ok
}

// deparseExpr is n's SQL, for messages.
func deparseExpr(n *pg.Node) string {
	sel := &pg.SelectStmt{TargetList: []*pg.Node{{Node: &pg.Node_ResTarget{ResTarget: &pg.ResTarget{Val: n}}}}}
	s, err := pg.Deparse(&pg.ParseResult{Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: sel}}}}})
	if err != nil {
		return "an expression"
	}
	return strings.TrimPrefix(s, "SELECT ")
}

// outRef resolves a client's column named by position (ORDER BY 2) or by
// its output name (ORDER BY total), as PostgreSQL resolves them in GROUP
// BY and ORDER BY.
func (g *gatherer) outRef(n *pg.Node) (int, bool, error) {
	if c := n.GetAConst(); c != nil && c.GetIval() != nil {
		i := int(c.GetIval().Ival)
		if i < 1 || i > len(g.m.Out) {
			return 0, false, nil // PostgreSQL's own error, from the shards
		}
		return i - 1, true, nil
	}
	if c := n.GetColumnRef(); c != nil && len(c.Fields) == 1 {
		if out, ok := g.names[c.Fields[0].GetString_().GetSval()]; ok && out >= 0 {
			return out, true, nil
		}
	}
	return 0, false, nil
}

// having reads the HAVING clause: comparisons of an aggregate or a group
// key with a numeric constant, joined by AND.
func (g *gatherer) having(n *pg.Node) error {
	if n == nil {
		return nil
	}
	if b := n.GetBoolExpr(); b != nil {
		if b.Boolop != pg.BoolExprType_AND_EXPR {
			return refuse("HAVING with OR or NOT")
		}
		for _, a := range b.Args {
			if err := g.having(a); err != nil {
				return err
			}
		}
		return nil
	}
	e := n.GetAExpr()
	if e == nil || e.Kind != pg.A_Expr_Kind_AEXPR_OP || len(e.Name) != 1 {
		return refuse("a HAVING condition other than a comparison of an aggregate with a constant")
	}
	op := e.Name[0].GetString_().GetSval()
	side, val := e.Lexpr, e.Rexpr
	if numeric(side) != "" {
		side, val = val, side
		op = flipped[op]
	}
	v := numeric(val)
	if v == "" || flipped[op] == "" {
		return refuse("a HAVING condition other than a comparison of an aggregate with a numeric constant")
	}
	c := shard.Cond{Op: op, Value: v, Count: -1}
	name, f, err := aggCall(side)
	switch {
	case err != nil:
		return err
	case name == "avg":
		c.Col, c.Count = g.avg(f)
	case name != "":
		c.Col = g.hidden(side, gatherAggs[name])
	default:
		col, ok := g.keys[exprKey(side)]
		if !ok || g.aggs[col] != shard.AggNone {
			return refuse("a HAVING condition on an expression that is not an aggregate or a GROUP BY column")
		}
		c.Col = col
	}
	g.m.Having = append(g.m.Having, c)
	return nil
}

// flipped is each comparison with its operands swapped.
var flipped = map[string]string{"=": "=", "<>": "<>", "!=": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// numeric is the text of an integer or numeric constant, "" for anything
// else.
func numeric(n *pg.Node) string {
	c := n.GetAConst()
	switch {
	case c == nil || c.Isnull:
		return ""
	case c.GetIval() != nil:
		return fmt.Sprint(c.GetIval().Ival)
	case c.GetFval() != nil:
		return c.GetFval().Fval
	}
	return ""
}

// sortKey adds an ORDER BY key: a client's column, or an expression the
// shards compute in a hidden column, sorted on and then dropped.
func (g *gatherer) sortKey(sb *pg.SortBy) error {
	if sb.SortbyDir == pg.SortByDir_SORTBY_USING {
		return refuse("ORDER BY ... USING")
	}
	k := shard.SortKey{Desc: sb.SortbyDir == pg.SortByDir_SORTBY_DESC}
	k.NullsFirst = k.Desc
	switch sb.SortbyNulls {
	case pg.SortByNulls_SORTBY_NULLS_FIRST:
		k.NullsFirst = true
	case pg.SortByNulls_SORTBY_NULLS_LAST:
		k.NullsFirst = false
	}
	n := sb.Node
	if cc := n.GetCollateClause(); cc != nil {
		var name []string
		for _, p := range cc.Collname {
			name = append(name, p.GetString_().GetSval())
		}
		switch strings.Join(name, ".") {
		case "C", "POSIX", "ucs_basic", "pg_catalog.C", "pg_catalog.POSIX", "pg_catalog.ucs_basic":
			k.Bytewise = true
		default:
			return refuse("ORDER BY ... COLLATE %q (belay orders text by bytes only: COLLATE \"C\")", strings.Join(name, "."))
		}
		n = cc.Arg
	}
	if out, ok, err := g.outRef(n); err != nil {
		return err
	} else if ok && (!g.m.Star || n.GetAConst() != nil) {
		k.Out = out
		g.m.Order = append(g.m.Order, k)
		return nil
	}
	// An expression: a client's column computing it, or a hidden one.
	if col, ok := g.keys[exprKey(n)]; ok && !g.m.Star {
		if out := g.outOf(col); out >= 0 {
			k.Out = out
			g.m.Order = append(g.m.Order, k)
			return nil
		}
	}
	if g.m.Distinct {
		return refuse("ORDER BY an expression not in a DISTINCT select list")
	}
	name, f, err := aggCall(n)
	if err != nil {
		return err
	}
	var out shard.Out
	switch {
	case name == "avg":
		sum, count := g.avg(f)
		out = shard.Out{Col: sum, Count: count, Name: "avg"}
	case name != "":
		out = shard.Out{Col: g.hidden(n, gatherAggs[name]), Count: -1}
	case g.grouped:
		col, ok := g.keys[exprKey(n)]
		if !ok || g.aggs[col] != shard.AggNone {
			return refuse("ORDER BY an expression that is neither selected, an aggregate nor a GROUP BY column")
		}
		out = shard.Out{Col: col, Count: -1}
	case g.m.Star:
		// After the star's columns, whose number the shards will say.
		g.m.Hidden++
		k.Out = -g.m.Hidden
		g.hidden(n, shard.AggNone)
		g.m.Order = append(g.m.Order, k)
		return nil
	default:
		out = shard.Out{Col: g.hidden(n, shard.AggNone), Count: -1}
	}
	k.Out = len(g.m.Out)
	g.m.Out = append(g.m.Out, out)
	g.m.Hidden++
	g.m.Order = append(g.m.Order, k)
	return nil
}

// outOf is the client's column that is shard column col, or -1.
func (g *gatherer) outOf(col int) int {
	for i, o := range g.m.Out {
		if o.Col == col && o.Count < 0 {
			return i
		}
	}
	return -1
}

// exprKey identifies an expression by its parse tree without locations:
// two spellings of the same tree (spacing, case of keywords) share it.
func exprKey(n *pg.Node) string {
	c := proto.Clone(n)
	walk(c.ProtoReflect(), func(m protoreflect.Message) bool {
		if f := m.Descriptor().Fields().ByName("location"); f != nil {
			m.Clear(f)
		}
		return true
	})
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	return string(b)
}
