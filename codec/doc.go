// Package codec frames the PostgreSQL v3 frontend/backend wire protocol
// (protocol 3.0, and the longer cancel keys of 3.2).
//
// Its job is framing as views: ReadFrame, ReadStartupPacket and the Parse*
// accessors return slices that point into the caller's buffer and copy
// nothing, so a proxy can inspect a message and forward the same bytes. A view
// is valid only until the buffer it points into is discarded or overwritten;
// a caller that keeps a name, a query or a parameter past that point must copy
// it first. Views are capped (their capacity ends where they end), so an
// append to a view never writes over the bytes that follow it.
//
// Lengths are checked before anything is allocated or sliced: a declared
// length is compared with the caller's maximum (PeekHeader, ReadFrame) or
// MaxStartupPacketLength (ReadStartupPacket) before the caller needs to buffer
// the message, and counts inside a body are bounded by the bytes that remain.
// The accessors allocate nothing except ParseNegotiateProtocolVersion, which
// returns a slice of option names.
//
// The Append* functions write whole messages at the end of a destination
// slice and return the extended slice, like strconv.Append*; they allocate
// nothing when dst has room. Strings are written as C strings: one holding a
// NUL is cut at it, so a value can never inject a field or a parameter.
//
// The decoders reject what cannot be framed or parsed (ErrMalformed): a
// missing terminator, a count that runs past the end, trailing bytes. They do
// not second-guess what the server itself reports as an ordinary error, such
// as a format code other than 0 or 1, or a Bind whose format count does not
// match its parameter count; a proxy forwards those and lets the server
// answer.
//
// The package owns no goroutines and does no I/O; its functions are safe for
// concurrent use on distinct buffers. It never imports anything of belay
// except its own generated table of SQLSTATE codes, codec/sqlstate.
package codec
