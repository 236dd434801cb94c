package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// listener is one socket belay accepts clients on. Its goroutine
// (Proxy.accept) is the only one that accepts on it; StopAccepting asks that
// goroutine to take what is queued and close the socket, and waits for it.
type listener struct {
	ln       net.Listener
	name     string      // for logs: the address or the socket's path
	unixPath string      // a Unix socket's path, removed at close if still ours
	unixFile os.FileInfo // what unixPath was when belay bound it
	stopping atomic.Bool // set by StopAccepting before it wakes the goroutine
	done     chan struct{}
}

// listen opens the TCP listeners of cfg.Listen and, with UnixSocketDir, the
// Unix socket, before anything else starts; on error it closes what it opened.
func (p *Proxy) listen() error {
	lc := net.ListenConfig{
		// No keepalive on clients, as before belay owned its sockets (gnet's
		// default); one setsockopt fewer per connection.
		KeepAlive: -1,
		Control: func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil // SO_REUSEPORT on AF_UNIX is EOPNOTSUPP on Linux
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				// SO_REUSEADDR: restart while old connections sit in
				// TIME_WAIT, as Postgres does.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				if serr == nil && p.cfg.ReusePort {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	fail := func(err error) error {
		for _, l := range p.lns {
			l.close()
		}
		p.lns = nil
		return err
	}
	for _, a := range p.cfg.Listen {
		ln, err := lc.Listen(context.Background(), "tcp", a)
		if err != nil {
			return fail(err)
		}
		p.lns = append(p.lns, &listener{ln: ln, name: a, done: make(chan struct{})})
	}
	if p.unix != "" {
		_ = os.Remove(p.unix) // a socket left by a process that died, or by the one this replaces
		ln, err := lc.Listen(context.Background(), "unix", p.unix)
		if err != nil {
			return fail(err)
		}
		// The socket belongs to whoever bound it last: a process that drains
		// while its successor listens must not unlink the successor's.
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		l := &listener{ln: ln, name: p.unix, unixPath: p.unix, done: make(chan struct{})}
		l.unixFile, _ = os.Stat(p.unix)
		p.lns = append(p.lns, l)
		_ = os.Chmod(p.unix, 0o777)
	}
	return nil
}

// accept runs on l's own goroutine: it hands each new connection to a gnet
// loop (gnet.Client.EnrollContext dups the descriptor onto the least busy
// loop, runs OnOpen there, and closes the net.Conn) until StopAccepting.
func (p *Proxy) accept(l *listener) {
	defer close(l.done)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err == nil {
			backoff = 0
			p.enroll(c)
			continue
		}
		if l.stopping.Load() {
			// StopAccepting's deadline woke us: take what the kernel has
			// queued, then close.
			p.acceptQueued(l)
			l.close()
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// EMFILE, ENFILE, ENOBUFS: the connection stays queued; wait for
		// descriptors to free up instead of spinning (net/http's backoff).
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		p.log.Warn("accept failed; retrying", "listen", l.name, "err", err, "in", backoff)
		time.Sleep(backoff)
	}
}

// enroll gives c to the gnet engine; OnOpen sees a connection with no
// context, a new client.
func (p *Proxy) enroll(c net.Conn) {
	if _, err := p.cli.EnrollContext(c, nil); err != nil { // closes c either way
		p.log.Warn("cannot register a client connection", "remote", c.RemoteAddr(), "err", err)
	}
}

// acceptQueued accepts, without waiting, the connections already in l's
// accept queue: closing a listener resets them (unless the kernel migrates
// them to another SO_REUSEPORT listener, net.ipv4.tcp_migrate_req=1).
func (p *Proxy) acceptQueued(l *listener) {
	sc, ok := l.ln.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	for {
		var nfd int
		var aerr error
		if err := rc.Control(func(fd uintptr) {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		}); err != nil {
			return
		}
		switch {
		case aerr == unix.EINTR || aerr == unix.ECONNABORTED:
			continue
		case aerr != nil:
			return // EAGAIN: the queue is empty
		}
		f := os.NewFile(uintptr(nfd), "client")
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			continue
		}
		p.enroll(c)
	}
}

// close closes the socket and removes a Unix socket's path if it is still
// the one this listener bound.
func (l *listener) close() {
	_ = l.ln.Close()
	if l.unixPath == "" || l.unixFile == nil {
		return
	}
	if fi, err := os.Stat(l.unixPath); err == nil && os.SameFile(fi, l.unixFile) {
		_ = os.Remove(l.unixPath)
	}
}

// StopAccepting closes the listeners: each takes what is already queued and
// closes. It returns once they are closed; later calls wait for the first.
// Connections already accepted, including clients still logging in, are
// served as before. Safe for concurrent use.
func (p *Proxy) StopAccepting() {
	p.stopAccept.Do(func() {
		if p.cli == nil {
			p.refuseNew.Store(true) // gnet's listeners stay open until Stop: new clients get 57P03
		}
		for _, l := range p.lns {
			l.stopping.Store(true)
			if d, ok := l.ln.(interface{ SetDeadline(time.Time) error }); ok {
				_ = d.SetDeadline(time.Unix(1, 0)) // wakes Accept
			} else {
				l.close()
			}
		}
		for _, l := range p.lns {
			<-l.done
		}
		if p.cfg.ReusePort {
			if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req"); err == nil && strings.TrimSpace(string(b)) == "0" {
				p.log.Warn("stopped listening with SO_REUSEPORT while sysctl net.ipv4.tcp_migrate_req=0: a connection the kernel queued on this process's socket as it closed was reset; set net.ipv4.tcp_migrate_req=1 to have the kernel move such connections to the process sharing the port")
			}
		}
	})
}

// startOwnListeners listens with belay's own sockets and runs the engine
// without listeners, enrolling what they accept (ReusePort: a rolling
// restart closes them and keeps its clients). Each accepted connection
// costs more than gnet's in-loop accept: a dup, Go's netpoller registering
// and unregistering it, and a hand-off to the loop.
func (p *Proxy) startOwnListeners(loops int) error {
	if err := p.listen(); err != nil {
		return fmt.Errorf("listen %s: %w", strings.Join(p.addrs, ", "), err)
	}
	cli, err := gnet.NewClient(p,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{p.log}),
	)
	if err == nil {
		err = cli.Start()
	}
	if err != nil {
		for _, l := range p.lns {
			l.close()
		}
		return fmt.Errorf("start event loops: %w", err)
	}
	p.cli = cli
	for _, l := range p.lns {
		go p.accept(l)
	}
	return nil
}

// startGnetListeners runs gnet with its own listeners, which accept on the
// loops themselves: the cheapest path for a new connection, measured with
// belay bench --scenarios churn-c10 (pgbench -C) against startOwnListeners.
// gnet cannot close them without closing every connection, so a shutdown
// answers new clients as Postgres does during one (57P03) until Stop.
func (p *Proxy) startGnetListeners(loops int) error {
	p.booted, p.engDone = make(chan struct{}), make(chan error, 1)
	if p.unix != "" {
		_ = os.Remove(p.unix) // a socket left by a process that died
	}
	go func() {
		p.engDone <- gnet.Rotate(p, p.addrs,
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(loops),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReuseAddr(true), // restart while old connections sit in TIME_WAIT, as Postgres does
			gnet.WithTicker(true),
			gnet.WithLogger(gnetLogger{p.log}),
		)
	}()
	select {
	case <-p.booted:
		if p.unix != "" {
			_ = os.Chmod(p.unix, 0o777)
		}
		return nil
	case err := <-p.engDone:
		return fmt.Errorf("listen %s: %w", strings.Join(p.addrs, ", "), err)
	}
}
