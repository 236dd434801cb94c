package admin

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/belaydb/belay/codec"
)

// Type OIDs the console's columns use, as PgBouncer's do.
const (
	oidBytea   = 17
	oidInt8    = 20
	oidInt4    = 23
	oidText    = 25
	oidNumeric = 1700
)

// Column is one column of a console result: its name and type OID.
type Column struct {
	Name string
	OID  uint32
}

func text(name string) Column    { return Column{name, oidText} }
func int4(name string) Column    { return Column{name, oidInt4} }
func int8c(name string) Column   { return Column{name, oidInt8} }
func numeric(name string) Column { return Column{name, oidNumeric} }

// table appends a result: RowDescription, DataRows, CommandComplete.
type table struct {
	cols []Column
	dst  []byte
}

func newTable(dst []byte, cols []Column) *table {
	t := &table{cols: cols}
	dst, start := codec.BeginMessage(dst, 'T')
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(cols)))
	for _, c := range cols {
		dst = append(append(dst, c.Name...), 0)
		dst = binary.BigEndian.AppendUint32(dst, 0) // table OID
		dst = binary.BigEndian.AppendUint16(dst, 0) // attribute number
		dst = binary.BigEndian.AppendUint32(dst, c.OID)
		size := int16(-1)
		switch c.OID {
		case oidInt4:
			size = 4
		case oidInt8:
			size = 8
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(size))
		dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // typmod -1
		dst = binary.BigEndian.AppendUint16(dst, 0)          // text format
	}
	t.dst = codec.FinishMessage(dst, start)
	return t
}

// row appends a DataRow. Values: string, int kinds, bool (1/0), time.Time,
// time.Duration (microseconds), Null, or nil (NULL). It panics on a row of
// the wrong width: the tables are fixed at compile time.
func (t *table) row(vals ...any) {
	if len(vals) != len(t.cols) {
		panic("BUG: admin: a row of " + strconv.Itoa(len(vals)) + " values for " + strconv.Itoa(len(t.cols)) + " columns")
	}
	dst, start := codec.BeginMessage(t.dst, 'D')
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(vals)))
	for _, v := range vals {
		var s string
		switch v := v.(type) {
		case nil:
			dst = binary.BigEndian.AppendUint32(dst, 0xffffffff)
			continue
		case string:
			s = v
		case int:
			s = strconv.Itoa(v)
		case int32:
			s = strconv.FormatInt(int64(v), 10)
		case int64:
			s = strconv.FormatInt(v, 10)
		case uint64:
			s = strconv.FormatUint(v, 10)
		case bool:
			s = "0"
			if v {
				s = "1"
			}
		case time.Duration:
			s = strconv.FormatInt(v.Microseconds(), 10)
		case time.Time:
			s = v.UTC().Format("2006-01-02 15:04:05 UTC")
		default:
			panic("BUG: admin: a value of an unexpected type")
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
		dst = append(dst, s...)
	}
	t.dst = codec.FinishMessage(dst, start)
}

// done appends CommandComplete with tag and returns the messages.
func (t *table) done(tag string) []byte { return appendComplete(t.dst, tag) }

func appendComplete(dst []byte, tag string) []byte {
	dst, start := codec.BeginMessage(dst, 'C')
	dst = append(append(dst, tag...), 0)
	return codec.FinishMessage(dst, start)
}
