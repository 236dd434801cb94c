package etcdtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/etcdlocal"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// New starts an etcd for t in a temporary directory; it is stopped, and
// the directory removed, when t ends. To stop and start it again on the
// same ports and data, use Restart.
func New(t testing.TB) *etcdlocal.Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "belay-etcdtest-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return start(t, dir)
}

// Restart stops s and starts an etcd again in its directory, with its data,
// on its ports (the test fails if they were taken meanwhile). It is stopped
// when t ends.
func Restart(t testing.TB, s *etcdlocal.Server) *etcdlocal.Server {
	t.Helper()
	s.Stop()
	n := start(t, s.Dir)
	if n.ClientPort != s.ClientPort || n.PeerPort != s.PeerPort {
		t.Fatalf("etcdtest: etcd restarted on ports %d/%d, not %d/%d (taken meanwhile?)", n.ClientPort, n.PeerPort, s.ClientPort, s.PeerPort)
	}
	return n
}

func start(t testing.TB, dir string) *etcdlocal.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := etcdlocal.Start(ctx, etcdlocal.Options{Dir: dir, NoFsync: true, LogLevel: "warn"})
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Client returns a client of s, closed when t ends.
func Client(t testing.TB, s *etcdlocal.Server) *clientv3.Client {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
