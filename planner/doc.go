// Package planner turns SQL text into what the proxy must know about it: a
// Plan (statement class, whether it could run on a read replica, session
// effects, prepared-statement names and where they are written, tables,
// user functions, parameter and literal positions), and the plan cache.
//
// The pipeline of DESIGN.md: the loop hands a query's bytes to its Cache;
// an exact hit on the raw bytes answers first, then a hit on the text
// Normalize makes (literals replaced by $k, so `aid = 42` and `aid = 43`
// share a plan); only a miss calls Parse, which runs pg_query_go (the real
// Postgres parser, cgo) and walks the tree: about 30 µs for a pgbench
// statement on the project's 2-core machine (BenchmarkParse).
//
//   - Parse(sql) plans exactly sql; its spans refer to sql. When pg_query
//     cannot parse the text, the plan is ClassUnknown and its Effects come
//     from SessionEffects, the lexical scanner kept as the fallback, mapped
//     conservatively (anything session-ish may pin and may change a GUC).
//   - Normalize never produces text that fails to parse where the original
//     parsed, except for the cases its comment lists.
//   - Cache.Plan returns shared, immutable plans; the spans of a plan made
//     from the normalized text refer to that text (Plan.Text).
//   - Plans that call user functions depend on server state: ReplicaOK is
//     false while a function's volatility is unknown. Cache.SetVolatility and
//     Cache.InvalidateFunctions mark such entries stale in O(1); they are
//     re-planned at their next lookup. Cache.Unknown lists what to ask the
//     server (the loop does, on the client's own server after its
//     transaction), and EffFunctionDDL marks the statements after which a
//     proxy must call InvalidateFunctions.
//
// The bodies of DO blocks are PL code that pg_query does not parse: the
// lexical scanner looks through them, conservatively. What a user function
// does to the session (a function body may SET, LISTEN or create temporary
// tables) is not known here.
//
// It errs on the side of pinning: a false positive costs multiplexing for
// one client, a false negative would leak one client's state to another.
//
// Concurrency: Parse, Normalize and SessionEffects are pure functions, safe
// for concurrent use. A Cache is NOT safe for concurrent use: each event
// loop owns one and calls it only from its own goroutine. The package starts
// no goroutines and does no I/O. It never imports loop, poolcore or ha.
//
// SessionEffects and its bits EffectSession/EffectReset remain only as the
// fallback of Parse for text pg_query cannot parse (and for DO bodies).
package planner
