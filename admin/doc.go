// Package admin is belay's PgBouncer-compatible admin console: the virtual
// databases "pgbouncer" and "belay", where SHOW POOLS, SHOW STATS, PAUSE,
// RELOAD and the rest answer with PgBouncer's column names, order and types,
// so that its tools (psql scripts, prometheus-community/pgbouncer_exporter)
// work unchanged. belay's own information comes as extra columns after
// PgBouncer's, and as SHOW commands PgBouncer lacks (SHOW FAIRNESS, SHOW
// PREPARED_STATEMENTS).
//
// The package does no I/O and owns no goroutines. Parse turns a console
// command into a Command; Exec runs it against a Backend (the proxy, package
// loop) and appends the protocol messages of the answer. The column lists
// are the ones PgBouncer 1.18 sends (recorded from its console; see
// columns.go), and a test compares them with a live PgBouncer when one is
// installed. Averager computes SHOW STATS_AVERAGES the way PgBouncer does,
// per stats_period, with the clock injected.
//
// admin imports codec and poolcore (for the counters it shows); it never
// imports loop, which implements Backend.
package admin
