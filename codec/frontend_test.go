package codec

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// TestBindResultFormats: a Bind's Rest split at its result format codes,
// whatever its parameters, and put back together.
func TestBindResultFormats(t *testing.T) {
	for _, tc := range []struct {
		paramFormats []int16
		params       [][]byte
		formats      []int16
	}{
		{nil, nil, nil},
		{[]int16{1}, [][]byte{{0, 0, 0, 7}, nil, []byte("x")}, []int16{1}},
		{[]int16{0, 1}, [][]byte{[]byte("abc"), {1}}, []int16{0, 1, 1}},
	} {
		var rest []byte
		rest = binary.BigEndian.AppendUint16(rest, uint16(len(tc.paramFormats)))
		for _, f := range tc.paramFormats {
			rest = binary.BigEndian.AppendUint16(rest, uint16(f))
		}
		rest = binary.BigEndian.AppendUint16(rest, uint16(len(tc.params)))
		for _, p := range tc.params {
			if p == nil {
				rest = binary.BigEndian.AppendUint32(rest, 0xFFFFFFFF)
				continue
			}
			rest = binary.BigEndian.AppendUint32(rest, uint32(len(p)))
			rest = append(rest, p...)
		}
		params := len(rest)
		rest = binary.BigEndian.AppendUint16(rest, uint16(len(tc.formats)))
		for _, f := range tc.formats {
			rest = binary.BigEndian.AppendUint16(rest, uint16(f))
		}
		body := append([]byte("portal\x00stmt\x00"), rest...)
		b, err := ParseBind(body)
		if err != nil {
			t.Fatal(err)
		}
		p, f := b.ResultFormats()
		if !bytes.Equal(p, rest[:params]) || !slices.Equal(f, tc.formats) {
			t.Errorf("%+v: params %x formats %v, want %x and %v", tc, p, f, rest[:params], tc.formats)
		}
	}
}
