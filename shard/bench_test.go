package shard

import (
	"strings"
	"testing"
)

// The placement of one key, as the router computes it for a statement, a
// Bind or a COPY row: run with -benchmem; int and uuid keys allocate
// nothing, nor does a text key already in a string.

var sinkU64 uint64
var sinkInt int

func BenchmarkRowHash(b *testing.B) {
	u, _ := ParseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	b.Run("int64", func(b *testing.B) {
		for i := range b.N {
			sinkU64 += RowHash(int64(i))
		}
	})
	for _, n := range []int{8, 32, 256} {
		s := strings.Repeat("k", n)
		b.Run("text-"+formatInt(int64(n)), func(b *testing.B) {
			b.SetBytes(int64(n))
			for range b.N {
				sinkU64 += RowHash(s)
			}
		})
	}
	b.Run("uuid", func(b *testing.B) {
		for i := range b.N {
			u[15] = byte(i)
			sinkU64 += RowHash(u)
		}
	})
}

func BenchmarkShard(b *testing.B) {
	b.Run("int64", func(b *testing.B) {
		for i := range b.N {
			sinkInt += Shard(4, int64(i))
		}
	})
	b.Run("text", func(b *testing.B) {
		for range b.N {
			sinkInt += Shard(4, "customer-000042")
		}
	})
	b.Run("uuid", func(b *testing.B) {
		var u [16]byte
		for i := range b.N {
			u[0] = byte(i)
			sinkInt += Shard(4, u)
		}
	})
}

// A literal's text to its shard: what a statement with `key = 'literal'`
// costs the router.
func BenchmarkParseValueShard(b *testing.B) {
	for _, c := range []struct {
		name string
		t    KeyType
		s    string
	}{
		{"int", KeyInteger, "1234567"},
		{"text", KeyText, "customer-000042"},
		{"uuid", KeyUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				v, err := ParseValue(c.t, c.s)
				if err != nil {
					b.Fatal(err)
				}
				sinkInt += v.Shard(4)
			}
		})
	}
}

// The router looks up every table a statement names.
func BenchmarkLookup(b *testing.B) {
	tables := []Table{ShardedTable(TableName{"public", "pgbench_accounts"}, "aid", KeyInteger),
		ReferenceTable(TableName{"public", "pgbench_branches"}), ReferenceTable(TableName{"public", "pgbench_tellers"})}
	for i := range 50 {
		tables = append(tables, ShardedTable(TableName{"app", "t" + formatInt(int64(i))}, "id", KeyUUID))
	}
	s, err := New(4, tables...)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		t, ok := s.Lookup("", "pgbench_accounts")
		if !ok {
			b.Fatal("not found")
		}
		sinkInt += int(t.KeyType)
	}
}
