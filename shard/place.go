package shard

// Key is the Go type of a sharding key's value: int64 for the integer kinds
// (smallint, integer and bigint hash alike for equal values), string for
// text and varchar (the bytes, in the server's encoding), [16]byte for uuid.
type Key interface {
	int64 | string | [16]byte
}

// RowHash is the 64-bit hash Postgres computes for a row whose partition key
// is the one column key (compute_partition_hash_value and
// satisfies_hash_partition in src/backend/partitioning/partbounds.c):
// HashCombine64(0, the column's extended hash with PartitionSeed).
func RowHash[K Key](key K) uint64 {
	switch k := any(key).(type) {
	case int64:
		return HashCombine64(0, HashInt8Extended(k, PartitionSeed))
	case string:
		return HashCombine64(0, HashTextExtended(k, PartitionSeed))
	case [16]byte:
		return HashCombine64(0, HashUUIDExtended(k, PartitionSeed))
	}
	panic("BUG: shard.RowHash: a Key type without a case")
}

// Shard is the shard, in [0, modulus), that holds the rows whose key is key:
// the remainder of the partition `FOR VALUES WITH (MODULUS modulus,
// REMAINDER k)` of a table `PARTITION BY HASH (key)` that Postgres would put
// such a row in, RowHash(key) % modulus. So shard k of N holds exactly the
// rows of that partition, which a user can check inside Postgres with
// satisfies_hash_partition. modulus must be positive.
func Shard[K Key](modulus int, key K) int {
	if modulus <= 0 {
		panic("BUG: shard.Shard: modulus must be positive")
	}
	return int(RowHash(key) % uint64(modulus))
}

// NullShard is the shard of the rows whose key is NULL: Postgres skips NULL
// columns when it hashes a row, so their row hash is 0 and their remainder
// is 0 whatever the modulus.
const NullShard = 0

// Value is a key's value tagged with its KeyType, as ParseValue and
// DecodeBinary make it from a literal or a parameter. The zero Value is
// NULL: its shard is NullShard.
type Value struct {
	typ KeyType // 0: NULL
	i   int64
	s   string
	u   [16]byte
}

// Int is the Value of an integer key.
func Int(v int64) Value { return Value{typ: KeyInteger, i: v} }

// Text is the Value of a text key.
func Text(s string) Value { return Value{typ: KeyText, s: s} }

// UUID is the Value of a uuid key.
func UUID(u [16]byte) Value { return Value{typ: KeyUUID, u: u} }

// Null is the NULL Value (the zero Value).
func Null() Value { return Value{} }

// Type is v's key type; 0 (no KeyType) for NULL.
func (v Value) Type() KeyType { return v.typ }

// IsNull says whether v is NULL.
func (v Value) IsNull() bool { return v.typ == 0 }

// Int is an integer Value's value (0 for other types).
func (v Value) Int() int64 { return v.i }

// Text is a text Value's string ("" for other types).
func (v Value) Text() string { return v.s }

// UUID is a uuid Value's bytes (zero for other types).
func (v Value) UUID() [16]byte { return v.u }

// RowHash is the row hash of a row whose key is v (0 for NULL).
func (v Value) RowHash() uint64 {
	switch v.typ {
	case KeyInteger:
		return RowHash(v.i)
	case KeyText:
		return RowHash(v.s)
	case KeyUUID:
		return RowHash(v.u)
	}
	return 0
}

// Shard is the shard of the rows whose key is v (see Shard); NullShard for
// NULL. modulus must be positive.
func (v Value) Shard(modulus int) int {
	if modulus <= 0 {
		panic("BUG: shard.Value.Shard: modulus must be positive")
	}
	return int(v.RowHash() % uint64(modulus))
}

// String is v in Postgres's text output form ("NULL" for NULL), for
// messages.
func (v Value) String() string {
	switch v.typ {
	case KeyInteger:
		return formatInt(v.i)
	case KeyText:
		return v.s
	case KeyUUID:
		return FormatUUID(v.u)
	}
	return "NULL"
}
