// Package loop is belay's front end: a gnet engine (one event loop per core)
// that accepts clients on TCP and Unix sockets, runs their startup (SSLRequest
// and GSSENCRequest are declined with 'N' until TLS lands; protocol 3.x with
// NegotiateProtocolVersion; trust authentication), and then runs one session
// per client that forwards its messages to a pooled server connection.
//
// # Who owns what
//
// A session and the server it holds live on the same event loop; every
// method of session runs there, so nothing in a session is locked. gnet
// callbacks (OnOpen, OnTraffic, OnClose) are the entry points; poolcore calls
// back into a session (ServerReady, ServerTraffic, ...) on the same loop.
// Proxy's own fields are safe for concurrent use (atomics, cancelMu).
//
// # The data path
//
// Frames are views into the loop's read buffer and are written to the peer
// without a copy of belay's own. Client messages belay must look at (Query,
// Parse) are held whole, up to Config.MaxMessageSize; CopyData and every
// server message but ReadyForQuery and ParameterStatus stream through in
// pieces, so a 1 GB row never sits in belay.
//
// Transaction pooling: tracker (pure, table-tested) releases the server at the
// ReadyForQuery that leaves the client idle with nothing pending. Statements
// with session effects (planner.SessionEffects) pin the client to its server
// until it leaves; the server is then reset (DISCARD ALL) before reuse.
//
// Backpressure: gnet cannot pause reads, so when a peer's outbound buffer
// passes Config.MaxBufferedBytes the connection feeding it is parked
// (internal/gnetx) and resumed once the buffer drains below a quarter of that.
//
// loop imports codec, planner and poolcore; it never imports ha internals.
package loop
