package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
)

// Protocol versions and the request codes that stand in the version field of
// a startup-phase packet.
const (
	ProtocolVersion30      = 196608   // 3<<16 | 0
	ProtocolVersion32      = 196610   // 3<<16 | 2
	SSLRequestCode         = 80877103 // 1234<<16 | 5679
	GSSENCRequestCode      = 80877104 // 1234<<16 | 5680
	CancelRequestCode      = 80877102 // 1234<<16 | 5678
	MaxStartupPacketLength = 10000    // as Postgres's MAX_STARTUP_PACKET_LENGTH
	DefaultMaxMessageSize  = 256 << 20
)

// MaxProtocolMessage bounds any message a proxy streams rather than holds
// (DataRow, CopyData): Postgres itself refuses messages over 1 GB
// (PQ_LARGE_MESSAGE_LIMIT), and this sits just above that.
const MaxProtocolMessage = 1<<30 + 1<<20

// MaxCancelKeyLength is the longest secret key of a CancelRequest or
// BackendKeyData, as protocol 3.2 allows; 3.0 keys are 4 bytes.
const MaxCancelKeyLength = 256

// Message types sent by the frontend (client).
const (
	MsgQuery               byte = 'Q'
	MsgParse               byte = 'P'
	MsgBind                byte = 'B'
	MsgDescribe            byte = 'D'
	MsgExecute             byte = 'E'
	MsgClose               byte = 'C'
	MsgSync                byte = 'S'
	MsgFlush               byte = 'H'
	MsgTerminate           byte = 'X'
	MsgFunctionCall        byte = 'F'
	MsgPasswordMessage     byte = 'p' // also GSSResponse, SASLInitialResponse, SASLResponse
	MsgGSSResponse         byte = 'p'
	MsgSASLInitialResponse byte = 'p'
	MsgSASLResponse        byte = 'p'
)

// Message types sent in both directions.
const (
	MsgCopyData byte = 'd'
	MsgCopyDone byte = 'c'
	MsgCopyFail byte = 'f' // frontend only
)

// Message types sent by the backend (server).
const (
	MsgAuthentication           byte = 'R'
	MsgBackendKeyData           byte = 'K'
	MsgParameterStatus          byte = 'S'
	MsgReadyForQuery            byte = 'Z'
	MsgErrorResponse            byte = 'E'
	MsgNoticeResponse           byte = 'N'
	MsgRowDescription           byte = 'T'
	MsgDataRow                  byte = 'D'
	MsgCommandComplete          byte = 'C'
	MsgCopyInResponse           byte = 'G'
	MsgCopyOutResponse          byte = 'H'
	MsgCopyBothResponse         byte = 'W'
	MsgNotificationResponse     byte = 'A'
	MsgParseComplete            byte = '1'
	MsgBindComplete             byte = '2'
	MsgCloseComplete            byte = '3'
	MsgNoData                   byte = 'n'
	MsgParameterDescription     byte = 't'
	MsgPortalSuspended          byte = 's'
	MsgEmptyQueryResponse       byte = 'I'
	MsgFunctionCallResponse     byte = 'V'
	MsgNegotiateProtocolVersion byte = 'v'
)

// Transaction status of a ReadyForQuery message.
const (
	TxIdle   byte = 'I' // not in a transaction block
	TxActive byte = 'T' // in a transaction block
	TxFailed byte = 'E' // in a failed transaction block
)

// Authentication request kinds (the int32 at the start of an 'R' body).
const (
	AuthOk                uint32 = 0
	AuthKerberosV5        uint32 = 2
	AuthCleartextPassword uint32 = 3
	AuthMD5Password       uint32 = 5
	AuthGSS               uint32 = 7
	AuthGSSContinue       uint32 = 8
	AuthSSPI              uint32 = 9
	AuthSASL              uint32 = 10
	AuthSASLContinue      uint32 = 11
	AuthSASLFinal         uint32 = 12
)

var (
	// ErrShortBuffer means the buffer does not yet hold a whole header or a
	// whole message: read more bytes and try again.
	ErrShortBuffer = errors.New("codec: short buffer")
	// ErrInvalidLength means a declared length is impossible (a typed
	// message shorter than its own length field, a startup packet shorter
	// than 8 bytes or longer than MaxStartupPacketLength).
	ErrInvalidLength = errors.New("codec: invalid message length")
	// ErrMessageTooLarge means a declared length exceeds the caller's maximum.
	ErrMessageTooLarge = errors.New("codec: message too large")
	// ErrMalformed means a message body does not parse.
	ErrMalformed = errors.New("codec: malformed message")
)

// Frame is a view of one typed message. Body points into the buffer it was
// read from and is valid only as long as that buffer is.
type Frame struct {
	Type byte
	Body []byte
}

// WireLen returns the number of bytes the frame occupies on the wire: the
// type byte, the length field and the body.
func (f Frame) WireLen() int { return 5 + len(f.Body) }

// PeekHeader reads the 5-byte header of a typed message at the start of b: its
// type and the length of its body (the declared length minus the 4 bytes of
// the length field itself). It returns ErrShortBuffer if b holds fewer than 5
// bytes, ErrInvalidLength if the declared length is less than 4 (or negative
// as an int32), and ErrMessageTooLarge if the body would be longer than max. A
// max of 0 or less means DefaultMaxMessageSize.
//
// PeekHeader lets a reader reject an oversized message before it buffers it.
func PeekHeader(b []byte, max int) (typ byte, bodyLen int, err error) {
	if len(b) < 5 {
		return 0, 0, ErrShortBuffer
	}
	declared := binary.BigEndian.Uint32(b[1:5])
	if declared < 4 || declared > math.MaxInt32 {
		return 0, 0, ErrInvalidLength
	}
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	bodyLen = int(declared) - 4
	if bodyLen > max {
		return 0, 0, ErrMessageTooLarge
	}
	return b[0], bodyLen, nil
}

// ReadFrame returns the typed message at the start of b and the number of
// bytes it occupies. It returns ErrShortBuffer, with n == 0, when b does not
// yet hold the whole message, and the errors of PeekHeader. The frame's Body
// points into b. ReadFrame allocates nothing.
func ReadFrame(b []byte, max int) (f Frame, n int, err error) {
	typ, bodyLen, err := PeekHeader(b, max)
	if err != nil {
		return Frame{}, 0, err
	}
	n = 5 + bodyLen
	if len(b) < n {
		return Frame{}, 0, ErrShortBuffer
	}
	return Frame{Type: typ, Body: b[5:n:n]}, n, nil
}

// cstring splits b at its first NUL: s is the string before it (capped), rest
// the bytes after it. ok is false if b holds no NUL.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i:i], b[i+1:], true
}

// onlyCString returns the single C string that makes up all of b.
func onlyCString(b []byte) ([]byte, error) {
	s, rest, ok := cstring(b)
	if !ok || len(rest) != 0 {
		return nil, ErrMalformed
	}
	return s, nil
}
