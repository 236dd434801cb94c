package codec

import "encoding/binary"

// ReadyForQueryStatus returns the transaction status of a ReadyForQuery body:
// TxIdle ('I'), TxActive ('T') or TxFailed ('E').
func ReadyForQueryStatus(body []byte) (byte, error) {
	if len(body) != 1 {
		return 0, ErrMalformed
	}
	switch s := body[0]; s {
	case TxIdle, TxActive, TxFailed:
		return s, nil
	}
	return 0, ErrMalformed
}

// CommandTag returns the tag of a CommandComplete body, such as "INSERT 0 1",
// without its terminating NUL.
func CommandTag(body []byte) ([]byte, error) { return onlyCString(body) }

// ErrorFields is a view of the fields of an ErrorResponse or NoticeResponse
// body, each as sent (Position and Line are decimal text). A field the
// message does not carry is nil; a field it carries twice keeps the last.
type ErrorFields struct {
	Severity             []byte // 'S', localized
	SeverityNonLocalized []byte // 'V'
	Code                 []byte // 'C', the SQLSTATE
	Message              []byte // 'M'
	Detail               []byte // 'D'
	Hint                 []byte // 'H'
	Position             []byte // 'P'
	InternalPosition     []byte // 'p'
	InternalQuery        []byte // 'q'
	Where                []byte // 'W'
	SchemaName           []byte // 's'
	TableName            []byte // 't'
	ColumnName           []byte // 'c'
	DataTypeName         []byte // 'd'
	ConstraintName       []byte // 'n'
	File                 []byte // 'F'
	Line                 []byte // 'L'
	Routine              []byte // 'R'
}

// ParseErrorFields parses the body of an ErrorResponse or NoticeResponse: a
// run of fields, each a type byte and a NUL-terminated value, ended by a NUL
// that must be the body's last byte. Fields of unknown type are skipped, as
// the protocol asks.
func ParseErrorFields(body []byte) (ErrorFields, error) {
	var e ErrorFields
	b := body
	for {
		if len(b) == 0 {
			return ErrorFields{}, ErrMalformed
		}
		t := b[0]
		if t == 0 {
			if len(b) != 1 {
				return ErrorFields{}, ErrMalformed
			}
			return e, nil
		}
		v, rest, ok := cstring(b[1:])
		if !ok {
			return ErrorFields{}, ErrMalformed
		}
		b = rest
		switch t {
		case 'S':
			e.Severity = v
		case 'V':
			e.SeverityNonLocalized = v
		case 'C':
			e.Code = v
		case 'M':
			e.Message = v
		case 'D':
			e.Detail = v
		case 'H':
			e.Hint = v
		case 'P':
			e.Position = v
		case 'p':
			e.InternalPosition = v
		case 'q':
			e.InternalQuery = v
		case 'W':
			e.Where = v
		case 's':
			e.SchemaName = v
		case 't':
			e.TableName = v
		case 'c':
			e.ColumnName = v
		case 'd':
			e.DataTypeName = v
		case 'n':
			e.ConstraintName = v
		case 'F':
			e.File = v
		case 'L':
			e.Line = v
		case 'R':
			e.Routine = v
		}
	}
}

// ParseParameterStatus parses a ParameterStatus body.
func ParseParameterStatus(body []byte) (name, value []byte, err error) {
	name, rest, ok := cstring(body)
	if !ok {
		return nil, nil, ErrMalformed
	}
	value, err = onlyCString(rest)
	if err != nil {
		return nil, nil, err
	}
	return name, value, nil
}

// ParseDataRow parses a DataRow body into cols (appended to, so a caller can
// reuse its slice): one view per column, nil for NULL. The count and every
// length are checked against the body before anything is appended.
func ParseDataRow(body []byte, cols [][]byte) ([][]byte, error) {
	if len(body) < 2 {
		return cols, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	if len(rest) < 4*n { // every column has at least its length word
		return cols, ErrMalformed
	}
	for i := 0; i < n; i++ {
		if len(rest) < 4 {
			return cols, ErrMalformed
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		switch {
		case l == -1:
			cols = append(cols, nil)
		case l < 0 || int(l) > len(rest):
			return cols, ErrMalformed
		default:
			cols = append(cols, rest[:l:l])
			rest = rest[l:]
		}
	}
	if len(rest) != 0 {
		return cols, ErrMalformed
	}
	return cols, nil
}

// ParseBackendKeyData parses a BackendKeyData body: the backend's process ID
// and its secret key, 4 bytes in protocol 3.0 and up to MaxCancelKeyLength
// bytes in 3.2, returned raw.
func ParseBackendKeyData(body []byte) (pid uint32, key []byte, err error) {
	return pidAndKey(body)
}

// CopyResponse is a view of a CopyInResponse, CopyOutResponse or
// CopyBothResponse body.
type CopyResponse struct {
	Format        byte   // overall format: 0 text, 1 binary
	NumColumns    int    // number of columns
	ColumnFormats []byte // NumColumns raw big-endian int16 format codes
}

// ParseCopyResponse parses a CopyInResponse, CopyOutResponse or
// CopyBothResponse body.
func ParseCopyResponse(body []byte) (CopyResponse, error) {
	if len(body) < 3 {
		return CopyResponse{}, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body[1:]))
	if len(body)-3 != 2*n {
		return CopyResponse{}, ErrMalformed
	}
	return CopyResponse{Format: body[0], NumColumns: n, ColumnFormats: body[3:len(body):len(body)]}, nil
}

// ParseAuthentication parses an Authentication body: the request kind (AuthOk,
// AuthMD5Password, AuthSASL, ...) and the data after it, raw. The data of
// the kinds that carry none must be empty, an MD5 salt must be 4 bytes, and
// a SASL mechanism list must be well formed (see SASLMechanisms); the data of
// other kinds, known or not, is not checked.
func ParseAuthentication(body []byte) (kind uint32, data []byte, err error) {
	if len(body) < 4 {
		return 0, nil, ErrMalformed
	}
	kind = binary.BigEndian.Uint32(body)
	data = body[4:len(body):len(body)]
	switch kind {
	case AuthOk, AuthKerberosV5, AuthCleartextPassword, AuthGSS, AuthSSPI:
		if len(data) != 0 {
			return 0, nil, ErrMalformed
		}
	case AuthMD5Password:
		if len(data) != 4 {
			return 0, nil, ErrMalformed
		}
	case AuthSASL:
		if walkSASLMechanisms(data, nil) != nil {
			return 0, nil, ErrMalformed
		}
	}
	return kind, data, nil
}

// SASLMechanisms calls fn for each mechanism name in the data of an AuthSASL
// request: NUL-terminated names ended by an empty one, which must be the last
// byte. It checks the whole list before the first call. mech points into
// data.
func SASLMechanisms(data []byte, fn func(mech []byte)) error {
	if err := walkSASLMechanisms(data, nil); err != nil {
		return err
	}
	return walkSASLMechanisms(data, fn)
}

func walkSASLMechanisms(b []byte, fn func(mech []byte)) error {
	for {
		m, rest, ok := cstring(b)
		if !ok {
			return ErrMalformed
		}
		if len(m) == 0 {
			if len(rest) != 0 {
				return ErrMalformed
			}
			return nil
		}
		if fn != nil {
			fn(m)
		}
		b = rest
	}
}

// ParseNegotiateProtocolVersion parses a NegotiateProtocolVersion body: the
// newest minor protocol version the server supports and the protocol options
// it did not recognise. options point into body; the slice holding them is
// allocated, its size bounded by the body's length before allocation.
func ParseNegotiateProtocolVersion(body []byte) (minor uint32, options [][]byte, err error) {
	if len(body) < 8 {
		return 0, nil, ErrMalformed
	}
	minor = binary.BigEndian.Uint32(body)
	n := binary.BigEndian.Uint32(body[4:])
	rest := body[8:]
	// Each option takes at least its NUL.
	if uint64(n) > uint64(len(rest)) {
		return 0, nil, ErrMalformed
	}
	if n > 0 {
		options = make([][]byte, 0, n)
	}
	for range n {
		o, r, ok := cstring(rest)
		if !ok {
			return 0, nil, ErrMalformed
		}
		options = append(options, o)
		rest = r
	}
	if len(rest) != 0 {
		return 0, nil, ErrMalformed
	}
	return minor, options, nil
}

// Field is one column of a RowDescription: its name and type, as the
// server describes them (a view into the body for the name).
type Field struct {
	Name         []byte
	TableOID     uint32
	Column       int16
	TypeOID      uint32
	TypeSize     int16
	TypeModifier int32
	Format       int16
}

// ParseRowDescription parses a RowDescription body into fields (appended
// to). The count and every field are checked against the body.
func ParseRowDescription(body []byte, fields []Field) ([]Field, error) {
	if len(body) < 2 {
		return fields, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	for i := 0; i < n; i++ {
		name, r, ok := cstring(rest)
		if !ok || len(r) < 18 {
			return fields, ErrMalformed
		}
		fields = append(fields, Field{Name: name,
			TableOID: binary.BigEndian.Uint32(r), Column: int16(binary.BigEndian.Uint16(r[4:])),
			TypeOID: binary.BigEndian.Uint32(r[6:]), TypeSize: int16(binary.BigEndian.Uint16(r[10:])),
			TypeModifier: int32(binary.BigEndian.Uint32(r[12:])), Format: int16(binary.BigEndian.Uint16(r[16:]))})
		rest = r[18:]
	}
	if len(rest) != 0 {
		return fields, ErrMalformed
	}
	return fields, nil
}
