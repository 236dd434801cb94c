package shard

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/belaydb/belay/codec/sqlstate"
)

// The sentinels of the schema's errors (Error.Err).
var (
	// ErrKind: a table neither sharded nor a reference table.
	ErrKind = errors.New("shard: unknown table kind")
	// ErrShards: a shard count out of [1, MaxShards].
	ErrShards = errors.New("shard: shard count out of range")
	// ErrName: an empty, too long or otherwise invalid table, schema or
	// column name.
	ErrName = errors.New("shard: invalid name")
	// ErrDuplicate: a table listed twice.
	ErrDuplicate = errors.New("shard: duplicate table")
	// ErrShardedAndReference: a table both sharded and a reference table.
	ErrShardedAndReference = errors.New("shard: table both sharded and reference")
	// ErrNotFound: no such table in the schema (Without).
	ErrNotFound = errors.New("shard: no such table")
	// ErrEncoding: a stored schema that is not valid JSON of this package's
	// form, or of a version this package does not know.
	ErrEncoding = errors.New("shard: invalid schema encoding")
)

// DefaultSchema is the schema an unqualified table name resolves to.
const DefaultSchema = "public"

// MaxNameLen is the longest name Postgres keeps (NAMEDATALEN - 1 bytes);
// it truncates longer identifiers, so a longer name could never match the
// table it seems to name, and is refused.
const MaxNameLen = 63

// MaxShards bounds the shard count, so that what callers keep per shard
// stays small. (Postgres's own bound on a hash modulus is 2^31 - 1.)
const MaxShards = 1 << 16

// TableName is a schema-qualified table name, each part exactly as Postgres
// stores it (case-folded unless it was quoted, without quotes).
type TableName struct {
	Schema string
	Name   string
}

// Compare orders names by schema, then name (bytewise).
func (n TableName) Compare(o TableName) int {
	if c := cmp.Compare(n.Schema, o.Schema); c != 0 {
		return c
	}
	return cmp.Compare(n.Name, o.Name)
}

// String is n as SQL text, schema.name, each part double-quoted when it is
// not a plain lower-case identifier. It does not know Postgres's keywords:
// build statements with SQL, which always quotes.
func (n TableName) String() string {
	return quoteIfNeeded(n.Schema) + "." + quoteIfNeeded(n.Name)
}

// SQL is n as SQL text with both parts double-quoted: safe in a statement
// whatever the names are.
func (n TableName) SQL() string {
	return QuoteIdent(n.Schema) + "." + QuoteIdent(n.Name)
}

// QuoteIdent double-quotes an identifier, doubling the quotes inside it.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteIfNeeded(s string) string {
	if s == "" {
		return QuoteIdent(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '$')) {
			return QuoteIdent(s)
		}
	}
	return s
}

// ParseTableName reads a table name as SQL text: name or schema.name, each
// part an identifier, unquoted (case-folded to lower case, as Postgres folds
// ASCII letters) or double-quoted (kept as written, "" for a quote), with
// optional spaces around the parts. An unqualified name is in
// DefaultSchema. Three-part names (database.schema.name), empty parts and
// names longer than MaxNameLen bytes are ErrName (42602).
func ParseTableName(s string) (TableName, error) {
	var parts []string
	p := strings.TrimLeft(s, " \t\n\r\f\v")
	for {
		id, rest, ok := identifier(p)
		if !ok {
			return TableName{}, nameError("invalid table name " + strconv.Quote(s))
		}
		parts = append(parts, id)
		rest = strings.TrimLeft(rest, " \t\n\r\f\v")
		if rest == "" {
			break
		}
		if rest[0] != '.' || len(parts) == 2 {
			return TableName{}, nameError("invalid table name " + strconv.Quote(s) + " (schema.name at most)")
		}
		p = strings.TrimLeft(rest[1:], " \t\n\r\f\v")
	}
	n := TableName{Schema: DefaultSchema, Name: parts[0]}
	if len(parts) == 2 {
		n = TableName{Schema: parts[0], Name: parts[1]}
	}
	if err := checkName("schema", n.Schema); err != nil {
		return TableName{}, err
	}
	if err := checkName("table", n.Name); err != nil {
		return TableName{}, err
	}
	return n, nil
}

// identifier reads one identifier at the start of s: a quoted one, or an
// unquoted one folded to lower case.
func identifier(s string) (id, rest string, ok bool) {
	if s == "" {
		return "", "", false
	}
	if s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", "", false // no closing quote
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 || i > 0 && (c >= '0' && c <= '9' || c == '$') {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return "", "", false
	}
	return foldASCII(s[:i]), s[i:], true
}

// foldASCII lower-cases ASCII letters only, as Postgres folds unquoted
// identifiers in a multibyte encoding such as UTF8 (downcase_identifier).
func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func nameError(msg string) error {
	return &Error{Code: sqlstate.InvalidName, Message: msg, Err: ErrName}
}

// checkName checks a schema, table or column name as the model keeps it.
func checkName(what, s string) error {
	switch {
	case s == "":
		return nameError(what + " name is empty")
	case len(s) > MaxNameLen:
		return nameError(what + " name " + strconv.Quote(s) + " is longer than " + strconv.Itoa(MaxNameLen) + " bytes")
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		return nameError(what + " name " + strconv.Quote(s) + " is not valid UTF-8 without NUL")
	}
	return nil
}

// Kind says how a table is spread over the shards.
type Kind uint8

const (
	// Sharded: each row lives on the one shard its key hashes to.
	Sharded Kind = 1 + iota
	// Reference: every shard holds a copy of the whole table.
	Reference
)

func (k Kind) String() string {
	switch k {
	case Sharded:
		return "sharded"
	case Reference:
		return "reference"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Table is one table of the sharding schema.
type Table struct {
	Name    TableName
	Kind    Kind
	Key     string  // Sharded: the key column's name, as Postgres stores it
	KeyType KeyType // Sharded: its type
}

// ShardedTable is the Table of a sharded table.
func ShardedTable(name TableName, key string, t KeyType) Table {
	return Table{Name: name, Kind: Sharded, Key: key, KeyType: t}
}

// ReferenceTable is the Table of a reference table.
func ReferenceTable(name TableName) Table {
	return Table{Name: name, Kind: Reference}
}

// Schema is the sharding schema: how many shards there are, which tables are
// sharded and by what key, which are reference tables. It is immutable once
// built by New (or Decode, With, Without), and so safe to share between
// goroutines without a lock.
type Schema struct {
	shards int
	tables []Table // sorted by name, names unique
}

// New validates and builds a schema of shards shards holding tables (in any
// order; copied). A table whose Name.Schema is empty is in DefaultSchema.
// The error is an *Error matching one of ErrShards, ErrName, ErrKind,
// ErrKeyType, ErrDuplicate or ErrShardedAndReference: the first problem, in
// name order.
func New(shards int, tables ...Table) (*Schema, error) {
	if shards < 1 || shards > MaxShards {
		return nil, &Error{Code: sqlstate.InvalidParameterValue, Message: "shard count " + strconv.Itoa(shards) + " out of range [1, " + strconv.Itoa(MaxShards) + "]", Err: ErrShards}
	}
	ts := make([]Table, len(tables))
	for i, t := range tables {
		if t.Name.Schema == "" {
			t.Name.Schema = DefaultSchema
		}
		ts[i] = t
	}
	slices.SortStableFunc(ts, func(a, b Table) int { return a.Name.Compare(b.Name) })
	for i, t := range ts {
		if err := checkTable(t); err != nil {
			return nil, err
		}
		if i > 0 && ts[i-1].Name == t.Name {
			if ts[i-1].Kind != t.Kind {
				return nil, &Error{Code: sqlstate.InvalidTableDefinition, Message: "table " + t.Name.String() + " is both sharded and a reference table", Err: ErrShardedAndReference}
			}
			return nil, &Error{Code: sqlstate.DuplicateObject, Message: t.Kind.String() + " table " + t.Name.String() + " is listed twice", Err: ErrDuplicate}
		}
	}
	return &Schema{shards: shards, tables: ts}, nil
}

func checkTable(t Table) error {
	if err := checkName("schema", t.Name.Schema); err != nil {
		return err
	}
	if err := checkName("table", t.Name.Name); err != nil {
		return err
	}
	switch t.Kind {
	case Sharded:
		if err := checkName("sharded table "+t.Name.String()+": key column", t.Key); err != nil {
			return err
		}
		if !t.KeyType.Valid() {
			return &Error{Code: sqlstate.UndefinedObject, Message: "sharded table " + t.Name.String() + ": unknown key type " + t.KeyType.String() + " (integer, text or uuid)", Err: ErrKeyType}
		}
	case Reference:
		if t.Key != "" || t.KeyType != 0 {
			return &Error{Code: sqlstate.InvalidTableDefinition, Message: "reference table " + t.Name.String() + " has a key: only sharded tables have one", Err: ErrKeyType}
		}
	default:
		return &Error{Code: sqlstate.InvalidParameterValue, Message: "table " + t.Name.String() + ": unknown kind " + t.Kind.String(), Err: ErrKind}
	}
	return nil
}

// Shards is the shard count: the modulus of every sharded table's hash.
func (s *Schema) Shards() int { return s.shards }

// Tables returns every table, sorted by name (a copy).
func (s *Schema) Tables() []Table { return slices.Clone(s.tables) }

// Len is the number of tables.
func (s *Schema) Len() int { return len(s.tables) }

// Table returns the table named n, if the schema has it.
func (s *Schema) Table(n TableName) (Table, bool) {
	i, ok := slices.BinarySearchFunc(s.tables, n, func(t Table, n TableName) int { return t.Name.Compare(n) })
	if !ok {
		return Table{}, false
	}
	return s.tables[i], true
}

// Lookup returns the table name in schema, as a parser reports a table
// reference (identifiers already folded and unquoted); an empty schema (an
// unqualified name) means DefaultSchema.
func (s *Schema) Lookup(schema, name string) (Table, bool) {
	if schema == "" {
		schema = DefaultSchema
	}
	return s.Table(TableName{Schema: schema, Name: name})
}

// With returns a schema with t added (validated as New does): ErrDuplicate
// or ErrShardedAndReference if a table of that name is already there.
func (s *Schema) With(t Table) (*Schema, error) {
	return New(s.shards, append(slices.Clone(s.tables), t)...)
}

// Without returns a schema without the table named n (ErrNotFound if it has
// no such table).
func (s *Schema) Without(n TableName) (*Schema, error) {
	if n.Schema == "" {
		n.Schema = DefaultSchema
	}
	i, ok := slices.BinarySearchFunc(s.tables, n, func(t Table, n TableName) int { return t.Name.Compare(n) })
	if !ok {
		return nil, &Error{Code: sqlstate.UndefinedTable, Message: "table " + n.String() + " is not in the sharding schema", Err: ErrNotFound}
	}
	return &Schema{shards: s.shards, tables: slices.Delete(slices.Clone(s.tables), i, i+1)}, nil
}

// Equal says whether s and o have the same shard count and tables.
func (s *Schema) Equal(o *Schema) bool {
	return s.shards == o.shards && slices.Equal(s.tables, o.tables)
}
