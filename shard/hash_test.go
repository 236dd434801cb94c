package shard

import (
	"encoding/binary"
	"testing"
)

// Hashes Postgres 15 (x86-64) computed, pinned so that the pure tests check
// the hash without a server (TestHashMatchesPostgres checks thousands more
// against a live one).
func TestHashVectors(t *testing.T) {
	u1, _ := ParseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	for _, c := range []struct {
		what string
		got  uint64
		pg   int64 // as Postgres prints it (int8)
	}{
		{"hashint8extended(0, seed)", HashInt8Extended(0, PartitionSeed), -4403592609991167795},
		{"hashint8extended(-1, seed)", HashInt8Extended(-1, PartitionSeed), -5017072347659237694},
		{"hashint8extended(42, seed)", HashInt8Extended(42, PartitionSeed), 7363975540656877951},
		{"hashint8extended(max, seed)", HashInt8Extended(1<<63-1, PartitionSeed), 4938542303000433043},
		{"hashint8extended(min, seed)", HashInt8Extended(-1<<63, PartitionSeed), -6050265599104649060},
		{"hashint8extended(42, 0)", HashInt8Extended(42, 0), 8010225493015854792},
		{"hashtextextended('', seed)", HashTextExtended("", PartitionSeed), -5700645584453517373},
		{"hashtextextended('hello', seed)", HashTextExtended("hello", PartitionSeed), -2635279551741001039},
		{"hashtextextended('hello world, sharded', seed)", HashTextExtended("hello world, sharded", PartitionSeed), -9154187859312047093},
		{"hashtextextended('日本語', 0)", HashTextExtended("日本語", 0), 2870829529307104068},
		{"uuid_hash_extended(a0eebc99-..., seed)", HashUUIDExtended(u1, PartitionSeed), 424513190990560493},
		{"uuid_hash_extended(nil uuid, 0)", HashUUIDExtended([16]byte{}, 0), -6859010066814654381},
	} {
		if c.got != uint64(c.pg) {
			t.Errorf("%s = %#x, Postgres says %#x", c.what, c.got, uint64(c.pg))
		}
	}
}

// The specialised hashes are the byte hash of the bytes Postgres hashes:
// four little-endian bytes for HashUint32Extended, the 16 bytes of a uuid,
// a string's bytes. And hashint8extended agrees with hashint4extended and
// hashint2extended on equal values.
func TestHashConsistency(t *testing.T) {
	r := testRand()
	seeds := []uint64{0, PartitionSeed, r.Uint64()}
	for _, seed := range seeds {
		for _, v := range intCorpus(r, 500) {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(v))
			if HashUint32Extended(uint32(v), seed) != HashBytesExtended(b[:], seed) {
				t.Fatalf("HashUint32Extended(%#x) differs from the hash of its bytes", uint32(v))
			}
			if v == int64(int32(v)) && HashInt8Extended(v, seed) != HashInt4Extended(int32(v), seed) {
				t.Fatalf("int8 and int4 hashes of %d differ", v)
			}
			if v == int64(int16(v)) && HashInt8Extended(v, seed) != HashInt2Extended(int16(v), seed) {
				t.Fatalf("int8 and int2 hashes of %d differ", v)
			}
		}
		for _, u := range uuidCorpus(r, 200) {
			if HashUUIDExtended(u, seed) != HashBytesExtended(u[:], seed) {
				t.Fatalf("HashUUIDExtended(%x) differs from the hash of its bytes", u)
			}
		}
		for _, s := range textCorpus(r, 3) {
			if HashTextExtended(s, seed) != HashBytesExtended([]byte(s), seed) {
				t.Fatalf("HashTextExtended(%q) differs from the hash of its bytes", s)
			}
		}
	}
}

func TestHashCombine64(t *testing.T) {
	// Postgres's formula, step by step, for a running hash of 0 and of
	// a value with high and low bits set.
	for _, c := range []struct{ a, b uint64 }{{0, 0}, {0, 1}, {0, ^uint64(0)}, {0x8000000000000001, 0x1234}} {
		want := c.a ^ (c.b + 0x49a0f4dd15e5a8e3 + c.a<<54 + c.a>>7)
		if got := HashCombine64(c.a, c.b); got != want {
			t.Errorf("HashCombine64(%#x, %#x) = %#x, want %#x", c.a, c.b, got, want)
		}
	}
}

func TestShardAndValue(t *testing.T) {
	r := testRand()
	for _, n := range []int{1, 2, 3, 4, 7, 64, 1000} {
		for _, v := range intCorpus(r, 200) {
			s := Shard(n, v)
			if s < 0 || s >= n || s != int(HashCombine64(0, HashInt8Extended(v, PartitionSeed))%uint64(n)) || Int(v).Shard(n) != s {
				t.Fatalf("Shard(%d, %d) = %d", n, v, s)
			}
		}
		for _, v := range textCorpus(r, 1) {
			if s := Shard(n, v); s != int(RowHash(v)%uint64(n)) || Text(v).Shard(n) != s {
				t.Fatalf("Shard(%d, %q) = %d", n, v, s)
			}
		}
		for _, u := range uuidCorpus(r, 50) {
			if s := Shard(n, u); s != int(RowHash(u)%uint64(n)) || UUID(u).Shard(n) != s {
				t.Fatalf("Shard(%d, %x) = %d", n, u, s)
			}
		}
		if Null().Shard(n) != NullShard || Null().RowHash() != 0 {
			t.Fatalf("NULL's shard of %d is %d", n, Null().Shard(n))
		}
	}
	// An integer key places a row whatever the column's width: the values
	// of TestPlacementMatchesPartitions's integer tables are int64s.
	if Shard(7, int64(-5)) != int(HashCombine64(0, HashInt2Extended(-5, PartitionSeed))%7) {
		t.Fatal("a smallint key places differently from the equal bigint")
	}
	for _, f := range []func(){func() { Shard(0, int64(1)) }, func() { Text("x").Shard(-1) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a modulus < 1 did not panic")
				}
			}()
			f()
		}()
	}
}
