package pginstance

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"9.6", "10", true},
		{"10", "9.6", false},
		{"13", "15", true},
		{"15", "15", false},
		{"15", "15.1", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

func TestQuoteConnValue(t *testing.T) {
	for in, want := range map[string]string{
		"postgres": "postgres",
		"":         "''",
		"a b":      `'a b'`,
		`it's`:     `'it\'s'`,
	} {
		if got := quoteConnValue(in); got != want {
			t.Errorf("quoteConnValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "belay-pginstance-*")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func exec1(t *testing.T, i *Instance, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, i.ConnString("postgres", i.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return ""
	}
	return string(res[0].Rows[0][0])
}

var fast = map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

// TestPersistsAcrossStarts: a second Start on the same Dir reuses the data
// (what `belay up` relies on), with a caller-chosen port and log writer.
func TestPersistsAcrossStarts(t *testing.T) {
	dir := tempDir(t)
	ctx := context.Background()
	i, err := Start(ctx, Options{Dir: dir, Settings: fast})
	if err != nil {
		t.Fatal(err)
	}
	defer i.Stop()
	exec1(t, i, "create table kept (x int); insert into kept values (42)")
	if got := exec1(t, i, "show max_connections"); got != "200" {
		t.Errorf("max_connections = %s, want 200", got)
	}
	if i.SocketDir == "" || !strings.HasPrefix(i.LogPath, dir) {
		t.Errorf("SocketDir %q, LogPath %q", i.SocketDir, i.LogPath)
	}
	if err := i.Stop(); err != nil {
		t.Fatal(err)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	j, err := Start(ctx, Options{Dir: dir, Port: port, Settings: fast, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Stop()
	if j.Port != port {
		t.Errorf("Port = %d, want %d", j.Port, port)
	}
	if got := exec1(t, j, "select x from kept"); got != "42" {
		t.Errorf("kept row = %q, want 42", got)
	}
	if err := j.Stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "database system is shut down") {
		t.Errorf("log writer did not get the server log:\n%s", log.String())
	}
}

// TestBusyPort: a taken, caller-chosen port fails Start with the server log in the error.
func TestBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	i, err := Start(context.Background(), Options{Dir: tempDir(t), Port: port, Settings: fast})
	if err == nil {
		i.Stop()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	if !strings.Contains(err.Error(), "Address already in use") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("error does not explain the busy port: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
