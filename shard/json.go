package shard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"

	"github.com/belaydb/belay/codec/sqlstate"
)

// EncodingVersion is the version of the JSON form MarshalJSON writes and
// Decode reads. A change of the form that an older belay would misread
// takes a new version; Decode refuses versions it does not know.
const EncodingVersion = 1

// The stored form, version 1:
//
//	{"version":1,"shards":4,
//	 "sharded":[{"schema":"public","table":"accounts","key":"aid","key_type":"integer"}],
//	 "reference":[{"schema":"public","table":"branches"}]}
//
// Tables are sorted by (schema, table), both lists are always present, and
// every field is required: equal schemas encode to equal bytes.
type jsonSchema struct {
	Version   int            `json:"version"`
	Shards    int            `json:"shards"`
	Sharded   []jsonSharded  `json:"sharded"`
	Reference []jsonRefTable `json:"reference"`
}

type jsonSharded struct {
	Schema  string `json:"schema"`
	Table   string `json:"table"`
	Key     string `json:"key"`
	KeyType string `json:"key_type"`
}

type jsonRefTable struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
}

// MarshalJSON encodes s in its stored JSON form (see EncodingVersion).
func (s *Schema) MarshalJSON() ([]byte, error) {
	j := jsonSchema{Version: EncodingVersion, Shards: s.shards, Sharded: []jsonSharded{}, Reference: []jsonRefTable{}}
	for _, t := range s.tables {
		switch t.Kind {
		case Sharded:
			j.Sharded = append(j.Sharded, jsonSharded{Schema: t.Name.Schema, Table: t.Name.Name, Key: t.Key, KeyType: t.KeyType.String()})
		case Reference:
			j.Reference = append(j.Reference, jsonRefTable{Schema: t.Name.Schema, Table: t.Name.Name})
		default:
			panic("BUG: shard.Schema holds a table of kind " + t.Kind.String())
		}
	}
	return json.Marshal(j)
}

// Decode reads a schema from its stored JSON form and validates it as New
// does. Unknown fields, missing fields, a version other than
// EncodingVersion and anything after the object are ErrEncoding (XX001);
// a valid encoding of an invalid schema is New's error.
func Decode(data []byte) (*Schema, error) {
	// Every field is required: decode into pointers to see which are absent.
	var j struct {
		Version *int `json:"version"`
		Shards  *int `json:"shards"`
		Sharded *[]struct {
			Schema  *string `json:"schema"`
			Table   *string `json:"table"`
			Key     *string `json:"key"`
			KeyType *string `json:"key_type"`
		} `json:"sharded"`
		Reference *[]struct {
			Schema *string `json:"schema"`
			Table  *string `json:"table"`
		} `json:"reference"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, encodingError("invalid sharding schema: " + err.Error())
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, encodingError("invalid sharding schema: data after the object")
	}
	if j.Version == nil {
		return nil, encodingError("invalid sharding schema: no version")
	}
	if *j.Version != EncodingVersion {
		return nil, encodingError("sharding schema version " + strconv.Itoa(*j.Version) + " is not the version this belay knows (" + strconv.Itoa(EncodingVersion) + ")")
	}
	if j.Shards == nil || j.Sharded == nil || j.Reference == nil {
		return nil, encodingError(`invalid sharding schema: "shards", "sharded" and "reference" are required`)
	}
	tables := make([]Table, 0, len(*j.Sharded)+len(*j.Reference))
	for i, t := range *j.Sharded {
		if t.Schema == nil || t.Table == nil || t.Key == nil || t.KeyType == nil {
			return nil, encodingError("invalid sharding schema: sharded table " + strconv.Itoa(i) + `: "schema", "table", "key" and "key_type" are required`)
		}
		kt, ok := schemaKeyTypes[*t.KeyType]
		if !ok {
			return nil, &Error{Code: sqlstate.UndefinedObject, Message: "sharded table " + TableName{*t.Schema, *t.Table}.String() + ": unknown key type " + strconv.Quote(*t.KeyType) + " (integer, text or uuid)", Err: ErrKeyType}
		}
		tables = append(tables, ShardedTable(TableName{Schema: *t.Schema, Name: *t.Table}, *t.Key, kt))
	}
	for i, t := range *j.Reference {
		if t.Schema == nil || t.Table == nil {
			return nil, encodingError("invalid sharding schema: reference table " + strconv.Itoa(i) + `: "schema" and "table" are required`)
		}
		tables = append(tables, ReferenceTable(TableName{Schema: *t.Schema, Name: *t.Table}))
	}
	for _, t := range tables {
		if t.Name.Schema == "" { // New would default it: the stored form never omits it
			return nil, encodingError("invalid sharding schema: table " + strconv.Quote(t.Name.Name) + " has an empty schema")
		}
	}
	return New(*j.Shards, tables...)
}

// schemaKeyTypes are the key type names of the stored form: the canonical
// ones only, so that a stored schema has one spelling.
var schemaKeyTypes = map[string]KeyType{"integer": KeyInteger, "text": KeyText, "uuid": KeyUUID}

func encodingError(msg string) error {
	return &Error{Code: sqlstate.DataCorrupted, Message: msg, Err: ErrEncoding}
}
