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
// router imports nothing of belay.
package router
