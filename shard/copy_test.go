package shard

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/belaydb/belay/codec/sqlstate"
)

func str(s string) *string { return &s }

// caseRow is a row a case expects: its bytes, its key's text as Postgres
// reads it (null: NULL), its line number (0: the row's index + 1, after
// the header).
type caseRow struct {
	data   string
	key    string
	null   bool
	header bool
	line   int64
}

func r(data, key string) caseRow            { return caseRow{data: data, key: key} }
func rl(data, key string, line int) caseRow { return caseRow{data: data, key: key, line: int64(line)} }
func rnull(data string) caseRow             { return caseRow{data: data, null: true} }
func hdr(data string) caseRow               { return caseRow{data: data, header: true, line: 1} }
func rnullLine(data string, line int) caseRow {
	return caseRow{data: data, null: true, line: int64(line)}
}

// copyCase is an input to split and what Postgres makes of it: its rows
// or its error (code, message, context). The table is t; its columns
// cols (default id, k, v), the key k at index key (default 1) of type
// typ (default integer); 4 shards.
type copyCase struct {
	name  string
	opts  CopyOptions
	cols  []string
	key   int
	typ   KeyType
	in    string
	rows  []caseRow
	err   *Error // Code, Message, Context
	ended bool   // the end-of-copy marker was seen (not only the end of the data)
}

const caseShards = 4

func (c copyCase) target() CopyTarget {
	t := CopyTarget{Table: "t", Columns: c.cols, Key: c.key, KeyType: c.typ}
	if t.Columns == nil {
		t.Columns, t.Key = []string{"id", "k", "v"}, 1
	}
	if t.KeyType == 0 {
		t.KeyType = KeyInteger
	}
	return t
}

var csvOpts = CopyOptions{Format: CopyCSV}

func copyErr(code sqlstate.Code, msg, context string) *Error {
	return &Error{Code: code, Message: msg, Context: context}
}

var copyCases = []copyCase{
	// The text format.
	{name: "text rows", in: "1\t10\ta\n2\t20\tb\n", rows: []caseRow{r("1\t10\ta\n", "10"), r("2\t20\tb\n", "20")}},
	{name: "text one row", in: "x\t-42\ty\n", rows: []caseRow{r("x\t-42\ty\n", "-42")}},
	{name: "text last line without newline", in: "1\t10\ta\n2\t20\tb", rows: []caseRow{r("1\t10\ta\n", "10"), r("2\t20\tb", "20")}},
	{name: "text empty", in: ""},
	{name: "text crlf", in: "1\t10\ta\r\n2\t20\tb\r\n", rows: []caseRow{r("1\t10\ta\r\n", "10"), r("2\t20\tb\r\n", "20")}},
	{name: "text cr", in: "1\t10\ta\r2\t20\tb\r", rows: []caseRow{r("1\t10\ta\r", "10"), r("2\t20\tb\r", "20")}},
	{name: "text cr at the end", in: "1\t10\ta\r", rows: []caseRow{r("1\t10\ta\r", "10")}},
	{name: "text crlf then lf", in: "1\t10\ta\r\n2\t20\tb\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "literal newline found in data", "COPY t, line 2")},
	{name: "text lf then cr", in: "1\t10\ta\n2\t20\tb\r",
		err: copyErr(sqlstate.BadCopyFileFormat, "literal carriage return found in data", "COPY t, line 2")},
	{name: "text crlf then cr", in: "1\t10\ta\r\n2\t20\tb\r3\t30\tc\r\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "literal carriage return found in data", "COPY t, line 2")},
	{name: "text cr then lf", in: "1\t10\ta\r2\t20\tb\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "literal newline found in data", "COPY t, line 2")},
	{name: "text escapes in the key", typ: KeyText, in: "1\ta\\tb\\nc\\\\d\\Ne\\bf\\fg\\rh\\vi\\,j\tv\n",
		rows: []caseRow{r("1\ta\\tb\\nc\\\\d\\Ne\\bf\\fg\\rh\\vi\\,j\tv\n", "a\tb\nc\\dNe\bf\fg\rh\vi,j")}},
	{name: "text octal and hex", in: "1\t\\061\\62\\x33\\x4\tv\n", typ: KeyText,
		rows: []caseRow{r("1\t\\061\\62\\x33\\x4\tv\n", "123\x04")}},
	{name: "text octal digits", in: "1\t\\0618\\1234\tv\n", typ: KeyText, rows: []caseRow{r("1\t\\0618\\1234\tv\n", "18S4")}},
	{name: "text hex without digits", in: "1\t\\xg\tv\n", typ: KeyText, rows: []caseRow{r("1\t\\xg\tv\n", "xg")}},
	{name: "text escaped octal to UTF-8", in: "1\t\\303\\251\tv\n", typ: KeyText, rows: []caseRow{r("1\t\\303\\251\tv\n", "é")}},
	{name: "text escaped byte not UTF-8", in: "1\t\\377\tv\n", typ: KeyText,
		err: copyErr(sqlstate.CharacterNotInRepertoire, `invalid byte sequence for encoding "UTF8": 0xff`, `COPY t, line 1: "1	\377	v"`)},
	{name: "text escaped NUL", in: "1\ta\\0\tv\n", typ: KeyText,
		err: copyErr(sqlstate.CharacterNotInRepertoire, `invalid byte sequence for encoding "UTF8": 0x00`, `COPY t, line 1: "1	a\0	v"`)},
	{name: "text key not UTF-8", in: "1\ta\xc3(\tv\n", typ: KeyText,
		err: copyErr(sqlstate.CharacterNotInRepertoire, `invalid byte sequence for encoding "UTF8": 0xc3 0x28`, "COPY t, line 1")},
	{name: "text escaped delimiter", in: "1\ta\\\tb\tv\n", typ: KeyText, rows: []caseRow{r("1\ta\\\tb\tv\n", "a\tb")}},
	{name: "text escaped newline", in: "1\ta\\\nb\tv\n2\tc\tv\n", typ: KeyText,
		rows: []caseRow{r("1\ta\\\nb\tv\n", "a\nb"), r("2\tc\tv\n", "c")}},
	{name: "text escaped cr", in: "1\ta\\\rb\tv\r2\tc\tv\r", typ: KeyText,
		rows: []caseRow{r("1\ta\\\rb\tv\r", "a\rb"), r("2\tc\tv\r", "c")}},
	{name: "text escaped cr in crlf data", in: "1\ta\tv\r\n2\ta\\\r\nb\tv\r\n", typ: KeyText,
		err: copyErr(sqlstate.BadCopyFileFormat, "literal newline found in data", "COPY t, line 2")},
	{name: "text null key", in: "1\t\\N\tv\n", rows: []caseRow{rnull("1\t\\N\tv\n")}},
	{name: "text null only raw", in: "1\t\\\\N\tv\n", typ: KeyText, rows: []caseRow{r("1\t\\\\N\tv\n", `\N`)}},
	{name: "text null option", opts: CopyOptions{Null: str("nil")}, typ: KeyText, in: "1\tnil\tv\n2\t\\N\tv\n3\t\\nil\tv\n",
		rows: []caseRow{rnull("1\tnil\tv\n"), r("2\t\\N\tv\n", "N"), r("3\t\\nil\tv\n", "\nil")}},
	{name: "text empty null", opts: CopyOptions{Null: str("")}, in: "1\t\tv\n", rows: []caseRow{rnull("1\t\tv\n")}},
	{name: "text null before a last backslash", opts: CopyOptions{Null: str("a")}, typ: KeyText, in: "1\tv\ta\\",
		cols: []string{"id", "v", "k"}, key: 2, rows: []caseRow{rnull("1\tv\ta\\")}},
	{name: "text last backslash", typ: KeyText, in: "1\tv\tab\\", cols: []string{"id", "v", "k"}, key: 2,
		rows: []caseRow{r("1\tv\tab\\", "ab")}},
	{name: "text delimiter option", opts: CopyOptions{Delimiter: str("|")}, in: "1|10|a\tb\n", rows: []caseRow{r("1|10|a\tb\n", "10")}},
	{name: "text hex takes a delimiter A-F", opts: CopyOptions{Delimiter: str("A")}, typ: KeyText, in: "1A\\x4A2Av\n",
		rows: []caseRow{r("1A\\x4A2Av\n", "J2")}},
	{name: "text hex takes two digits at most", opts: CopyOptions{Delimiter: str("B")}, typ: KeyText, in: "1B\\x4BBv\n",
		rows: []caseRow{r("1B\\x4BBv\n", "K")}},
	{name: "text key first", cols: []string{"k", "id", "v"}, key: 0, in: "7\t1\tv\n", rows: []caseRow{r("7\t1\tv\n", "7")}},
	{name: "text key last", cols: []string{"id", "v", "k"}, key: 2, in: "1\tv\t7\n1\tv\t8", rows: []caseRow{r("1\tv\t7\n", "7"), r("1\tv\t8", "8")}},
	{name: "text int key with spaces", in: "1\t  7 \tv\n", rows: []caseRow{r("1\t  7 \tv\n", "7")}},
	{name: "text uuid key", typ: KeyUUID, in: "1\tA0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\tv\n2\t{a0eebc999c0b4ef8bb6d6bb9bd380a12}\tv\n",
		rows: []caseRow{r("1\tA0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\tv\n", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
			r("2\t{a0eebc999c0b4ef8bb6d6bb9bd380a12}\tv\n", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12")}},
	{name: "text bad uuid", typ: KeyUUID, in: "1\ta0eebc99\tv\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type uuid: "a0eebc99"`, `COPY t, line 1, column k: "a0eebc99"`)},
	{name: "text bad integer", in: "1\t10\tv\n2\tabc\tv\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type bigint: "abc"`, `COPY t, line 2, column k: "abc"`)},
	{name: "text escaped bad integer", in: "1\t1\\t2\tv\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, "invalid input syntax for type bigint: \"1\t2\"", "COPY t, line 1, column k: \"1\t2\"")},
	{name: "text integer out of range", in: "1\t9223372036854775808\tv\n",
		err: copyErr(sqlstate.NumericValueOutOfRange, `value "9223372036854775808" is out of range for type bigint`, `COPY t, line 1, column k: "9223372036854775808"`)},
	{name: "text long value in context", typ: KeyUUID, in: "1\t" + strings.Repeat("é", 60) + "\tv\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type uuid: "`+strings.Repeat("é", 60)+`"`,
			`COPY t, line 1, column k: "`+strings.Repeat("é", 50)+`..."`)},
	{name: "text missing key", in: "1\t10\tv\n1\n",
		err: copyErr(sqlstate.BadCopyFileFormat, `missing data for column "k"`, `COPY t, line 2: "1"`)},
	{name: "text empty line", in: "\n",
		err: copyErr(sqlstate.BadCopyFileFormat, `missing data for column "k"`, `COPY t, line 1: ""`)},
	{name: "text missing a later column", in: "1\t10\n",
		err: copyErr(sqlstate.BadCopyFileFormat, `missing data for column "v"`, `COPY t, line 1: "1	10"`)},
	{name: "text bad key before a missing column", in: "1\tx\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type bigint: "x"`, `COPY t, line 1, column k: "x"`)},
	{name: "text extra column", in: "1\t10\tv\tw\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "extra data after last expected column", `COPY t, line 1: "1	10	v	w"`)},
	{name: "text extra column before a bad key", in: "1\tx\tv\tw\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "extra data after last expected column", `COPY t, line 1: "1	x	v	w"`)},
	{name: "text long line in context", in: "1\tx\tv\t" + strings.Repeat("ab", 60) + "\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "extra data after last expected column", `COPY t, line 1: "1	x	v	`+strings.Repeat("ab", 47)+`..."`)},
	{name: "text end marker", in: "1\t10\tv\n\\.\n2\tx\tv\n", ended: true, rows: []caseRow{r("1\t10\tv\n", "10")}},
	{name: "text end marker at the end", in: "1\t10\tv\n\\.\n", ended: true, rows: []caseRow{r("1\t10\tv\n", "10")}},
	{name: "text end marker only", in: "\\.\n", ended: true},
	{name: "text end marker crlf", in: "1\t10\tv\r\n\\.\r\nrest", ended: true, rows: []caseRow{r("1\t10\tv\r\n", "10")}},
	{name: "text end marker cr", in: "1\t10\tv\r\\.\rrest", ended: true, rows: []caseRow{r("1\t10\tv\r", "10")}},
	{name: "text end marker after data", in: "1\t10\tv\\.\nrest", ended: true, rows: []caseRow{r("1\t10\tv\\.\n", "10")}},
	{name: "text end marker in the key", in: "1\t10\\.\n", ended: true,
		err: copyErr(sqlstate.BadCopyFileFormat, `missing data for column "v"`, `COPY t, line 1: "1	10"`)},
	{name: "text end marker inside a field", in: "1\tab\\.c\tv\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker corrupt", "COPY t, line 1")},
	{name: "text end marker corrupt", in: "1\t10\tv\n\\.x\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker corrupt", "COPY t, line 2")},
	{name: "text end marker without newline", in: "1\t10\tv\n\\.",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker corrupt", "COPY t, line 2")},
	{name: "text end marker of another newline", in: "1\t10\tv\n\\.\r\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker does not match previous newline style", "COPY t, line 2")},
	{name: "text end marker lf in crlf data", in: "1\t10\tv\r\n\\.\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker does not match previous newline style", "COPY t, line 2")},
	{name: "text end marker corrupt in crlf data", in: "1\t10\tv\r\n\\.x",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker corrupt", "COPY t, line 2")},
	{name: "text escaped backslash and period", typ: KeyText, in: "1\t\\\\.\tv\n", rows: []caseRow{r("1\t\\\\.\tv\n", `\.`)}},
	{name: "text header", opts: CopyOptions{Header: CopyHeaderTrue}, in: "id\tk\tv\n1\t10\tv\n",
		rows: []caseRow{hdr("id\tk\tv\n"), r("1\t10\tv\n", "10")}},
	{name: "text header only", opts: CopyOptions{Header: CopyHeaderTrue}, in: "anything at all", rows: []caseRow{hdr("anything at all")}},
	{name: "text header crlf mismatch", opts: CopyOptions{Header: CopyHeaderTrue}, in: "id\tk\tv\r\n1\t10\tv\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "literal newline found in data", "COPY t, line 2")},

	// CSV.
	{name: "csv rows", opts: csvOpts, in: "1,10,a\n2,20,b\n", rows: []caseRow{r("1,10,a\n", "10"), r("2,20,b\n", "20")}},
	{name: "csv quoted key", opts: csvOpts, in: "1,\"10\",a\n", rows: []caseRow{r("1,\"10\",a\n", "10")}},
	{name: "csv quoted parts", opts: csvOpts, typ: KeyText, in: "1,a\"b,c\"d,v\n", rows: []caseRow{r("1,a\"b,c\"d,v\n", "ab,cd")}},
	{name: "csv quoted newlines", opts: csvOpts, typ: KeyText, in: "1,\"a,b\nc\",v\n2,\"\r\n\",\"x\ny\"\n3,z,v\n",
		// Before the first line's end, Postgres counts a quoted \r as a line, not \n.
		rows: []caseRow{rl("1,\"a,b\nc\",v\n", "a,b\nc", 1), rl("2,\"\r\n\",\"x\ny\"\n", "\r\n", 4), rl("3,z,v\n", "z", 5)}},
	{name: "csv quoted newlines crlf", opts: csvOpts, typ: KeyText, in: "1,\"a\r\nb\",v\r\n2,\"c\nd\",v\r\n",
		rows: []caseRow{rl("1,\"a\r\nb\",v\r\n", "a\r\nb", 2), rl("2,\"c\nd\",v\r\n", "c\nd", 3)}},
	{name: "csv quoted newline counted on later lines", opts: csvOpts, typ: KeyText, in: "1,a,v\n2,\"b\nc\",v\n",
		rows: []caseRow{rl("1,a,v\n", "a", 1), rl("2,\"b\nc\",v\n", "b\nc", 3)}},
	{name: "csv doubled quote", opts: csvOpts, typ: KeyText, in: "1,\"a\"\"b\",v\n", rows: []caseRow{r("1,\"a\"\"b\",v\n", "a\"b")}},
	{name: "csv escape", opts: CopyOptions{Format: CopyCSV, Escape: str(`\`)}, typ: KeyText, in: "1,\"a\\\"b\\\\c\\d\",v\n",
		rows: []caseRow{r("1,\"a\\\"b\\\\c\\d\",v\n", `a"b\c\d`)}},
	{name: "csv escape keeps a quote open", opts: CopyOptions{Format: CopyCSV, Escape: str(`\`)}, typ: KeyText, in: "1,\"a\\\",\nb\",v\n",
		rows: []caseRow{rl("1,\"a\\\",\nb\",v\n", "a\",\nb", 1)}},
	{name: "csv quote option", opts: CopyOptions{Format: CopyCSV, Quote: str("'"), Delimiter: str(";")}, typ: KeyText, in: "1;'a;''b\"';v\n",
		rows: []caseRow{r("1;'a;''b\"';v\n", "a;'b\"")}},
	{name: "csv unquoted empty is null", opts: csvOpts, typ: KeyText, in: "1,,v\n", rows: []caseRow{rnull("1,,v\n")}},
	{name: "csv quoted empty is not null", opts: csvOpts, typ: KeyText, in: "1,\"\",v\n", rows: []caseRow{r("1,\"\",v\n", "")}},
	{name: "csv quoted empty integer", opts: csvOpts, in: "1,\"\",v\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type bigint: ""`, `COPY t, line 1, column k: ""`)},
	{name: "csv null option", opts: CopyOptions{Format: CopyCSV, Null: str("NULL")}, typ: KeyText, in: "1,NULL,v\n2,\"NULL\",v\n3,,v\n",
		rows: []caseRow{rnull("1,NULL,v\n"), r("2,\"NULL\",v\n", "NULL"), r("3,,v\n", "")}},
	{name: "csv force null", opts: CopyOptions{Format: CopyCSV, ForceNull: true}, typ: KeyText, in: "1,\"\",v\n2,,v\n3,a,v\n",
		rows: []caseRow{rnull("1,\"\",v\n"), rnull("2,,v\n"), r("3,a,v\n", "a")}},
	{name: "csv force not null", opts: CopyOptions{Format: CopyCSV, ForceNotNull: true}, typ: KeyText, in: "1,,v\n",
		rows: []caseRow{r("1,,v\n", "")}},
	{name: "csv force not null integer", opts: CopyOptions{Format: CopyCSV, ForceNotNull: true}, in: "1,,v\n",
		err: copyErr(sqlstate.InvalidTextRepresentation, `invalid input syntax for type bigint: ""`, `COPY t, line 1, column k: ""`)},
	{name: "csv backslashes are data", opts: csvOpts, typ: KeyText, in: "1,a\\N\\,v\n", rows: []caseRow{r("1,a\\N\\,v\n", `a\N\`)}},
	{name: "csv header", opts: CopyOptions{Format: CopyCSV, Header: CopyHeaderTrue}, in: "id,k,v\n1,10,v\n",
		rows: []caseRow{hdr("id,k,v\n"), r("1,10,v\n", "10")}},
	{name: "csv header with quoted newline", opts: CopyOptions{Format: CopyCSV, Header: CopyHeaderTrue}, in: "id,\"k\n\",v\n1,10,v\n",
		rows: []caseRow{hdr("id,\"k\n\",v\n"), rl("1,10,v\n", "10", 2)}},
	{name: "csv header match", opts: CopyOptions{Format: CopyCSV, Header: CopyHeaderMatch}, in: "id,k,v\n1,10,v\n",
		rows: []caseRow{hdr("id,k,v\n"), r("1,10,v\n", "10")}},
	{name: "csv end marker", opts: csvOpts, in: "1,10,v\n\\.\n2,x,v\n", ended: true, rows: []caseRow{r("1,10,v\n", "10")}},
	{name: "csv end marker crlf", opts: csvOpts, in: "1,10,v\r\n\\.\r\n2,x,v\r\n", ended: true, rows: []caseRow{r("1,10,v\r\n", "10")}},
	{name: "csv backslash period is data", opts: csvOpts, in: "\\.,10,v\n", rows: []caseRow{r("\\.,10,v\n", "10")}},
	{name: "csv backslash period at the end is data", opts: csvOpts, cols: []string{"k"}, key: 0, typ: KeyText, in: "a\n\\.",
		rows: []caseRow{r("a\n", "a"), r("\\.", `\.`)}},
	{name: "csv backslash period cr in crlf data", opts: csvOpts, cols: []string{"k"}, key: 0, typ: KeyText, in: "a\r\n\\.\r\r",
		err: copyErr(sqlstate.BadCopyFileFormat, "end-of-copy marker does not match previous newline style", "COPY t, line 2")},
	{name: "csv backslash period in quotes", opts: csvOpts, typ: KeyText, in: "1,\"a\n\\.\n\",v\n",
		rows: []caseRow{rl("1,\"a\n\\.\n\",v\n", "a\n\\.\n", 1)}},
	{name: "csv backslash at the end", opts: csvOpts, cols: []string{"k"}, key: 0, typ: KeyText, in: "a\n\\",
		rows: []caseRow{r("a\n", "a"), r("\\", `\`)}},
	{name: "csv unterminated quote", opts: csvOpts, typ: KeyText, in: "1,a,v\n2,\"b\nc,v\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "unterminated CSV quoted field", "COPY t, line 4: \"2,\"b\nc,v\n\"")},
	{name: "csv unquoted cr in lf data", opts: csvOpts, in: "1,10,v\n2,20,v\r",
		err: copyErr(sqlstate.BadCopyFileFormat, "unquoted carriage return found in data", "COPY t, line 2")},
	{name: "csv unquoted lf in crlf data", opts: csvOpts, in: "1,10,v\r\n2,20,v\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "unquoted newline found in data", "COPY t, line 2")},
	{name: "csv missing key", opts: csvOpts, in: "1\n",
		err: copyErr(sqlstate.BadCopyFileFormat, `missing data for column "k"`, `COPY t, line 1: "1"`)},
	{name: "csv extra column", opts: csvOpts, in: "1,10,v,\"w\nx\"\n",
		err: copyErr(sqlstate.BadCopyFileFormat, "extra data after last expected column", "COPY t, line 1: \"1,10,v,\"w\nx\"\"")},
	{name: "csv key not UTF-8", opts: csvOpts, typ: KeyText, in: "1,\"\xff\",v\n",
		err: copyErr(sqlstate.CharacterNotInRepertoire, `invalid byte sequence for encoding "UTF8": 0xff`, "COPY t, line 1")},
	{name: "csv delimiter backslash", opts: CopyOptions{Format: CopyCSV, Delimiter: str(`\`)}, in: "1\\10\\v\n\\.\n",
		ended: true, rows: []caseRow{r("1\\10\\v\n", "10")}},
}

// gotRow is a row as a test keeps it (its bytes copied).
type gotRow struct {
	data  string
	shard int
	line  int64
}

func (g gotRow) String() string { return fmt.Sprintf("{%q shard %d line %d}", g.data, g.shard, g.line) }

// splitPieces feeds the pieces in order, draining Next after each, then
// finishes: the rows and the error.
func splitPieces(s RowSplitter, pieces ...[]byte) (rows []gotRow, err error) {
	drain := func() error {
		for {
			row, ok, err := s.Next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			rows = append(rows, gotRow{string(row.Data), row.Shard, row.Line})
		}
	}
	for _, p := range pieces {
		s.Feed(p)
		if err := drain(); err != nil {
			return rows, err
		}
	}
	s.Finish()
	return rows, drain()
}

func (c copyCase) splitter(t testing.TB) *CopySplitter {
	t.Helper()
	s, err := NewCopySplitter(c.opts, c.target(), caseShards, 0)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return s
}

// want is the case's rows with their shards.
func (c copyCase) want(t testing.TB) []gotRow {
	var want []gotRow
	line := int64(0)
	for _, cr := range c.rows {
		line++
		if cr.line != 0 {
			line = cr.line
		}
		g := gotRow{data: cr.data, line: line}
		switch {
		case cr.header:
			g.shard = AllShards
		case !cr.null:
			v, err := ParseValue(c.target().KeyType, cr.key)
			if err != nil {
				t.Fatalf("%s: the expected key %q: %v", c.name, cr.key, err)
			}
			g.shard = v.Shard(caseShards)
		}
		want = append(want, g)
	}
	return want
}

// check compares what a split gave with what the case expects.
func (c copyCase) check(t *testing.T, how string, got []gotRow, err error) bool {
	t.Helper()
	want := c.want(t)
	if c.err == nil {
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, how, err)
			return false
		}
	} else {
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s (%s): error %v, want %s %s (%s)", c.name, how, err, c.err.Code, c.err.Message, c.err.Context)
			return false
		} else if e.Code != c.err.Code || e.Message != c.err.Message || e.Context != c.err.Context {
			t.Errorf("%s (%s): error %s %q (%q), want %s %q (%q)", c.name, how, e.Code, e.Message, e.Context, c.err.Code, c.err.Message, c.err.Context)
			return false
		}
		// The rows before the error, if the case says so.
		if len(want) == 0 {
			return true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s (%s):\n got %v\nwant %v", c.name, how, got, want)
		return false
	}
	return true
}

// TestCopySplitCases: each case's input gives the same rows and error
// fed at once, in two pieces cut at every byte, byte by byte, and (short
// inputs) in three pieces cut at every pair of bytes.
func TestCopySplitCases(t *testing.T) {
	splits := 0
	for _, c := range copyCases {
		in := []byte(c.in)
		s := c.splitter(t)
		got, err := splitPieces(s, in)
		if !c.check(t, "at once", got, err) {
			continue
		}
		if err == nil && !s.Ended() {
			t.Errorf("%s: Ended() = false after Finish", c.name)
		}
		ok := true
		for i := 0; i <= len(in) && ok; i++ {
			got, err := splitPieces(c.splitter(t), in[:i], in[i:])
			ok = c.check(t, fmt.Sprintf("cut at %d", i), got, err)
			splits++
		}
		var bytewise [][]byte
		for i := range in {
			bytewise = append(bytewise, in[i:i+1])
		}
		got, err = splitPieces(c.splitter(t), bytewise...)
		ok = ok && c.check(t, "byte by byte", got, err)
		for i := 0; i <= len(in) && len(in) <= 40 && ok; i++ {
			for j := i; j <= len(in) && ok; j++ {
				got, err := splitPieces(c.splitter(t), in[:i], in[i:j], in[j:])
				ok = c.check(t, fmt.Sprintf("cut at %d and %d", i, j), got, err)
				splits++
			}
		}
	}
	t.Logf("%d cases, %d splits", len(copyCases), splits)
}

// TestCopyEndMarker: the data after the end-of-copy marker is ignored,
// even fed later; Ended says the marker was seen before Finish.
func TestCopyEndMarker(t *testing.T) {
	for _, c := range copyCases {
		if !c.ended || c.err != nil {
			continue
		}
		s := c.splitter(t)
		s.Feed([]byte(c.in))
		n := 0
		for {
			_, ok, err := s.Next()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !ok {
				break
			}
			n++
		}
		if !s.Ended() || n != len(c.rows) {
			t.Errorf("%s: Ended() = %v after %d rows before Finish; want true after %d", c.name, s.Ended(), n, len(c.rows))
		}
		s.Feed([]byte("more\tbad\trows\n"))
		if _, ok, err := s.Next(); ok || err != nil {
			t.Errorf("%s: data after the marker gave %v, %v", c.name, ok, err)
		}
	}
}

// TestCopyRowViews: rows within one feed are views of it (nothing
// copied); a row spanning feeds is the splitter's, whole.
func TestCopyRowViews(t *testing.T) {
	s, err := NewCopySplitter(CopyOptions{}, CopyTarget{Table: "t", Columns: []string{"k"}, KeyType: KeyInteger}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	feed := []byte("1\n2\n3")
	s.Feed(feed)
	for i := 0; i < 2; i++ {
		row, ok, err := s.Next()
		if !ok || err != nil || &row.Data[0] != &feed[2*i] || len(row.Data) != 2 {
			t.Fatalf("row %d: %q %v %v: not a view of the feed", i, row.Data, ok, err)
		}
	}
	if _, ok, _ := s.Next(); ok {
		t.Fatal("a row from a partial line")
	}
	s.Feed([]byte("4\n5\n"))
	row, ok, err := s.Next()
	if !ok || err != nil || string(row.Data) != "34\n" || row.Line != 3 {
		t.Fatalf("the row spanning feeds: %q line %d, %v %v", row.Data, row.Line, ok, err)
	}
	if row, _, _ := s.Next(); string(row.Data) != "5\n" || row.Line != 4 {
		t.Fatalf("the row after it: %q line %d", row.Data, row.Line)
	}
}

// TestCopyMaxRow: a row longer than the limit is refused (54000), whether
// it came in one feed or many, and what the splitter keeps of a row
// spanning feeds stays near the limit.
func TestCopyMaxRow(t *testing.T) {
	target := CopyTarget{Table: "t", Columns: []string{"k", "v"}, KeyType: KeyInteger}
	long := "1\t" + strings.Repeat("x", 100) + "\n"
	for _, pieces := range [][]string{{long}, {long[:10], long[10:]}, {long[:50], long[50:60], long[60:]}} {
		s, err := NewCopySplitter(CopyOptions{}, target, 2, 64)
		if err != nil {
			t.Fatal(err)
		}
		var bs [][]byte
		for _, p := range pieces {
			bs = append(bs, []byte(p))
		}
		_, err = splitPieces(s, bs...)
		var e *Error
		if !errors.As(err, &e) || e.Code != sqlstate.ProgramLimitExceeded || e.Context != "COPY t, line 1" {
			t.Errorf("%d pieces: %v, want 54000 on line 1", len(pieces), err)
		}
		if cap(s.buf) > 128 {
			t.Errorf("%d pieces: the splitter kept %d bytes", len(pieces), cap(s.buf))
		}
	}
	s, _ := NewCopySplitter(CopyOptions{}, target, 2, 64)
	if rows, err := splitPieces(s, []byte("1\t"+strings.Repeat("x", 61)+"\n")); err != nil || len(rows) != 1 {
		t.Errorf("a row of 64 bytes: %v, %v", rows, err)
	}
}

// TestCopyOptions: the options Postgres 15 refuses, refused with its
// SQLSTATE and message (checked against Postgres in
// TestCopyOptionsMatchPostgres), and the binary format refused with 0A000.
func TestCopyOptions(t *testing.T) {
	target := CopyTarget{Table: "t", Columns: []string{"a", "b"}, KeyType: KeyInteger}
	for _, c := range copyOptionCases {
		_, err := NewCopySplitter(c.opts, target, 2, 0)
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: %v", c.sql, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code || e.Message != c.msg {
			t.Errorf("%s: %v, want %s %s", c.sql, err, c.code, c.msg)
		}
		want := ErrCopyOptions
		if c.unsupported {
			want = ErrUnsupported
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v is not %v", c.sql, err, want)
		}
	}
	for _, name := range []string{"text", "csv", "binary"} {
		if f, err := ParseCopyFormat(name); err != nil || f.String() != name {
			t.Errorf("ParseCopyFormat(%q) = %v, %v", name, f, err)
		}
	}
	for _, name := range []string{"CSV", "Text", "xml", ""} {
		if _, err := ParseCopyFormat(name); err == nil || err.Error() != `COPY format "`+name+`" not recognized` {
			t.Errorf("ParseCopyFormat(%q): %v", name, err)
		}
	}
	for v, want := range map[string]CopyHeader{"": CopyHeaderTrue, "TRUE": CopyHeaderTrue, "on": CopyHeaderTrue, "1": CopyHeaderTrue,
		"false": CopyHeaderFalse, "Off": CopyHeaderFalse, "0": CopyHeaderFalse, "MATCH": CopyHeaderMatch} {
		if h, err := ParseCopyHeader(v); err != nil || h != want {
			t.Errorf("ParseCopyHeader(%q) = %v, %v; want %v", v, h, err, want)
		}
	}
	for _, v := range []string{"maybe", "2", "t", "yes"} {
		if _, err := ParseCopyHeader(v); err == nil || err.(*Error).Code != sqlstate.SyntaxError {
			t.Errorf("ParseCopyHeader(%q): %v, want 42601", v, err)
		}
	}
}

// copyOptionCases are COPY options and what Postgres 15 says of them (""
// when it accepts them). sql is the options as SQL, for the test against
// Postgres.
var copyOptionCases = []struct {
	sql         string
	opts        CopyOptions
	code        sqlstate.Code
	msg         string
	unsupported bool // refused by the splitter, not by Postgres
}{
	{"", CopyOptions{}, "", "", false},
	{"format csv", CopyOptions{Format: CopyCSV}, "", "", false},
	{"delimiter '|', null 'NULL', header", CopyOptions{Delimiter: str("|"), Null: str("NULL"), Header: CopyHeaderTrue}, "", "", false},
	{"delimiter 'A'", CopyOptions{Delimiter: str("A")}, "", "", false},
	{"format csv, delimiter E'\\\\', quote '''', escape E'\\\\', null 'x', header match, force_null (b), force_not_null (b)",
		CopyOptions{Format: CopyCSV, Delimiter: str(`\`), Quote: str("'"), Escape: str(`\`), Null: str("x"), Header: CopyHeaderMatch, ForceNull: true, ForceNotNull: true}, "", "", false},
	{"format csv, quote E'\\n'", CopyOptions{Format: CopyCSV, Quote: str("\n")}, "", "", false},
	{"delimiter 'ab'", CopyOptions{Delimiter: str("ab")}, sqlstate.FeatureNotSupported, "COPY delimiter must be a single one-byte character", false},
	{"delimiter ''", CopyOptions{Delimiter: str("")}, sqlstate.FeatureNotSupported, "COPY delimiter must be a single one-byte character", false},
	{"delimiter 'é'", CopyOptions{Delimiter: str("é")}, sqlstate.FeatureNotSupported, "COPY delimiter must be a single one-byte character", false},
	{"delimiter E'\\n'", CopyOptions{Delimiter: str("\n")}, sqlstate.InvalidParameterValue, "COPY delimiter cannot be newline or carriage return", false},
	{"format csv, delimiter E'\\r'", CopyOptions{Format: CopyCSV, Delimiter: str("\r")}, sqlstate.InvalidParameterValue, "COPY delimiter cannot be newline or carriage return", false},
	{"null E'a\\rb'", CopyOptions{Null: str("a\rb")}, sqlstate.InvalidParameterValue, "COPY null representation cannot use newline or carriage return", false},
	{"delimiter 'a'", CopyOptions{Delimiter: str("a")}, sqlstate.InvalidParameterValue, `COPY delimiter cannot be "a"`, false},
	{"delimiter '.'", CopyOptions{Delimiter: str(".")}, sqlstate.InvalidParameterValue, `COPY delimiter cannot be "."`, false},
	{"delimiter E'\\\\'", CopyOptions{Delimiter: str(`\`)}, sqlstate.InvalidParameterValue, `COPY delimiter cannot be "\"`, false},
	{"delimiter '7'", CopyOptions{Delimiter: str("7")}, sqlstate.InvalidParameterValue, `COPY delimiter cannot be "7"`, false},
	{"quote '\"'", CopyOptions{Quote: str(`"`)}, sqlstate.FeatureNotSupported, "COPY quote available only in CSV mode", false},
	{"escape '\"'", CopyOptions{Escape: str(`"`)}, sqlstate.FeatureNotSupported, "COPY escape available only in CSV mode", false},
	{"format csv, quote 'ab'", CopyOptions{Format: CopyCSV, Quote: str("ab")}, sqlstate.FeatureNotSupported, "COPY quote must be a single one-byte character", false},
	{"format csv, quote ''", CopyOptions{Format: CopyCSV, Quote: str("")}, sqlstate.FeatureNotSupported, "COPY quote must be a single one-byte character", false},
	{"format csv, quote ','", CopyOptions{Format: CopyCSV, Quote: str(",")}, sqlstate.InvalidParameterValue, "COPY delimiter and quote must be different", false},
	{"format csv, delimiter '\"'", CopyOptions{Format: CopyCSV, Delimiter: str(`"`)}, sqlstate.InvalidParameterValue, "COPY delimiter and quote must be different", false},
	{"format csv, escape ''", CopyOptions{Format: CopyCSV, Escape: str("")}, sqlstate.FeatureNotSupported, "COPY escape must be a single one-byte character", false},
	{"format csv, null 'a,b'", CopyOptions{Format: CopyCSV, Null: str("a,b")}, sqlstate.FeatureNotSupported, "COPY delimiter must not appear in the NULL specification", false},
	{"null E'a\\tb'", CopyOptions{Null: str("a\tb")}, sqlstate.FeatureNotSupported, "COPY delimiter must not appear in the NULL specification", false},
	{"format csv, null 'a\"b'", CopyOptions{Format: CopyCSV, Null: str(`a"b`)}, sqlstate.FeatureNotSupported, "CSV quote character must not appear in the NULL specification", false},
	{"force_not_null (b)", CopyOptions{ForceNotNull: true}, sqlstate.FeatureNotSupported, "COPY force not null available only in CSV mode", false},
	{"force_null (b)", CopyOptions{ForceNull: true}, sqlstate.FeatureNotSupported, "COPY force null available only in CSV mode", false},
	{"format binary, delimiter ','", CopyOptions{Format: CopyBinary, Delimiter: str(",")}, sqlstate.SyntaxError, "cannot specify DELIMITER in BINARY mode", false},
	{"format binary, null 'x'", CopyOptions{Format: CopyBinary, Null: str("x")}, sqlstate.SyntaxError, "cannot specify NULL in BINARY mode", false},
	{"format binary, header", CopyOptions{Format: CopyBinary, Header: CopyHeaderTrue}, sqlstate.FeatureNotSupported, "cannot specify HEADER in BINARY mode", false},
	{"format binary, quote 'x'", CopyOptions{Format: CopyBinary, Quote: str("x")}, sqlstate.FeatureNotSupported, "COPY quote available only in CSV mode", false},
	{"format binary", CopyOptions{Format: CopyBinary}, sqlstate.FeatureNotSupported, "COPY FROM STDIN in binary format is not supported on a sharded table", true},
}

// FuzzCopySplit: any data, fed at once or cut anywhere into pieces, gives
// the same rows, lines and error, and never panics; without an error, the
// rows are the data (up to an end-of-copy marker) byte for byte.
func FuzzCopySplit(f *testing.F) {
	for i, c := range copyCases {
		f.Add([]byte(c.in), uint8(i), uint64(0x9e3779b97f4a7c15)*uint64(i+1))
	}
	f.Add([]byte("1\t2\n\\.\r\n"), uint8(0), uint64(7))
	f.Fuzz(func(t *testing.T, data []byte, opt uint8, cuts uint64) {
		c := copyCases[int(opt)%len(copyCases)]
		c.cols, c.key = []string{"a", "b", "c"}, int(opt>>6)%3
		c.typ = []KeyType{KeyInteger, KeyText, KeyUUID}[int(opt>>4)%3]
		whole, werr := splitPieces(c.splitter(t), data)
		var pieces [][]byte
		rest := data
		for x := cuts; len(rest) > 0; x >>= 3 {
			n := min(int(x&7), len(rest))
			if x == 0 {
				n = len(rest)
			}
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		cut, cerr := splitPieces(c.splitter(t), pieces...)
		if fmt.Sprint(whole) != fmt.Sprint(cut) || fmt.Sprint(werr) != fmt.Sprint(cerr) {
			t.Fatalf("%s, pieces %q:\nat once %v %v\n    cut %v %v", c.name, pieces, whole, werr, cut, cerr)
		}
		var cat bytes.Buffer
		for _, r := range whole {
			cat.WriteString(r.data)
			if r.shard < AllShards || r.shard >= caseShards {
				t.Fatalf("shard %d", r.shard)
			}
		}
		if !bytes.HasPrefix(data, cat.Bytes()) {
			t.Fatalf("the rows %q are not the data %q", cat.Bytes(), data)
		}
		// Rows end before the data only at an end-of-copy marker: alone on
		// the line that follows, or ending the last row (text).
		if rest := data[cat.Len():]; werr == nil && len(rest) > 0 && !bytes.HasPrefix(rest, []byte(`\.`)) &&
			!(len(whole) > 0 && strings.Contains(whole[len(whole)-1].data, `\.`)) {
			t.Fatalf("the rows %q end before the data %q, not at an end marker", cat.Bytes(), data)
		}
	})
}

// The splitter on COPY data of pgbench_accounts' shape (aid, bid,
// abalance, an 84-byte filler: about 100 bytes a row), keyed by aid, over
// 4 shards, fed in 64 KiB CopyData payloads cut anywhere, each row
// appended to its shard's outgoing buffer as the proxy does. One op is one
// payload; run with -benchmem: no allocation per payload or row.
func BenchmarkCopySplit(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts CopyOptions
		sep  string
	}{{"text", CopyOptions{}, "\t"}, {"csv", CopyOptions{Format: CopyCSV}, ","}} {
		b.Run(bc.name, func(b *testing.B) {
			var data []byte
			rows := 0
			for aid := 1; len(data) < 4<<20; aid++ {
				data = fmt.Appendf(data, "%d%s%d%s0%s%s\n", aid, bc.sep, (aid-1)/100000+1, bc.sep, bc.sep, strings.Repeat(" ", 84))
				rows++
			}
			// Whole payloads, the last row's filler longer: the stream goes on
			// from the first row after the last.
			const msg = 64 << 10
			pad := (msg - len(data)%msg) % msg
			data = append(data[:len(data)-1], append(bytes.Repeat([]byte(" "), pad), '\n')...)
			s, err := NewCopySplitter(bc.opts, CopyTarget{Table: "pgbench_accounts", Columns: []string{"aid", "bid", "abalance", "filler"},
				KeyType: KeyInteger}, 4, 0)
			if err != nil {
				b.Fatal(err)
			}
			benchSplit(b, s, data, msg)
		})
	}
}

// A COPY into a table sharded by id over 2 shards: the rows of each
// CopyData go to their shards' buffers; a row cut between two CopyData
// messages comes out whole.
func ExampleCopySplitter() {
	s, err := NewCopySplitter(CopyOptions{Format: CopyCSV, Header: CopyHeaderTrue},
		CopyTarget{Table: "accounts", Columns: []string{"id", "name"}, Key: 0, KeyType: KeyInteger}, 2, 0)
	if err != nil {
		panic(err)
	}
	perShard := make([][]byte, 2)
	next := func() {
		for {
			row, ok, err := s.Next()
			if err != nil {
				panic(err)
			}
			if !ok {
				return
			}
			if row.Shard == AllShards { // the header line: every shard skips its own
				for k := range perShard {
					perShard[k] = append(perShard[k], row.Data...)
				}
				continue
			}
			perShard[row.Shard] = append(perShard[row.Shard], row.Data...)
		}
	}
	for _, payload := range []string{"id,name\n1,alice\n2,b", "ob\n3,\"carol\nand dave\"\n4,erin"} {
		s.Feed([]byte(payload))
		next()
	}
	s.Finish() // CopyDone: the last line, without a newline, is a row too
	next()
	for k, b := range perShard {
		fmt.Printf("shard %d: %q\n", k, b)
	}
	// Output:
	// shard 0: "id,name\n1,alice\n2,bob\n"
	// shard 1: "id,name\n3,\"carol\nand dave\"\n4,erin"
}

// benchSplit feeds s data in messages of msg bytes, round and round, each
// row appended to its shard's buffer (of 4) as the proxy does, and reports
// the time per row.
func benchSplit(b *testing.B, s RowSplitter, data []byte, msg int) {
	out := make([][]byte, 4)
	for k := range out {
		out[k] = make([]byte, 0, 2*msg)
	}
	split := 0
	b.SetBytes(int64(msg))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		off := i * msg % len(data)
		s.Feed(data[off : off+msg])
		for {
			row, ok, err := s.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			if len(out[row.Shard])+len(row.Data) > cap(out[row.Shard]) {
				out[row.Shard] = out[row.Shard][:0] // sent as a CopyData to the shard
			}
			out[row.Shard] = append(out[row.Shard], row.Data...)
			split++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(split, 1)), "ns/row")
}
