package gnetx

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// TLS is crypto/tls running over an event loop's buffers. gnet has no TLS of
// its own, and a goroutine per connection is what belay avoids; so a
// connection's records are decrypted and encrypted on its loop by a tls.Conn
// whose transport is memory: Input.Bytes feeds it what gnet read, and what it
// writes goes to gnet's outbound buffer.
//
// The handshake is the exception. crypto/tls keeps the first error of a
// handshake for good, so it cannot be resumed after "no data yet"; and its
// public-key operations cost milliseconds that would stall every other client
// of the loop. So the handshake runs with blocking I/O off the loop (the
// caller parks the connection, or has not enrolled it yet), on a goroutine
// that lives only as long as the handshake; Detach then turns the transport
// over to the loop.
//
// Concurrency: before Detach, a TLS belongs to the handshaking goroutine;
// after, to the connection's event loop.
type TLS struct {
	conn *tls.Conn
	t    *memTransport
}

// HandshakeServer runs a server handshake over nc, serving pre (bytes already
// read from the socket, e.g. by gnet before a park) first. ctx bounds it.
func HandshakeServer(ctx context.Context, nc net.Conn, pre []byte, cfg *tls.Config) (*TLS, error) {
	t := &memTransport{nc: nc, pre: pre}
	return handshake(ctx, tls.Server(t, cfg), t)
}

// HandshakeClient runs a client handshake over nc. ctx bounds it.
func HandshakeClient(ctx context.Context, nc net.Conn, cfg *tls.Config) (*TLS, error) {
	t := &memTransport{nc: nc}
	return handshake(ctx, tls.Client(t, cfg), t)
}

func handshake(ctx context.Context, c *tls.Conn, t *memTransport) (*TLS, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = t.nc.SetDeadline(d)
		defer func() { _ = t.nc.SetDeadline(time.Time{}) }()
	}
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return &TLS{conn: c, t: t}, nil
}

// Conn is the tls.Conn, for blocking use before Detach (a login that
// continues over TLS off the loop).
func (t *TLS) Conn() *tls.Conn { return t.conn }

// State reports the negotiated connection.
func (t *TLS) State() tls.ConnectionState { return t.conn.ConnectionState() }

// Detach ends blocking use: from now on the transport reads what Input.Bytes
// hands it and writes to the gnet connection. Bytes the tls.Conn already
// read from the socket stay inside it. The caller still owns nc.
func (t *TLS) Detach() {
	t.t.nc = nil
}

// errNoData is the transport's "no bytes yet". crypto/tls keeps any error
// that is not a temporary net.Error as final, so this one is temporary.
var errNoData net.Error = noData{}

type noData struct{}

func (noData) Error() string   { return "gnetx: no TLS data buffered" }
func (noData) Timeout() bool   { return true }
func (noData) Temporary() bool { return true }

// memTransport is the net.Conn under a tls.Conn: blocking over nc during the
// handshake, memory afterwards.
type memTransport struct {
	nc  net.Conn
	pre []byte // bytes read before the handshake started, served first
	in  []byte // received, not yet read by crypto/tls
	out []byte // written by crypto/tls, not yet handed to gnet
}

func (m *memTransport) Read(p []byte) (int, error) {
	if len(m.pre) > 0 {
		n := copy(p, m.pre)
		m.pre = m.pre[n:]
		return n, nil
	}
	if m.nc != nil {
		return m.nc.Read(p)
	}
	if len(m.in) == 0 {
		return 0, errNoData
	}
	n := copy(p, m.in)
	rest := copy(m.in, m.in[n:])
	m.in = m.in[:rest]
	return n, nil
}

func (m *memTransport) Write(p []byte) (int, error) {
	if m.nc != nil {
		return m.nc.Write(p)
	}
	m.out = append(m.out, p...)
	return len(p), nil
}

// flush hands what crypto/tls wrote to c in one write.
func (m *memTransport) flush(c gnet.Conn) error {
	if len(m.out) == 0 {
		return nil
	}
	var err error
	if c == nil {
		err = errors.New("gnetx: TLS write while the connection is parked")
	} else {
		_, err = c.Write(m.out) // gnet copies what it cannot send now
	}
	if cap(m.out) > 64<<10 {
		m.out = nil
	} else {
		m.out = m.out[:0]
	}
	return err
}

func (m *memTransport) Close() error                       { return nil }
func (m *memTransport) LocalAddr() net.Addr                { return addrOf(m.nc, true) }
func (m *memTransport) RemoteAddr() net.Addr               { return addrOf(m.nc, false) }
func (m *memTransport) SetDeadline(time.Time) error        { return nil }
func (m *memTransport) SetReadDeadline(time.Time) error    { return nil }
func (m *memTransport) SetWriteDeadline(t time.Time) error { return nil }

func addrOf(nc net.Conn, local bool) net.Addr {
	if nc == nil {
		return &net.TCPAddr{}
	}
	if local {
		return nc.LocalAddr()
	}
	return nc.RemoteAddr()
}

// plainChunk is how much plaintext Input.Bytes asks crypto/tls for at a time
// (one record holds at most 16 KiB).
const plainChunk = 16 << 10

// plainBufs holds plaintext buffers between uses, so that an idle TLS client
// holds none: Input.Consume gives its buffer back once it is empty.
var plainBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2*plainChunk); return &b }}

// decrypt moves c's raw bytes into t and reads all whole records into dst.
func (t *TLS) decrypt(c gnet.Conn, dst []byte) ([]byte, error) {
	if c != nil {
		if raw, _ := c.Peek(-1); len(raw) > 0 {
			t.t.in = append(t.t.in, raw...)
			_, _ = c.Discard(-1)
		}
	}
	var err error
	for {
		if cap(dst)-len(dst) < plainChunk {
			dst = append(dst[:cap(dst)], make([]byte, plainChunk)...)[:len(dst)]
		}
		n, rerr := t.conn.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if rerr != nil {
			if rerr != errNoData {
				err = rerr
			}
			break
		}
	}
	if ferr := t.t.flush(c); err == nil {
		err = ferr
	}
	return dst, err
}

// write encrypts b and hands the records to c.
func (t *TLS) write(c gnet.Conn, b []byte) (int, error) {
	n, err := t.conn.Write(b)
	if ferr := t.t.flush(c); err == nil {
		err = ferr
	}
	return n, err
}
