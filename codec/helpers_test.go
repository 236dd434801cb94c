package codec_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"
)

// within fails t unless view lies inside in and is capped (its capacity ends
// where it ends). An empty view may be anything.
func within(t testing.TB, what string, view, in []byte) {
	t.Helper()
	if len(view) == 0 {
		return
	}
	if cap(view) != len(view) {
		t.Fatalf("%s: view not capped: len %d cap %d", what, len(view), cap(view))
	}
	v := uintptr(unsafe.Pointer(unsafe.SliceData(view)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(in)))
	if v < s || v+uintptr(len(view)) > s+uintptr(len(in)) {
		t.Fatalf("%s: view [%#x,+%d) outside input [%#x,+%d)", what, v, len(view), s, len(in))
	}
}

// encode encodes a pgproto3 message or fails t.
func encode(t testing.TB, m interface {
	Encode([]byte) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatalf("encode %T: %v", m, err)
	}
	return b
}

// body encodes a typed pgproto3 message and returns its body.
func body(t testing.TB, m interface {
	Encode([]byte) ([]byte, error)
}) []byte {
	t.Helper()
	return encode(t, m)[5:]
}

// frame returns a typed message of type typ with the given body.
func frame(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// mustEncodeAll encodes messages back to back (for seeds).
func mustEncodeAll(msgs ...pgproto3.Message) []byte {
	var b []byte
	for _, m := range msgs {
		var err error
		b, err = m.Encode(b)
		if err != nil {
			panic(err)
		}
	}
	return b
}
