package gnetx

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/testcert"
)

// pair hands back a server TLS detached from its transport, as the loop holds
// it after a handshake, and the client's records of msgs (real captures).
func pair(t testing.TB, msgs ...string) (*TLS, [][]byte) {
	ca := testcert.New(t)
	return pairWith(t, ca, ca.Server(t, "belay", "127.0.0.1"), msgs...)
}

func pairWith(t testing.TB, ca *testcert.CA, srv testcert.Pair, msgs ...string) (*TLS, [][]byte) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	client := tls.Client(a, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1",
		DynamicRecordSizingDisabled: true}) // whole 16 KiB records: their sizes are known
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := HandshakeServer(ctx, b, nil, &tls.Config{Certificates: []tls.Certificate{srv.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st.Detach()
	records := make([][]byte, len(msgs))
	for i, m := range msgs {
		go func() { _, _ = client.Write([]byte(m)) }()
		// TLS 1.3 between Go peers: a record per 16 KiB of plaintext, each
		// with a 5-byte header, a content-type byte and a 16-byte tag.
		n := len(m) + 22*((len(m)+plainChunk-1)/plainChunk)
		records[i] = make([]byte, n)
		if _, err := io.ReadFull(b, records[i]); err != nil {
			t.Fatal(err)
		}
	}
	return st, records
}

// TestTLSRecordsInPieces: records split at every byte boundary decrypt to the
// same plaintext, and nothing is lost when data arrives a byte at a time.
func TestTLSRecordsInPieces(t *testing.T) {
	st, recs := pair(t, "SELECT 1", string(bytes.Repeat([]byte("x"), 40000)))
	wire := append(append([]byte(nil), recs[0]...), recs[1]...)
	var plain []byte
	for i := range wire {
		st.t.in = append(st.t.in, wire[i])
		var err error
		plain, err = st.decrypt(nil, plain)
		if err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	if want := "SELECT 1" + string(bytes.Repeat([]byte("x"), 40000)); string(plain) != want {
		t.Fatalf("got %d bytes, want %d", len(plain), len(want))
	}
}

// FuzzTLSRecords feeds arbitrary bytes to a server TLS after its handshake,
// as the loop does with what a client sends: no panic, and garbage is an
// error (the loop then closes the connection), never plaintext.
func FuzzTLSRecords(f *testing.F) {
	ca := testcert.New(f)
	srv := ca.Server(f, "belay", "127.0.0.1")
	_, recs := pairWith(f, ca, srv, "SELECT 1", "Q\x00\x00\x00\x0dSELECT 1\x00")
	for _, r := range recs {
		f.Add(r)
	}
	f.Add([]byte{0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5})
	f.Add([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 2, 40})
	f.Fuzz(func(t *testing.T, wire []byte) {
		st, _ := pairWith(t, ca, srv)
		st.t.in = append(st.t.in, wire...)
		plain, err := st.decrypt(nil, nil)
		if len(plain) > 0 {
			t.Fatalf("forged records decrypted to %q", plain)
		}
		_ = err
	})
}

// BenchmarkTLSDecrypt is the loop's cost per client message over TLS: one
// record of a pgbench-sized Query decrypted into the pooled plaintext buffer
// and consumed. (Records carry sequence numbers, so each is used once.)
func BenchmarkTLSDecrypt(b *testing.B) {
	const q = "Q\x00\x00\x00\x3bSELECT abalance FROM pgbench_accounts WHERE aid = 12345;\x00"
	msgs := make([]string, b.N)
	for i := range msgs {
		msgs[i] = q
	}
	st, recs := pair(b, msgs...)
	var in Input
	in.SetTLS(st)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.t.in = append(st.t.in, recs[i]...)
		data := in.Bytes(nil)
		if len(data) != len(q) {
			b.Fatalf("%d bytes of plaintext, %v", len(data), in.Err())
		}
		in.Consume(nil, len(data))
	}
}
