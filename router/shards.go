package router

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/shard"
)

// Where a statement runs in a sharded database (issue J): the planner's
// account of it (the relations it names, the columns it pins to constants,
// the rows an INSERT writes), the sharding schema and, once bound, its
// parameters go in; the shards come out, or a refusal with 0A000 naming
// what belay cannot answer correctly. Never a wrong answer: a statement
// whose rows could be on shards it would not run on is refused.

// Spread says how many shards a statement runs on.
type Spread uint8

const (
	// AnyShard: it reads nothing sharded (reference tables, the catalogs,
	// no table): any one shard answers it.
	AnyShard Spread = 1 + iota
	// OneShard: every row it reads or writes is on Shards[0].
	OneShard
	// ShardSet: it runs on each of Shards (a scatter: a read's results are
	// merged, a write to a reference table reaches every copy, DDL every
	// shard).
	ShardSet
)

// ShardTarget is where a statement runs.
type ShardTarget struct {
	Spread Spread
	Shards []int // OneShard: one; ShardSet: several, sorted; AnyShard: none
	// RowShards is, for an INSERT ... VALUES into a sharded table, each
	// row's shard: rows of several shards are split between them.
	RowShards []int
	// Copy is, for a COPY FROM STDIN into a table of the schema, how it
	// runs on every shard (copy.go).
	Copy *CopySplit
}

// ErrConverted: a key value that is not of the key's type but one
// PostgreSQL compares with it or converts to it (a numeric 2.0 or
// 99999999999999999999 for an integer key): a filter with it pins no
// shard, an INSERT of it is refused (its row's key is PostgreSQL's
// conversion).
var ErrConverted = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "a sharding key given as a number that is not an integer of the key's range (PostgreSQL converts it: write the key's own value)"}

// Params gives a statement's bound parameters.
type Params interface {
	// Key reads parameter n (from 1) as a key of type t; known is false
	// while the statement is not bound (a Parse before its Bind).
	Key(n int, t shard.KeyType) (v shard.Value, known bool, err error)
}

// notInSchema refuses a write (or read) of a table the schema does not
// name: on which shards its rows are is not known.
func notInSchema(name string) error {
	return refuse("table %s is not in the sharding schema: declare it sharded or a reference table (belay shard)", name)
}

// ErrUnbound: the statement's shard depends on a parameter not bound yet;
// decide again at Bind.
var ErrUnbound = errors.New("router: the shard depends on a parameter not bound yet")

// refuse is the 0A000 of a statement belay cannot run correctly on shards.
func refuse(format string, args ...any) error {
	return &shard.Error{Code: sqlstate.FeatureNotSupported, Message: fmt.Sprintf(format, args...)}
}

// Shards decides where the statements of p run under schema sc. A query
// string of several statements runs where each runs, and must run on one
// place: statements on different shards in one query string are refused.
// The error is ErrUnbound, a refusal (*shard.Error, 0A000), or a key
// value's error as Postgres would give it (*shard.Error: 22P02, 22003).
func Shards(sc *shard.Schema, p *planner.Plan, params Params) (ShardTarget, error) {
	t := ShardTarget{Spread: AnyShard}
	for i := range p.Stmts {
		s, err := stmtShards(sc, &p.Stmts[i], params)
		if err != nil {
			return ShardTarget{}, err
		}
		switch {
		case i == 0 || t.Spread == AnyShard:
			t = s
		case s.Spread == AnyShard:
		case s.Spread != t.Spread || !slices.Equal(s.Shards, t.Shards) || s.RowShards != nil || t.RowShards != nil:
			return ShardTarget{}, refuse("a query string whose statements run on different shards: send them one by one")
		}
	}
	return t, nil
}

// every is all shards of sc.
func every(sc *shard.Schema) ShardTarget {
	all := make([]int, sc.Shards())
	for i := range all {
		all[i] = i
	}
	if len(all) == 1 {
		return ShardTarget{Spread: OneShard, Shards: all}
	}
	return ShardTarget{Spread: ShardSet, Shards: all}
}

// on is the target of the shards in set (sorted, unique, non-empty).
func on(set []int) ShardTarget {
	if len(set) == 1 {
		return ShardTarget{Spread: OneShard, Shards: set}
	}
	return ShardTarget{Spread: ShardSet, Shards: set}
}

// relKind is how a relation of a statement is spread.
type relKind uint8

const (
	relCatalog   relKind = iota // pg_catalog, information_schema, pg_*: the same on every shard
	relReference                // a reference table
	relSharded                  // a sharded table
	relUnknown                  // a user table the schema does not name
)

// rel is one relation a statement names.
type rel struct {
	name  string // as written
	kind  relKind
	table shard.Table
}

// lookup classifies the relation named name (as the planner writes it:
// parts already folded, joined by dots).
func lookup(sc *shard.Schema, name string) rel {
	schema, table := "", name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		schema, table = name[:i], name[i+1:]
		if j := strings.LastIndexByte(schema, '.'); j >= 0 {
			schema = schema[j+1:] // database.schema.table
		}
	}
	if t, ok := sc.Lookup(schema, table); ok {
		if t.Kind == shard.Sharded {
			return rel{name, relSharded, t}
		}
		return rel{name, relReference, t}
	}
	if schema == "pg_catalog" || schema == "information_schema" || schema == "" && strings.HasPrefix(table, "pg_") {
		return rel{name: name, kind: relCatalog}
	}
	return rel{name: name, kind: relUnknown}
}

// LookupTable is the schema's table that name (as the planner writes
// it: parts folded, joined by dots) refers to, if the schema has it.
func LookupTable(sc *shard.Schema, name string) (shard.Table, bool) {
	r := lookup(sc, name)
	return r.table, r.kind == relSharded || r.kind == relReference
}

// stmtShards decides where one statement runs.
func stmtShards(sc *shard.Schema, st *planner.Stmt, params Params) (ShardTarget, error) {
	switch st.Class {
	case planner.ClassSession, planner.ClassTxControl:
		// The session's state and transaction: wherever it holds a server.
		// A cursor or an SQL prepared statement over a sharded table would
		// be one shard's (the client's current one): its rows, or its key's
		// shard never consulted at EXECUTE.
		for _, name := range st.Relations {
			if r := lookup(sc, name); r.kind == relSharded {
				return ShardTarget{}, refuse("a cursor or SQL prepared statement (DECLARE, PREPARE) over sharded table %s: it would run on one shard; use the extended protocol's prepared statements", name)
			}
		}
		return every(sc), nil
	case planner.ClassUnknown:
		return ShardTarget{}, refuse("a statement belay cannot parse, in a sharded database")
	}
	rels := make([]rel, 0, len(st.Relations))
	sharded := map[shard.TableName]int{} // references of each sharded table
	for _, name := range st.Relations {
		r := lookup(sc, name)
		if r.kind == relUnknown && st.Class != planner.ClassUtility {
			return ShardTarget{}, notInSchema(name)
		}
		if r.kind == relSharded {
			sharded[r.table.Name]++
		}
		rels = append(rels, r)
	}
	if st.Class == planner.ClassUtility {
		return utilityShards(sc, st, rels)
	}
	if st.Target == "" {
		if st.Class == planner.ClassWrite && len(sharded) == 0 {
			// A function, DO or CALL that may write, and nothing tells where.
			return ShardTarget{}, refuse("a statement that may write (a function call, DO, CALL) and names no sharded table: belay cannot tell on which shard it belongs")
		}
		return readShards(sc, st, rels, sharded, params)
	}
	target := lookup(sc, st.Target)
	switch target.kind {
	case relSharded:
		return shardedWrite(sc, st, target.table, rels, sharded, params)
	case relReference, relCatalog:
		for _, r := range rels {
			if r.kind == relSharded {
				return ShardTarget{}, refuse("a write to reference table %s that reads sharded table %s: each shard's copy would differ", st.Target, r.name)
			}
		}
		return every(sc), nil // every copy
	}
	return ShardTarget{}, notInSchema(st.Target)
}

// utilityShards: DDL and the like run on every shard. A COPY FROM STDIN
// into a table of the schema runs on every shard, its rows split between
// them (Copy); a COPY TO of a sharded table would need its rows gathered,
// which belay does not do yet.
func utilityShards(sc *shard.Schema, st *planner.Stmt, rels []rel) (ShardTarget, error) {
	switch st.Copy {
	case planner.CopyFrom:
		target := lookup(sc, st.Target)
		switch target.kind {
		case relSharded, relReference:
			split, err := copySplit(st.CopyIn, target.table)
			if err != nil {
				return ShardTarget{}, err
			}
			t := every(sc)
			t.Copy = split
			return t, nil
		case relUnknown:
			return ShardTarget{}, notInSchema(st.Target)
		}
	case planner.CopyTo:
		for _, r := range rels {
			if r.kind == relSharded {
				return ShardTarget{}, refuse("COPY ... TO of sharded table %s is not supported yet: read its rows with SELECT, which gathers every shard's", r.name)
			}
		}
		return ShardTarget{Spread: AnyShard}, nil
	}
	return every(sc), nil
}

// readShards: a read (or a write whose table is not known, such as SELECT
// ... FOR UPDATE) runs where its sharded tables' rows are: nothing sharded,
// any shard; one sharded table named once, the shards its key filters
// allow (all without one); several, or one named twice, only when all are
// pinned to the same one shard.
func readShards(sc *shard.Schema, st *planner.Stmt, rels []rel, sharded map[shard.TableName]int, params Params) (ShardTarget, error) {
	if len(sharded) == 0 {
		return ShardTarget{Spread: AnyShard}, nil
	}
	var only []int // the one shard all are pinned to, if they are
	single := true
	for _, r := range rels {
		if r.kind != relSharded {
			continue
		}
		set, err := pinned(sc, st, r.table, params)
		if err != nil {
			return ShardTarget{}, err
		}
		if sharded[r.table.Name] > 1 {
			// Named twice (a self-join, a subquery): a filter cannot be
			// told to pin which of the references.
			set = nil
		}
		if len(sharded) == 1 && sharded[r.table.Name] == 1 {
			if set == nil {
				return every(sc), nil
			}
			return on(set), nil
		}
		if set == nil || len(set) > 1 || only != nil && only[0] != set[0] {
			single = false
		}
		only = set
	}
	if single {
		return on(only), nil
	}
	names := make([]string, 0, len(sharded))
	for n := range sharded {
		names = append(names, n.String())
	}
	slices.Sort(names)
	return ShardTarget{}, refuse("a query that joins or repeats sharded tables (%s) not all pinned to one shard by their keys", strings.Join(names, ", "))
}

// shardedWrite: an INSERT goes to its rows' shards; an UPDATE or DELETE to
// the shards its key filters allow (all without one); other sharded tables
// it reads must be pinned to the same one shard.
func shardedWrite(sc *shard.Schema, st *planner.Stmt, t shard.Table, rels []rel, sharded map[shard.TableName]int, params Params) (ShardTarget, error) {
	if slices.Contains(st.SetColumns, t.Key) {
		return ShardTarget{}, refuse("an UPDATE of sharded table %s's key column %s: the row would move to another shard", t.Name, t.Key)
	}
	if in := st.Insert; in != nil {
		if len(sharded) > 1 || sharded[t.Name] > 1 {
			return ShardTarget{}, refuse("an INSERT into sharded table %s that reads sharded tables", t.Name)
		}
		return insertShards(sc, t, in, params)
	}
	set, err := pinned(sc, st, t, params)
	if err != nil {
		return ShardTarget{}, err
	}
	if len(sharded) == 1 && sharded[t.Name] == 1 {
		if set == nil {
			return every(sc), nil
		}
		return on(set), nil
	}
	// The written table and other sharded ones: all pinned to one shard.
	if target, err := readShards(sc, st, rels, sharded, params); err != nil || target.Spread == OneShard {
		return target, err
	}
	return ShardTarget{}, refuse("a write to sharded table %s that reads other sharded tables not pinned to its shard", t.Name)
}

// insertShards places each row of an INSERT ... VALUES by its key.
func insertShards(sc *shard.Schema, t shard.Table, in *planner.InsertRows, params Params) (ShardTarget, error) {
	if in.Rows == nil {
		return ShardTarget{}, refuse("an INSERT ... SELECT (or DEFAULT VALUES) into sharded table %s: belay places rows by their key values", t.Name)
	}
	if in.Columns == nil {
		return ShardTarget{}, refuse("an INSERT into sharded table %s without a column list: name the columns, %s among them", t.Name, t.Key)
	}
	k := slices.Index(in.Columns, t.Key)
	if k < 0 {
		return ShardTarget{}, refuse("an INSERT into sharded table %s without its key column %s", t.Name, t.Key)
	}
	rows := make([]int, len(in.Rows))
	var set []int
	for i, r := range in.Rows {
		if k >= len(r) || r[k] == nil {
			return ShardTarget{}, refuse("an INSERT into sharded table %s whose key %s is not a constant or a parameter", t.Name, t.Key)
		}
		s, err := keyShard(sc, t, *r[k], params)
		if err != nil {
			return ShardTarget{}, err
		}
		rows[i] = s
		if !slices.Contains(set, s) {
			set = append(set, s)
		}
	}
	slices.Sort(set)
	target := on(set)
	target.RowShards = rows
	return target, nil
}

// pinned is the set of shards (sorted) t's rows in the statement can be on,
// from its key filters; nil when no filter pins t's key. Filters of the
// same key intersect; an empty intersection (no row matches) is one shard
// the last filter names, where the statement finds nothing, as it would
// anywhere.
func pinned(sc *shard.Schema, st *planner.Stmt, t shard.Table, params Params) ([]int, error) {
	var set []int
	found := false
	for _, f := range st.KeyFilters {
		if f.Column != t.Key {
			continue
		}
		if r := lookup(sc, f.Table); r.kind != relSharded || r.table.Name != t.Name {
			continue
		}
		var fs []int
		converted := false
		for _, v := range f.Values {
			s, err := keyShard(sc, t, v, params)
			if errors.Is(err, ErrConverted) {
				converted = true // PostgreSQL compares it with the key: the filter pins nothing
				break
			}
			if err != nil {
				return nil, err
			}
			if !slices.Contains(fs, s) {
				fs = append(fs, s)
			}
		}
		if converted {
			continue
		}
		if !found {
			set, found = fs, true
			continue
		}
		var both []int
		for _, s := range set {
			if slices.Contains(fs, s) {
				both = append(both, s)
			}
		}
		if len(both) == 0 {
			both = fs[:1]
		}
		set = both
	}
	slices.Sort(set)
	return set, nil
}

// keyShard is the shard of key value v of table t.
func keyShard(sc *shard.Schema, t shard.Table, v planner.KeyValue, params Params) (int, error) {
	var val shard.Value
	if v.Param > 0 {
		if params == nil {
			return 0, ErrUnbound
		}
		pv, known, err := params.Key(v.Param, t.KeyType)
		if err != nil {
			return 0, err
		}
		if !known {
			return 0, ErrUnbound
		}
		val = pv
	} else {
		lv, err := shard.ParseValue(t.KeyType, v.Const)
		if err != nil {
			return 0, err
		}
		val = lv
	}
	if v.Negate && !val.IsNull() {
		if t.KeyType != shard.KeyInteger {
			return 0, refuse("a minus sign before a key of type %s", t.KeyType)
		}
		if val.Int() == math.MinInt64 {
			return 0, &shard.Error{Code: sqlstate.NumericValueOutOfRange, Message: "bigint out of range", Err: shard.ErrRange}
		}
		val = shard.Int(-val.Int())
	}
	return val.Shard(sc.Shards()), nil
}
