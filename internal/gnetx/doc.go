// Package gnetx holds the two things belay needs from gnet that gnet does not
// offer directly:
//
//   - a read pause. gnet reads every readable socket into the connection's
//     inbound buffer and has no way to stop (gnet issues #712, #722), so a proxy
//     that leaves bytes unconsumed still grows without bound. Park takes a
//     connection off its event loop without closing the socket (it keeps a
//     duplicate of the descriptor and lets gnet close its own), and Resume
//     enrolls the duplicate on the same loop again. While parked, the kernel's
//     socket buffer fills and TCP flow control slows the peer down: that is the
//     backpressure.
//   - Input, a view of a connection's unread bytes that survives a park: bytes
//     gnet had already read when the connection was parked are carried over and
//     served before the new connection's bytes.
//
// Concurrency: everything here runs on the event loop that owns the
// connection, except Resume, which may be called from any goroutine.
//
// It imports nothing of belay.
package gnetx
