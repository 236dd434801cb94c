// Package poolcore owns belay's connections to PostgreSQL: their login, the
// per-(database, user) pools they live in, the state applied to them (startup
// parameters, a reset before reuse), their health and their lifetime.
//
// # Where things run
//
// A server connection lives on the gnet event loop of the client it serves,
// so that a frame read from one socket is written to the other on the same
// goroutine, without a copy or a lock. A Pool is therefore split in two:
//
//   - the shared part (*Pool): the budget of open connections and, per loop,
//     a few atomic counters (idle servers, demand, servers held) that other
//     loops read to decide where a free slot should go;
//   - the per-loop part (loopPool, inside Pool.perLoop[i]): the idle stack and
//     the FIFO of waiting clients, touched only by loop i, with no lock.
//
// A client that finds an idle server of its pool on its own loop takes it with
// no lock and no allocation. When the budget is used up and another loop has
// idle servers or is starved, the slot moves: a server is closed on one loop
// and a new one logged in on the other (see balance.go for the rule, which
// keeps this rare).
//
// # The server's budget, shared fairly
//
// Every pool of a Manager logs in to the same Postgres server, whose
// connections are a budget (Options.MaxDBConnections, else max_connections
// less its reserved slots, read at the first login). The pools are the users
// of a fairness.Allocator, held by the Manager's node (node.go) under a lock
// of its own, taken only where a login is spent anyway or a server is free:
//
//   - a pool that must grow (its client found no idle server) asks Grow; if
//     refused, the pool is marked blocked and does not ask again until it
//     is given a slot or the next Tick;
//   - a server that closes returns its slot, and Next gives the free slots
//     to waiting pools, short of their share first, in deficit round-robin;
//   - while some pool waits below its fair share (node.contended, one
//     atomic load on every release), a released server of a pool above its
//     share is handed over: closed, and a server of the waiting pool logs in
//     in its slot. Idle servers of such pools go first (reclaimIdle), so a
//     new user does not wait for a release when a server sits idle.
//
// A handover costs a login, so the allocator keeps them rare: demand is the
// peak over a window (FairnessWindow, 1 s), shares are whole servers and a
// tie stays with the pool that holds the server, and only the difference
// between a share and what a pool holds ever moves. Under steady load nothing
// moves. A login refused with 53300 (too_many_connections) is tried again
// for up to ConnectTimeout: at a budget of max_connections, the backend of
// the server just closed for a handover may still be exiting.
//
// The budget itself adapts when Options.AdaptiveLimit is on: a
// fairness.Limiter per node (limit.go) reads the node's queries at each
// Tick (their count and time, summed per loop with the pool's other
// counters, plus the servers held and the clients waiting) and sets the
// allocator's budget under the ceiling (MaxDBConnections, or the server's
// max_connections): the queries Postgres runs best at once, plus the
// servers held that run nothing. A node on this machine (loopback,
// localhost, a Unix socket) starts it at twice the cores plus one, any
// other at the ceiling (startLimit). The shares are cut from that budget; a
// budget that shrinks makes the allocator contended until the servers
// above it closed at their release.
//
// Lock order: Manager.mu, then node.mu. Code under node.mu reads loops
// through Manager.loopByIdx (atomics), never Manager.mu.
//
// Login never runs on a loop: a goroutine dials, negotiates TLS if
// Options.ServerTLSMode asks for it (libpq's sslmode words), authenticates
// (trust, cleartext, md5, SCRAM-SHA-256, through package auth) with
// pgproto3's Frontend, and enrolls the socket on the target loop (gnet ≥ 2.8
// EventLoop.Enroll); OnOpen then hands it to a waiter. See login.go. A TLS
// server's records are decrypted on the loop by Server.Input().Bytes and
// encrypted by Server.Write, which is how everything writes to a server.
//
// The password comes from the pool's Credentials (SetCredentials: the loop
// passes through what it learnt authenticating the client), else from
// .pgpass; without a password, an md5 hash or SCRAM keys as pg_authid stores
// them answer the matching challenge.
//
// # Cancels never hit the next client
//
// A CancelRequest goes to Postgres on a connection of its own, and Postgres
// signals the backend asynchronously (pgbouncer issue #245: a cancel that
// lands after the query ended cancels whatever the server runs next, perhaps
// another client's query). So each Server counts its cancels in flight; the
// goroutine that sends one reports back on the server's loop once Postgres
// closed the cancel connection, or the attempt failed. A server released
// while the count is above zero goes to nobody, neither a waiter nor the idle
// stack: it waits in a state of its own (Stats.CancelWait) and is released
// for real when the count drops to zero. By then the signal was delivered,
// and a backend signalled while idle, reading its next command, ignores it.
// A cancel whose outcome is unknown (timeout after the request was written)
// closes the server at its release instead. Cancels go over plain TCP even
// to TLS servers, which Postgres accepts.
//
// # Waiting
//
// A client that waits in a pool's queue longer than Options.QueryWaitTimeout
// is taken out of it by Manager.Sweep and told ServerFailed with a
// *WaitTimeoutError (errors.Is ErrQueryWaitTimeout), which says what the
// pool held, its fair share and the budget's use. Pool.Stats counts the
// waiters served and their total wait.
//
// # Statistics
//
// Pool.Totals are PgBouncer's SHOW STATS counters (transactions, queries,
// bytes each way, transaction, query and wait time), Pool.Histograms the
// same times by DurationBuckets, Pool.Clients and Pool.OldestWait what SHOW
// POOLS shows of the clients, Pool.Pins the clients pinned. They are
// counted per loop in LoopStats (Pool.LoopStats), which only that loop
// writes: the sessions of the pool's clients there (queries, transactions,
// bytes, pins) and the pool's own hand-off to a waiter (waits). Each count
// is an uncontended atomic add on cache lines of its own, so that it never
// invalidates the counters other loops read to place servers; the readers
// (metrics, the admin console) sum the loops with atomic loads, one counter
// at a time, not as one snapshot. No lock and no allocation on the data
// path.
//
// Operations (control.go): Tune applies a reload (pool sizes through the
// allocator's limits, the budget, the timeouts and queries through an atomic
// Tunables the loops load); Pause marks pools paused (their clients queue,
// their servers close as released); Reconnect marks servers born before now
// as retired; both close idle servers on each loop with Execute. A pool's
// reserve opens in the Sweep of loop 0 once a client waited
// reserve_pool_timeout, as does min_pool_size's top-up.
//
// Methods documented "on the loop" must run on the server's event loop;
// Manager and Pool lookups are safe for concurrent use.
//
// poolcore never imports loop or planner; it imports fairness.
package poolcore
