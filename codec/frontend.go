package codec

import "encoding/binary"

// QueryText returns the SQL of a Query body, without its terminating NUL. A
// body with a NUL before its end is malformed, as in Postgres.
func QueryText(body []byte) ([]byte, error) { return onlyCString(body) }

// Parse is a view of a Parse body.
type Parse struct {
	Name      []byte // prepared statement name; empty for the unnamed statement
	Query     []byte
	ParamOIDs []byte // NumParams raw big-endian uint32 type OIDs (0 = unspecified)
	NumParams int
}

// ParseParse parses a Parse body.
func ParseParse(body []byte) (Parse, error) {
	name, rest, ok := cstring(body)
	if !ok {
		return Parse{}, ErrMalformed
	}
	query, rest, ok := cstring(rest)
	if !ok || len(rest) < 2 {
		return Parse{}, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 4*n {
		return Parse{}, ErrMalformed
	}
	return Parse{Name: name, Query: query, ParamOIDs: rest[:len(rest):len(rest)], NumParams: n}, nil
}

// Bind is a view of a Bind body.
type Bind struct {
	Portal    []byte // destination portal; empty for the unnamed portal
	Statement []byte // source prepared statement; empty for the unnamed one
	// Rest is everything after the two names: parameter format codes,
	// parameters and result format codes, as they came, for re-encoding
	// with AppendBind.
	Rest []byte
}

// ParseBind parses a Bind body. It checks that the rest lies within the body
// and ends where the body ends: the parameter format codes, the parameters
// (each an int32 length, -1 for NULL, and that many bytes) and the result
// format codes. It does not check the values of the format codes or that
// their count matches the parameters; the server reports those.
func ParseBind(body []byte) (Bind, error) {
	portal, rest, ok := cstring(body)
	if !ok {
		return Bind{}, ErrMalformed
	}
	stmt, rest, ok := cstring(rest)
	if !ok {
		return Bind{}, ErrMalformed
	}
	if !validBindRest(rest) {
		return Bind{}, ErrMalformed
	}
	return Bind{Portal: portal, Statement: stmt, Rest: rest[:len(rest):len(rest)]}, nil
}

func validBindRest(b []byte) bool {
	// Parameter format codes.
	if len(b) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*n {
		return false
	}
	b = b[2*n:]
	// Parameters.
	if len(b) < 2 {
		return false
	}
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for range n {
		if len(b) < 4 {
			return false
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l == -1 {
			continue
		}
		if l < 0 || int64(l) > int64(len(b)) {
			return false
		}
		b = b[l:]
	}
	// Result format codes.
	if len(b) < 2 {
		return false
	}
	n = int(binary.BigEndian.Uint16(b))
	return len(b)-2 == 2*n
}

// ParseDescribe parses a Describe body: kind 'S' (statement) or 'P' (portal)
// and the name.
func ParseDescribe(body []byte) (kind byte, name []byte, err error) {
	return kindAndName(body)
}

// ParseClose parses a Close body: kind 'S' (statement) or 'P' (portal) and
// the name.
func ParseClose(body []byte) (kind byte, name []byte, err error) {
	return kindAndName(body)
}

func kindAndName(b []byte) (byte, []byte, error) {
	if len(b) < 1 || (b[0] != 'S' && b[0] != 'P') {
		return 0, nil, ErrMalformed
	}
	name, err := onlyCString(b[1:])
	if err != nil {
		return 0, nil, err
	}
	return b[0], name, nil
}

// ParseExecute parses an Execute body: the portal and the maximum number of
// rows to return (0 means no limit; Postgres reads it as an int32 and treats
// any value <= 0 as no limit).
func ParseExecute(body []byte) (portal []byte, maxRows uint32, err error) {
	portal, rest, ok := cstring(body)
	if !ok || len(rest) != 4 {
		return nil, 0, ErrMalformed
	}
	return portal, binary.BigEndian.Uint32(rest), nil
}

// PasswordText returns the password of a PasswordMessage ('p' answering
// AuthenticationCleartextPassword or AuthenticationMD5Password).
func PasswordText(body []byte) ([]byte, error) { return onlyCString(body) }

// ParseSASLInitialResponse parses the 'p' message that starts a SASL
// exchange: the mechanism and the client's first message (nil when the
// client sent length -1, "no data").
func ParseSASLInitialResponse(body []byte) (mechanism, data []byte, err error) {
	mechanism, rest, ok := cstring(body)
	if !ok || len(rest) < 4 {
		return nil, nil, ErrMalformed
	}
	n := int32(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	switch {
	case n == -1 && len(rest) == 0:
		return mechanism, nil, nil
	case n < 0 || int(n) != len(rest):
		return nil, nil, ErrMalformed
	}
	return mechanism, rest[:len(rest):len(rest)], nil
}

// Param is parameter i (from 0) of a Bind that ParseBind accepted: its
// bytes (nil for NULL, which null says), its format (0 text, 1 binary, as
// the format codes give it: none means text for all, one applies to all),
// and ok false when there is no parameter i.
func (b Bind) Param(i int) (value []byte, format int16, null bool, ok bool) {
	r := b.Rest
	if len(r) < 2 || i < 0 {
		return nil, 0, false, false
	}
	nf := int(binary.BigEndian.Uint16(r))
	if len(r) < 2+2*nf+2 {
		return nil, 0, false, false
	}
	formats := r[2 : 2+2*nf]
	r = r[2+2*nf:]
	np := int(binary.BigEndian.Uint16(r))
	r = r[2:]
	if i >= np {
		return nil, 0, false, false
	}
	switch {
	case nf == 1:
		format = int16(binary.BigEndian.Uint16(formats))
	case nf > i:
		format = int16(binary.BigEndian.Uint16(formats[2*i:]))
	}
	for j := 0; ; j++ {
		if len(r) < 4 {
			return nil, 0, false, false
		}
		l := int32(binary.BigEndian.Uint32(r))
		r = r[4:]
		if l == -1 {
			if j == i {
				return nil, format, true, true
			}
			continue
		}
		if l < 0 || int(l) > len(r) {
			return nil, 0, false, false
		}
		if j == i {
			return r[:l:l], format, false, true
		}
		r = r[l:]
	}
}

// ResultFormats splits a Bind's Rest (valid, from ParseBind) at its result
// format codes: params is everything before them (the parameter format
// codes and the parameters), formats the codes (none: all text; one: that
// format for every column).
func (b Bind) ResultFormats() (params []byte, formats []int16) {
	r := b.Rest
	off := 2 + 2*int(binary.BigEndian.Uint16(r))
	np := int(binary.BigEndian.Uint16(r[off:]))
	off += 2
	for range np {
		if l := int32(binary.BigEndian.Uint32(r[off:])); l > 0 {
			off += int(l)
		}
		off += 4
	}
	params = r[:off:off]
	n := int(binary.BigEndian.Uint16(r[off:]))
	for i := range n {
		formats = append(formats, int16(binary.BigEndian.Uint16(r[off+2+2*i:])))
	}
	return params, formats
}
