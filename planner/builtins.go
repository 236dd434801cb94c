package planner

import (
	_ "embed"
	"strings"
	"sync"
)

// builtin_funcs.txt lists the names of the functions in pg_catalog (from a
// PostgreSQL 15 catalog, plus the few that 16 added), one a line. A call of
// any other name, or of a name qualified by a schema other than pg_catalog,
// is a call of a user function. Regenerate it against a fresh cluster with
//
//	psql -At -c "SELECT DISTINCT proname FROM pg_proc p JOIN pg_namespace n
//	  ON n.oid = p.pronamespace WHERE nspname = 'pg_catalog' ORDER BY 1"
//
//go:embed builtin_funcs.txt
var builtinList string

var builtins = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 2700)
	for _, name := range strings.Fields(builtinList) {
		m[name] = struct{}{}
	}
	return m
})

// isBuiltin reports whether an unqualified function name is a built-in one.
// (A user function of the same name shadows it only if pg_catalog is put
// after its schema in search_path, which this ignores.)
func isBuiltin(name string) bool {
	_, ok := builtins()[name]
	return ok
}

// builtin_aggs.txt lists the names of pg_catalog's aggregates (PostgreSQL
// 15), one a line; regenerate it with
//
//	psql -At -c "SELECT DISTINCT proname FROM pg_proc WHERE prokind = 'a'
//	  AND pronamespace = 'pg_catalog'::regnamespace ORDER BY 1"
//
//go:embed builtin_aggs.txt
var builtinAggList string

var builtinAggs = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 64)
	for _, name := range strings.Fields(builtinAggList) {
		m[name] = struct{}{}
	}
	return m
})

// isAggregate reports whether an unqualified function name is a built-in
// aggregate.
func isAggregate(name string) bool {
	_, ok := builtinAggs()[name]
	return ok
}
