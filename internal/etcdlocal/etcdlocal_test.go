package etcdlocal

import (
	"context"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestRestartKeepsDataAndPorts: a second Start in the same directory
// serves the same data on the same ports; if a kept port is taken, another
// is picked and kept.
func TestRestartKeepsDataAndPorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := Options{Dir: dir, NoFsync: true, LogLevel: "warn"}
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	put := func(s *Server, k, v string) {
		t.Helper()
		c, err := s.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	get := func(s *Server, k string) string {
		t.Helper()
		c, err := s.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := c.Get(ctx, k)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get %s: %v, %v", k, r, err)
		}
		return string(r.Kvs[0].Value)
	}
	put(s, "k", "v1")
	s.Stop()
	s.Stop() // idempotent

	s2, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if s2.ClientPort != s.ClientPort || s2.PeerPort != s.PeerPort {
		t.Errorf("ports %d/%d, then %d/%d", s.ClientPort, s.PeerPort, s2.ClientPort, s2.PeerPort)
	}
	if v := get(s2, "k"); v != "v1" {
		t.Errorf("k = %q after the restart", v)
	}
	s2.Stop()

	// The client port taken meanwhile: another one, kept from then on.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ClientPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s3, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Stop()
	if s3.ClientPort == s.ClientPort {
		t.Fatal("started on a taken port")
	}
	if v := get(s3, "k"); v != "v1" {
		t.Errorf("k = %q on new ports", v)
	}
	b, _ := os.ReadFile(dir + "/ports")
	if c, p := readPorts(dir + "/ports"); c != s3.ClientPort || p != s3.PeerPort {
		t.Errorf("ports file %q, want %d %d", b, s3.ClientPort, s3.PeerPort)
	}
}
