package codec_test

import (
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/jackc/pgx/v5/pgproto3"
)

var (
	sinkInt   int
	sinkBytes []byte
)

func BenchmarkReadFrame(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  pgproto3.Message
	}{
		// pgbench -S's query, as psql would send it.
		{"Query", &pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 48623;"}},
		// A row of pgbench_accounts: aid, bid, abalance, filler (84 chars).
		{"DataRow", &pgproto3.DataRow{Values: [][]byte{[]byte("48623"), []byte("1"), []byte("0"),
			[]byte("                                                                                    ")}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			wire := mustEncodeAll(bc.msg)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				f, n, err := codec.ReadFrame(wire, codec.DefaultMaxMessageSize)
				if err != nil {
					b.Fatal(err)
				}
				sinkInt += n + len(f.Body)
			}
		})
	}
}

func BenchmarkQueryText(b *testing.B) {
	body := mustEncodeAll(&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 48623;"})[5:]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		q, err := codec.QueryText(body)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = q
	}
}

func BenchmarkParseBind(b *testing.B) {
	// pgbench -M prepared's UPDATE: two int parameters in text.
	body := mustEncodeAll(&pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("-2874"), []byte("48623")}})[5:]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		bind, err := codec.ParseBind(body)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = bind.Rest
	}
}

func BenchmarkParseErrorFields(b *testing.B) {
	body := mustEncodeAll(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P01",
		Message: `relation "x" does not exist`, Position: 15, File: "parse_relation.c", Line: 1392, Routine: "parserOpenTable"})[5:]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := codec.ParseErrorFields(body)
		if err != nil {
			b.Fatal(err)
		}
		sinkBytes = e.Code
	}
}

func BenchmarkAppendErrorResponse(b *testing.B) {
	e := codec.ErrorResponse{Severity: "FATAL", Code: sqlstate.TooManyConnections,
		Message: "sorry, too many clients already", Hint: "Try again later."}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = codec.AppendErrorResponse(dst[:0], e)
	}
	sinkBytes = dst
}

func BenchmarkStartupParams(b *testing.B) {
	body := []byte("user\x00alice\x00database\x00pgbench\x00application_name\x00pgbench\x00client_encoding\x00UTF8\x00\x00")
	fn := func(k, v []byte) { sinkInt += len(k) + len(v) }
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := codec.StartupParams(body, fn); err != nil {
			b.Fatal(err)
		}
	}
}
