package codec

import (
	"encoding/binary"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
)

// BeginMessage appends the type byte and a placeholder length of a typed
// message to dst. start is where the message begins; append the body to out
// and pass the result and start to FinishMessage.
func BeginMessage(dst []byte, typ byte) (out []byte, start int) {
	start = len(dst)
	return append(dst, typ, 0, 0, 0, 0), start
}

// FinishMessage patches the length of the message begun at start, which runs
// to the end of dst, and returns dst.
func FinishMessage(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// AppendFrame appends a typed message with the given body.
func AppendFrame(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	return append(dst, body...)
}

// cut returns s up to its first NUL.
func cut(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// appendCString appends s, cut at its first NUL, and a NUL.
func appendCString(dst []byte, s string) []byte {
	return append(append(dst, cut(s)...), 0)
}

// appendCBytes appends b, cut at its first NUL, and a NUL.
func appendCBytes(dst []byte, b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	return append(append(dst, b...), 0)
}

// AppendQuery appends a simple Query. sql is cut at its first NUL.
func AppendQuery(dst []byte, sql string) []byte {
	dst, start := BeginMessage(dst, MsgQuery)
	dst = appendCString(dst, sql)
	return FinishMessage(dst, start)
}

// AppendSync appends a Sync.
func AppendSync(dst []byte) []byte { return append(dst, MsgSync, 0, 0, 0, 4) }

// AppendFlush appends a Flush.
func AppendFlush(dst []byte) []byte { return append(dst, MsgFlush, 0, 0, 0, 4) }

// AppendTerminate appends a Terminate.
func AppendTerminate(dst []byte) []byte { return append(dst, MsgTerminate, 0, 0, 0, 4) }

// AppendCopyFail appends a CopyFail with the given reason.
func AppendCopyFail(dst []byte, msg string) []byte {
	dst, start := BeginMessage(dst, MsgCopyFail)
	dst = appendCString(dst, msg)
	return FinishMessage(dst, start)
}

// AppendParse appends a Parse: p.Name, p.Query and the p.NumParams raw
// parameter type OIDs in p.ParamOIDs. It panics if p.ParamOIDs does not hold
// 4*p.NumParams bytes or p.NumParams does not fit in 16 bits.
func AppendParse(dst []byte, p Parse) []byte {
	if len(p.ParamOIDs) != 4*p.NumParams || p.NumParams > 0xFFFF {
		panic("BUG: codec.AppendParse: ParamOIDs does not hold NumParams OIDs")
	}
	dst, start := BeginMessage(dst, MsgParse)
	dst = appendCBytes(dst, p.Name)
	dst = appendCBytes(dst, p.Query)
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.NumParams))
	dst = append(dst, p.ParamOIDs...)
	return FinishMessage(dst, start)
}

// AppendBind appends a Bind: b.Portal, b.Statement and b.Rest as it came
// from ParseBind. A proxy that renames a statement sets b.Statement and
// re-encodes.
func AppendBind(dst []byte, b Bind) []byte {
	dst, start := BeginMessage(dst, MsgBind)
	dst = appendCBytes(dst, b.Portal)
	dst = appendCBytes(dst, b.Statement)
	dst = append(dst, b.Rest...)
	return FinishMessage(dst, start)
}

// AppendDescribe appends a Describe of kind 'S' (statement) or 'P' (portal).
func AppendDescribe(dst []byte, kind byte, name []byte) []byte {
	dst, start := BeginMessage(dst, MsgDescribe)
	dst = append(dst, kind)
	dst = appendCBytes(dst, name)
	return FinishMessage(dst, start)
}

// AppendClose appends a Close of kind 'S' (statement) or 'P' (portal).
func AppendClose(dst []byte, kind byte, name []byte) []byte {
	dst, start := BeginMessage(dst, MsgClose)
	dst = append(dst, kind)
	dst = appendCBytes(dst, name)
	return FinishMessage(dst, start)
}

// AppendExecute appends an Execute of portal, returning at most maxRows rows
// (0 means no limit).
func AppendExecute(dst []byte, portal []byte, maxRows uint32) []byte {
	dst, start := BeginMessage(dst, MsgExecute)
	dst = appendCBytes(dst, portal)
	dst = binary.BigEndian.AppendUint32(dst, maxRows)
	return FinishMessage(dst, start)
}

// AppendReadyForQuery appends a ReadyForQuery with the given transaction
// status (TxIdle, TxActive or TxFailed).
func AppendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, MsgReadyForQuery, 0, 0, 0, 5, status)
}

// AppendAuthenticationOk appends an AuthenticationOk.
func AppendAuthenticationOk(dst []byte) []byte {
	return append(dst, MsgAuthentication, 0, 0, 0, 8, 0, 0, 0, 0)
}

// AppendParameterStatus appends a ParameterStatus reporting name = value.
func AppendParameterStatus(dst []byte, name, value string) []byte {
	dst, start := BeginMessage(dst, MsgParameterStatus)
	dst = appendCString(dst, name)
	dst = appendCString(dst, value)
	return FinishMessage(dst, start)
}

// AppendBackendKeyData appends a BackendKeyData with a 4-byte (protocol 3.0)
// secret key.
func AppendBackendKeyData(dst []byte, pid uint32, key uint32) []byte {
	dst = append(dst, MsgBackendKeyData, 0, 0, 0, 12)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return binary.BigEndian.AppendUint32(dst, key)
}

// AppendNegotiateProtocolVersion appends a NegotiateProtocolVersion naming the
// newest minor version the server supports and the protocol options
// ("_pq_." parameters) of the client's startup message it did not recognise.
func AppendNegotiateProtocolVersion(dst []byte, newestMinor uint32, unrecognized []string) []byte {
	dst, start := BeginMessage(dst, MsgNegotiateProtocolVersion)
	dst = binary.BigEndian.AppendUint32(dst, newestMinor)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(unrecognized)))
	for _, o := range unrecognized {
		dst = appendCString(dst, o)
	}
	return FinishMessage(dst, start)
}

// ErrorResponse is an error or notice that belay itself sends to a client.
type ErrorResponse struct {
	// Severity is ERROR, FATAL or PANIC for an error, and NOTICE, WARNING,
	// DEBUG, INFO or LOG for a notice. Empty means ERROR for
	// AppendErrorResponse and NOTICE for AppendNoticeResponse.
	Severity string
	Code     sqlstate.Code
	Message  string
	Detail   string // left out if empty
	Hint     string // left out if empty
	Where    string // the context (CONTEXT: COPY t, line 3); left out if empty
}

// AppendErrorResponse appends an ErrorResponse with fields S and V (both
// e.Severity, which belay does not localize), C, M, and D and H if set.
func AppendErrorResponse(dst []byte, e ErrorResponse) []byte {
	return appendErrorOrNotice(dst, MsgErrorResponse, "ERROR", e)
}

// AppendNoticeResponse appends a NoticeResponse, with the fields of
// AppendErrorResponse.
func AppendNoticeResponse(dst []byte, e ErrorResponse) []byte {
	return appendErrorOrNotice(dst, MsgNoticeResponse, "NOTICE", e)
}

func appendErrorOrNotice(dst []byte, typ byte, severity string, e ErrorResponse) []byte {
	if e.Severity != "" {
		severity = e.Severity
	}
	dst, start := BeginMessage(dst, typ)
	dst = append(dst, 'S')
	dst = appendCString(dst, severity)
	dst = append(dst, 'V')
	dst = appendCString(dst, severity)
	dst = append(dst, 'C')
	dst = appendCString(dst, string(e.Code))
	dst = append(dst, 'M')
	dst = appendCString(dst, e.Message)
	if d := cut(e.Detail); d != "" {
		dst = append(dst, 'D')
		dst = append(append(dst, d...), 0)
	}
	if h := cut(e.Hint); h != "" {
		dst = append(dst, 'H')
		dst = append(append(dst, h...), 0)
	}
	if w := cut(e.Where); w != "" {
		dst = append(dst, 'W')
		dst = append(append(dst, w...), 0)
	}
	dst = append(dst, 0)
	return FinishMessage(dst, start)
}

// AppendAuthentication appends an Authentication request of the given kind
// (AuthCleartextPassword, AuthMD5Password with the salt as data,
// AuthSASLContinue, AuthSASLFinal, ...) with data after the kind.
func AppendAuthentication(dst []byte, kind uint32, data []byte) []byte {
	dst, start := BeginMessage(dst, MsgAuthentication)
	dst = binary.BigEndian.AppendUint32(dst, kind)
	dst = append(dst, data...)
	return FinishMessage(dst, start)
}

// AppendAuthenticationSASL appends an AuthenticationSASL offering mechanisms.
func AppendAuthenticationSASL(dst []byte, mechanisms ...string) []byte {
	dst, start := BeginMessage(dst, MsgAuthentication)
	dst = binary.BigEndian.AppendUint32(dst, AuthSASL)
	for _, m := range mechanisms {
		dst = appendCString(dst, m)
	}
	dst = append(dst, 0)
	return FinishMessage(dst, start)
}

// AppendEditedFields appends a message of type typ (ErrorResponse or
// NoticeResponse) with the fields of body, another such message's body, in
// their order, each value replaced by what edit returns for it (edit
// returns v to keep it; v is a view into body). A malformed body is
// appended as it came.
func AppendEditedFields(dst []byte, typ byte, body []byte, edit func(field byte, v []byte) []byte) []byte {
	if _, err := ParseErrorFields(body); err != nil {
		return AppendFrame(dst, typ, body)
	}
	dst, start := BeginMessage(dst, typ)
	for b := body; len(b) > 1; {
		v, rest, _ := cstring(b[1:])
		dst = append(dst, b[0])
		dst = appendCBytes(dst, edit(b[0], v))
		b = rest
	}
	return FinishMessage(append(dst, 0), start)
}

// AppendRowDescription appends a RowDescription of fields.
func AppendRowDescription(dst []byte, fields []Field) []byte {
	start := len(dst)
	dst = append(dst, MsgRowDescription, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(fields)))
	for _, f := range fields {
		dst = appendCBytes(dst, f.Name)
		dst = binary.BigEndian.AppendUint32(dst, f.TableOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.Column))
		dst = binary.BigEndian.AppendUint32(dst, f.TypeOID)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.TypeSize))
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.TypeModifier))
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.Format))
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// AppendDataRow appends a DataRow of cols (nil for NULL).
func AppendDataRow(dst []byte, cols [][]byte) []byte {
	start := len(dst)
	dst = append(dst, MsgDataRow, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(cols)))
	for _, c := range cols {
		if c == nil {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(c)))
		dst = append(dst, c...)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}
