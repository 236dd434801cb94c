package shard

import (
	"encoding/binary"
	"math/bits"
)

// PartitionSeed is HASH_PARTITION_SEED (src/include/catalog/partition.h):
// the seed Postgres passes to a key column's extended hash function when it
// places a row in a hash partition.
const PartitionSeed uint64 = 0x7A5B22367996DCFD

// The functions below are Bob Jenkins' lookup3 as PostgreSQL adapted it
// (src/common/hashfn.c), in the 64-bit "extended" form with a seed. Postgres
// reads the key as 32-bit words in the machine's byte order, so its hashes
// differ between little- and big-endian servers; these are the
// little-endian ones (x86-64, arm64, ppc64le), as hash partitions of such
// servers hold them.

// mix mixes three 32-bit values reversibly (hashfn.c's mix()).
func mix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

// final is the final mixing of (a, b, c) into c and b (hashfn.c's final()).
func final(a, b, c uint32) (uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return b, c
}

// initial is lookup3's starting state for a key of n bytes, perturbed by a
// non-zero seed as if the seed were a 12-byte block of its own (high half,
// low half, four zero bytes).
func initial(n int, seed uint64) (a, b, c uint32) {
	a = 0x9e3779b9 + uint32(n) + 3923095
	b, c = a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = mix(a, b, c)
	}
	return a, b, c
}

// HashBytesExtended is Postgres's hash_bytes_extended (hash_any_extended):
// the 64-bit lookup3 hash of k with seed (0: no seed). The result is
// b<<32 | c of lookup3's final state.
func HashBytesExtended(k []byte, seed uint64) uint64 {
	a, b, c := initial(len(k), seed)
	for len(k) >= 12 {
		a += binary.LittleEndian.Uint32(k)
		b += binary.LittleEndian.Uint32(k[4:])
		c += binary.LittleEndian.Uint32(k[8:])
		a, b, c = mix(a, b, c)
		k = k[12:]
	}
	// The last 0 to 11 bytes: as Postgres's switch with fall-through, on a
	// little-endian machine; the lowest byte of c is left for the length.
	switch len(k) {
	case 11:
		c += uint32(k[10]) << 24
		fallthrough
	case 10:
		c += uint32(k[9]) << 16
		fallthrough
	case 9:
		c += uint32(k[8]) << 8
		fallthrough
	case 8:
		b += binary.LittleEndian.Uint32(k[4:])
		a += binary.LittleEndian.Uint32(k)
	case 7:
		b += uint32(k[6]) << 16
		fallthrough
	case 6:
		b += uint32(k[5]) << 8
		fallthrough
	case 5:
		b += uint32(k[4])
		fallthrough
	case 4:
		a += binary.LittleEndian.Uint32(k)
	case 3:
		a += uint32(k[2]) << 16
		fallthrough
	case 2:
		a += uint32(k[1]) << 8
		fallthrough
	case 1:
		a += uint32(k[0])
	}
	b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// hashStringExtended is HashBytesExtended of the bytes of s, without
// copying them.
func hashStringExtended(s string, seed uint64) uint64 {
	a, b, c := initial(len(s), seed)
	for len(s) >= 12 {
		a += le32(s)
		b += le32(s[4:])
		c += le32(s[8:])
		a, b, c = mix(a, b, c)
		s = s[12:]
	}
	switch len(s) {
	case 11:
		c += uint32(s[10]) << 24
		fallthrough
	case 10:
		c += uint32(s[9]) << 16
		fallthrough
	case 9:
		c += uint32(s[8]) << 8
		fallthrough
	case 8:
		b += le32(s[4:])
		a += le32(s)
	case 7:
		b += uint32(s[6]) << 16
		fallthrough
	case 6:
		b += uint32(s[5]) << 8
		fallthrough
	case 5:
		b += uint32(s[4])
		fallthrough
	case 4:
		a += le32(s)
	case 3:
		a += uint32(s[2]) << 16
		fallthrough
	case 2:
		a += uint32(s[1]) << 8
		fallthrough
	case 1:
		a += uint32(s[0])
	}
	b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// le32 reads the first four bytes of s as a little-endian word.
func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// HashUint32Extended is Postgres's hash_bytes_uint32_extended
// (hash_uint32_extended): HashBytesExtended of k's four bytes, without
// storing them.
func HashUint32Extended(k uint32, seed uint64) uint64 {
	a, b, c := initial(4, seed)
	a += k
	b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// HashInt2Extended is Postgres's hashint2extended, the extended hash of
// smallint: the value widened to a 32-bit word.
func HashInt2Extended(v int16, seed uint64) uint64 {
	return HashUint32Extended(uint32(int32(v)), seed)
}

// HashInt4Extended is Postgres's hashint4extended, the extended hash of
// integer.
func HashInt4Extended(v int32, seed uint64) uint64 {
	return HashUint32Extended(uint32(v), seed)
}

// HashInt8Extended is Postgres's hashint8extended, the extended hash of
// bigint. It folds the high half into the low half (the complement of the
// high half for negative values), so that a value hashes as the equal
// smallint or integer does: an integer key places a row the same whatever
// its column's width.
func HashInt8Extended(v int64, seed uint64) uint64 {
	lo := uint32(v)
	hi := uint32(v >> 32)
	if v >= 0 {
		lo ^= hi
	} else {
		lo ^= ^hi
	}
	return HashUint32Extended(lo, seed)
}

// HashTextExtended is Postgres's hashtextextended for a deterministic
// collation (every collation but ICU ones created with deterministic =
// false): the extended hash of the string's bytes, which must be in the
// server's encoding. varchar uses the same function; char(n) does not
// (hashbpcharextended drops trailing spaces first) and is not supported.
func HashTextExtended(s string, seed uint64) uint64 {
	return hashStringExtended(s, seed)
}

// HashUUIDExtended is Postgres's uuid_hash_extended: the extended hash of the
// uuid's 16 bytes.
func HashUUIDExtended(u [16]byte, seed uint64) uint64 {
	a, b, c := initial(16, seed)
	a += binary.LittleEndian.Uint32(u[0:])
	b += binary.LittleEndian.Uint32(u[4:])
	c += binary.LittleEndian.Uint32(u[8:])
	a, b, c = mix(a, b, c)
	a += binary.LittleEndian.Uint32(u[12:]) // the 4-byte tail
	b, c = final(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// HashCombine64 is Postgres's hash_combine64 (src/include/common/hashfn.h):
// it folds the hash b into the running hash a. A row of a hash-partitioned
// table hashes as HashCombine64 over its key columns, starting from 0 and
// skipping NULLs.
func HashCombine64(a, b uint64) uint64 {
	a ^= b + 0x49a0f4dd15e5a8e3 + (a << 54) + (a >> 7)
	return a
}
