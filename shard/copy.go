package shard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/belaydb/belay/codec/sqlstate"
)

// The COPY splitter: COPY table FROM STDIN into a sharded table, split row
// by row. Postgres 15's reading of the text and CSV formats
// (src/backend/commands/copyfromparse.c: CopyReadLineText finds a line's
// end, CopyReadAttributesText and CopyReadAttributesCSV split it into
// fields) is followed byte for byte, so that each row is cut where Postgres
// would cut it, its key read as Postgres would read it, and its shard is the
// partition Postgres would put it in.

// The sentinels of the COPY errors (Error.Err).
var (
	// ErrCopyOptions: COPY options Postgres refuses (22023, 0A000 or
	// 42601, as Postgres says).
	ErrCopyOptions = errors.New("shard: invalid COPY options")
	// ErrCopyData: COPY data Postgres refuses: a bad line ending or
	// end-of-copy marker, an unterminated quoted field, missing or extra
	// columns (22P04), a row too long (54000).
	ErrCopyData = errors.New("shard: invalid COPY data")
	// ErrByteSequence: a key field that is not valid UTF-8 (22021).
	ErrByteSequence = errors.New("shard: invalid byte sequence")
	// ErrUnsupported: what Postgres accepts but the splitter does not do
	// (binary COPY, for NewCopySplitter: NewRowSplitter reads it) (0A000).
	ErrUnsupported = errors.New("shard: not supported")
)

// CopyFormat is a COPY's FORMAT option.
type CopyFormat uint8

const (
	CopyText   CopyFormat = iota // text, Postgres's default (the zero value)
	CopyCSV                      // csv
	CopyBinary                   // binary: refused by NewCopySplitter, read by BinaryCopySplitter (NewRowSplitter)
)

// String is the format's name in a COPY statement.
func (f CopyFormat) String() string {
	switch f {
	case CopyText:
		return "text"
	case CopyCSV:
		return "csv"
	case CopyBinary:
		return "binary"
	}
	return "CopyFormat(" + strconv.Itoa(int(f)) + ")"
}

// ParseCopyFormat reads the value of a COPY's FORMAT option as Postgres
// does: exactly "text", "csv" or "binary" (the parser folds an unquoted
// FORMAT CSV to lower case; a quoted 'CSV' is not recognized, by Postgres
// either). Anything else is 22023.
func ParseCopyFormat(name string) (CopyFormat, error) {
	switch name {
	case "text":
		return CopyText, nil
	case "csv":
		return CopyCSV, nil
	case "binary":
		return CopyBinary, nil
	}
	return 0, copyOptionError(sqlstate.InvalidParameterValue, `COPY format "`+name+`" not recognized`)
}

// CopyHeader is a COPY's HEADER option.
type CopyHeader uint8

const (
	CopyHeaderFalse CopyHeader = iota // no header line (the zero value)
	CopyHeaderTrue                    // the first line is a header, skipped
	CopyHeaderMatch                   // a header whose names Postgres checks against the columns
)

// ParseCopyHeader reads the value of a COPY's HEADER option as Postgres 15
// does (defGetCopyHeaderChoice): "true", "on" or "1", "false", "off" or
// "0", or "match", case-insensitively ("" for HEADER without a value: true).
// Anything else is 42601.
func ParseCopyHeader(value string) (CopyHeader, error) {
	switch strings.ToLower(value) {
	case "", "true", "on", "1":
		return CopyHeaderTrue, nil
	case "false", "off", "0":
		return CopyHeaderFalse, nil
	case "match":
		return CopyHeaderMatch, nil
	}
	return 0, copyOptionError(sqlstate.SyntaxError, `header requires a Boolean value or "match"`)
}

// CopyOptions are the options of a COPY ... FROM STDIN statement that say
// how its data is cut into rows and fields, as the statement gives them: a
// nil string is an option not given (Postgres fills its default), a
// non-nil one is the option's value, even empty. ENCODING is not here: the
// data must be in the server's encoding, UTF-8 (the proxy must see to it
// that client_encoding is the server's). FREEZE, FORCE_QUOTE and the rest
// change nothing in where a row goes: the shards' Postgres checks them.
type CopyOptions struct {
	Format    CopyFormat
	Delimiter *string // DELIMITER: one byte; default tab (text), comma (csv)
	Null      *string // NULL: default \N (text), the empty string (csv)
	Quote     *string // QUOTE, csv only: one byte; default "
	Escape    *string // ESCAPE, csv only: one byte; default the quote
	Header    CopyHeader
	// ForceNotNull and ForceNull say whether the key column is named in
	// FORCE_NOT_NULL or FORCE_NULL (csv only): they change whether its
	// value is NULL, so where the row goes. (The lists naming only other
	// columns are for the shards' Postgres to check.)
	ForceNotNull bool
	ForceNull    bool
}

// CopyTarget is what the splitter knows of the table: its name and the
// COPY's columns, for Postgres's error messages, and which of them is the
// sharding key.
type CopyTarget struct {
	// Table is the table's name as Postgres prints it in an error's
	// context: unqualified, unquoted.
	Table string
	// Columns are the COPY's columns in order: its column list, or else
	// the table's columns (neither dropped nor generated), by name.
	Columns []string
	// Key is the index of the sharding key in Columns, KeyType its type.
	Key     int
	KeyType KeyType
}

// AllShards is CopyRow.Shard for a header line, or the binary format's
// file header and trailer: it goes to every shard.
const AllShards = -1

// MaxCopyRow is the longest row a splitter accepts by default: Postgres's
// own limit on a COPY line (MaxAllocSize - 1 bytes).
const MaxCopyRow = 1<<30 - 2

// CopyRow is a row as the splitter yields it.
type CopyRow struct {
	// Data is the row's bytes exactly as the client sent them, with its
	// line terminator (none for a last line ended by CopyDone; the text
	// format's end-of-copy marker \. and its newline when the row ends
	// with one); in the binary format, a whole tuple, the file header or
	// the trailer. It is a view into the data last fed or into the
	// splitter's own buffer, valid until the next call of Next, Feed or
	// Finish: copy it (append it to the shard's outgoing CopyData) before.
	Data []byte
	// Shard is where the row goes, in [0, shards); AllShards for the
	// header line of a COPY WITH HEADER: each shard's server, running the
	// same statement, skips (or with MATCH checks) its own first line;
	// AllShards too for the binary format's file header and trailer,
	// which begin and end every shard's stream.
	Shard int
	// Line is the row's line number as Postgres counts it in its errors
	// (1 for the first line, the header included; a CSV row with quoted
	// newlines counts each; in the binary format, the tuple's number, 1
	// for the first, 0 for the file header). A shard's error names the
	// line in that shard's stream: the caller can map it back through
	// Line.
	Line int64
}

// eolType is the line terminator of the data: Postgres takes the first
// line's for every line and refuses others (22P04).
type eolType uint8

const (
	eolUnknown eolType = iota
	eolNL              // \n
	eolCR              // \r
	eolCRNL            // \r\n
)

// copyLine is the scanning state of the line being read, which may span
// feeds.
type copyLine struct {
	started    bool
	p          int  // bytes of the line scanned
	field      int  // the field being scanned, from 0
	keyStart   int  // the key field's offset in the line, once reached
	keyEnd     int  // the offset of the delimiter (or the line's data end) after the key
	inQuote    bool // csv: inside quotes (CopyReadLineText's in_quote)
	lastWasEsc bool // csv: the last byte was an escape inside quotes
	hex        int8 // text: hex digits a \x escape may still take (delimiters A-F only)
}

// lineEnd is how a line ended.
type lineEnd uint8

const (
	endMore    lineEnd = iota // not yet: more data is needed
	endNewline                // at its terminator
	endEOF                    // at the end of the data (CopyDone)
	endMarker                 // at the end-of-copy marker \.
	endError                  // at an error (s.err)
)

// CopySplitter cuts the data of a COPY ... FROM STDIN in text or CSV format
// into rows, each with the shard its key places it on. Feed it the
// client's CopyData payloads (or any pieces of them) in order, and after
// each call Next until it reports no row; at CopyDone call Finish, then
// Next until it reports no row. A row may span feeds (the splitter keeps
// its beginning) and a feed may hold many rows (yielded as views of it,
// without copying):
//
//	s.Feed(payload)
//	for {
//		row, ok, err := s.Next()
//		if err != nil { ... refuse the COPY: err is an *Error with a SQLSTATE }
//		if !ok { break }
//		... append row.Data to the buffer of shard row.Shard (every shard's for AllShards)
//	}
//
// The first error ends the splitting: Next returns it from then on. After
// the text format's end-of-copy marker (\.) the rest of the data is
// ignored, as Postgres ignores it (Ended says so).
//
// The splitter reads what Postgres reads to place a row: where lines end
// (\n, \r\n or \r, the first line's for all; quoted newlines in CSV,
// backslash-escaped ones in text), the fields up to the key and their
// count, the key's value (escapes, quotes, the NULL string). Errors in
// those are Postgres's, with its SQLSTATE, message and context (line
// number, column); the other fields' values are left for the shards'
// Postgres to check.
//
// A CopySplitter is not safe for concurrent use: one per COPY, used by
// the goroutine (event loop) that reads the client.
type CopySplitter struct {
	// What the options and the target say.
	csv       bool
	delim     byte
	quote     byte
	escape    byte
	hasEscape bool // csv: the escape differs from the quote
	delimHex  bool // text: the delimiter is a hex digit (A-F), which \x may take
	null      string
	forceNN   bool
	forceNull bool
	table     string
	columns   []string
	key       int
	keyType   KeyType
	shards    int
	maxRow    int
	special   byteSet // text: the bytes the scan stops at; csv: outside quotes
	specialQ  byteSet // csv: inside quotes

	// The stream.
	eol        eolType
	lineNo     int64 // Postgres's cur_lineno: the lines read so far
	needHeader bool  // the next line is the header
	ended      bool  // no more rows: end-of-copy marker, or the end of the data
	eof        bool  // Finish was called
	err        error // the first error, returned from then on

	data     []byte // the last feed; data[off:] not yet consumed
	off      int
	spanning bool   // the current line began in an earlier feed: buf holds it so far (and maybe a few bytes after)
	buf      []byte // the line spanning feeds, or the last row yielded from it (overwritten by the next such line)
	line     copyLine
	keyBuf   []byte // the key's value, when unescaping or unquoting changed it
}

// NewCopySplitter returns a splitter for a COPY into t with options o,
// placing rows on shards shards. maxRow bounds a row's length (and so what
// the splitter buffers of a row spanning feeds); 0 means MaxCopyRow. Options
// Postgres refuses are refused with Postgres's SQLSTATE and message
// (ErrCopyOptions), the binary format with 0A000 (ErrUnsupported: see
// NewRowSplitter and BinaryCopySplitter). t must name at least one column
// and the key among them, shards must be in [1, MaxShards]: anything else
// is a bug of the caller, and panics.
func NewCopySplitter(o CopyOptions, t CopyTarget, shards, maxRow int) (*CopySplitter, error) {
	maxRow = t.checkSplit("NewCopySplitter", shards, maxRow)
	c, err := resolveCopyOptions(o)
	if err != nil {
		return nil, err
	}
	if o.Format == CopyBinary { // BinaryCopySplitter's (NewRowSplitter)
		return nil, &Error{Code: sqlstate.FeatureNotSupported, Message: "COPY FROM STDIN in binary format is not supported on a sharded table", Err: ErrUnsupported}
	}
	s := &CopySplitter{
		csv: c.csv, delim: c.delim, quote: c.quote, escape: c.escape, hasEscape: c.csv && c.escape != c.quote,
		null: c.null, forceNN: o.ForceNotNull, forceNull: o.ForceNull,
		table: t.Table, columns: t.Columns, key: t.Key, keyType: t.KeyType, shards: shards, maxRow: maxRow,
		needHeader: o.Header != CopyHeaderFalse,
	}
	s.delimHex = !s.csv && unhex(s.delim) >= 0
	if s.csv {
		s.special = newByteSet('\r', '\n', s.delim, s.quote)
		s.specialQ = newByteSet('\r', '\n', s.quote, s.escape) // an escape equal to the quote: three bytes
	} else {
		s.special = newByteSet('\r', '\n', s.delim, '\\')
	}
	return s, nil
}

// checkSplit panics on what a splitter's caller got wrong (a key not
// among the columns, a shard count out of range) and returns the bound
// of a row, maxRow or MaxCopyRow.
func (t CopyTarget) checkSplit(fn string, shards, maxRow int) int {
	if len(t.Columns) == 0 || t.Key < 0 || t.Key >= len(t.Columns) || !t.KeyType.Valid() {
		panic("BUG: shard." + fn + ": the key must be one of the columns, of a valid key type")
	}
	if shards < 1 || shards > MaxShards {
		panic("BUG: shard." + fn + ": shard count out of range")
	}
	if maxRow <= 0 || maxRow > MaxCopyRow {
		return MaxCopyRow
	}
	return maxRow
}

// copyDialect is a COPY's options with Postgres's defaults filled in.
type copyDialect struct {
	csv                  bool
	delim, quote, escape byte
	null                 string
}

// resolveCopyOptions fills in the defaults and checks the options in the
// order Postgres 15's ProcessCopyOptions does, with its SQLSTATEs and
// messages. The binary format passes (its options checked): whether a
// splitter reads it is the caller's to say.
func resolveCopyOptions(o CopyOptions) (copyDialect, error) {
	if o.Header > CopyHeaderMatch {
		panic("BUG: shard.CopyOptions: unknown CopyHeader")
	}
	var d copyDialect
	binary := o.Format == CopyBinary
	switch o.Format {
	case CopyText, CopyBinary:
	case CopyCSV:
		d.csv = true
	default:
		return d, copyOptionError(sqlstate.InvalidParameterValue, `COPY format "`+o.Format.String()+`" not recognized`)
	}
	if binary && o.Delimiter != nil {
		return d, copyOptionError(sqlstate.SyntaxError, "cannot specify DELIMITER in BINARY mode")
	}
	if binary && o.Null != nil {
		return d, copyOptionError(sqlstate.SyntaxError, "cannot specify NULL in BINARY mode")
	}
	delim, null := "\t", `\N`
	if d.csv {
		delim, null = ",", ""
	}
	if o.Delimiter != nil {
		delim = *o.Delimiter
	}
	if o.Null != nil {
		null = *o.Null
	}
	if len(delim) != 1 {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY delimiter must be a single one-byte character")
	}
	d.delim, d.null = delim[0], null
	if d.delim == '\r' || d.delim == '\n' {
		return d, copyOptionError(sqlstate.InvalidParameterValue, "COPY delimiter cannot be newline or carriage return")
	}
	if strings.ContainsAny(null, "\r\n") {
		return d, copyOptionError(sqlstate.InvalidParameterValue, "COPY null representation cannot use newline or carriage return")
	}
	// In text, a backslash would be ambiguous, and letters and digits can
	// follow a backslash as escapes (Postgres refuses them all).
	if !d.csv && strings.IndexByte(`\.abcdefghijklmnopqrstuvwxyz0123456789`, d.delim) >= 0 {
		return d, copyOptionError(sqlstate.InvalidParameterValue, `COPY delimiter cannot be "`+delim+`"`)
	}
	if binary && o.Header != CopyHeaderFalse {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "cannot specify HEADER in BINARY mode")
	}
	if !d.csv && o.Quote != nil {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY quote available only in CSV mode")
	}
	if d.csv {
		quote := `"`
		if o.Quote != nil {
			quote = *o.Quote
		}
		if len(quote) != 1 {
			return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY quote must be a single one-byte character")
		}
		d.quote = quote[0]
		if d.delim == d.quote {
			return d, copyOptionError(sqlstate.InvalidParameterValue, "COPY delimiter and quote must be different")
		}
	}
	if !d.csv && o.Escape != nil {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY escape available only in CSV mode")
	}
	if d.csv {
		d.escape = d.quote
		if o.Escape != nil {
			if len(*o.Escape) != 1 {
				return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY escape must be a single one-byte character")
			}
			d.escape = (*o.Escape)[0]
		}
	}
	if !d.csv && o.ForceNotNull {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY force not null available only in CSV mode")
	}
	if !d.csv && o.ForceNull {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY force null available only in CSV mode")
	}
	if strings.IndexByte(null, d.delim) >= 0 {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "COPY delimiter must not appear in the NULL specification")
	}
	if d.csv && strings.IndexByte(null, d.quote) >= 0 {
		return d, copyOptionError(sqlstate.FeatureNotSupported, "CSV quote character must not appear in the NULL specification")
	}
	return d, nil
}

func copyOptionError(code sqlstate.Code, msg string) error {
	return &Error{Code: code, Message: msg, Err: ErrCopyOptions}
}

// Feed gives the splitter the next piece of the COPY's data: a CopyData
// payload or any part of one. The splitter reads data without copying it
// (but for the end of a row it does not complete), so data must stay
// unchanged until Next reports no row; call Next until then before the next
// Feed. After the end-of-copy marker or an error, data is ignored.
func (s *CopySplitter) Feed(data []byte) {
	if s.eof {
		panic("BUG: shard.CopySplitter.Feed after Finish")
	}
	if s.ended || s.err != nil {
		return
	}
	if s.off < len(s.data) {
		panic("BUG: shard.CopySplitter.Feed before Next consumed the previous feed")
	}
	s.data, s.off = data, 0
}

// Finish says the data has ended (the client's CopyDone): Next then yields
// the last rows, among them a last line without a line terminator, which
// Postgres takes as a row too.
func (s *CopySplitter) Finish() { s.eof = true }

// Ended says whether the splitter has seen the end of the rows: the
// end-of-copy marker (what follows is ignored), or, after Finish, the end
// of the data.
func (s *CopySplitter) Ended() bool { return s.ended }

// Next returns the next complete row and true; false when it needs more
// data (Feed), or after Finish when there are no more rows; or the first
// error, from then on.
func (s *CopySplitter) Next() (CopyRow, bool, error) {
	if s.err != nil {
		return CopyRow{}, false, s.err
	}
	for !s.ended {
		var w []byte
		var ls int
		eof := s.eof
		if s.spanning {
			w = s.buf
			eof = s.eof && s.off == len(s.data)
		} else {
			w, ls = s.data, s.off
			if ls == len(w) && !eof {
				s.data, s.off = nil, 0 // let the caller's buffer go
				return CopyRow{}, false, nil
			}
		}
		if !s.line.started {
			s.line = copyLine{started: true}
			s.lineNo++
		}
		var end, dataEnd int
		var how lineEnd
		if s.csv {
			end, dataEnd, how = s.scanCSV(w, ls, eof)
		} else {
			end, dataEnd, how = s.scanText(w, ls, eof)
		}
		switch how {
		case endError:
			return CopyRow{}, false, s.err
		case endMore:
			if s.line.p > s.maxRow {
				return CopyRow{}, false, s.fail(s.tooLong())
			}
			if !s.spanning { // keep the line's beginning
				s.buf = append(s.buf[:0], w[ls:]...)
				s.spanning = true
				s.data, s.off = nil, 0
				return CopyRow{}, false, nil
			}
			if s.off == len(s.data) {
				s.data, s.off = nil, 0
				return CopyRow{}, false, nil
			}
			s.more()
			continue
		}
		line := w[ls : ls+end]
		if s.spanning {
			// buf may hold a few bytes past the line: give them back.
			s.off -= len(s.buf) - end
			s.spanning = false
		} else {
			s.off = ls + end
		}
		l := s.line
		s.line.started = false
		if how != endNewline {
			s.ended = true
			if dataEnd == 0 {
				break // an empty last line is no row, as in Postgres
			}
		}
		if end > s.maxRow {
			return CopyRow{}, false, s.fail(s.tooLong())
		}
		if s.needHeader {
			s.needHeader = false
			return CopyRow{Data: line, Shard: AllShards, Line: s.lineNo}, true, nil
		}
		shard, err := s.place(line[:dataEnd], &l)
		if err != nil {
			return CopyRow{}, false, s.fail(err)
		}
		return CopyRow{Data: line, Shard: shard, Line: s.lineNo}, true, nil
	}
	s.data, s.off = nil, 0
	return CopyRow{}, false, nil
}

// more appends to buf (the line spanning feeds) the next part of the
// feed: up to a little past its next line terminator, where the line
// likely ends (the rest is then read in place), and no further than the
// row length limit allows.
func (s *CopySplitter) more() {
	rest := s.data[s.off:]
	n := len(rest)
	// Only up to the next newline: a line that spans the rest of the feed
	// in many chunks (quoted newlines) costs a pass over each, not over
	// the rest each time.
	if k := bytes.IndexAny(rest, "\r\n"); k >= 0 && k+4 < n {
		n = k + 4 // the scan may look 3 bytes ahead (\.\r\n)
	}
	if room := s.maxRow + 4 - len(s.buf); n > room {
		n = max(room, 1)
	}
	s.buf = append(s.buf, rest[:n]...)
	s.off += n
}

func (s *CopySplitter) fail(err error) error {
	s.err = err
	return err
}

// byteSet is the (up to four) bytes a scan stops at.
type byteSet struct {
	in    [256]bool
	words [4]uint64 // each byte repeated in every byte of a word
}

func newByteSet(b0, b1, b2, b3 byte) byteSet {
	var s byteSet
	for i, b := range [4]byte{b0, b1, b2, b3} {
		s.in[b] = true
		s.words[i] = uint64(b) * 0x0101010101010101
	}
	return s
}

// skip is the index of the first byte of w from i on in s, or len(w). It
// reads eight bytes at a time while none is in s: most bytes of most rows.
func (s *byteSet) skip(w []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(w); i += 8 {
		x := binary.LittleEndian.Uint64(w[i:])
		// A byte of y is zero where x has the byte of s: (y - lo) &^ y & hi
		// is not zero exactly when y has a zero byte.
		y0, y1, y2, y3 := x^s.words[0], x^s.words[1], x^s.words[2], x^s.words[3]
		if ((y0-lo)&^y0|(y1-lo)&^y1|(y2-lo)&^y2|(y3-lo)&^y3)&hi != 0 {
			break
		}
	}
	for i < len(w) && !s.in[w[i]] {
		i++
	}
	return i
}

// at is w[i] and true when w holds it; past w's end, 0 and true when no more
// data comes (Postgres reads the NUL that pads its buffer), false when it
// must wait for more.
func at(w []byte, i int, eof bool) (byte, bool) {
	if i < len(w) {
		return w[i], true
	}
	return 0, eof
}

// boundary records a field delimiter at offset off of the line.
func (l *copyLine) boundary(off, key int) {
	if l.field == key {
		l.keyEnd = off
	}
	l.field++
	if l.field == key {
		l.keyStart = off + 1
	}
}

// finish records the end of the line's data at offset dataEnd.
func (l *copyLine) finish(dataEnd, key int) {
	if l.field == key {
		l.keyEnd = dataEnd
	}
}

// scanText reads the line at w[ls:] in the text format, from where the
// last call stopped (s.line.p), as CopyReadLineText does. It returns the
// offsets (from ls) of the line's end (after its terminator or end-of-copy
// marker) and of its data's end, and how it ended.
func (s *CopySplitter) scanText(w []byte, ls int, eof bool) (end, dataEnd int, how lineEnd) {
	l := &s.line
	i := ls + l.p
	for {
		if l.hex > 0 && i < len(w) { // \x takes up to two hex digits, the delimiter among them
			if unhex(w[i]) >= 0 {
				i++
				l.hex--
				continue
			}
			l.hex = 0
		}
		i = s.special.skip(w, i)
		if i == len(w) {
			if !eof {
				l.p = i - ls
				return 0, 0, endMore
			}
			l.finish(i-ls, s.key)
			return i - ls, i - ls, endEOF
		}
		switch c := w[i]; c {
		case '\r', '\n':
			end, how := s.newline(w, i, ls, eof)
			switch how {
			case endMore:
				l.p = i - ls
			case endNewline:
				l.finish(i-ls, s.key)
			}
			return end, i - ls, how
		case '\\':
			c2, ok := at(w, i+1, eof)
			if !ok {
				l.p = i - ls
				return 0, 0, endMore
			}
			if i+1 == len(w) { // a backslash just before the end: data, and the line ends
				l.finish(i+1-ls, s.key)
				return i + 1 - ls, i + 1 - ls, endEOF
			}
			if c2 == '.' {
				end, how := s.marker(w, i, eof)
				switch how {
				case endMore:
					l.p = i - ls
					return 0, 0, endMore
				case endError:
					return 0, 0, endError
				}
				l.finish(i-ls, s.key)
				return end - ls, i - ls, endMarker
			}
			i += 2 // the escaped byte is data, even a newline or the delimiter
			if c2 == 'x' && s.delimHex {
				l.hex = 2
			}
		default: // the delimiter
			l.boundary(i-ls, s.key)
			i++
		}
	}
}

// scanCSV is scanText for the CSV format: newlines and delimiters inside
// quotes are data, and \. is the end-of-copy marker only alone on a line.
func (s *CopySplitter) scanCSV(w []byte, ls int, eof bool) (end, dataEnd int, how lineEnd) {
	l := &s.line
	i := ls + l.p
	for {
		if i > ls { // the first byte of a line is always looked at (\.)
			tbl := &s.special
			if l.inQuote {
				tbl = &s.specialQ
			}
			if j := tbl.skip(w, i); j > i {
				l.lastWasEsc = false
				i = j
			}
		}
		if i == len(w) {
			if !eof {
				l.p = i - ls
				return 0, 0, endMore
			}
			l.finish(i-ls, s.key) // inQuote: place refuses the row

			return i - ls, i - ls, endEOF
		}
		c := w[i]
		// Whatever needs looking ahead is checked before any state
		// changes, so that waiting for more data leaves none changed.
		markerEnd, marker := 0, endNewline // endNewline: not a marker
		if c == '\\' && i == ls {
			c2, ok := at(w, i+1, eof)
			switch {
			case !ok:
				l.p = i - ls
				return 0, 0, endMore
			case i+1 == len(w):
				marker = endEOF // a backslash just before the end: data, and the line ends
			case c2 == '.':
				markerEnd, marker = s.marker(w, i, eof)
				if marker == endMore {
					l.p = i - ls
					return 0, 0, endMore
				}
			}
		}
		if c == '\r' && (s.eol == eolUnknown || s.eol == eolCRNL) {
			if _, ok := at(w, i+1, eof); !ok {
				l.p = i - ls
				return 0, 0, endMore
			}
		}
		if l.inQuote && s.hasEscape && c == s.escape {
			l.lastWasEsc = !l.lastWasEsc
		}
		if c == s.quote && !l.lastWasEsc {
			l.inQuote = !l.inQuote
		}
		if !s.hasEscape || c != s.escape {
			l.lastWasEsc = false
		}
		if l.inQuote {
			// Postgres counts a quoted newline as a line (its \r when the
			// lines end in \r or \r\n, or before the first line ends).
			if nl := byte('\r'); c == nl || c == '\n' {
				if s.eol == eolNL {
					nl = '\n'
				}
				if c == nl {
					s.lineNo++
				}
			}
		} else if c == '\r' || c == '\n' {
			end, how := s.newline(w, i, ls, eof) // never endMore: looked ahead above
			if how == endNewline {
				l.finish(i-ls, s.key)
			}
			return end, i - ls, how
		}
		switch marker {
		case endEOF:
			l.finish(i+1-ls, s.key)
			return i + 1 - ls, i + 1 - ls, endEOF
		case endMarker:
			l.finish(i-ls, s.key)
			return markerEnd - ls, i - ls, endMarker
		case endError:
			return 0, 0, endError
		}
		if !l.inQuote && c == s.delim {
			l.boundary(i-ls, s.key)
		}
		i++
	}
}

// newline reads the line terminator at w[i] (\r or \n, not quoted or
// escaped) as Postgres does, learning the data's terminator from the first
// line, and returns the offset (from ls) after it.
func (s *CopySplitter) newline(w []byte, i, ls int, eof bool) (int, lineEnd) {
	if w[i] == '\n' {
		if s.eol == eolCR || s.eol == eolCRNL {
			return 0, s.newlineError("newline")
		}
		s.eol = eolNL
		return i + 1 - ls, endNewline
	}
	switch s.eol {
	case eolUnknown, eolCRNL:
		c2, ok := at(w, i+1, eof)
		if !ok {
			return 0, endMore
		}
		if c2 == '\n' {
			s.eol = eolCRNL
			return i + 2 - ls, endNewline
		}
		if s.eol == eolCRNL {
			return 0, s.newlineError("carriage return")
		}
		s.eol = eolCR
	case eolNL:
		return 0, s.newlineError("carriage return")
	}
	return i + 1 - ls, endNewline
}

// marker reads an end-of-copy marker: a backslash and a period at w[i],
// then the line terminator. It returns the offset after it (endMarker),
// endMore when it must wait for more data, endNewline in CSV when it is not
// a marker but data, or endError.
func (s *CopySplitter) marker(w []byte, i int, eof bool) (int, lineEnd) {
	j := i + 2
	if s.eol == eolCRNL {
		c, ok := at(w, j, eof)
		if !ok {
			return 0, endMore
		}
		j++
		if c != '\r' {
			if s.csv {
				return 0, endNewline
			}
			if c == '\n' {
				return 0, s.markerError("end-of-copy marker does not match previous newline style")
			}
			return 0, s.markerError("end-of-copy marker corrupt")
		}
	}
	c, ok := at(w, j, eof)
	if !ok {
		return 0, endMore
	}
	j++
	if c != '\r' && c != '\n' {
		if s.csv {
			return 0, endNewline
		}
		return 0, s.markerError("end-of-copy marker corrupt")
	}
	if (s.eol == eolNL || s.eol == eolCRNL) && c != '\n' || s.eol == eolCR && c != '\r' {
		return 0, s.markerError("end-of-copy marker does not match previous newline style")
	}
	return j, endMarker
}

// The errors of reading a line: Postgres's context then names the line but
// cannot show it.

func (s *CopySplitter) newlineError(what string) lineEnd {
	e := &Error{Code: sqlstate.BadCopyFileFormat, Context: s.context(), Err: ErrCopyData}
	if s.csv {
		e.Message = "unquoted " + what + " found in data"
		e.Hint = "Use quoted CSV field to represent " + what + "."
	} else {
		e.Message = "literal " + what + " found in data"
		e.Hint = `Use "\r" to represent carriage return.`
		if what == "newline" {
			e.Hint = `Use "\n" to represent newline.`
		}
	}
	s.err = e
	return endError
}

func (s *CopySplitter) markerError(msg string) lineEnd {
	s.err = &Error{Code: sqlstate.BadCopyFileFormat, Message: msg, Context: s.context(), Err: ErrCopyData}
	return endError
}

func (s *CopySplitter) tooLong() error { return rowTooLong(s.maxRow, s.context()) }

// rowTooLong is the error of a row longer than a splitter's maxRow (54000,
// as Postgres's own limit on a line or a field's buffer).
func rowTooLong(maxRow int, context string) error {
	return &Error{Code: sqlstate.ProgramLimitExceeded, Message: "COPY row longer than " + strconv.Itoa(maxRow) + " bytes",
		Context: context, Err: ErrCopyData}
}

// lineError is an error about the line whose data is data, which Postgres's
// context shows.
func (s *CopySplitter) lineError(data []byte, msg string) error {
	return &Error{Code: sqlstate.BadCopyFileFormat, Message: msg, Context: s.lineContext(data), Err: ErrCopyData}
}

// context is Postgres's CONTEXT of an error while reading a line:
// "COPY t, line 3".
func (s *CopySplitter) context() string {
	return "COPY " + s.table + ", line " + strconv.FormatInt(s.lineNo, 10)
}

// lineContext is Postgres's CONTEXT of an error about a line it has read:
// `COPY t, line 3: "the line"`.
func (s *CopySplitter) lineContext(data []byte) string {
	return s.context() + `: "` + printable(data) + `"`
}

// printable is limit_printout_length: a C string (up to a NUL) of at most
// 100 bytes, cut at a character boundary and followed by "..." if longer.
func printable(b []byte) string {
	const max = 100
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) <= max {
		return string(b)
	}
	n := 0
	for n < len(b) {
		l := mbLen(b[n])
		if n+l > max {
			break
		}
		n += l
		if n == max {
			break
		}
	}
	return string(b[:n]) + "..."
}

// mbLen is Postgres's pg_utf_mblen: a UTF-8 character's length from its
// first byte (1 for a byte no character starts with).
func mbLen(c byte) int {
	switch {
	case c&0x80 == 0:
		return 1
	case c&0xe0 == 0xc0:
		return 2
	case c&0xf0 == 0xe0:
		return 3
	case c&0xf8 == 0xf0:
		return 4
	}
	return 1
}

// place reads the key of the line whose data (without its terminator) is
// data, and returns the line's shard; the errors in Postgres's order:
// those of splitting fields (an unterminated quote, a key that is not
// UTF-8), extra fields, the key's field missing, the key's value, a later
// field missing.
func (s *CopySplitter) place(data []byte, l *copyLine) (int, error) {
	if l.inQuote { // the data ended inside quotes
		return 0, s.lineError(data, "unterminated CSV quoted field")
	}
	fields := l.field + 1
	var val []byte
	null := false
	if fields > s.key {
		raw := data[l.keyStart:l.keyEnd]
		var err error
		if val, null, err = s.decodeKey(raw, data); err != nil {
			return 0, err
		}
	}
	if fields > len(s.columns) {
		return 0, s.lineError(data, "extra data after last expected column")
	}
	if fields <= s.key {
		return 0, s.missing(data, fields)
	}
	if s.csv {
		switch {
		case null && s.forceNN:
			val, null = []byte(s.null), false
		case !null && s.forceNull && string(val) == s.null:
			null = true
		}
	}
	shard := NullShard
	if !null {
		var err error
		if shard, err = s.keyShard(val); err != nil {
			e := *err.(*Error)
			e.Context = s.context() + ", column " + s.columns[s.key] + `: "` + printable(val) + `"`
			return 0, &e
		}
	}
	if fields < len(s.columns) {
		return 0, s.missing(data, fields)
	}
	return shard, nil
}

func (s *CopySplitter) missing(data []byte, field int) error {
	return s.lineError(data, `missing data for column "`+s.columns[field]+`"`)
}

// keyShard parses the key's value and returns its shard.
func (s *CopySplitter) keyShard(val []byte) (int, error) {
	var h uint64
	switch s.keyType {
	case KeyInteger:
		v, err := parseInt64(val)
		if err != nil {
			return 0, err
		}
		h = RowHash(v)
	case KeyUUID:
		u, err := parseUUID(val)
		if err != nil {
			return 0, err
		}
		h = RowHash(u)
	default: // KeyText: its bytes, without making a string of them
		h = HashCombine64(0, HashBytesExtended(val, PartitionSeed))
	}
	return int(h % uint64(s.shards)), nil
}

// decodeKey reads the key field whose raw bytes (between its delimiters)
// are raw: whether it is the NULL string, and its value unescaped (text)
// or unquoted (CSV), as CopyReadAttributesText and CopyReadAttributesCSV
// do. The value is raw itself when that changes nothing, else in keyBuf.
func (s *CopySplitter) decodeKey(raw, data []byte) (val []byte, null bool, err error) {
	if !validText(raw) {
		// Postgres checks that all its input is in the server's
		// encoding as it reads it: the key's bytes stand for the line.
		return nil, false, byteSequenceError(raw, s.context())
	}
	if s.csv {
		val, null = s.decodeCSV(raw)
		return val, null, nil
	}
	return s.decodeText(raw, data)
}

// decodeText unescapes a text field: \b \f \n \r \t \v, octal \1 to \377,
// hex \x1 to \xff, any other byte after a backslash stands for itself, a
// backslash ending the line is dropped. The NULL string is compared with
// the raw field (up to such a last backslash). A value whose escapes made
// bytes that are not ASCII must be valid UTF-8.
func (s *CopySplitter) decodeText(raw, data []byte) (val []byte, null bool, err error) {
	i := bytes.IndexByte(raw, '\\')
	if i < 0 {
		return raw, string(raw) == s.null, nil
	}
	out := append(s.keyBuf[:0], raw[:i]...)
	rawEnd := len(raw)
	nonASCII := false
	for i < len(raw) {
		c := raw[i]
		i++
		if c == '\\' {
			if i == len(raw) {
				rawEnd = i - 1
				break
			}
			c = raw[i]
			i++
			switch c {
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(c - '0')
				for k := 0; k < 2 && i < len(raw) && raw[i] >= '0' && raw[i] <= '7'; k++ {
					v = v<<3 + int(raw[i]-'0')
					i++
				}
				c = byte(v)
				nonASCII = nonASCII || c == 0 || c >= 0x80
			case 'x':
				if i < len(raw) && unhex(raw[i]) >= 0 {
					v := unhex(raw[i])
					i++
					if i < len(raw) && unhex(raw[i]) >= 0 {
						v = v<<4 + unhex(raw[i])
						i++
					}
					c = byte(v)
					nonASCII = nonASCII || c == 0 || c >= 0x80
				}
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'v':
				c = '\v'
			}
		}
		out = append(out, c)
	}
	s.keyBuf = out
	if string(raw[:rawEnd]) == s.null {
		return nil, true, nil
	}
	if nonASCII && !validText(out) {
		return nil, false, byteSequenceError(out, s.lineContext(data))
	}
	return out, false, nil
}

// decodeCSV unquotes a CSV field: quoted parts may hold anything, an
// escape inside quotes before a quote or an escape stands for it. The NULL
// string is compared with the raw field when it has no quotes: a quoted
// empty string is not NULL.
func (s *CopySplitter) decodeCSV(raw []byte) (val []byte, null bool) {
	i := bytes.IndexByte(raw, s.quote)
	if i < 0 {
		return raw, string(raw) == s.null
	}
	out := append(s.keyBuf[:0], raw[:i]...)
	i++
	for inQuote := true; i < len(raw); {
		c := raw[i]
		i++
		switch {
		case !inQuote && c == s.quote:
			inQuote = true
			continue
		case inQuote && c == s.escape && i < len(raw) && (raw[i] == s.escape || raw[i] == s.quote):
			c = raw[i]
			i++
		case inQuote && c == s.quote:
			inQuote = false
			continue
		}
		out = append(out, c)
	}
	// An unterminated quote can only end the data: scanCSV refused it.
	s.keyBuf = out
	return out, false
}

// validText says whether b is valid in the server's encoding, UTF-8, which
// has no NUL: Postgres's pg_verifymbstr.
func validText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

// byteSequenceError is Postgres's report_invalid_encoding for the first
// character of b that is not valid UTF-8 (or is NUL).
func byteSequenceError(b []byte, context string) error {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0 || r == utf8.RuneError && n <= 1 {
			break
		}
		i += n
	}
	bad := b[i:]
	if len(bad) > 0 {
		bad = bad[:min(mbLen(bad[0]), len(bad))]
	}
	var msg strings.Builder
	msg.WriteString(`invalid byte sequence for encoding "UTF8": `)
	for k, c := range bad {
		if k > 0 {
			msg.WriteByte(' ')
		}
		msg.WriteString("0x")
		msg.WriteByte("0123456789abcdef"[c>>4])
		msg.WriteByte("0123456789abcdef"[c&15])
	}
	return &Error{Code: sqlstate.CharacterNotInRepertoire, Message: msg.String(), Context: context, Err: ErrByteSequence}
}
