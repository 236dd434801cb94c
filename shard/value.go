package shard

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
)

// KeyType is the type of a sharded table's key column, as far as placement
// is concerned: the integer kinds hash alike, text and varchar hash alike.
type KeyType uint8

const (
	KeyInteger KeyType = 1 + iota // smallint, integer, bigint
	KeyText                       // text, varchar (deterministic collations)
	KeyUUID                       // uuid
)

// String is the key type's name in the sharding schema: "integer", "text" or
// "uuid".
func (t KeyType) String() string {
	switch t {
	case KeyInteger:
		return "integer"
	case KeyText:
		return "text"
	case KeyUUID:
		return "uuid"
	}
	return "KeyType(" + strconv.Itoa(int(t)) + ")"
}

// Valid says whether t is one of the key types.
func (t KeyType) Valid() bool { return t >= KeyInteger && t <= KeyUUID }

// keyTypeNames are the names ParseKeyType accepts: the schema's own and
// Postgres's names of the column types each covers.
var keyTypeNames = map[string]KeyType{
	"integer": KeyInteger, "int": KeyInteger, "int2": KeyInteger, "int4": KeyInteger,
	"int8": KeyInteger, "smallint": KeyInteger, "bigint": KeyInteger,
	"text": KeyText, "varchar": KeyText, "character varying": KeyText,
	"uuid": KeyUUID,
}

// ParseKeyType reads a key type from its name in the schema ("integer",
// "text", "uuid") or from the name of a Postgres column type it covers
// (smallint, int2, int, int4, bigint, int8, varchar, character varying),
// case-insensitively. Anything else (char(n) among them: its hash ignores
// trailing spaces) is an ErrKeyType.
func ParseKeyType(s string) (KeyType, error) {
	if t, ok := keyTypeNames[strings.ToLower(strings.TrimSpace(s))]; ok {
		return t, nil
	}
	return 0, &Error{Code: sqlstate.UndefinedObject, Message: "unknown sharding key type " + strconv.Quote(s) + " (integer, text or uuid)", Err: ErrKeyType}
}

// Error is an error of this package with its SQLSTATE: a key value Postgres
// would not accept, a sharding schema that is not valid, COPY options or
// data Postgres would refuse. Err is the sentinel it matches with errors.Is
// (ErrKeyType, ErrDuplicate, ...).
type Error struct {
	Code    sqlstate.Code
	Message string // as Postgres words it, where Postgres has the error
	// Hint and Context are Postgres's HINT and CONTEXT fields of the
	// error, where it has them: a COPY's errors name the line (and the
	// column) as "COPY t, line 3, column aid: ..." in Context. Empty
	// otherwise.
	Hint    string
	Context string
	Err     error
}

// Error is the message, followed by the context in parentheses when there
// is one.
func (e *Error) Error() string {
	if e.Context == "" {
		return e.Message
	}
	return e.Message + " (" + e.Context + ")"
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// The sentinels of Error.Err.
var (
	// ErrSyntax: a key value's text is not valid input for its type (22P02).
	ErrSyntax = errors.New("shard: invalid input syntax")
	// ErrRange: an integer key out of bigint's range (22003).
	ErrRange = errors.New("shard: value out of range")
	// ErrBinary: a binary key value of the wrong length (22P03).
	ErrBinary = errors.New("shard: incorrect binary data format")
	// ErrKeyType: not a supported key type.
	ErrKeyType = errors.New("shard: unknown key type")
)

// isSpace is C's isspace in the C locale, which Postgres's integer input
// skips around the digits.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// ParseInt64 reads an integer as Postgres 15's bigint input does
// (pg_strtoint64): optional leading and trailing whitespace, an optional
// sign, at least one decimal digit, nothing else. Values outside bigint's
// range are ErrRange (22003), anything else unparsable is ErrSyntax (22P02),
// with Postgres's messages. (Postgres 16's hexadecimal, octal and binary
// prefixes and digit underscores are refused: Postgres 15 refuses them too.)
func ParseInt64(s string) (int64, error) { return parseInt64(s) }

// parseInt64 is ParseInt64 of a string or of bytes (a COPY field), which it
// does not keep: the bytes are copied only into an error's message.
func parseInt64[S string | []byte](s S) (int64, error) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	if i == len(s) || s[i] < '0' || s[i] > '9' {
		return 0, intSyntax(string(s))
	}
	// Accumulate negatively, as Postgres does, so that the minimum fits;
	// like Postgres, an overflow is reported at once, whatever follows.
	var v int64
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := int64(s[i] - '0')
		if v < (-1<<63+d)/10 { // v*10 - d < MinInt64 (Go's division rounds toward zero)
			return 0, intRange(string(s))
		}
		v = v*10 - d
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i != len(s) {
		return 0, intSyntax(string(s))
	}
	if !neg {
		if v == -1<<63 {
			return 0, intRange(string(s))
		}
		v = -v
	}
	return v, nil
}

func intSyntax(s string) error {
	return &Error{Code: sqlstate.InvalidTextRepresentation, Message: `invalid input syntax for type bigint: "` + s + `"`, Err: ErrSyntax}
}

func intRange(s string) error {
	return &Error{Code: sqlstate.NumericValueOutOfRange, Message: `value "` + s + `" is out of range for type bigint`, Err: ErrRange}
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

// unhex is the value of a hexadecimal digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ParseUUID reads a uuid as Postgres's uuid input does (string_to_uuid): 32
// hexadecimal digits of either case, optionally with a hyphen after any
// group of four digits (but not after the last), optionally in braces; no
// whitespace. So the canonical 8-4-4-4-12 form, the form without hyphens,
// {braced} ones and hyphens after every four digits are all accepted.
// Anything else is ErrSyntax (22P02).
func ParseUUID(s string) ([16]byte, error) { return parseUUID(s) }

// parseUUID is ParseUUID of a string or of bytes (a COPY field), which it
// does not keep.
func parseUUID[S string | []byte](s S) ([16]byte, error) {
	var u [16]byte
	p := s
	braces := len(p) > 0 && p[0] == '{'
	if braces {
		p = p[1:]
	}
	for i := range u {
		if len(p) < 2 {
			return [16]byte{}, uuidSyntax(string(s))
		}
		hi, lo := unhex(p[0]), unhex(p[1])
		if hi < 0 || lo < 0 {
			return [16]byte{}, uuidSyntax(string(s))
		}
		u[i] = byte(hi<<4 | lo)
		p = p[2:]
		if len(p) > 0 && p[0] == '-' && i%2 == 1 && i < len(u)-1 {
			p = p[1:]
		}
	}
	if braces {
		if len(p) == 0 || p[0] != '}' {
			return [16]byte{}, uuidSyntax(string(s))
		}
		p = p[1:]
	}
	if len(p) != 0 {
		return [16]byte{}, uuidSyntax(string(s))
	}
	return u, nil
}

func uuidSyntax(s string) error {
	return &Error{Code: sqlstate.InvalidTextRepresentation, Message: `invalid input syntax for type uuid: "` + s + `"`, Err: ErrSyntax}
}

// FormatUUID is u in Postgres's output form, 8-4-4-4-12 lower-case
// hexadecimal digits.
func FormatUUID(u [16]byte) string {
	const digits = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = digits[c>>4], digits[c&15]
		j += 2
	}
	return string(b[:])
}

// ParseValue reads a key of type t from its text form (a literal's value,
// or a parameter sent in text format): ParseInt64 for integers, ParseUUID
// for uuids, the string itself for text.
//
// An integer key of a smallint or integer column places a row as the equal
// bigint does, so ParseValue does not check the column's narrower range:
// Postgres refuses such a value anyway, on whatever shard it is sent to.
func ParseValue(t KeyType, s string) (Value, error) {
	switch t {
	case KeyInteger:
		v, err := ParseInt64(s)
		if err != nil {
			return Value{}, err
		}
		return Int(v), nil
	case KeyText:
		return Text(s), nil
	case KeyUUID:
		u, err := ParseUUID(s)
		if err != nil {
			return Value{}, err
		}
		return UUID(u), nil
	}
	return Value{}, &Error{Code: sqlstate.UndefinedObject, Message: "unknown sharding key type " + t.String(), Err: ErrKeyType}
}

// DecodeBinary reads a key of type t from its binary format (a parameter
// sent in binary): for integers a big-endian two's-complement smallint,
// integer or bigint (2, 4 or 8 bytes), for uuids the 16 bytes, for text the
// bytes themselves. A wrong length is ErrBinary (22P03).
func DecodeBinary(t KeyType, b []byte) (Value, error) {
	switch t {
	case KeyInteger:
		switch len(b) {
		case 2:
			return Int(int64(int16(binary.BigEndian.Uint16(b)))), nil
		case 4:
			return Int(int64(int32(binary.BigEndian.Uint32(b)))), nil
		case 8:
			return Int(int64(binary.BigEndian.Uint64(b))), nil
		}
	case KeyText:
		return Text(string(b)), nil
	case KeyUUID:
		if len(b) == 16 {
			return UUID([16]byte(b)), nil
		}
	default:
		return Value{}, &Error{Code: sqlstate.UndefinedObject, Message: "unknown sharding key type " + t.String(), Err: ErrKeyType}
	}
	return Value{}, &Error{Code: sqlstate.InvalidBinaryRepresentation, Message: "incorrect binary data format for a " + t.String() + " key (" + strconv.Itoa(len(b)) + " bytes)", Err: ErrBinary}
}
