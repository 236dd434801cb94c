package planner

import (
	"errors"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Span is a byte range of the planned text (Plan.Text).
type Span struct{ Loc, Len int32 }

// End is the offset just past the span.
func (s Span) End() int32 { return s.Loc + s.Len }

// Stmt is one statement of a plan.
type Stmt struct {
	Class   Class
	Effects Effect
	// Span is the whole statement in the planned text (from pg_query's
	// stmt_location/stmt_len; it may start with the white space and comments
	// after the previous ';', and never includes its own ';').
	Span Span
	// Name is the prepared statement's name for PREPARE, EXECUTE and
	// DEALLOCATE, as Postgres folds it (unquoted identifiers lower-cased);
	// "" for DEALLOCATE ALL.
	Name string
	// NameSpan is where Name is written in the planned text (a quoted name
	// includes its quotes); zero when there is no name.
	NameSpan Span
	// KeyFilters are the columns a SELECT, UPDATE or DELETE pins to
	// constants at the top level of its WHERE clause (keys.go).
	KeyFilters []KeyFilter
	// Insert is what an INSERT writes (nil for other statements).
	Insert *InsertRows
	// SetColumns are the columns an UPDATE assigns.
	SetColumns []string
	// Target is the table an INSERT, UPDATE, DELETE or COPY FROM writes,
	// as written.
	Target string
	// Copy says whether the statement is a COPY, and which way.
	Copy CopyDir
	// CopyIn is what a COPY FROM says of its rows (copy.go); nil for
	// other statements.
	CopyIn *CopyIn
	// NoTxBlock: maintenance PostgreSQL runs only outside a transaction
	// block, VACUUM and the CONCURRENTLY forms of CREATE INDEX, DROP
	// INDEX and REINDEX.
	NoTxBlock bool
	// Returning: an INSERT, UPDATE or DELETE with a RETURNING list.
	Returning bool
	// Concat: a SELECT whose result over a table split in parts is the
	// parts' results one after the other: no aggregate (or function that
	// may be one) or window in its select list, no GROUP BY, HAVING,
	// DISTINCT, ORDER BY, LIMIT, OFFSET, FOR UPDATE, INTO, WITH or set
	// operation. (A scatter's rows need no merge.)
	Concat bool
	// Materializes: CREATE TABLE AS, CREATE MATERIALIZED VIEW or SELECT
	// INTO, which store a query's rows in a new relation.
	Materializes bool
	// RowSources are the relations a SELECT names directly in its FROM
	// (through joins, not in a subquery), but for those on the nullable
	// side of an outer join: every row of the SELECT's join holds a row of
	// each, as written. A relation of Relations that is not one of them
	// is read in a subquery, a CTE or as optional rows of an outer join.
	RowSources []string
	// Relations are the statement's relation references, as written, one
	// per reference (a table named twice is listed twice; CTE names left
	// out), in the parse tree's order.
	Relations []string
}

// ViewRef is a reference to a relation in the planned text.
type ViewRef struct {
	Span    Span // the relation's name, qualified as written
	Aliased bool // an alias follows (FROM pg_prepared_statements AS s)
}

// Plan is what the proxy needs to know about a SQL text. Plans returned by a
// Cache are shared and immutable: callers must not modify them.
type Plan struct {
	// Class is the strongest class of Stmts (Write > Utility > Session >
	// TxControl > Read); ClassUnknown if the text did not parse; ClassRead
	// for a text without statements.
	Class Class
	// Effects is the union of the Stmts' effects.
	Effects Effect
	// ReplicaOK: every statement could run on a read replica: false for
	// writes, FOR UPDATE, data-modifying CTEs, functions known to write or to
	// depend on the session (currval), LISTEN/NOTIFY, EXECUTE, utility
	// statements, and calls of user functions whose volatility is unknown or
	// volatile (see Cache.SetVolatility).
	ReplicaOK bool
	Stmts     []Stmt
	// Tables are the relations read or written, as written (schema-qualified
	// if written so), deduplicated and sorted. CTE names are left out.
	Tables []string
	// Functions are the user (not built-in) functions called, as written
	// (schema.name if qualified), deduplicated and sorted.
	Functions []string
	// Settings are the custom settings (names with a dot, myapp.tenant) that
	// SET, RESET or set_config with a constant name change, lower-cased,
	// deduplicated and sorted: Postgres lists them in no catalog, so a proxy
	// following a session's settings asks for each by name.
	Settings []string
	// Params are the spans of each $n parameter and each literal (numbers
	// and strings; not NULL, TRUE, FALSE) in the planned text, in order.
	Params []Span
	// PreparedViews are the references to pg_prepared_statements (or
	// pg_catalog.pg_prepared_statements) in the planned text, in order.
	PreparedViews []ViewRef
	// Err is the parse error; nil when the text parsed.
	Err error
	// Text is the planned text that the spans refer to: the SQL given to
	// Parse; for a plan from a Cache, the normalized text if the plan was
	// made from it.
	Text string

	// replicaBase is ReplicaOK before user functions are considered.
	replicaBase bool
}

// Normalized reports whether the plan's spans refer to a text other than
// sql (that is, to its normalized form).
func (p *Plan) Normalized(sql []byte) bool { return p.Text != string(sql) }

var errNUL = errors.New("planner: SQL text contains a NUL byte")

// Parse plans exactly sql (uncached; the spans refer to sql). It never
// returns nil. On a parse error the plan has ClassUnknown, Err set, one Stmt
// spanning the text, and the Effects of the lexical scanner SessionEffects
// mapped conservatively (anything session-ish becomes EffPin|EffGUC) so that
// a proxy errs on the safe side. It is safe for concurrent use.
func Parse(sql string) *Plan {
	p := &Plan{Text: sql}
	if strings.IndexByte(sql, 0) >= 0 {
		return failed(p, errNUL)
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return failed(p, err)
	}
	w := walker{sql: sql, p: p}
	p.ReplicaOK = true
	p.Class = ClassRead
	p.Stmts = make([]Stmt, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		st, replicaOK := w.stmt(raw)
		if !replicaOK {
			p.ReplicaOK = false
		}
		if st.Class.rank() > p.Class.rank() {
			p.Class = st.Class
		}
		p.Effects |= st.Effects
		p.Stmts = append(p.Stmts, st)
	}
	p.Tables = sortUniq(w.tables)
	p.Functions = sortUniq(w.funcs)
	p.Settings = sortUniq(w.settings)
	slices.SortFunc(w.params, func(a, b Span) int { return int(a.Loc - b.Loc) })
	p.Params = slices.Compact(w.params)
	slices.SortFunc(w.views, func(a, b ViewRef) int { return int(a.Span.Loc - b.Span.Loc) })
	p.PreparedViews = w.views
	p.replicaBase = p.ReplicaOK
	if len(p.Functions) > 0 {
		p.ReplicaOK = false // volatility unknown here
	}
	return p
}

func failed(p *Plan, err error) *Plan {
	p.Class = ClassUnknown
	p.Err = err
	p.Effects = fromLegacy(SessionEffects([]byte(p.Text))) | EffMayAdvance
	p.Stmts = []Stmt{{Class: ClassUnknown, Effects: p.Effects, Span: Span{0, int32(len(p.Text))}}}
	return p
}

func sortUniq(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

type walker struct {
	sql      string
	p        *Plan
	tables   []string
	funcs    []string
	params   []Span
	settings []string
	views    []ViewRef

	// per statement
	exec        bool // the statement runs what is walked (not PREPARE, not EXPLAIN without ANALYZE)
	writes      bool // DML, FOR UPDATE, SELECT INTO, a function known to write
	primaryOnly bool // a function that depends on the session or the primary
	eff         Effect
	ctes        []string
	rels        []relRef
}

type relRef struct {
	name        string
	unqualified bool
}

func (w *walker) stmt(raw *pg.RawStmt) (st Stmt, replicaOK bool) {
	loc, n := int(raw.StmtLocation), int(raw.StmtLen)
	if loc < 0 || loc > len(w.sql) {
		loc = 0
	}
	if n <= 0 || loc+n > len(w.sql) {
		n = len(w.sql) - loc
	}
	st.Span = Span{int32(loc), int32(n)}
	w.exec, w.writes, w.primaryOnly, w.eff = true, false, false, 0
	w.ctes, w.rels = w.ctes[:0], w.rels[:0]

	base := true // could run on a replica, before what the walk finds
	funcsBefore := len(w.funcs)
	node := raw.GetStmt()
	switch n := node.GetNode().(type) {
	case *pg.Node_SelectStmt, *pg.Node_VariableShowStmt:
		st.Class = ClassRead
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt,
		*pg.Node_CallStmt:
		st.Class = ClassWrite
	case *pg.Node_DoStmt:
		// The body is opaque PL code: the lexical scanner looks through it
		// (CREATE TEMP, set_config, advisory locks, ...), conservatively.
		st.Class = ClassWrite
		for _, a := range n.DoStmt.Args {
			if d := a.GetDefElem(); d != nil && d.Defname == "as" {
				st.Effects |= fromLegacy(SessionEffects([]byte(d.Arg.GetString_().GetSval())))
			}
		}
	case *pg.Node_ExplainStmt:
		st.Class = ClassRead
		if explainAnalyze(n.ExplainStmt.Options) {
			st.Class, base = innerClass(n.ExplainStmt.Query)
		} else {
			w.exec = false
		}
		if ex := n.ExplainStmt.Query.GetExecuteStmt(); ex != nil {
			st.Effects, st.Name, base = EffExecute, ex.Name, false
			st.NameSpan = w.innerExecuteName(st.Span, n)
		}
	case *pg.Node_TransactionStmt:
		st.Class = ClassTxControl
		base = txReplicaOK(n.TransactionStmt)
		if beginsReadOnly(n.TransactionStmt) {
			st.Effects |= EffReadOnlyTx
		}
	case *pg.Node_VariableSetStmt:
		st.Class = ClassSession
		st.Effects = varSetEffects(n.VariableSetStmt)
		w.setting(n.VariableSetStmt.Name)
	case *pg.Node_ConstraintsSetStmt, *pg.Node_FetchStmt:
		st.Class = ClassSession
	case *pg.Node_PrepareStmt:
		st.Class, st.Effects, st.Name = ClassSession, EffPrepare, n.PrepareStmt.Name
		st.NameSpan = w.nameSpan(loc, "prepare", "")
		w.exec = false
	case *pg.Node_ExecuteStmt:
		st.Class, st.Effects, st.Name = ClassSession, EffExecute, n.ExecuteStmt.Name
		st.NameSpan = w.nameSpan(loc, "execute", "")
		base = false // what it runs is not known here
	case *pg.Node_DeallocateStmt:
		st.Class, st.Name = ClassSession, n.DeallocateStmt.Name
		if st.Name == "" {
			st.Effects = EffDeallocateAll
		} else {
			st.Effects = EffDeallocate
			st.NameSpan = w.nameSpan(loc, "deallocate", "prepare")
		}
	case *pg.Node_ListenStmt:
		st.Class, st.Effects, base = ClassSession, EffListen, false
	case *pg.Node_UnlistenStmt:
		st.Class, st.Effects, base = ClassSession, EffMayRelease, false
	case *pg.Node_NotifyStmt:
		st.Class, base = ClassSession, false
	case *pg.Node_DiscardStmt:
		st.Class, st.Effects = ClassSession, EffMayRelease
		switch n.DiscardStmt.Target {
		case pg.DiscardMode_DISCARD_ALL:
			st.Effects |= EffGUC | EffDiscardAll | EffReset | EffDiscardSeq
		case pg.DiscardMode_DISCARD_SEQUENCES:
			st.Effects |= EffDiscardSeq
		}
	case *pg.Node_LoadStmt:
		st.Class, st.Effects = ClassSession, EffLoad
	case *pg.Node_DeclareCursorStmt:
		st.Class = ClassSession
		if n.DeclareCursorStmt.Options&cursorOptHold != 0 {
			st.Effects = EffHoldCursor
		}
	case *pg.Node_ClosePortalStmt:
		st.Class, st.Effects = ClassSession, EffMayRelease
	case *pg.Node_DropStmt:
		st.Class, st.Effects, base = ClassUtility, EffMayRelease, false
		switch n.DropStmt.RemoveType {
		case pg.ObjectType_OBJECT_FUNCTION, pg.ObjectType_OBJECT_PROCEDURE, pg.ObjectType_OBJECT_ROUTINE,
			pg.ObjectType_OBJECT_AGGREGATE, pg.ObjectType_OBJECT_EXTENSION, pg.ObjectType_OBJECT_SCHEMA:
			st.Effects |= EffFunctionDDL
		}
	case *pg.Node_CreateFunctionStmt, *pg.Node_AlterFunctionStmt, *pg.Node_CreateExtensionStmt,
		*pg.Node_AlterExtensionStmt, *pg.Node_AlterExtensionContentsStmt:
		st.Class, st.Effects, base = ClassUtility, EffFunctionDDL, false
	case *pg.Node_RenameStmt:
		st.Class, base = ClassUtility, false
		if funcObject(n.RenameStmt.RenameType) {
			st.Effects = EffFunctionDDL
		}
	case *pg.Node_AlterObjectSchemaStmt:
		st.Class, base = ClassUtility, false
		if funcObject(n.AlterObjectSchemaStmt.ObjectType) {
			st.Effects = EffFunctionDDL
		}
	case *pg.Node_CreateTableAsStmt:
		st.Class, base = ClassUtility, false
		if ex := n.CreateTableAsStmt.Query.GetExecuteStmt(); ex != nil {
			st.Effects, st.Name = EffExecute, ex.Name
			st.NameSpan = w.innerExecuteName(st.Span, n)
		}
	case *pg.Node_CopyStmt:
		c := n.CopyStmt
		st.Class = ClassUtility
		base = !c.IsFrom && !c.IsProgram && c.Filename == ""
	default:
		st.Class, base = ClassUtility, false
	}
	if node != nil {
		w.keys(&st, node)
		w.walk(node.ProtoReflect())
	}
	for _, r := range w.rels {
		if r.unqualified && slices.Contains(w.ctes, r.name) {
			continue
		}
		w.tables = append(w.tables, r.name)
		st.Relations = append(st.Relations, r.name)
	}
	st.Effects |= w.eff
	if w.writes && (st.Class == ClassRead || st.Class == ClassSession) {
		st.Class = ClassWrite
	}
	if mayAdvance(st, len(w.funcs) > funcsBefore) {
		st.Effects |= EffMayAdvance
	}
	replicaOK = base && !w.writes && !w.primaryOnly && st.Class != ClassWrite && st.Class != ClassUnknown
	return st, replicaOK
}

// mayAdvance says whether running st may call nextval or setval: explicitly,
// or through column defaults and triggers (any write, COPY, DDL), CALL, DO,
// EXECUTE, or a user function (userFuncs).
func mayAdvance(st Stmt, userFuncs bool) bool {
	switch st.Class {
	case ClassWrite, ClassUtility, ClassUnknown:
		return true
	}
	return userFuncs || st.Effects&(EffNextval|EffExecute) != 0
}

// setting notes a setting name that a statement changes, if it is custom.
func (w *walker) setting(name string) {
	if strings.Contains(name, ".") {
		w.settings = append(w.settings, strings.ToLower(name))
	}
}

// funcObject: is t a kind of function?
func funcObject(t pg.ObjectType) bool {
	switch t {
	case pg.ObjectType_OBJECT_FUNCTION, pg.ObjectType_OBJECT_PROCEDURE, pg.ObjectType_OBJECT_ROUTINE, pg.ObjectType_OBJECT_AGGREGATE:
		return true
	}
	return false
}

// cursorOptHold is CURSOR_OPT_HOLD of Postgres's parsenodes.h.
const cursorOptHold = 0x0020

// nameSpan finds the name after the keyword kw and, if opt is not "", the
// optional keyword opt (which is itself the name when nothing follows it:
// DEALLOCATE PREPARE is the deallocation of a statement named prepare).
func (w *walker) nameSpan(loc int, kw, opt string) Span {
	i := skipBlank(w.sql, loc)
	j, ok := keywordAt(w.sql, i, kw)
	if !ok {
		return Span{}
	}
	i = skipBlank(w.sql, j)
	if opt != "" {
		if j, ok := keywordAt(w.sql, i, opt); ok {
			if k := skipBlank(w.sql, j); nameTokenEnd(w.sql, k) > k {
				i = k
			}
		}
	}
	e := nameTokenEnd(w.sql, i)
	if e < 0 {
		return Span{}
	}
	return Span{int32(i), int32(e - i)}
}

// innerExecuteName finds the name of the prepared statement that an
// EXPLAIN or a CREATE TABLE AS (statement st, spanning sp) runs: the name after
// the first keyword EXECUTE that the tree's name follows (EXPLAIN's options
// and the new table's name and columns come before it), or no span.
func (w *walker) innerExecuteName(sp Span, st any) Span {
	var name string
	switch n := st.(type) {
	case *pg.Node_ExplainStmt:
		name = n.ExplainStmt.Query.GetExecuteStmt().GetName()
	case *pg.Node_CreateTableAsStmt:
		name = n.CreateTableAsStmt.Query.GetExecuteStmt().GetName()
	}
	end := int(sp.End())
	for i := skipBlank(w.sql, int(sp.Loc)); i < end; i = skipBlank(w.sql, i) {
		if j, ok := keywordAt(w.sql, i, "execute"); ok {
			k := skipBlank(w.sql, j)
			if e := nameTokenEnd(w.sql, k); e > k && foldName(w.sql[k:e]) == name {
				return Span{int32(k), int32(e - k)}
			}
		}
		i = tokenEnd(w.sql, i)
	}
	return Span{}
}

// qualifiedNameSpan is the span of the possibly qualified name
// (name[.name[.name]]) at loc, or an empty span.
func (w *walker) qualifiedNameSpan(loc int) Span {
	e := nameTokenEnd(w.sql, loc)
	if e < 0 {
		return Span{}
	}
	for {
		d := skipBlank(w.sql, e)
		if d >= len(w.sql) || w.sql[d] != '.' {
			break
		}
		n := skipBlank(w.sql, d+1)
		ne := nameTokenEnd(w.sql, n)
		if ne < 0 {
			break
		}
		e = ne
	}
	return Span{int32(loc), int32(e - loc)}
}

// walk visits every message under m.
func (w *walker) walk(m protoreflect.Message) {
	switch n := m.Interface().(type) {
	case *pg.A_Const:
		w.aConst(n)
		return
	case *pg.ParamRef:
		w.literal(n.Location)
		return
	case *pg.String:
		if isPgTemp(n.Sval) {
			w.eff |= EffTemp
		}
		return
	case *pg.RangeVar:
		w.rangeVar(n)
	case *pg.FuncCall:
		w.funcCall(n)
	case *pg.CommonTableExpr:
		w.ctes = append(w.ctes, n.Ctename)
	case *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.MergeStmt:
		if w.exec {
			w.writes = true
		}
	case *pg.SelectStmt:
		if w.exec && (n.IntoClause != nil || len(n.LockingClause) > 0) {
			w.writes = true
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.walk(l.Get(i).Message())
			}
		} else if !fd.IsMap() {
			w.walk(v.Message())
		}
		return true
	})
}

func isPgTemp(s string) bool {
	if !strings.HasPrefix(s, "pg_temp") {
		return false
	}
	rest := s[len("pg_temp"):]
	if rest == "" {
		return true
	}
	if rest[0] != '_' || len(rest) == 1 {
		return false
	}
	for i := 1; i < len(rest); i++ {
		if !isDigit(rest[i]) {
			return false
		}
	}
	return true
}

func (w *walker) rangeVar(n *pg.RangeVar) {
	if n.Relpersistence == "t" || isPgTemp(n.Schemaname) {
		w.eff |= EffTemp
	}
	if n.Relname == "pg_prepared_statements" && n.Catalogname == "" && (n.Schemaname == "" || n.Schemaname == "pg_catalog") {
		if sp := w.qualifiedNameSpan(int(n.Location)); sp.Len > 0 {
			w.eff |= EffPreparedView
			w.views = append(w.views, ViewRef{Span: sp, Aliased: n.Alias != nil})
		}
	}
	name := n.Relname
	if n.Schemaname != "" {
		name = n.Schemaname + "." + name
		if n.Catalogname != "" {
			name = n.Catalogname + "." + name
		}
	}
	w.rels = append(w.rels, relRef{name, n.Schemaname == ""})
}

func (w *walker) aConst(n *pg.A_Const) {
	if n.Isnull {
		return
	}
	if _, ok := n.Val.(*pg.A_Const_Boolval); ok {
		return
	}
	w.literal(n.Location)
}

// literal records the literal or parameter at loc, if the text has one there
// (some constants of the tree are keywords or identifiers in the text).
func (w *walker) literal(loc int32) {
	e := literalEnd(w.sql, int(loc))
	if e > int(loc) {
		w.params = append(w.params, Span{loc, int32(e) - loc})
	}
}

func (w *walker) funcCall(n *pg.FuncCall) {
	var schema, name string
	parts := make([]string, 0, len(n.Funcname))
	for _, f := range n.Funcname {
		parts = append(parts, f.GetString_().GetSval())
	}
	switch len(parts) {
	case 0:
		return
	case 1:
		name = parts[0]
	default:
		schema, name = parts[len(parts)-2], parts[len(parts)-1]
	}
	if !(schema == "pg_catalog" || schema == "" && isBuiltin(name)) {
		if w.exec {
			w.funcs = append(w.funcs, strings.Join(parts, "."))
		}
		return
	}
	if !w.exec {
		return
	}
	switch name {
	case "currval", "lastval":
		w.eff |= EffCurrval
	case "nextval", "setval":
		w.eff |= EffNextval
	}
	switch {
	case name == "pg_advisory_lock", name == "pg_advisory_lock_shared",
		name == "pg_try_advisory_lock", name == "pg_try_advisory_lock_shared":
		w.eff |= EffAdvisoryLock
		w.writes = true
	case strings.HasPrefix(name, "pg_advisory_unlock"):
		w.eff |= EffMayRelease
		w.writes = true
	case name == "set_config":
		w.writes = true
		if len(n.Args) > 0 {
			if c := n.Args[0].GetAConst(); c != nil {
				w.setting(c.GetSval().GetSval())
			}
		}
		if len(n.Args) < 3 || !constTrue(n.Args[2]) {
			w.eff |= EffGUC
		}
	case writeFuncs[name] || strings.HasPrefix(name, "lo_"):
		w.writes = true
	case primaryFuncs[name]:
		w.primaryOnly = true
	}
}

// constTrue: is the expression the constant true ('true', 'on', ...)?
func constTrue(n *pg.Node) bool {
	if tc := n.GetTypeCast(); tc != nil {
		n = tc.Arg
	}
	c := n.GetAConst()
	if c == nil || c.Isnull {
		return false
	}
	switch v := c.Val.(type) {
	case *pg.A_Const_Boolval:
		return v.Boolval.GetBoolval()
	case *pg.A_Const_Sval:
		switch strings.ToLower(strings.TrimSpace(v.Sval.GetSval())) {
		case "true", "t", "on", "yes", "y", "1":
			return true
		}
	case *pg.A_Const_Ival:
		return v.Ival.GetIval() != 0
	}
	return false
}

// writeFuncs are built-in functions that write or act on the server (so they
// make a statement a write and pin it to the primary). lo_* are added by
// prefix.
var writeFuncs = map[string]bool{
	"nextval": true, "setval": true,
	"pg_advisory_xact_lock": true, "pg_advisory_xact_lock_shared": true,
	"pg_try_advisory_xact_lock": true, "pg_try_advisory_xact_lock_shared": true,
	"loread": true, "lowrite": true, "pg_notify": true,
	"txid_current": true, "pg_current_xact_id": true,
	"pg_switch_wal": true, "pg_create_restore_point": true, "pg_logical_emit_message": true,
	"pg_create_physical_replication_slot": true, "pg_create_logical_replication_slot": true,
	"pg_drop_replication_slot": true, "pg_copy_physical_replication_slot": true,
	"pg_copy_logical_replication_slot": true, "pg_replication_slot_advance": true,
	"pg_logical_slot_get_changes": true, "pg_logical_slot_get_binary_changes": true,
	"pg_stat_reset": true, "pg_stat_reset_shared": true, "pg_stat_reset_single_table_counters": true,
	"pg_stat_reset_single_function_counters": true, "pg_stat_reset_slru": true,
	"pg_stat_reset_replication_slot": true, "pg_stat_reset_subscription_stats": true,
	"pg_cancel_backend": true, "pg_terminate_backend": true, "pg_reload_conf": true,
	"pg_rotate_logfile": true, "pg_promote": true, "pg_backup_start": true, "pg_backup_stop": true,
	"pg_import_system_collations": true, "pg_replication_origin_create": true,
	"pg_replication_origin_drop": true, "pg_replication_origin_advance": true,
	"brin_summarize_range": true, "brin_summarize_new_values": true, "brin_desummarize_range": true,
	"gin_clean_pending_list": true,
}

// primaryFuncs are built-in functions that do not write but must run where
// the session's earlier statements ran, or run SQL text of their own.
var primaryFuncs = map[string]bool{
	"currval": true, "lastval": true, "setseed": true,
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
}

// explainAnalyze: do EXPLAIN's options run the statement?
func explainAnalyze(opts []*pg.Node) bool {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		if d.Arg == nil {
			return true
		}
		if s := d.Arg.GetString_(); s != nil {
			switch strings.ToLower(s.Sval) {
			case "false", "off", "no", "0":
				return false
			}
			return true
		}
		if c := d.Arg.GetAConst(); c != nil {
			return constTrue(d.Arg)
		}
		if i := d.Arg.GetInteger(); i != nil {
			return i.Ival != 0
		}
		return true
	}
	return false
}

// innerClass is the class of a statement run by EXPLAIN ANALYZE, and whether
// it could run on a replica before the walk looks inside.
func innerClass(n *pg.Node) (Class, bool) {
	switch n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return ClassRead, true
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt, *pg.Node_ExecuteStmt:
		return ClassWrite, false
	case *pg.Node_DeclareCursorStmt:
		return ClassSession, true
	}
	return ClassUtility, false
}

// beginsReadOnly: is t a BEGIN or START TRANSACTION with READ ONLY?
func beginsReadOnly(t *pg.TransactionStmt) bool {
	if t.Kind != pg.TransactionStmtKind_TRANS_STMT_BEGIN && t.Kind != pg.TransactionStmtKind_TRANS_STMT_START {
		return false
	}
	for _, o := range t.Options {
		if d := o.GetDefElem(); d != nil && d.Defname == "transaction_read_only" && d.Arg.GetAConst() != nil && constTrue(d.Arg) {
			return true
		}
	}
	return false
}

// txReplicaOK: may this transaction statement run on a hot standby?
func txReplicaOK(t *pg.TransactionStmt) bool {
	switch t.Kind {
	case pg.TransactionStmtKind_TRANS_STMT_PREPARE, pg.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED,
		pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return false
	}
	for _, o := range t.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		c := d.Arg.GetAConst()
		switch d.Defname {
		case "transaction_read_only":
			if c != nil && !constTrue(d.Arg) {
				return false // READ WRITE
			}
		case "transaction_isolation":
			if c != nil && c.GetSval().GetSval() == "serializable" {
				return false // not on a standby
			}
		}
	}
	return true
}

// varSetEffects: what a SET/RESET leaves on the session.
func varSetEffects(v *pg.VariableSetStmt) Effect {
	if v.Kind == pg.VariableSetKind_VAR_RESET_ALL {
		return EffGUC | EffMayRelease | EffReset
	}
	if v.IsLocal {
		return 0
	}
	reset := v.Kind == pg.VariableSetKind_VAR_RESET || v.Kind == pg.VariableSetKind_VAR_SET_DEFAULT
	switch v.Name {
	case "TRANSACTION", "TRANSACTION SNAPSHOT":
		return 0
	case "role":
		if reset {
			return EffGUC | EffMayRelease | EffReset
		}
		if len(v.Args) == 1 && strings.EqualFold(v.Args[0].GetAConst().GetSval().GetSval(), "none") {
			return EffGUC | EffMayRelease
		}
		return EffGUC | EffRole
	case "session_authorization":
		if reset {
			return EffGUC | EffMayRelease | EffReset
		}
		return EffGUC | EffRole
	}
	if reset {
		return EffGUC | EffReset
	}
	return EffGUC
}
