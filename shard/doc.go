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
// # Splitting COPY FROM STDIN
//
// A CopySplitter cuts the data of a COPY ... FROM STDIN into a sharded
// table (text and CSV formats) into rows, and says on which shard each
// goes. The proxy feeds it the client's CopyData payloads as they come
// (Feed: their boundaries are arbitrary, a row may span many, a payload may
// hold many rows); Next yields each complete row with its shard, and the
// proxy appends the row to that shard's outgoing CopyData. At CopyDone,
// Finish: a last line without a newline is a row too, as in Postgres. Each
// shard's server runs the client's COPY statement unchanged on the rows
// sent to it, which are the client's bytes, untouched: so the splitter
// must cut rows exactly where Postgres cuts them and read each key exactly
// as Postgres reads it, and it follows Postgres 15's copyfromparse.c to
// do so (line terminators, CSV quotes and escapes, text escapes, the NULL
// string, the end-of-copy marker \.). A header line (HEADER) goes to every
// shard (AllShards), whose server skips (or with MATCH checks) its own.
//
// Copying is kept to what is needed: a row within one payload is a view
// of it; only a row spanning payloads is kept in the splitter's buffer,
// bounded by a maximum row length. Rows are yielded in order with the line
// number Postgres gives them, so that an error a shard reports about a line
// of its own stream can be mapped back to the client's line.
//
// CopyOptions are what the statement says (FORMAT, DELIMITER, NULL, QUOTE,
// ESCAPE, HEADER, and whether FORCE_NULL or FORCE_NOT_NULL name the key);
// NewCopySplitter fills in Postgres's defaults and refuses what Postgres
// refuses, with its SQLSTATE and message. The splitter's own errors are
// Postgres's too (SQLSTATE, message, CONTEXT naming the line and column):
// a bad line terminator or end marker, a missing key column, extra columns,
// a key Postgres's input function refuses, a key not valid UTF-8. The other
// columns' values are left to the shards' Postgres. Not supported: an
// ENCODING other than the server's UTF-8 (the proxy must keep
// client_encoding at the server's).
//
// A BinaryCopySplitter does the same for the binary format (pgx's
// CopyFrom sends it), following Postgres 15's reading of it: the file
// header, which goes to every shard, then tuples of a 16-bit field count
// and length-prefixed fields, then the trailer (to every shard too). A
// tuple's key is read as the binary input functions read it (2, 4 or 8
// bytes of an integer, a text's bytes, a uuid's 16); a key of a length
// no input function of its type accepts goes to shard 0, whose Postgres
// refuses it as Postgres would. The framing errors are Postgres's (a
// file header it refuses, a field count that is not the columns', data
// ending inside a tuple, data after the trailer). NewRowSplitter returns
// the splitter of a COPY's format, both being RowSplitters.
//
// The tests hold the splitters to a real Postgres: every case of their
// tables is COPYed into a hash-partitioned table (same errors, same
// partitions), and random rows with tricky text in several formats (in
// binary, encoded by the tests and by Postgres) land, row by row, in the
// partition the splitter names. FuzzCopySplit and FuzzBinaryCopySplit
// check that any way of cutting the data gives the same rows.
//
// # Concurrency
//
// The package is pure: no I/O, no goroutines, no clock, no global mutable
// state. The hash functions are pure functions; a Schema and a Value are
// immutable once built, so safe to share between goroutines (the event
// loops read one Schema snapshot through an atomic pointer) without a lock.
// A CopySplitter (or BinaryCopySplitter) is the exception: it holds one
// COPY's state and is not safe for concurrent use; one per COPY, owned by
// the event loop of the client doing it.
//
// It imports nothing of belay but codec/sqlstate: never loop, poolcore, ha,
// planner or cmd (the router and the loops import it, not the reverse).
package shard
