package planner

import (
	"fmt"
	"slices"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/shard"
	pg "github.com/pganalyze/pg_query_go/v5"
)

// SplitInsert splits an INSERT ... VALUES whose rows belong to several
// shards (rowShards: each row's shard, in order, as the router placed
// them) into one INSERT per shard holding that shard's rows, in their
// order: the statement's text for each shard, by shard. The rest of the
// statement (its columns, ON CONFLICT, OVERRIDING) is each part's. An
// INSERT with RETURNING or WITH is refused (0A000): its rows would come
// from several shards. Safe for concurrent use.
func SplitInsert(sql string, rowShards []int) (map[int]string, error) {
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
	case len(ins.ReturningList) > 0:
		return nil, refuseSplit("RETURNING (its rows would come from several shards)")
	case ins.WithClause != nil:
		return nil, refuseSplit("WITH")
	case sel == nil || len(sel.ValuesLists) == 0:
		return nil, refuseSplit("its rows are not given by VALUES")
	case len(sel.ValuesLists) != len(rowShards):
		return nil, fmt.Errorf("planner: %d rows placed, the INSERT has %d", len(rowShards), len(sel.ValuesLists))
	}
	rows := sel.ValuesLists
	defer func() { sel.ValuesLists = rows }()
	out := map[int]string{}
	shards := slices.Compact(slices.Sorted(slices.Values(rowShards)))
	for _, k := range shards {
		sel.ValuesLists = nil
		for i, r := range rows {
			if rowShards[i] == k {
				sel.ValuesLists = append(sel.ValuesLists, r)
			}
		}
		part, err := pg.Deparse(tree)
		if err != nil {
			return nil, refuseSplit(fmt.Sprintf("belay cannot rewrite it (%v)", err))
		}
		out[k] = part
	}
	return out, nil
}

func refuseSplit(what string) error {
	return &shard.Error{Code: sqlstate.FeatureNotSupported, Message: "an INSERT whose rows belong to several shards: " + what}
}
