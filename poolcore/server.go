package poolcore

import (
	"errors"
	"fmt"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/gnetx"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Client is the side a server connection is handed to: a client session. All
// methods are called on the client's (and so the server's) event loop.
type Client interface {
	// ServerReady hands sc to the client, which now owns it until Release.
	ServerReady(sc *Server)
	// ServerFailed tells a waiting client that no server could be had.
	ServerFailed(err error)
	// ServerTraffic is called when the attached server has bytes to read.
	ServerTraffic(sc *Server, c gnet.Conn) gnet.Action
	// ServerLost tells the owner that its server closed or broke.
	ServerLost(sc *Server, err error)
}

type serverState uint8

const (
	stateDialing serverState = iota
	stateIdle
	stateActive   // owned by a client
	stateInternal // running a query of belay's own (reset, SET, ROLLBACK)
	stateDraining // client gone: discarding output until the pending replies are in
	stateParked   // off the loop for backpressure; still owned
	// stateCancelWait: released, but a CancelRequest for it is in flight;
	// handed to nobody until the cancel finished (see Manager.cancel).
	stateCancelWait
	stateClosed
)

// PgError is an error reported by Postgres, copied out of the wire.
type PgError struct {
	Severity, Code, Message, Detail, Hint string
}

func (e *PgError) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

// ParsePgError reads the body of a server's ErrorResponse (a malformed one
// is an internal error).
func ParsePgError(body []byte) *PgError {
	f, err := codec.ParseErrorFields(body)
	if err != nil {
		return &PgError{Severity: "ERROR", Code: string(sqlstate.InternalError), Message: "malformed error from server"}
	}
	return &PgError{Severity: string(f.Severity), Code: string(f.Code), Message: string(f.Message),
		Detail: string(f.Detail), Hint: string(f.Hint)}
}

// Server is one connection to Postgres. Not safe for concurrent use: it
// belongs to its event loop.
type Server struct {
	pool *Pool
	loop *Loop
	addr string // the host:port it is logged in to
	// nodeGen is its node's generation at its login (node.serves).
	nodeGen uint32
	conn    gnet.Conn
	in      gnetx.Input

	state serverState
	owner Client

	// PID and CancelKey are the server's own BackendKeyData.
	PID       uint32
	CancelKey []byte
	// Params holds the values the server reported with ParameterStatus.
	Params map[string]string
	// AppliedSig identifies the client startup parameters applied with SET
	// ("" for none); a client whose signature differs gets them applied first.
	AppliedSig string
	// Dirty says a client changed session state belay does not track (it was
	// pinned): the server is reset (DISCARD ALL) before anyone else gets it.
	Dirty bool
	// TxStatus is the status of the last ReadyForQuery.
	TxStatus byte
	// Stmts are the prepared statements belay created on the server, under
	// server-side names (the owner maps its clients' names to them).
	Stmts Statements
	// Unnamed is the owner-defined holder of the server's unnamed prepared
	// statement (nil: none, or nobody knows whose). Any simple Query,
	// belay's own included, destroys the unnamed statement.
	Unnamed any
	// SeqMark counts the transactions run on the server that may have
	// advanced a sequence (its owners add to it): a client that ran one
	// here knows that currval and lastval still report its own values if
	// the mark has not moved since.
	SeqMark uint64
	// wanted is a client waiting for this very server (AcquireServer).
	wanted Client

	born time.Time
	// idleSince is a Manager.now reading (monotonic nanoseconds): when it
	// last went idle or into cancel wait (0: never). Release reads the clock
	// once for it and the lifetime check (Manager.outlived).
	idleSince int64

	// internal query in flight
	pendingRFQ int
	firstErr   *PgError
	then       func(sc *Server, err *PgError)
	row        func(cols [][]byte) // ExecRows: each DataRow
	tags       *[]string           // ExecTags: the CommandComplete tags
	raw        *RawResult          // ExecRaw: the result's messages
	cols       [][]byte

	skip int // bytes of a long message still to discard

	parkedFD int
	// slotMoved: the server was closed to give its slot to another loop.
	slotMoved bool
	// checkDue: idle longer than server_check_delay (set by Sweep); the next
	// client gets it after server_check_query.
	checkDue bool

	// cancels counts CancelRequests for this server still in flight; while
	// it is above 0 a released server waits in stateCancelWait.
	cancels int
	// cancelUnsure: a cancel ended without Postgres closing its connection
	// (timeout, error after the write), so it may still land: the server is
	// closed at its next release instead of being reused.
	cancelUnsure bool
	// torn: belay wrote part of a message to it (Torn).
	torn bool
}

// Hand gives the server to c, which owns it from now on in its present
// owner's stead (its traffic, its loss, its Release): a transaction's part
// on one shard set aside while the client works on another (the loop
// package's cross-shard transactions). On the loop.
func (sc *Server) Hand(c Client) {
	if sc.owner != nil {
		sc.owner = c
	}
}

// Conn is the server's gnet connection (nil while it is parked). On the loop.
func (sc *Server) Conn() gnet.Conn { return sc.conn }

// Input is the server's unread input. On the loop.
func (sc *Server) Input() *gnetx.Input { return &sc.in }

// Pool is the pool the server belongs to.
func (sc *Server) Pool() *Pool { return sc.pool }

// Opened is called by the gnet handler (OnOpen) when a dialled or resumed
// server connection appears on its loop; its result is OnOpen's action.
func (sc *Server) Opened(c gnet.Conn) gnet.Action {
	sc.conn = c
	switch sc.state {
	case stateClosed: // closed while a resume was under way
		return gnet.Close
	case stateDialing:
		sc.loop.servers[sc] = struct{}{}
		sc.pool.arrived(sc)
	case stateParked:
		sc.state = stateActive
		if sc.owner != nil {
			return sc.owner.ServerTraffic(sc, c) // bytes carried across the park
		}
	}
	return gnet.None
}

// Write sends b to the server, encrypted when the connection uses TLS. Every
// write to a server goes through it. On the loop.
func (sc *Server) Write(b []byte) (int, error) {
	if sc.conn == nil {
		return 0, errParkedWrite
	}
	return sc.in.Write(sc.conn, b)
}

var errParkedWrite = errors.New("poolcore: write to a server that is parked or closed")

// TLS reports whether the connection to the server is encrypted.
func (sc *Server) TLS() bool { return sc.in.TLS() != nil }

// Busy says the server runs a query of belay's own; its owner must wait.
func (sc *Server) Busy() bool { return sc.state == stateInternal }

// Cancel sends Postgres a CancelRequest for the server's running query, off
// the loop. Until the request is done, the server, once released, goes to
// nobody else (see Manager.cancel). On the loop.
func (sc *Server) Cancel() { sc.pool.m.cancel(sc) }

// OnTraffic routes the server's input: to its owner, to belay's own query, or
// to the idle handler. On the loop.
func (sc *Server) OnTraffic(c gnet.Conn) gnet.Action {
	switch sc.state {
	case stateActive:
		return sc.owner.ServerTraffic(sc, c)
	case stateInternal, stateDraining:
		return sc.consumeInternal(c)
	default:
		return sc.idleTraffic(c)
	}
}

// idleTraffic handles what an idle server may say on its own: a parameter
// change, a notice, or a FATAL error before it goes away.
func (sc *Server) idleTraffic(c gnet.Conn) gnet.Action {
	data := sc.in.Bytes(c)
	if err := sc.in.Err(); err != nil {
		return sc.broken(c, fmt.Errorf("server TLS: %w", err))
	}
	off := 0
	for {
		f, n, err := codec.ReadFrame(data[off:], codec.MaxProtocolMessage)
		if err == codec.ErrShortBuffer {
			break
		}
		if err != nil {
			return sc.broken(c, fmt.Errorf("idle server sent a bad frame: %w", err))
		}
		off += n
		switch f.Type {
		case codec.MsgParameterStatus:
			sc.noteParameterStatus(f.Body)
		case codec.MsgNoticeResponse:
		case codec.MsgErrorResponse:
			sc.pool.m.log.Info("server error on idle connection", "pool", sc.pool.key, "error", ParsePgError(f.Body))
			return sc.broken(c, ParsePgError(f.Body))
		default:
			return sc.broken(c, fmt.Errorf("idle server sent unexpected message %q", f.Type))
		}
	}
	sc.in.Consume(c, off)
	return gnet.None
}

func (sc *Server) noteParameterStatus(body []byte) {
	name, value, err := codec.ParseParameterStatus(body)
	if err != nil {
		return
	}
	if sc.Params == nil {
		sc.Params = make(map[string]string)
	}
	if sc.Params[string(name)] != string(value) {
		sc.Params[string(name)] = string(value)
	}
}

// NoteParameterStatus records a ParameterStatus the owner forwarded.
func (sc *Server) NoteParameterStatus(body []byte) { sc.noteParameterStatus(body) }

// broken discards the server from its gnet callback.
func (sc *Server) broken(c gnet.Conn, err error) gnet.Action {
	sc.pool.m.log.Debug("discarding server connection", "pool", sc.pool.key, "err", err)
	sc.markClosed()
	return gnet.Close
}

// markClosed takes the server out of service at once: off the idle stack,
// never handed out again. The accounting follows in Closed.
func (sc *Server) markClosed() {
	sc.leaveState(sc.state)
	sc.state = stateClosed
}

// leaveState undoes the bookkeeping of state st (idle, cancel wait).
func (sc *Server) leaveState(st serverState) {
	switch st {
	case stateIdle:
		sc.pool.removeIdle(sc)
	case stateCancelWait:
		sc.pool.perLoop[sc.loop.idx].cancelWait.Add(-1)
	}
}

// Close discards the server; it is never handed out again. On the loop, from
// outside the server's own gnet callbacks.
//
// It ends the session as a client should, with Terminate, so that Postgres
// logs no broken connection: unless the server is torn (Torn: in the middle
// of a message from belay, where a Terminate would be read as part of it).
// A parked server (its output was not being read) cannot be told anything
// while it waits to send: closePolitely cancels its query, tells it
// Terminate and reads what it still sends until it hangs up, off the loop.
func (sc *Server) Close() {
	if sc.state == stateClosed {
		return
	}
	sc.markClosed()
	if sc.conn != nil {
		if !sc.torn {
			_, _ = sc.Write(terminate) // gnet writes what it holds before it closes
		}
		// A write that failed (the server died) closed the connection at
		// once: OnClose has run Closed, which cleared sc.conn.
		if sc.conn != nil {
			_ = sc.conn.Close() // asynchronous; OnClosed does the accounting
		}
		return
	}
	if sc.parkedFD >= 0 {
		go closePolitely(sc.parkedFD, sc.addr, codec.AppendCancelRequest(nil, sc.PID, sc.CancelKey),
			sc.pool.m.tun.Load().ConnectTimeout, sc.in.TLS() == nil && !sc.torn)
		sc.parkedFD = -1
	}
	sc.Closed(nil)
}

// Torn marks the server as holding part of a message from belay: Close then
// sends nothing more. On the loop.
func (sc *Server) Torn() { sc.torn = true }

// terminate is the Terminate message.
var terminate = []byte{'X', 0, 0, 0, 4}

// closePolitely ends a parked server's session: a CancelRequest stops the
// query whose output nobody read, a Terminate (when the stream is plain and
// whole) ends the session, and what the server still sends is read and
// dropped until it closes, or until timeout, so that the close is a FIN, not
// a reset. It owns fd.
func closePolitely(fd int, addr string, cancel []byte, timeout time.Duration, sayTerminate bool) {
	defer gnetx.CloseParked(fd)
	sendCancel(addr, timeout, cancel)
	if err := unix.SetNonblock(fd, false); err != nil {
		return
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if sayTerminate {
		_, _ = unix.Write(fd, terminate)
	}
	_ = unix.Shutdown(fd, unix.SHUT_WR)
	buf := make([]byte, 64<<10)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if n, err := unix.Read(fd, buf); n <= 0 || err != nil {
			return
		}
	}
}

// Closed is called by the gnet handler when the server's connection closed
// (or by Close for a parked server). On the loop.
func (sc *Server) Closed(err error) {
	if sc.state == stateParked && sc.conn != nil {
		// gnet closed its descriptor; the socket lives on in parkedFD.
		sc.conn = nil
		return
	}
	owner, was := sc.owner, sc.state
	sc.state = stateClosed
	sc.owner = nil
	sc.conn = nil
	if w := sc.wanted; w != nil {
		sc.wanted = nil
		w.ServerFailed(ErrServerGone)
	}
	if _, ok := sc.loop.servers[sc]; !ok {
		return // already accounted for
	}
	delete(sc.loop.servers, sc)
	sc.leaveState(was)
	if owner != nil {
		sc.pool.perLoop[sc.loop.idx].active.Add(-1)
	}
	sc.pool.gone(sc)
	if owner != nil {
		if err == nil {
			err = fmt.Errorf("server closed the connection")
		}
		owner.ServerLost(sc, err)
	}
}

// Park stops reading from the server until Unpark: the owner's client is not
// keeping up. Bytes already read are kept. It returns true if the owner must
// return gnet.Close from the server's own callback (from is the connection of
// that callback, or nil when called from elsewhere).
func (sc *Server) Park(from gnet.Conn) (closeFromCallback bool, err error) {
	if sc.state != stateActive || sc.conn == nil {
		return false, nil
	}
	fd, err := gnetx.Park(sc.conn)
	if err != nil {
		return false, err
	}
	sc.in.Save(sc.conn)
	sc.parkedFD = fd
	sc.state = stateParked
	if from == sc.conn {
		return true, nil
	}
	_ = sc.conn.EventLoop().Close(sc.conn)
	return false, nil
}

// Parked reports whether the server is parked.
func (sc *Server) Parked() bool { return sc.state == stateParked }

// Unpark puts a parked server back on its loop; Opened follows. On the loop.
func (sc *Server) Unpark() error {
	if sc.state != stateParked || sc.parkedFD < 0 || sc.conn != nil {
		return nil
	}
	fd := sc.parkedFD
	sc.parkedFD = -1
	sc.conn = nil
	if err := gnetx.Resume(sc.loop.el, fd, sc); err != nil {
		sc.state = stateClosed
		sc.Closed(err)
		return err
	}
	return nil
}

// Exec runs sql (a simple Query) on the server as belay's own and calls then on
// the loop once its ReadyForQuery is in, with the first error it reported. The
// server must not be owned by a client's query at that moment.
func (sc *Server) Exec(sql string, then func(sc *Server, err *PgError)) { sc.ExecRows(sql, nil, then) }

// ExecRows is Exec that also hands row each DataRow of the result, its
// columns as views valid during the call (nil for NULL). On the loop.
func (sc *Server) ExecRows(sql string, row func(cols [][]byte), then func(sc *Server, err *PgError)) {
	sc.Unnamed = nil // a simple Query destroys the unnamed statement
	sc.execute(codec.AppendQuery(sc.loop.Scratch(), sql), row, then)
}

// ExecTags is Exec that also appends the tag of each CommandComplete of
// the result to tags (INSERT 0 1, CREATE TABLE, ...). On the loop.
func (sc *Server) ExecTags(sql string, tags *[]string, then func(sc *Server, err *PgError)) {
	sc.ExecRows(sql, nil, then)
	sc.tags = tags
}

// RawResult is what ExecRaw keeps of a result: its RowDescription,
// DataRow and CommandComplete messages as they came, up to Max bytes;
// Over says more came and was dropped.
type RawResult struct {
	Msgs []byte
	Max  int
	Over bool
}

// ExecRaw is Exec that keeps the result's messages in r. On the loop.
func (sc *Server) ExecRaw(sql string, r *RawResult, then func(sc *Server, err *PgError)) {
	sc.ExecRows(sql, nil, then)
	sc.raw = r
}

// ExecMsgs runs protocol messages of belay's own, msgs (which the call
// copies), that end in rfqs ReadyForQuery: simple Queries, and extended
// ones of the unnamed statement and portal each ending with a Sync. It
// keeps the CommandComplete tags in tags and the result in r (each if
// not nil), and calls then once all is in, with the first error. On the
// loop.
func (sc *Server) ExecMsgs(msgs []byte, rfqs int, tags *[]string, r *RawResult, then func(sc *Server, err *PgError)) {
	sc.Unnamed = nil // belay's Parse, or Query, replaces the unnamed statement
	sc.execute(append(sc.loop.Scratch(), msgs...), nil, then)
	sc.pendingRFQ, sc.tags, sc.raw = rfqs, tags, r
}

// execute writes belay's own messages, buf (the loop's scratch), which end
// in one ReadyForQuery.
func (sc *Server) execute(buf []byte, row func(cols [][]byte), then func(sc *Server, err *PgError)) {
	sc.state = stateInternal
	sc.pendingRFQ = 1
	sc.firstErr = nil
	sc.then = then
	sc.row = row
	_, err := sc.Write(buf)
	sc.loop.KeepScratch(buf)
	if err != nil {
		sc.Close()
	}
}

// Drain takes a server back from a client that went away while pending
// replies were still due: the output is discarded until pending
// ReadyForQuery messages came in, an open transaction is rolled back, and the
// server returns to its pool. On the loop.
func (sc *Server) Drain(pending, skip int) {
	if sc.owner != nil {
		sc.owner = nil
		sc.pool.perLoop[sc.loop.idx].active.Add(-1)
	}
	sc.state = stateDraining
	sc.pendingRFQ = pending
	sc.skip = skip
	sc.firstErr = nil
	sc.then = func(sc *Server, _ *PgError) { sc.pool.finishRelease(sc) }
	sc.row = nil
	if pending == 0 {
		sc.pool.finishRelease(sc)
		return
	}
	sc.pool.m.cancel(sc)
	if sc.conn != nil && sc.in.Buffered(sc.conn) > 0 {
		_ = sc.conn.Wake(nil)
	}
}

func (sc *Server) consumeInternal(c gnet.Conn) gnet.Action {
	data := sc.in.Bytes(c)
	if err := sc.in.Err(); err != nil {
		return sc.broken(c, fmt.Errorf("server TLS: %w", err))
	}
	off := 0
	for sc.pendingRFQ > 0 && off < len(data) {
		if sc.skip > 0 { // the rest of a long message nobody reads
			k := min(sc.skip, len(data)-off)
			off += k
			sc.skip -= k
			continue
		}
		typ, bodyLen, err := codec.PeekHeader(data[off:], codec.MaxProtocolMessage)
		if err == codec.ErrShortBuffer {
			break
		}
		if err != nil {
			return sc.broken(c, err)
		}
		if r := sc.raw; r != nil && (typ == codec.MsgRowDescription || typ == codec.MsgDataRow || typ == codec.MsgCommandComplete) {
			if r.Over || len(r.Msgs)+5+bodyLen > r.Max {
				r.Over = true
				sc.skip = 5 + bodyLen
				continue
			}
			if off+5+bodyLen > len(data) {
				break // need it whole; it fits within Max
			}
			r.Msgs = append(r.Msgs, data[off:off+5+bodyLen]...)
			off += 5 + bodyLen
			continue
		}
		switch typ {
		case codec.MsgReadyForQuery, codec.MsgErrorResponse, codec.MsgParameterStatus, codec.MsgCopyInResponse:
		case codec.MsgCommandComplete:
			if sc.tags == nil {
				sc.skip = 5 + bodyLen
				continue
			}
		case codec.MsgDataRow:
			if sc.row != nil {
				break
			}
			fallthrough
		default:
			sc.skip = 5 + bodyLen
			continue
		}
		if off+5+bodyLen > len(data) {
			break // need it whole; it is small
		}
		body := data[off+5 : off+5+bodyLen]
		off += 5 + bodyLen
		switch typ {
		case codec.MsgReadyForQuery:
			sc.pendingRFQ--
			if len(body) == 1 {
				sc.TxStatus = body[0]
			}
		case codec.MsgErrorResponse:
			if sc.firstErr == nil {
				sc.firstErr = ParsePgError(body)
			}
		case codec.MsgParameterStatus:
			sc.noteParameterStatus(body)
		case codec.MsgCommandComplete:
			if tag, err := codec.CommandTag(body); err == nil {
				*sc.tags = append(*sc.tags, string(tag))
			}
		case codec.MsgDataRow:
			var err error
			if sc.cols, err = codec.ParseDataRow(body, sc.cols[:0]); err != nil {
				return sc.broken(c, err)
			}
			sc.row(sc.cols)
		case codec.MsgCopyInResponse:
			// A client that vanished inside COPY FROM STDIN: end the COPY.
			buf := codec.AppendCopyFail(sc.loop.Scratch(), "client disconnected")
			_, _ = sc.in.Write(c, buf)
			sc.loop.KeepScratch(buf)
		}
	}
	sc.in.Consume(c, off)
	if sc.pendingRFQ > 0 {
		return gnet.None
	}
	then, err := sc.then, sc.firstErr
	sc.then, sc.firstErr, sc.row, sc.tags, sc.raw = nil, nil, nil, nil, nil
	clear(sc.cols)
	sc.state = stateActive // held by belay until then decides
	then(sc, err)
	if sc.state == stateClosed {
		return gnet.Close
	}
	if sc.conn != nil && sc.in.Buffered(c) > 0 && sc.state == stateIdle {
		return sc.idleTraffic(c)
	}
	return gnet.None
}
