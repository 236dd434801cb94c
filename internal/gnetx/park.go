package gnetx

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Park duplicates c's socket so that gnet may close its own descriptor without
// closing the connection. The caller must then make gnet close c (return
// gnet.Close from c's OnTraffic, or call c.EventLoop().Close(c) outside c's own
// callbacks) and must treat that OnClose as a park, not a loss. It returns the
// duplicate, which Resume takes back. Call it on c's event loop.
func Park(c gnet.Conn) (fd int, err error) {
	fd, err = c.Dup()
	if err != nil {
		return -1, fmt.Errorf("park: dup: %w", err)
	}
	return fd, nil
}

// Resume enrolls a parked descriptor on el again. OnOpen fires on el with a
// connection whose Context() is ctx. The descriptor is consumed whether or not
// Resume succeeds. Safe to call from any goroutine.
func Resume(el gnet.EventLoop, fd int, ctx any) error {
	f := os.NewFile(uintptr(fd), "parked")
	nc, err := net.FileConn(f) // dups fd again
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	ch, err := el.Enroll(gnet.NewContext(context.Background(), ctx), nc)
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("resume: enroll: %w", err)
	}
	go func() {
		// Enroll closes nc once gnet holds its own duplicate; a failure is
		// reported here and the peer sees the socket close.
		if r := <-ch; r.Err != nil {
			_ = nc.Close()
		}
	}()
	return nil
}

// CloseParked closes a parked descriptor that will not be resumed (its
// connection ended while parked).
func CloseParked(fd int) { _ = unix.Close(fd) }

// Input is the unread input of one connection across parks, and its TLS
// layer when it has one. The zero value is ready. Not safe for concurrent
// use: it belongs to the connection's loop.
type Input struct {
	carry []byte // bytes carried across a park; with TLS, the plaintext
	tls   *TLS
	err   error
	plain *[]byte // with TLS: the pooled buffer carry lives in, while it is not empty
}

// SetTLS makes the connection's bytes TLS records from now on: Bytes returns
// plaintext and Write encrypts. Call it once the handshake is done and before
// the connection's next bytes are read.
func (in *Input) SetTLS(t *TLS) { in.tls = t }

// TLS is the connection's TLS layer, or nil.
func (in *Input) TLS() *TLS { return in.tls }

// Err is the TLS layer's error (a bad record, or the peer's close_notify as
// io.EOF) once Bytes met one; the connection should then be closed.
func (in *Input) Err() error { return in.err }

// Bytes returns the unread bytes: carried bytes first, then what c holds. The
// slice is valid until Consume. With TLS, it is the plaintext of every whole
// record received so far. c may be nil (parked): then only carried bytes.
func (in *Input) Bytes(c gnet.Conn) []byte {
	if in.tls != nil {
		if in.err == nil {
			if in.plain == nil {
				in.plain = plainBufs.Get().(*[]byte)
				in.carry = (*in.plain)[:0]
			}
			in.carry, in.err = in.tls.decrypt(c, in.carry)
		}
		return in.carry
	}
	if c == nil {
		return in.carry
	}
	buf, _ := c.Peek(-1)
	if len(in.carry) == 0 {
		return buf
	}
	// Rare path (only after a resume): move c's bytes behind the carry.
	in.carry = append(in.carry, buf...)
	_, _ = c.Discard(-1)
	return in.carry
}

// Consume marks n bytes of the last Bytes as read.
func (in *Input) Consume(c gnet.Conn, n int) {
	if len(in.carry) == 0 && in.tls == nil {
		if n > 0 {
			_, _ = c.Discard(n)
		}
		return
	}
	rest := copy(in.carry, in.carry[n:])
	in.carry = in.carry[:rest]
	if rest == 0 {
		if in.plain != nil && cap(in.carry) <= 4*plainChunk {
			*in.plain = in.carry[:0] // an idle TLS connection holds no plaintext buffer
			plainBufs.Put(in.plain)
		}
		in.plain = nil
		in.carry = nil
	}
}

// Unread puts b (copied) back in front of the unread bytes: what was read
// and must be read again (a unit of work sent again to another server).
func (in *Input) Unread(b []byte) {
	if len(b) == 0 {
		return
	}
	nc := make([]byte, 0, len(b)+len(in.carry))
	nc = append(append(nc, b...), in.carry...)
	in.carry = nc
	if in.tls != nil {
		in.plain = &nc // Bytes appends plaintext to carry, Consume recycles it
	}
}

// Save keeps c's unread bytes before c is parked.
func (in *Input) Save(c gnet.Conn) {
	buf, _ := c.Peek(-1)
	if len(buf) == 0 {
		return
	}
	if in.tls != nil {
		in.tls.t.in = append(in.tls.t.in, buf...)
	} else {
		in.carry = append(in.carry, buf...)
	}
	_, _ = c.Discard(-1)
}

// Buffered is the number of unread bytes held for c (with TLS, plaintext and
// records not yet decrypted together).
func (in *Input) Buffered(c gnet.Conn) int {
	n := len(in.carry)
	if in.tls != nil {
		n += len(in.tls.t.in)
	}
	if c != nil {
		n += c.InboundBuffered()
	}
	return n
}

// Write sends b on c, encrypted when the connection has TLS. On the loop.
func (in *Input) Write(c gnet.Conn, b []byte) (int, error) {
	if in.tls != nil {
		return in.tls.write(c, b)
	}
	return c.Write(b)
}
