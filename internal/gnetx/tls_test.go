package gnetx

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/testcert"
)

// tapConn records what is written through it.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
	on  bool
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.on {
		c.out.Write(p)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// pair hands back a server TLS detached from its transport, as the loop holds
// it after a handshake, and the client's records of msgs (real captures).
func pair(t testing.TB, msgs ...string) (*TLS, [][]byte) {
	ca := testcert.New(t)
	return pairWith(t, ca, ca.Server(t, "belay", "127.0.0.1"), msgs...)
}

func pairWith(t testing.TB, ca *testcert.CA, srv testcert.Pair, msgs ...string) (*TLS, [][]byte) {
	a, b := net.Pipe()
	tap := &tapConn{Conn: a}
	client := tls.Client(tap, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
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
	var records [][]byte
	for _, m := range msgs {
		tap.mu.Lock()
		tap.on = true
		tap.out.Reset()
		tap.mu.Unlock()
		done := make(chan struct{})
		go func() { _, _ = client.Write([]byte(m)); close(done) }()
		var rec []byte
		buf := make([]byte, 64<<10)
		for {
			// net.Pipe is synchronous: once Write returned, all was read.
			_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := b.Read(buf)
			rec = append(rec, buf[:n]...)
			if err != nil {
				select {
				case <-done:
				default:
					continue
				}
				break
			}
		}
		_ = b.SetReadDeadline(time.Time{})
		buf = rec
		n := len(rec)
		records = append(records, append([]byte(nil), buf[:n]...))
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
