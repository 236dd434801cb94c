package netns

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestNet: two nodes, each in a namespace of its own with its address; a
// server in one is reached from this process and from the other node; a
// partition silences it (a dial times out instead of being refused, an
// established connection gets no answer and no reset) and a heal brings
// the same connection back; Close leaves no namespace and no link behind.
func TestNet(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, err := n.Add("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.Add("b")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := n.Add("a"); err != nil || again != a {
		t.Fatalf("Add of a name again: %v, %v", again, err)
	}
	if a.Addr == b.Addr || !n.Subnet.Contains(a.Addr) || !n.Subnet.Contains(b.Addr) || a.Addr == n.Gateway {
		t.Fatalf("addresses: a %v b %v gateway %v subnet %v", a.Addr, b.Addr, n.Gateway, n.Subnet)
	}
	// A listener in a's namespace, on its address: an echo server.
	var ln net.Listener
	if err := a.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(a.Addr.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	addr := ln.Addr().String()
	// The same port on 127.0.0.1 here is not a's.
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), time.Second); err == nil {
		c.Close()
		t.Fatal("a's listener is reachable on this namespace's loopback")
	}
	echo := func(c net.Conn, msg string, d time.Duration) error {
		_ = c.SetDeadline(time.Now().Add(d))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return errors.New("echo: " + string(buf))
		}
		return nil
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c, "from the root", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// From b's namespace, across the bridge.
	if err := b.Do(func() error {
		bc, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer bc.Close()
		if la := bc.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); la != b.Addr {
			return errors.New("b dialled from " + la.String())
		}
		return echo(bc, "from b", 2*time.Second)
	}); err != nil {
		t.Fatal(err)
	}

	if err := n.Partition("a"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if d, err := net.DialTimeout("tcp", addr, 700*time.Millisecond); err == nil {
		d.Close()
		t.Fatal("a new connection to a partitioned node")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a dial to a partitioned node: %v, want a timeout (silence, not a refusal)", err)
	}
	if err := echo(c, "during", 700*time.Millisecond); err == nil {
		t.Fatal("an answer across a partition")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a connection across a partition: %v, want a timeout (no reset)", err)
	}
	t.Logf("partitioned: silence for %v", time.Since(start).Round(time.Millisecond))

	if err := n.Heal("a"); err != nil {
		t.Fatal(err)
	}
	// The connection carries on: "during" arrives (TCP retransmits it),
	// echoed, then more.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len("during"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after the heal, the connection: %q, %v", buf, err)
	}
	if err := echo(c, "after", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	ns, links := []string{a.NS, b.NS}, []string{a.Host, b.Host, n.bridge}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range ns {
		if nsExists(s) {
			t.Errorf("namespace %s left after Close", s)
		}
	}
	for _, l := range links {
		if linkExists(l) {
			t.Errorf("link %s left after Close", l)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if _, err := os.Stat(a.Path); err == nil {
		t.Errorf("%s left after Close", a.Path)
	}
}
