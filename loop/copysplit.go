package loop

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
	"github.com/belaydb/belay/twopc"
	"github.com/panjf2000/gnet/v2"
)

// COPY ... FROM STDIN into a table of the sharding schema (issue J): a
// spread whose legs each run the client's COPY on their shard's primary,
// in a transaction, and get their rows: a sharded table's split by key
// (shard's splitters, text, CSV or binary, read each row as Postgres
// would and place it by Postgres's partition hash), a reference table's
// all of them. A COPY
// without a column list has the table's columns read from the first
// shard's catalog first.
//
//  1. Starting: every leg sends BEGIN and the COPY; once all are in COPY
//     IN, the client gets the first shard's CopyInResponse (a shard that
//     refuses the COPY, the client gets its error as from Postgres).
//  2. Streaming: the client's CopyData are split as they come (a row may
//     span messages), each shard's rows sent on in one CopyData per
//     chunk; the client is parked while a shard reads slower than it
//     sends (max_buffered_bytes per leg).
//  3. The client's CopyDone goes to every leg; each answers COPY n, then
//     its part is prepared and committed by two-phase commit as every
//     spread's (the client's tag counts the rows of every shard; a
//     reference table's, its rows once).
//
// The COPY fails as a whole, nothing committed anywhere: on a shard's
// error (a constraint, a bad value), a row the splitter refuses (its
// error is Postgres's, with its line), the client's CopyFail (57014, as
// Postgres), a message other than copy data (08P01), or a shard's server
// lost (08006). The legs still in COPY IN get a CopyFail; the client's
// copy messages are dropped until it ends its data, then it gets the
// error (libpq reads it then). A client that leaves mid-COPY leaves
// nothing applied.
//
// In the client's transaction the legs are its parts (txspread.go): the
// COPY runs there, nothing is prepared, and the client's COMMIT commits it
// with the rest.
//
// Not yet: a COPY in the extended protocol, or with an ENCODING other than
// UTF8; each is refused with 0A000. A shard's error names the line in that shard's rows, not in the
// client's: its CONTEXT is left out.
//
// Who owns what: a copyIn is its spread's, on the session's loop.

// copyIn is a COPY FROM STDIN under way on every shard.
type copyIn struct {
	sp    *spread
	split *router.CopySplit
	// rows places a sharded table's rows (nil for a reference table's,
	// every row to every shard; and until the columns are known).
	rows   shard.RowSplitter
	phase  copyPhase
	legs   []copyLeg // by the spread's leg (index: shard)
	remain int       // bytes of the client's CopyData body still to read
	// query: the client's Query is still in its input (the client has not
	// been told CopyInResponse); ended: the client ended its data (or left).
	query, ended bool
	// err is what the client is told when the COPY failed: the first
	// shard's error, or belay's.
	err  *codec.ErrorResponse
	resp []byte // the first shard's CopyInResponse, for the client
}

type copyPhase uint8

const (
	copyStarting  copyPhase = iota // the legs start the COPY; the client waits
	copyStreaming                  // the client's rows go to the legs
	copyEnding                     // the legs have the client's CopyDone
	copyFailed                     // the legs were told to fail; the client's rows are dropped
)

// copyLeg is a leg's part of the COPY.
type copyLeg struct {
	state legCopy
	out   []byte // a CopyData being filled: its header, then rows
}

type legCopy uint8

const (
	legIdle  legCopy = iota // not in the COPY (before it, or done)
	legStart                // BEGIN and COPY sent: CopyInResponse due
	legIn                   // in COPY IN: takes rows
	legEnd                  // CopyDone or CopyFail sent: ReadyForQuery due
)

// copyChunk is the size a leg's CopyData is sent at (as the rows of one
// client message are split, each shard's go in one message of theirs).
const copyChunk = 64 << 10

// errCopyTx and the others: what a COPY of every shard does not do yet.
var (
	errCopyPinned = &shard.Error{Code: sqlstate.FeatureNotSupported,
		Message: "COPY FROM STDIN into a sharded or reference table from a session pinned to its server (LISTEN, temporary tables, session locks, ...)"}
	errCopyExtended = &shard.Error{Code: sqlstate.FeatureNotSupported,
		Message: "COPY FROM STDIN into a sharded or reference table through the extended query protocol: send it as a simple Query"}
	errCopyMulti = &shard.Error{Code: sqlstate.FeatureNotSupported,
		Message: "COPY FROM STDIN into a sharded or reference table with other statements in its Query: send it alone"}
	errCopyNoEtcd = &shard.Error{Code: sqlstate.FeatureNotSupported,
		Message: "COPY into a table of every shard commits with two-phase commit, which needs etcd to record its decisions"}
	errCopyOtherFailed = errors.New("the COPY failed on another shard")
)

// copyable is the spread of the unit starting with data, a COPY FROM STDIN
// routed to every shard (t.Copy), or its refusal.
func (s *session) copyable(set *shardSet, data []byte, t router.ShardTarget) error {
	q := unitQuery(data)
	switch {
	case q == nil:
		return errCopyExtended
	case len(s.plan(q).Stmts) != 1:
		return errCopyMulti
	case s.t.pinned:
		return errCopyPinned
	case s.p.cfg.RecordDecision == nil:
		return errCopyNoEtcd
	}
	cp := &copyIn{split: t.Copy, query: true}
	if t.Copy.Table.Kind == shard.Sharded && t.Copy.Columns != nil {
		if err := cp.splitter(len(set.clusters), t.Copy.Columns); err != nil {
			return err
		}
	}
	return &spreadOn{copy: cp}
}

// splitter makes the splitter of a sharded table's rows, whose COPY fills
// columns.
func (cp *copyIn) splitter(shards int, columns []string) error {
	target, err := cp.split.Target(columns)
	if err != nil {
		return err
	}
	cp.rows, err = shard.NewRowSplitter(cp.split.Options, target, shards, 0)
	return err
}

// needsColumns: a sharded table's COPY without a column list, whose
// columns are the table's (read from the first leg's catalog).
func (cp *copyIn) needsColumns() bool {
	return cp.split.Table.Kind == shard.Sharded && cp.rows == nil
}

// begin starts the COPY on leg l, whose server is ready.
func (cp *copyIn) begin(l *spreadLeg) {
	if cp.phase == copyFailed {
		cp.abandon(l)
		return
	}
	if cp.needsColumns() && l == cp.sp.legs[0] {
		var columns []string
		l.sc.ExecRows(columnsSQL(cp.split.Table.Name), func(cols [][]byte) {
			columns = append(columns, string(cols[0]))
		}, func(_ *poolcore.Server, perr *poolcore.PgError) {
			switch {
			case perr != nil:
				l.prepared(perr)
			case cp.phase == copyFailed:
				cp.begin(l)
			default:
				if err := cp.splitter(len(cp.sp.legs), columns); err != nil {
					var se *shard.Error
					if !errors.As(err, &se) {
						se = &shard.Error{Code: sqlstate.InternalError, Message: err.Error()}
					}
					cp.fail(shardError(se), "")
					cp.abandon(l)
					return
				}
				cp.send(l)
			}
		})
		return
	}
	cp.send(l)
}

// send writes the leg's COPY: after a BEGIN of its own, or in the
// client's transaction.
func (cp *copyIn) send(l *spreadLeg) {
	q := cp.sp.sql
	if !cp.sp.inTx {
		q = "BEGIN;\n" + q
	}
	cp.legs[cp.at(l)].state = legStart
	if _, err := l.sc.Write(codec.AppendQuery(nil, q)); err != nil {
		l.sc.Close()
	}
}

// at is the index of l among the spread's legs (its shard: a COPY has a
// leg on every shard).
func (cp *copyIn) at(l *spreadLeg) int { return l.shard }

// columnsSQL reads table's columns a COPY without a column list fills:
// neither dropped nor generated, in order.
func columnsSQL(t shard.TableName) string {
	return "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = " + quoteLiteral(t.SQL()) +
		"::pg_catalog.regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
}

// traffic reads leg l's server during the COPY: CopyInResponse once it
// started, the tags (BEGIN, COPY n), an error, and ReadyForQuery, after
// which the part is prepared (or, failed, left to the coordinator).
func (cp *copyIn) traffic(l *spreadLeg, sc *poolcore.Server, c gnet.Conn) gnet.Action {
	in := sc.Input()
	data := in.Bytes(c)
	if err := in.Err(); err != nil {
		l.ServerLost(sc, err)
		sc.Close()
		return gnet.None
	}
	cl := &cp.legs[cp.at(l)]
	off := 0
	for off < len(data) {
		f, n, err := codec.ReadFrame(data[off:], codec.MaxProtocolMessage)
		if err == codec.ErrShortBuffer {
			break
		}
		if err != nil {
			in.Consume(c, off)
			l.ServerLost(sc, err)
			sc.Close()
			return gnet.None
		}
		off += n
		switch f.Type {
		case codec.MsgCommandComplete:
			if tag, err := codec.CommandTag(f.Body); err == nil {
				l.tags = append(l.tags, string(tag))
			}
		case codec.MsgCopyInResponse:
			cl.state = legIn
			if cp.resp == nil && l == cp.sp.legs[0] {
				cp.resp = append([]byte(nil), data[off-n:off]...)
				if e := cp.encodingRefusal(sc.Params["client_encoding"]); e != nil {
					cp.fail(e, "")
				}
			}
			cp.started()
		case codec.MsgErrorResponse:
			cl.state = legEnd // the server drops what more it is sent
			perr := poolcore.ParsePgError(f.Body)
			if l.err == nil {
				l.err = perr
			}
			cp.fail(pgErrorResponse(perr), "")
		case codec.MsgParameterStatus:
			sc.NoteParameterStatus(f.Body)
		case codec.MsgReadyForQuery:
			in.Consume(c, off)
			if len(f.Body) == 1 {
				sc.TxStatus = f.Body[0]
			}
			cl.state = legIdle
			cp.legDone(l)
			return gnet.None
		}
	}
	in.Consume(c, off)
	return gnet.None
}

// legDone: leg l's COPY ended (its ReadyForQuery): a part that took its
// rows is prepared (in the client's transaction, it stays as it is); one
// that failed, or whose rows are not to be committed (another failed),
// ends its first phase with that.
func (cp *copyIn) legDone(l *spreadLeg) {
	switch {
	case l.err != nil:
		l.prepared(l.err)
	case cp.phase == copyFailed || l.sc.TxStatus != codec.TxActive:
		cp.abandon(l)
	case cp.sp.inTx:
		l.prepared(nil)
	default:
		l.sc.Exec("PREPARE TRANSACTION '"+twopc.GID(cp.sp.tx, l.shard)+"'", func(_ *poolcore.Server, perr *poolcore.PgError) {
			l.prepared(perr)
		})
	}
}

// abandon ends leg l's first phase because the COPY failed elsewhere: in
// a transaction of its own, its part is rolled back with the others; in
// the client's, the part stays (the transaction failed with the COPY).
func (cp *copyIn) abandon(l *spreadLeg) {
	if !cp.sp.inTx {
		l.lost = errCopyOtherFailed
	}
	l.prepared(nil)
}

// encodingRefusal refuses a sharded table's COPY whose data, in the
// client's encoding enc, the splitter would not read as Postgres does:
// a text key is hashed by its bytes in the server's encoding (UTF8), and
// the text and CSV formats are cut at ASCII bytes that the second byte of
// a character may be in some encodings (SJIS, BIG5, GBK, UHC, GB18030,
// JOHAB). UTF8 and SQL_ASCII (no conversion) are read as they are.
func (cp *copyIn) encodingRefusal(enc string) *codec.ErrorResponse {
	if cp.rows == nil || enc == "UTF8" || enc == "SQL_ASCII" || enc == "" {
		return nil
	}
	textKey := cp.split.Table.KeyType == shard.KeyText
	switch enc {
	case "SJIS", "BIG5", "GBK", "UHC", "GB18030", "JOHAB":
		textKey = textKey || cp.split.Options.Format != shard.CopyBinary
	}
	if !textKey {
		return nil
	}
	return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.FeatureNotSupported,
		Message: "COPY into sharded table " + cp.split.Table.Name.Name + " with client_encoding " + enc + ": belay places its rows by their keys read as UTF8",
		Hint:    "SET client_encoding = 'UTF8' for the COPY, or convert the data first."}
}

// lost: leg l's server went away (spreadLeg.ServerLost).
func (cp *copyIn) lost(l *spreadLeg) {
	cp.legs[cp.at(l)].state = legIdle
	cp.fail(&codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ConnectionFailure,
		Message: "the COPY was rolled back on every shard: a shard's server was lost", Detail: l.lost.Error()}, "")
}

// started: a leg is in COPY IN. Once all are, the client is.
func (cp *copyIn) started() {
	if cp.phase == copyFailed {
		cp.failLegs("belay: " + errCopyOtherFailed.Error())
		return
	}
	if !cp.ready() {
		return
	}
	s := cp.sp.s
	if s.c == nil { // parked: it comes back (clientData streams then)
		s.unparkClient()
		return
	}
	if cp.stream(s.c) == gnet.Close {
		s.closeClient()
	}
}

// ready says every leg is in COPY IN, the client not told yet.
func (cp *copyIn) ready() bool {
	if cp.phase != copyStarting {
		return false
	}
	for _, l := range cp.legs {
		if l.state != legIn {
			return false
		}
	}
	return true
}

// stream answers the client's Query with CopyInResponse and reads its
// rows.
func (cp *copyIn) stream(c gnet.Conn) gnet.Action {
	s := cp.sp.s
	end := firstUnitEnd(s.in.Bytes(c))
	s.in.Consume(c, end)
	s.stats.Received(end)
	cp.query = false
	cp.phase = copyStreaming
	for i := range cp.legs {
		cp.legs[i].out = codec.AppendFrame(cp.legs[i].out[:0], codec.MsgCopyData, nil)
	}
	s.stats.Sent(len(cp.resp))
	_, _ = s.write(cp.resp)
	return cp.clientData(c)
}

// clientData reads the client's copy messages: rows to split while the
// COPY streams, dropped once it failed, until the client's CopyDone or
// CopyFail; what follows them waits for the answer. On the loop, from
// clientData.
func (cp *copyIn) clientData(c gnet.Conn) gnet.Action {
	s := cp.sp.s
	if cp.ready() {
		return cp.stream(c)
	}
	if cp.query || cp.ended {
		return s.boundWaiting(c)
	}
	var act gnet.Action
	for !cp.ended {
		data := s.in.Bytes(c)
		if len(data) == 0 {
			break
		}
		if cp.remain > 0 {
			k := min(cp.remain, len(data))
			cp.feed(data[:k])
			s.in.Consume(c, k)
			s.stats.Received(k)
			cp.remain -= k
			continue
		}
		typ, bodyLen, bad, ok := s.checkHeader(data)
		if bad != nil {
			cp.flush()
			return s.fatal(*bad)
		}
		if !ok {
			break
		}
		if typ == codec.MsgCopyData {
			s.in.Consume(c, 5)
			s.stats.Received(5)
			cp.remain = bodyLen
			continue
		}
		if len(data) < 5+bodyLen {
			break
		}
		body := data[5 : 5+bodyLen]
		switch typ {
		case codec.MsgCopyDone:
			cp.ended = true
			cp.done()
		case codec.MsgCopyFail:
			msg, _ := codec.QueryText(body)
			cp.ended = true
			cp.fail(&codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.QueryCanceled, Message: "COPY from stdin failed: " + string(msg)}, string(msg))
		case codec.MsgFlush, codec.MsgSync:
			// Ignored during COPY IN, as Postgres does.
		case codec.MsgTerminate:
			cp.clientGone()
			act = gnet.Close
		default:
			cp.ended = true
			cp.fail(&codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ProtocolViolation,
				Message: fmt.Sprintf("unexpected message type 0x%02X during COPY from stdin", typ)}, "")
		}
		s.in.Consume(c, 5+bodyLen)
		s.stats.Received(5 + bodyLen)
	}
	cp.flush()
	if cp.ended {
		cp.sp.finish()
	}
	if act != gnet.None {
		return act
	}
	if cp.phase == copyStreaming && cp.outbound() > s.p.cfg.MaxBufferedBytes {
		// A shard reads slower than the client sends: stop reading the
		// client until it caught up (poll).
		return s.parkClient(c)
	}
	return gnet.None
}

// feed splits b, the next bytes of the client's rows, between the legs.
func (cp *copyIn) feed(b []byte) {
	if cp.phase != copyStreaming {
		return
	}
	if cp.rows == nil { // a reference table's: every row to every shard
		for i := range cp.legs {
			cp.add(i, b)
		}
		return
	}
	cp.rows.Feed(b)
	cp.drain()
}

// drain sends on the rows the splitter has.
func (cp *copyIn) drain() {
	for {
		row, ok, err := cp.rows.Next()
		if err != nil {
			var se *shard.Error
			if !errors.As(err, &se) {
				se = &shard.Error{Code: sqlstate.InternalError, Message: err.Error()}
			}
			cp.fail(shardError(se), "")
			return
		}
		if !ok {
			return
		}
		if row.Shard == shard.AllShards {
			for i := range cp.legs {
				cp.add(i, row.Data)
			}
		} else {
			cp.add(row.Shard, row.Data)
		}
	}
}

// add appends b to leg i's CopyData, sent once a chunk is full.
func (cp *copyIn) add(i int, b []byte) {
	l := &cp.legs[i]
	l.out = append(l.out, b...)
	if len(l.out) >= copyChunk {
		cp.flushLeg(i)
	}
}

// flush sends every leg's rows so far.
func (cp *copyIn) flush() {
	for i := range cp.legs {
		cp.flushLeg(i)
	}
}

func (cp *copyIn) flushLeg(i int) {
	l := &cp.legs[i]
	if len(l.out) <= 5 || l.state != legIn {
		return
	}
	binary.BigEndian.PutUint32(l.out[1:5], uint32(len(l.out)-1))
	if sc := cp.sp.legs[i].sc; sc != nil {
		if _, err := sc.Write(l.out); err != nil {
			sc.Close()
		}
	}
	l.out = l.out[:5]
}

// done: the client's CopyDone. The splitter's last row (one without a
// line end), then CopyDone, to every leg.
func (cp *copyIn) done() {
	if cp.phase != copyStreaming {
		return
	}
	if cp.rows != nil {
		cp.rows.Finish()
		cp.drain()
		if cp.phase != copyStreaming {
			return
		}
	}
	cp.phase = copyEnding
	for i := range cp.legs {
		cp.flushLeg(i)
		cp.end(i, codec.AppendFrame(nil, codec.MsgCopyDone, nil))
	}
}

// end writes msg (CopyDone or CopyFail) to leg i, if it is in COPY IN.
func (cp *copyIn) end(i int, msg []byte) {
	l := &cp.legs[i]
	if l.state != legIn {
		return
	}
	l.state = legEnd
	if sc := cp.sp.legs[i].sc; sc != nil {
		if _, err := sc.Write(msg); err != nil {
			sc.Close()
		}
	}
}

// fail ends the COPY with e for the client (the first reason stands): the
// legs in COPY IN get a CopyFail (with why, or belay's words), their rows
// not sent dropped.
func (cp *copyIn) fail(e *codec.ErrorResponse, why string) {
	if cp.err == nil {
		cp.err = e
	}
	if cp.phase == copyFailed {
		return
	}
	if cp.phase != copyStreaming {
		cp.ended = true // the client sends no rows: before CopyInResponse, or after its CopyDone
	}
	cp.phase = copyFailed
	if why == "" {
		why = "belay: " + errCopyOtherFailed.Error()
	}
	cp.failLegs(why)
}

// failLegs sends a CopyFail to the legs in COPY IN.
func (cp *copyIn) failLegs(why string) {
	for i := range cp.legs {
		cp.legs[i].out = cp.legs[i].out[:0]
		cp.end(i, codec.AppendCopyFail(nil, why))
	}
}

// clientGone: the client left; a COPY it had not ended fails.
func (cp *copyIn) clientGone() {
	if !cp.ended {
		cp.ended = true
		cp.fail(&codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ConnectionFailure, Message: "client disconnected"}, "client disconnected")
	}
}

// outbound is the most bytes a leg's server has yet to take.
func (cp *copyIn) outbound() int {
	n := 0
	for _, l := range cp.sp.legs {
		if l.sc != nil && l.sc.Conn() != nil {
			n = max(n, l.sc.Conn().OutboundBuffered())
		}
	}
	return n
}

// shardError is the client's error for a *shard.Error.
func shardError(e *shard.Error) *codec.ErrorResponse {
	return &codec.ErrorResponse{Severity: "ERROR", Code: e.Code, Message: e.Message, Hint: e.Hint, Where: e.Context}
}

// pgErrorResponse is the client's error for a shard's server's: as it is,
// unless the server ended its connection with it (FATAL, PANIC: an
// administrator's termination, a crash), which is not the client's
// connection's end: the shard was lost under the statement (08006).
func pgErrorResponse(pe *poolcore.PgError) *codec.ErrorResponse {
	if pe.Severity == "FATAL" || pe.Severity == "PANIC" {
		return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ConnectionFailure,
			Message: "a shard's server ended its connection under the statement: " + pe.Message,
			Detail:  "SQLSTATE " + pe.Code + " from the shard's server."}
	}
	return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.Code(pe.Code), Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
}
