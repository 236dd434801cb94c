// Package loop is belay's front end: it accepts clients on TCP and Unix
// sockets and serves them on gnet event loops, runs their startup (TLS after an SSLRequest or
// directly, as Postgres 17 allows; GSSENCRequest declined with 'N'; protocol
// 3.x with NegotiateProtocolVersion), authenticates them, and then runs one
// session per client that forwards its messages to a pooled server
// connection.
//
// # Startup, TLS and authentication
//
// A session goes sStartup → (sTLS) → (sLookup) → sAuth → sLogin → sReady.
// The TLS handshake is the one step that leaves the loop: crypto/tls cannot
// resume a handshake after "no data yet", and its public-key work would stall
// the loop's other clients. The client is parked (internal/gnetx), a
// goroutine bounded by Proxy.tlsSlots runs the handshake with blocking I/O
// and a deadline, and hands the result back with EventLoop.Execute; from then
// on records are decrypted and encrypted on the loop (gnetx.TLS over the
// loop's buffers), never with a goroutine per connection.
//
// Authentication is authExchange, a pure state machine (table-tested and
// fuzzed) over package auth: SCRAM-SHA-256, md5 and cleartext against the
// auth file or auth_query (authQuerier, which runs on its own goroutine and
// reports back with Execute), plus trust, cert and pg_hba rules. A user belay
// does not know goes through the same exchange as a wrong password and gets
// the same 28P01. What the exchange learns (the password, the md5 hash, or
// the SCRAM ClientKey recovered from the client's proof) becomes the pool's
// Credentials, so belay logs in to Postgres as the user with no password of
// its own.
//
// Cancel keys are belay's: a CancelRequest finds the session by PID, checks
// the secret in constant time, and cancels only what that client runs now
// (poolcore keeps the server from anyone else until the cancel is done); a
// client still waiting for a server has its query dropped and answered with
// 57014. With Config.PeerID, the secret's top 16 bits name the process that
// issued it, and a cancel that lands on another process sharing the port is
// forwarded to it.
//
// Limits: ClientLoginTimeout (57014, Postgres's words), QueryWaitTimeout
// (08P01 query_wait_timeout, PgBouncer's), IdleTransactionTimeout (25P03,
// Postgres's), MaxClientConn (53300).
//
// # Who owns what
//
// A session and the server it holds live on the same event loop; every
// method of session runs there, so nothing in a session is locked. gnet
// callbacks (OnOpen, OnTraffic, OnClose) are the entry points; poolcore calls
// back into a session (ServerReady, ServerTraffic, ...) on the same loop.
// Proxy's own fields are safe for concurrent use (atomics, cancelMu; the
// authentication and TLS settings are fixed at Start). The goroutines loop
// starts besides gnet's are TLS handshakes, auth_query lookups and cancel
// forwards, each handing its result to the session's loop with
// EventLoop.Execute, and the ones below.
//
// # Listening and shutting down
//
// belay owns its listening sockets (listen.go) so that it can stop accepting
// without closing a connection: gnet closes a listener it owns only with the
// whole engine. The engine is a gnet.Client, gnet's engine without listeners.
// Each listener has one goroutine that accepts and enrolls the connection on
// the least busy loop (EnrollContext, which waits for OnOpen there);
// StopAccepting sets the listener's deadline to wake it, the goroutine takes
// what is queued (non-blocking accept4), closes the socket and exits, and
// StopAccepting waits for all of them. Shutdown starts one drain goroutine:
// it calls StopAccepting, then waits on Proxy.wake, which the last session to
// close kicks (Proxy.conns counts sessions), and calls Stop. Under
// ShutdownWaitForServers each loop closes its own idle clients, at the
// release of their server (ServerTraffic) and in its 100 ms sweep.
//
// # The loops' goroutines
//
// gnet is belay's patched copy (third_party/gnet, BELAY_PATCH.md): a loop
// with nothing to do blocks in epoll_wait directly, and yields to the Go
// scheduler only every netpoll.YieldInterval (5 ms) of work, so that the
// idle path costs no futex wake and no thread switch; socket reads and
// writes are raw system calls. TestSyscallsPerTransaction guards it.
//
// # The data path
//
// Frames are views into the loop's read buffer and are written to the peer
// without a copy of belay's own, except the messages that name a prepared
// statement, which are rewritten. Client messages belay must look at (Query,
// Parse, Bind, Describe, Close) are held whole, up to Config.MaxMessageSize;
// CopyData and every server message but ReadyForQuery, ParameterStatus and
// ErrorResponse stream through in pieces, so a 1 GB row never sits in belay.
//
// Transaction pooling, with no rigid pooling mode: tracker (pure,
// table-tested) releases the server at the ReadyForQuery that leaves the
// client idle with nothing pending. Each Query and Parse is planned through
// the loop's planner.Cache. What a session holds follows the client to the
// server it lands on next:
//   - prepared statements, protocol-level and SQL PREPARE (stmts.go): client
//     names map to server-side names, statements are prepared lazily where
//     the client lands, each server keeps a bounded set; replies (pure,
//     table-tested) is the queue of answers the server owes, which lets belay
//     answer for the server, drop the answers to its own messages and undo
//     what a failed batch would have created; a client without a server that
//     only prepares statements known to parse under its settings is
//     answered without one (parsed.go: pgbench -M prepared's blocking
//     PQprepare would otherwise wait for servers its own thread holds);
//   - settings (state.go): after a transaction that may have changed one,
//     belay reads the session's settings from the server and makes them the
//     client's signature, applied where it lands next.
//
// The plan cache's knowledge of the server (state.go): after a transaction
// whose plans called user functions the loop's cache does not know, belay
// asks the client's server for their volatility; DDL on functions makes
// every loop's cache forget it.
//
// What cannot move (LISTEN, temporary objects, WITH HOLD cursors, session
// advisory locks, SET ROLE, LOAD) pins the client to its server until the
// server says it is released; a pinned client's server is reset (DISCARD
// ALL) before anyone else gets it.
//
// Statistics: each session counts into its pool's poolcore.LoopStats for
// its loop (written only on that loop): the bytes it forwards each way
// (forward, ServerTraffic, by frame, before the write), a query at each
// ReadyForQuery forwarded to the client and a transaction at each that
// says idle. The query's and transaction's clocks start at the first
// message forwarded after a ReadyForQuery (qStart, xStart): two monotonic
// clock reads per query, none per message. metrics.go exposes the sums,
// and the histograms of those times, on the proxy's metric set.
//
// Backpressure: gnet cannot pause reads, so when a peer's outbound buffer
// passes Config.MaxBufferedBytes the connection feeding it is parked
// (internal/gnetx) and resumed once the buffer drains below a quarter of that.
//
// # Shards (shards.go, spread.go, gatherext.go, xshard.go, txspread.go, copysplit.go)
//
// A topology with a sharding schema is served as one cluster per shard
// (each its own view, term and failover hold; one health checker): at the
// start of a unit the session asks router.Shards where its statement runs
// and moves to that shard's cluster (a clusterState per shard), then the
// cluster routes as for one shard. A statement for several shards, alone
// in its unit outside a transaction, runs as a spread (spread.go: a
// poolcore client per shard): DDL, a reference table's write, an UPDATE
// or DELETE without a key, an INSERT split by its rows' shards, each
// shard's part prepared and committed in two phases, the decision
// recorded off the loop; a read of several shards is gathered and merged,
// in the simple or the extended protocol (gatherext.go); a COPY FROM
// STDIN has its rows split by key between the shards as they stream in
// (copysplit.go). A transaction reaches other shards by setting its
// server aside (xshard.go: its parts, committed in two phases at its
// COMMIT), and runs statements for several shards on all its parts at
// once (txspread.go); what belay cannot run on the right shards is
// refused with 0A000 before anything reaches a server.
//
// # Failover (failover.go, syncrep.go)
//
// Serving a cluster, work for a lost primary is held, not failed: the
// cluster's ha.Hold (one per proxy, safe for concurrent use) decides; a
// held client sits on its loop's held list (cluster.held[i], loop i's
// alone) with its input unread, and the ticker goroutine, which feeds the
// hold the topology and the primary's health, wakes every loop with
// Execute when the hold ends or its bound passes. What was in flight when
// a server died is answered without a lie (40001 and a failed transaction
// belay plays, 08007, or a read sent again); session.go has only hooks.
//
// # The admin console and reloads
//
// A client of the virtual database "pgbouncer" or "belay" in admin_users or
// stats_users becomes a console session (console.go, state sConsole): it
// gets no server. Each Query runs package admin's Exec on a goroutine of
// its own, because a command gathers from every loop (onLoops runs a
// function on each loop with Execute and waits) or waits (PAUSE); the
// answer comes back to the session's loop with Execute, and the session
// reads its next command only then, so answers stay in order. The console
// reads loop-owned state (sessions, servers) only on the owning loop.
//
// What a reload may change lives in Proxy.live, an atomic pointer the loops
// load where they need it (max_client_conn, timeouts, the auth file's users,
// pool_mode); Reconfigure builds a new one under reconfigMu and hands the
// pools' part to poolcore.Manager.Tune. Per-loop registries (sessions,
// logins) are touched only by their loop.
//
// loop imports admin, codec, planner and poolcore; it never imports ha internals.
package loop
