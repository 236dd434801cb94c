package shard

import (
	"encoding/binary"
	"strconv"

	"github.com/belaydb/belay/codec/sqlstate"
)

// The binary COPY splitter: COPY table FROM STDIN (FORMAT binary) into a
// sharded table, split tuple by tuple, as pgx's CopyFrom sends it. Postgres
// 15's reading of the format (src/backend/commands/copyfromparse.c:
// ReceiveCopyBinaryHeader, NextCopyFrom's binary path,
// CopyReadBinaryAttribute) is followed: the file header, then tuples, each
// a 16-bit field count and, per field, a 32-bit length (-1: NULL) and that
// many bytes, all in network byte order; a field count of -1 is the
// trailer.

// RowSplitter cuts a COPY's data into rows placed on shards: CopySplitter
// (text, CSV) or BinaryCopySplitter. Feed it the data in order, in any
// pieces, and call Next after each Feed until it reports no row; at the
// end of the data Finish, then Next until it reports no row. The first
// error ends the splitting: Next returns it from then on. Ended says
// whether the rows have ended (an end marker, or the end of the data). A
// RowSplitter is not safe for concurrent use.
type RowSplitter interface {
	Feed(data []byte)
	Next() (CopyRow, bool, error)
	Finish()
	Ended() bool
}

var (
	_ RowSplitter = (*CopySplitter)(nil)
	_ RowSplitter = (*BinaryCopySplitter)(nil)
)

// NewRowSplitter returns the splitter for o's format: a BinaryCopySplitter
// for binary, else a CopySplitter (NewCopySplitter). Options Postgres
// refuses are refused as NewCopySplitter refuses them, with Postgres's
// SQLSTATE and message (ErrCopyOptions): in binary, DELIMITER, NULL,
// HEADER, QUOTE, ESCAPE, FORCE_NULL and FORCE_NOT_NULL. On an error the
// RowSplitter is nil. t, shards and maxRow are as for NewCopySplitter (a
// target or shard count out of range panics).
func NewRowSplitter(o CopyOptions, t CopyTarget, shards, maxRow int) (RowSplitter, error) {
	if o.Format != CopyBinary {
		s, err := NewCopySplitter(o, t, shards, maxRow)
		if err != nil {
			return nil, err // not a nil *CopySplitter in a non-nil interface
		}
		return s, nil
	}
	if _, err := resolveCopyOptions(o); err != nil {
		return nil, err
	}
	return NewBinaryCopySplitter(t, shards, maxRow), nil
}

// copySignature is the binary format's 11-byte signature (BinarySignature).
const copySignature = "PGCOPY\n\377\r\n\000"

// copyHeaderLen is the fixed part of the file header: the signature, the
// flags and the header extension's length.
const copyHeaderLen = len(copySignature) + 4 + 4

// binStage is where a BinaryCopySplitter is in the stream.
type binStage uint8

const (
	binHeader  binStage = iota // before the file header's end
	binTuples                  // reading tuples
	binTrailer                 // after the trailer: more data is an error
	binEnd                     // after the end of the data
)

// binScan is what a scan of the header or a tuple found.
type binScan uint8

const (
	binMore   binScan = iota // more data is needed (s.need bytes more at least)
	binRow                   // a whole tuple, or the file header
	binTrail                 // the trailer
	binEOF                   // the end of the data, at a tuple's start
	binFailed                // an error (s.err)
)

// BinaryCopySplitter cuts the data of a COPY ... FROM STDIN (FORMAT
// binary) into rows: the file header (Shard AllShards, Line 0), each tuple
// with the shard its key places it on (Line its number, 1 for the first,
// as Postgres counts it), and the trailer (AllShards) if the client sends
// one. Each shard's server runs the client's COPY statement unchanged on
// the header, its tuples and the trailer: a stream in the same format.
// Its contract is CopySplitter's: Feed the client's CopyData payloads (or
// any pieces of them) in order and after each call Next until it reports
// no row; at CopyDone Finish, then Next until it reports no row. A tuple
// within one feed is yielded as a view of it; only a tuple spanning feeds
// is assembled, in a buffer the splitter reuses: nothing is allocated per
// row.
//
// The splitter reads the framing Postgres reads and the key field; the
// errors in them are Postgres's, with its SQLSTATE (22P04), message and
// context: a file header it refuses (no CONTEXT, as the header is read
// before Postgres's COPY error context is set up), a field count other
// than the COPY's columns', a field length below -1, data ending inside a
// tuple (a single byte where a tuple would begin is the end, as in
// Postgres), data after the trailer. The fields' values, the key's among
// them, are left to the shards' Postgres to check: where Postgres would
// refuse a value before it meets a framing error, it reports the value,
// the splitter the framing (and a shard's Postgres the value). A tuple
// longer than maxRow (or a file header: Postgres has no limit on its
// extension, the splitter keeps it whole) is refused with 54000 when its
// length is read.
//
// The key is read as the binary input functions of the key types read it:
// an integer key of 2, 4 or 8 bytes is a big-endian smallint, integer or
// bigint (which hash alike for equal values, whatever the column's type);
// a text key is its bytes (textrecv's and varcharrecv's input, in the
// server's encoding, which the proxy keeps client_encoding at); a uuid key
// is its 16 bytes. A NULL key's shard is NullShard.
//
// A BinaryCopySplitter is not safe for concurrent use: one per COPY, used
// by the goroutine (event loop) that reads the client.
type BinaryCopySplitter struct {
	table   string
	columns []string
	key     int
	keyType KeyType
	shards  int
	maxRow  int

	stage  binStage
	lineNo int64 // Postgres's cur_lineno: the tuples begun, the trailer counted
	eof    bool  // Finish was called
	err    error // the first error, returned from then on

	data     []byte // the last feed; data[off:] not yet consumed
	off      int
	spanning bool   // the current tuple (or header) began in an earlier feed: buf holds what came of it
	buf      []byte // the tuple spanning feeds, or the last row yielded from it
	started  bool   // the current tuple is begun (lineNo counts it)
	p        int    // the current tuple's bytes read: the offset of its next field
	field    int    // the index of its next field; 0 before its field count is read (p 0)
	keyOff   int    // the key's value's offset in the tuple, once read
	keyLen   int    // and its length; -1 for NULL
	need     int    // binMore: how many bytes more the scan needs at least
}

// NewBinaryCopySplitter returns a splitter of binary COPY data for a COPY
// into t, placing rows on shards shards; maxRow bounds a tuple's length
// (0: MaxCopyRow). Binary COPY has no options to check (NewRowSplitter
// refuses those Postgres refuses with it). t must name at least one column
// and the key among them, shards must be in [1, MaxShards]: anything else
// is a bug of the caller, and panics.
func NewBinaryCopySplitter(t CopyTarget, shards, maxRow int) *BinaryCopySplitter {
	maxRow = t.checkSplit("NewBinaryCopySplitter", shards, maxRow)
	return &BinaryCopySplitter{table: t.Table, columns: t.Columns, key: t.Key, keyType: t.KeyType, shards: shards, maxRow: maxRow}
}

// Feed gives the splitter the next piece of the COPY's data: a CopyData
// payload or any part of one. The splitter reads data without copying it
// (but for the beginning of a tuple it does not complete), so data must
// stay unchanged until Next reports no row; call Next until then before the
// next Feed. After an error, data is ignored; after the trailer, data (not
// empty) is Postgres's error "received copy data after EOF marker", which
// Next returns.
func (s *BinaryCopySplitter) Feed(data []byte) {
	if s.eof {
		panic("BUG: shard.BinaryCopySplitter.Feed after Finish")
	}
	if s.err != nil {
		return
	}
	if s.off < len(s.data) {
		panic("BUG: shard.BinaryCopySplitter.Feed before Next consumed the previous feed")
	}
	s.data, s.off = data, 0
}

// Finish says the data has ended (the client's CopyDone): Next then reports
// the end, or the error of data ending inside the file header or a tuple.
func (s *BinaryCopySplitter) Finish() { s.eof = true }

// Ended says whether the splitter has seen the end of the rows: the
// trailer (after which only the end of the data may come), or, after
// Finish, the end of the data.
func (s *BinaryCopySplitter) Ended() bool { return s.stage >= binTrailer }

// Next returns the next complete row (the file header, a tuple or the
// trailer) and true; false when it needs more data (Feed), or after Finish
// when there are no more rows; or the first error, from then on.
func (s *BinaryCopySplitter) Next() (CopyRow, bool, error) {
	if s.err != nil {
		return CopyRow{}, false, s.err
	}
	for {
		switch s.stage {
		case binTrailer:
			if s.off < len(s.data) {
				// Postgres reads one byte after the trailer, and wants none.
				s.err = s.dataError("received copy data after EOF marker", "")
				return CopyRow{}, false, s.err
			}
			s.data, s.off = nil, 0
			return CopyRow{}, false, nil
		case binEnd:
			s.data, s.off = nil, 0
			return CopyRow{}, false, nil
		}
		var w []byte
		ls := 0
		eof := s.eof
		if s.spanning {
			w = s.buf
			eof = s.eof && s.off == len(s.data)
		} else {
			w, ls = s.data, s.off
		}
		if !s.started {
			s.started, s.p, s.field = true, 0, 0
			if s.stage == binTuples {
				s.lineNo++
			}
		}
		var n int
		var how binScan
		if s.stage == binHeader {
			n, how = s.scanHeader(w[ls:], eof)
		} else {
			n, how = s.scanTuple(w[ls:], eof)
		}
		switch how {
		case binFailed:
			return CopyRow{}, false, s.err
		case binEOF:
			s.stage, s.spanning = binEnd, false // a single byte left is dropped, as Postgres ignores it
			continue
		case binMore:
			if !s.spanning {
				if ls == len(w) { // nothing of the tuple yet: it may lie within the next feed
					s.data, s.off = nil, 0
					return CopyRow{}, false, nil
				}
				s.buf = append(s.buf[:0], w[ls:]...)
				s.spanning = true
				s.off = len(s.data)
			}
			if s.off == len(s.data) {
				s.data, s.off = nil, 0
				return CopyRow{}, false, nil
			}
			// Exactly what the scan needs: no byte of the next tuple is
			// copied, so that it is read in place.
			k := min(s.need, len(s.data)-s.off)
			s.buf = append(s.buf, s.data[s.off:s.off+k]...)
			s.off += k
			continue
		}
		row := CopyRow{Data: w[ls : ls+n], Shard: AllShards, Line: s.lineNo}
		if s.spanning {
			s.spanning = false // buf holds exactly the row: the scan asked for no more
		} else {
			s.off = ls + n
		}
		s.started = false
		switch {
		case s.stage == binHeader:
			s.stage = binTuples
		case how == binTrail:
			s.stage = binTrailer
		default:
			row.Shard = s.keyShard(row.Data)
		}
		return row, true, nil
	}
}

// scanHeader reads the file header at the start of h as
// ReceiveCopyBinaryHeader does, with its errors. It returns the header's
// length (binRow), or binMore (and s.need), or binFailed.
func (s *BinaryCopySplitter) scanHeader(h []byte, eof bool) (int, binScan) {
	const sigLen = len(copySignature)
	// A signature already wrong is refused without waiting for the rest.
	if string(h[:min(len(h), sigLen)]) != copySignature[:min(len(h), sigLen)] || len(h) < sigLen && eof {
		return 0, s.headerError("COPY file signature not recognized")
	}
	if len(h) < sigLen {
		return s.more(sigLen - len(h))
	}
	if len(h) < sigLen+4 {
		if eof {
			return 0, s.headerError("invalid COPY file header (missing flags)")
		}
		return s.more(sigLen + 4 - len(h))
	}
	flags := binary.BigEndian.Uint32(h[sigLen:])
	if flags&(1<<16) != 0 {
		return 0, s.headerError("invalid COPY file header (WITH OIDS)")
	}
	if flags>>16 != 0 { // the high 16 bits are critical: none is known
		return 0, s.headerError("unrecognized critical flags in COPY file header")
	}
	if len(h) < copyHeaderLen {
		if eof {
			return 0, s.headerError("invalid COPY file header (missing length)")
		}
		return s.more(copyHeaderLen - len(h))
	}
	ext := int32(binary.BigEndian.Uint32(h[sigLen+4:]))
	if ext < 0 {
		return 0, s.headerError("invalid COPY file header (missing length)")
	}
	n := copyHeaderLen + int(ext)
	if n > s.maxRow {
		s.err = rowTooLong(s.maxRow, "")
		return 0, binFailed
	}
	if len(h) < n {
		if eof {
			return 0, s.headerError("invalid COPY file header (wrong length)")
		}
		return s.more(n - len(h))
	}
	return n, binRow
}

// scanTuple reads the tuple at the start of t as NextCopyFrom and
// CopyReadBinaryAttribute do, from where the last call stopped (s.p,
// s.field), with their errors. It returns the tuple's length (binRow, and
// its key in s.keyOff and s.keyLen), 2 for the trailer (binTrail), binEOF
// at the end of the data, binMore (and s.need), or binFailed.
func (s *BinaryCopySplitter) scanTuple(t []byte, eof bool) (int, binScan) {
	p, field := s.p, s.field
	if p == 0 {
		if len(t) < 2 {
			if eof {
				// CopyGetInt16 reads less than two bytes: the end,
				// even of one byte.
				return 0, binEOF
			}
			return s.more(2 - len(t))
		}
		count := int16(binary.BigEndian.Uint16(t))
		if count == -1 {
			return 2, binTrail
		}
		if int(count) != len(s.columns) {
			s.err = s.dataError("row field count is "+strconv.Itoa(int(count))+", expected "+strconv.Itoa(len(s.columns)), "")
			return 0, binFailed
		}
		p, field = 2, 0
	}
	for ; field < len(s.columns); field++ {
		if len(t) < p+4 {
			return s.moreField(p, field, p+4-len(t), eof)
		}
		size := int32(binary.BigEndian.Uint32(t[p:]))
		n := 0
		switch {
		case size >= 0:
			n = int(size)
		case size < -1:
			s.err = s.dataError("invalid field size", s.columns[field])
			return 0, binFailed
		}
		if p+4+n > s.maxRow {
			s.err = rowTooLong(s.maxRow, s.context(s.columns[field]))
			return 0, binFailed
		}
		if len(t) < p+4+n {
			return s.moreField(p, field, p+4+n-len(t), eof)
		}
		if field == s.key {
			s.keyOff, s.keyLen = p+4, int(size)
		}
		p += 4 + n
	}
	return p, binRow
}

// more is binMore, needing n bytes more.
func (s *BinaryCopySplitter) more(n int) (int, binScan) {
	s.need = n
	return 0, binMore
}

// moreField is binMore inside field of a tuple, whose fields before it
// end at p: n bytes more are needed. At the end of the data, it is
// Postgres's error.
func (s *BinaryCopySplitter) moreField(p, field, n int, eof bool) (int, binScan) {
	if eof {
		s.err = s.dataError("unexpected EOF in COPY data", s.columns[field])
		return 0, binFailed
	}
	s.p, s.field = p, field
	return s.more(n)
}

// keyShard is the shard of the tuple whose bytes are tuple, by the key
// that scanTuple found.
//
// A key whose length is not its type's (an integer key of 3 bytes, a uuid
// of 15) goes to shard 0. Postgres refuses every such row: int2recv,
// int4recv, int8recv and uuid_recv read exactly their type's length, and
// refuse a field with fewer bytes (08P01 "insufficient data left in
// message") or more (22P03 "incorrect binary data format"). So no row
// Postgres accepts is misplaced, and the splitter need not make up an error
// of its own for a value it cannot check fully (an integer key's column
// may be smallint, integer or bigint): the shard's Postgres refuses the row
// with its own error, as it would refuse any other bad value.
func (s *BinaryCopySplitter) keyShard(tuple []byte) int {
	if s.keyLen < 0 {
		return NullShard
	}
	key := tuple[s.keyOff : s.keyOff+s.keyLen]
	var h uint64
	switch s.keyType {
	case KeyInteger:
		switch len(key) {
		case 2:
			h = RowHash(int64(int16(binary.BigEndian.Uint16(key))))
		case 4:
			h = RowHash(int64(int32(binary.BigEndian.Uint32(key))))
		case 8:
			h = RowHash(int64(binary.BigEndian.Uint64(key)))
		default:
			return 0 // refused by the shard's Postgres (see above)
		}
	case KeyUUID:
		if len(key) != 16 {
			return 0 // refused by the shard's Postgres (see above)
		}
		h = RowHash([16]byte(key))
	default: // KeyText: its bytes, without making a string of them
		h = HashCombine64(0, HashBytesExtended(key, PartitionSeed))
	}
	return int(h % uint64(s.shards))
}

// headerError is an error in the file header, which Postgres reads before
// it sets up its COPY error context: there is none.
func (s *BinaryCopySplitter) headerError(msg string) binScan {
	s.err = &Error{Code: sqlstate.BadCopyFileFormat, Message: msg, Err: ErrCopyData}
	return binFailed
}

// dataError is an error in the tuple being read (22P04), about column
// (none: "").
func (s *BinaryCopySplitter) dataError(msg, column string) error {
	return &Error{Code: sqlstate.BadCopyFileFormat, Message: msg, Context: s.context(column), Err: ErrCopyData}
}

// context is Postgres's CONTEXT of an error in binary COPY data (which it
// cannot show): "COPY t, line 3", or "COPY t, line 3, column k" while it
// reads a field.
func (s *BinaryCopySplitter) context(column string) string {
	c := "COPY " + s.table + ", line " + strconv.FormatInt(s.lineNo, 10)
	if column != "" {
		c += ", column " + column
	}
	return c
}
