// Package shard is the pure foundation of hash sharding (issue J): where a
// row lives, and the sharding schema that says which tables are spread how.
//
// # Placement is Postgres's own hash partitioning
//
// A sharded table's rows are placed exactly as Postgres places them in a
// table PARTITION BY HASH (key): shard k of N holds the rows of the
// partition FOR VALUES WITH (MODULUS N, REMAINDER k). So a user can check
// placement inside Postgres (satisfies_hash_partition, or a partitioned
// table's tableoid) and move the data back into a plain partitioned table.
// The hash is Postgres's, bit for bit:
//
//   - HashBytesExtended and HashUint32Extended are hash_bytes_extended and
//     hash_bytes_uint32_extended (src/common/hashfn.c: Bob Jenkins' lookup3
//     with a 64-bit seed);
//   - HashInt2Extended, HashInt4Extended, HashInt8Extended, HashTextExtended
//     and HashUUIDExtended are the extended hash functions of the hash
//     operator classes a partition key uses (hashint8extended folds the high
//     half into the low one, so equal smallint, integer and bigint values
//     hash alike);
//   - RowHash is compute_partition_hash_value for a one-column key:
//     HashCombine64(0, column hash with PartitionSeed); Shard is its
//     remainder modulo the shard count. A NULL key is skipped, as Postgres
//     skips it: its row hash is 0 and its shard NullShard.
//
// Postgres reads the key as words in the server's byte order: these are the
// hashes of little-endian servers (x86-64, arm64), the only ones the
// project supports. Text keys hash their bytes, which must be in the
// server's encoding, under a deterministic collation (char(n), whose hash
// ignores trailing spaces, and nondeterministic ICU collations are not
// supported key types).
//
// ParseInt64 and ParseUUID read key values from the text forms Postgres 15
// accepts, with Postgres's SQLSTATEs and messages when it would refuse them;
// ParseValue and DecodeBinary read a Value of a given KeyType from a literal
// or a Bind parameter in either format.
//
// # The sharding schema
//
// A Schema is the shard count, the sharded tables (schema-qualified name,
// key column, KeyType) and the reference tables (copied to every shard),
// validated by New: names non-empty and at most MaxNameLen bytes, a known
// key type, no table listed twice or both sharded and a reference table,
// 1 to MaxShards shards. Lookup resolves an unqualified name in
// DefaultSchema (public). MarshalJSON and Decode are its stored form (in
// etcd), with a version field; Decode is fuzzed (FuzzDecode).
//
// Errors are *Error values carrying a SQLSTATE (codec/sqlstate) and a
// sentinel for errors.Is; nothing matches message strings.
//
// # Concurrency
//
// The package is pure: no I/O, no goroutines, no clock, no global mutable
// state. The hash functions are pure functions; a Schema and a Value are
// immutable once built, so safe to share between goroutines (the event
// loops read one Schema snapshot through an atomic pointer) without a lock.
//
// It imports nothing of belay but codec/sqlstate: never loop, poolcore, ha,
// planner or cmd (the router and the loops import it, not the reverse).
package shard
