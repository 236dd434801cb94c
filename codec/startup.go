package codec

import "encoding/binary"

// ReadStartupPacket reads the untyped startup-phase packet at the start of b
// (StartupMessage, SSLRequest, GSSENCRequest or CancelRequest): an int32
// length that counts itself, an int32 code (a protocol version or a request
// code) and the rest, body. n is the number of bytes the packet occupies.
//
// It returns ErrShortBuffer if b does not yet hold the whole packet, and
// ErrInvalidLength if the declared length is less than 8 or, as in Postgres,
// the length after the length field exceeds MaxStartupPacketLength. The length
// is checked as soon as its 4 bytes are there. body points into b.
func ReadStartupPacket(b []byte) (code uint32, body []byte, n int, err error) {
	if len(b) < 4 {
		return 0, nil, 0, ErrShortBuffer
	}
	declared := binary.BigEndian.Uint32(b)
	if declared < 8 || declared-4 > MaxStartupPacketLength {
		return 0, nil, 0, ErrInvalidLength
	}
	n = int(declared)
	if len(b) < n {
		return 0, nil, 0, ErrShortBuffer
	}
	return binary.BigEndian.Uint32(b[4:8]), b[8:n:n], n, nil
}

// StartupParams calls fn for each key/value pair of a StartupMessage body
// (the bytes after the protocol version): NUL-terminated keys and values,
// then a final NUL. It checks the whole body before the first call, so fn
// sees nothing of a malformed packet, and returns ErrMalformed if a key lacks
// its value or the body does not end with the terminator right after the last
// pair, as Postgres requires. key and value point into body. StartupParams
// allocates nothing.
func StartupParams(body []byte, fn func(key, value []byte)) error {
	if err := walkStartupParams(body, nil); err != nil {
		return err
	}
	return walkStartupParams(body, fn)
}

func walkStartupParams(b []byte, fn func(key, value []byte)) error {
	for {
		key, rest, ok := cstring(b)
		if !ok {
			return ErrMalformed
		}
		if len(key) == 0 {
			if len(rest) != 0 {
				return ErrMalformed
			}
			return nil
		}
		value, rest, ok := cstring(rest)
		if !ok {
			return ErrMalformed
		}
		if fn != nil {
			fn(key, value)
		}
		b = rest
	}
}

// ParseCancelRequest parses the body of a CancelRequest (the bytes after the
// request code): the process ID and the secret key. The key is 4 bytes in
// protocol 3.0 and up to MaxCancelKeyLength bytes in 3.2; it is returned raw
// and points into body.
func ParseCancelRequest(body []byte) (pid uint32, key []byte, err error) {
	return pidAndKey(body)
}

func pidAndKey(b []byte) (uint32, []byte, error) {
	if len(b) < 8 || len(b) > 4+MaxCancelKeyLength {
		return 0, nil, ErrMalformed
	}
	return binary.BigEndian.Uint32(b), b[4:len(b):len(b)], nil
}

// AppendStartupMessage appends a StartupMessage with the given protocol
// version and parameters, given as key, value, key, value. A pair whose key
// is empty is left out (an empty key would end the list early). It panics if
// params has an odd length.
func AppendStartupMessage(dst []byte, protocol uint32, params ...string) []byte {
	if len(params)%2 != 0 {
		panic("BUG: codec.AppendStartupMessage: odd number of params")
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, protocol)
	for i := 0; i < len(params); i += 2 {
		k := cut(params[i])
		if k == "" {
			continue
		}
		dst = appendCString(dst, k)
		dst = appendCString(dst, params[i+1])
	}
	dst = append(dst, 0)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// AppendCancelRequest appends a CancelRequest for the backend pid with the
// given secret key (4 bytes in protocol 3.0, longer in 3.2).
func AppendCancelRequest(dst []byte, pid uint32, key []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(12+len(key)))
	dst = binary.BigEndian.AppendUint32(dst, CancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return append(dst, key...)
}

// AppendSSLRequest appends an SSLRequest, as sent to a server before its
// startup message to ask for TLS.
func AppendSSLRequest(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint32(dst, SSLRequestCode)
}
