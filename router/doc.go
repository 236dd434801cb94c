// Package router decides where a unit of work goes in a cluster: to the
// primary, or to which replica. It is pure: a description of the work (what
// the planner says of its first statement), the client's session (its own
// route, the position its reads must see for read-your-writes) and a
// snapshot of the nodes (role, health, lag, work in flight) go in; a node
// and the reason come out. No I/O, no clock, no goroutines: the caller
// measures, the router decides. Safe for concurrent use (it keeps nothing).
//
// The rules (README, "The cluster"):
//   - work that may write, or that begins a transaction that is not READ
//     ONLY, goes to the primary; so does work the planner cannot clear for a
//     replica (FOR UPDATE, nextval, advisory locks, LISTEN, EXECUTE, ...);
//   - a read goes to the usable replica with the least work in flight, among
//     those within the lag limits and, with read-your-writes, that replayed
//     past the client's last commit; with none, to the primary;
//   - a route forced by the session (SET belay.route) or the statement (a
//     comment /* belay.route=... */) wins over the planner.
//
// Shards (shards.go) decides where a statement runs in a hash-sharded
// database (issue J): from the planner's account of it (the relations it
// names, the columns its WHERE clause pins to constants, an INSERT's rows),
// the sharding schema and its bound parameters: any one shard (nothing
// sharded read), one shard, or a set (a scatter, every copy of a reference
// table, DDL on every shard), with an INSERT's rows placed one by one.
// What could be answered wrongly is refused with 0A000 naming the
// construct: a join of sharded tables not all pinned to one shard, a
// sharded table named twice, an UPDATE of a key column, an INSERT ...
// SELECT into a sharded table, a write to a reference table that reads a
// sharded one, a table the schema does not name, a COPY of a sharded table
// (not built yet), a statement that may write without naming its table, a
// cursor or SQL PREPARE over a sharded table (the session's statements run
// on the client's current shard).
//
// router imports only pure packages of belay: planner, shard and
// codec/sqlstate.
package router
