package planner

import (
	"fmt"
	"slices"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/shard"
	pg "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SplitPart is one shard's part of a split INSERT: its text, and the
// client's parameters it takes (their numbers, from 1) in the order of its
// own $1, $2, ... (none for a statement without parameters).
type SplitPart struct {
	SQL    string
	Params []int
}

// SplitInsert splits an INSERT ... VALUES whose rows belong to several
// shards (rowShards: each row's shard, in order, as the router placed
// them) into one INSERT per shard holding that shard's rows, in their
// order: each shard's part, by shard. The rest of the statement (its
// columns, ON CONFLICT, OVERRIDING) is each part's. A part's parameters
// are numbered anew from $1 in the order of the client's numbers it uses
// (SplitPart.Params). Each part keeps the statement's RETURNING: its rows
// are that part's rows in order (the caller puts them back in the order of
// rowShards). An INSERT with WITH is refused (0A000). Safe for concurrent
// use.
func SplitInsert(sql string, rowShards []int) (map[int]SplitPart, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, &shard.Error{Code: sqlstate.SyntaxError, Message: err.Error()}
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetInsertStmt() == nil {
		return nil, refuseSplit("the statement is not one INSERT")
	}
	ins := tree.Stmts[0].Stmt.GetInsertStmt()
	sel := ins.GetSelectStmt().GetSelectStmt()
	switch {
	case ins.WithClause != nil:
		return nil, refuseSplit("WITH")
	case sel == nil || len(sel.ValuesLists) == 0:
		return nil, refuseSplit("its rows are not given by VALUES")
	case len(sel.ValuesLists) != len(rowShards):
		return nil, fmt.Errorf("planner: %d rows placed, the INSERT has %d", len(rowShards), len(sel.ValuesLists))
	}
	out := map[int]SplitPart{}
	for _, k := range slices.Compact(slices.Sorted(slices.Values(rowShards))) {
		part := proto.Clone(ins).(*pg.InsertStmt)
		psel := part.GetSelectStmt().GetSelectStmt()
		rows := psel.ValuesLists
		psel.ValuesLists = nil
		for i, r := range rows {
			if rowShards[i] == k {
				psel.ValuesLists = append(psel.ValuesLists, r)
			}
		}
		params := renumberParams(part.ProtoReflect())
		text, err := pg.Deparse(&pg.ParseResult{Version: tree.Version, Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_InsertStmt{InsertStmt: part}}}}})
		if err != nil {
			return nil, refuseSplit(fmt.Sprintf("belay cannot rewrite it (%v)", err))
		}
		out[k] = SplitPart{SQL: text, Params: params}
	}
	return out, nil
}

// renumberParams numbers the parameters m uses anew from $1, in the order
// of their numbers, and returns the old numbers in the new order.
func renumberParams(m protoreflect.Message) []int {
	var refs []*pg.ParamRef
	walk(m, func(m protoreflect.Message) bool {
		if p, ok := m.Interface().(*pg.ParamRef); ok {
			refs = append(refs, p)
		}
		return true
	})
	var old []int
	for _, p := range refs {
		old = append(old, int(p.Number))
	}
	slices.Sort(old)
	old = slices.Compact(old)
	for _, p := range refs {
		p.Number = int32(slices.Index(old, int(p.Number)) + 1)
	}
	return old
}

func refuseSplit(what string) error {
	return &shard.Error{Code: sqlstate.FeatureNotSupported, Message: "an INSERT whose rows belong to several shards: " + what}
}
