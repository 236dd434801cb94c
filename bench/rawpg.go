package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// rawConn is a minimal Postgres v3 client over one TCP connection: enough to
// log in with trust authentication, send a simple Query and hold the
// connection idle. It is lighter than pgconn, so that the harness can hold
// 10,000 of them. Not safe for concurrent use.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// startupMessage is a StartupMessage for protocol 3.0 with the given parameters.
func startupMessage(params ...string) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(b[4:], 196608)
	for _, p := range params {
		b = append(b, p...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// dialRaw connects to addr and logs in as user to db (trust authentication).
// readBuf, when > 0, sets the socket's receive buffer (SO_RCVBUF).
func dialRaw(ctx context.Context, addr, user, db string, readBuf int) (*rawConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if readBuf > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(readBuf)
	}
	rc := &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(startupMessage("user", user, "database", db, "application_name", "belay-bench")); err != nil {
		c.Close()
		return nil, err
	}
	for {
		typ, body, err := rc.readMsg()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("startup: %w", err)
		}
		switch typ {
		case 'R':
			if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
				c.Close()
				return nil, errors.New("startup: the server asks for a password; the bench uses trust authentication")
			}
		case 'E':
			c.Close()
			return nil, fmt.Errorf("startup: %s", errorText(body))
		case 'Z':
			_ = c.SetDeadline(time.Time{})
			return rc, nil
		}
	}
}

// readMsg reads one message; the body is valid until the next call.
func (r *rawConn) readMsg() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	if n < 0 || n > 64<<20 {
		return 0, nil, fmt.Errorf("bad message length %d", n+4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return 0, nil, err
	}
	return h[0], body, nil
}

// sendQuery writes a simple-protocol Query.
func (r *rawConn) sendQuery(sql string) error {
	b := make([]byte, 5, 6+len(sql))
	b[0] = 'Q'
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(sql)+1))
	b = append(b, sql...)
	b = append(b, 0)
	_, err := r.c.Write(b)
	return err
}

// query runs sql and reads up to ReadyForQuery, returning the first error.
func (r *rawConn) query(ctx context.Context, sql string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = r.c.SetDeadline(dl)
		defer r.c.SetDeadline(time.Time{})
	}
	if err := r.sendQuery(sql); err != nil {
		return err
	}
	var qerr error
	for {
		typ, body, err := r.readMsg()
		if err != nil {
			return err
		}
		switch typ {
		case 'E':
			qerr = errors.New(errorText(body))
		case 'Z':
			return qerr
		}
	}
}

// Close sends Terminate and closes the socket.
func (r *rawConn) Close() error {
	_ = r.c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = r.c.Write([]byte{'X', 0, 0, 0, 4})
	return r.c.Close()
}

// errorText is the severity and message of an ErrorResponse body.
func errorText(body []byte) string {
	var sev, msg, code string
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		body = body[1:]
		i := 0
		for i < len(body) && body[i] != 0 {
			i++
		}
		v := string(body[:i])
		if i < len(body) {
			i++
		}
		body = body[i:]
		switch f {
		case 'S':
			sev = v
		case 'M':
			msg = v
		case 'C':
			code = v
		}
	}
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", sev, msg, code)
}
