package loop

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestServersClosedPolitely (issue K.8): every way belay closes server
// connections (idle timeout, a client gone in the middle of a transaction or
// of a query, RECONNECT, the proxy stopping) ends them with Terminate, so
// that Postgres logs no "could not receive data from client: Connection
// reset by peer" nor "unexpected EOF on client connection".
func TestServersClosedPolitely(t *testing.T) {
	// Postgres logs a connection closed without Terminate between
	// transactions only at DEBUG1.
	pg := pgtest.New(t, pginstance.Options{Settings: map[string]string{"log_min_messages": "debug1"}})
	logStart := fileSize(t, pg.LogPath)
	p := startProxy(t, pg, func(c *Config) {
		c.PoolSize = 4
		c.ServerIdleTimeout = 300 * time.Millisecond
	})
	ctx := context.Background()
	cs := p.connString("postgres", "postgres")
	// Clients that leave in the middle of a transaction, of a query, and
	// between transactions.
	for i := 0; i < 3; i++ {
		c := connectMode(t, cs, pgx.QueryExecModeExec)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		_ = c.PgConn().Conn().Close()
	}
	for i := 0; i < 2; i++ {
		c := connectMode(t, cs, pgx.QueryExecModeExec)
		go func() { _, _ = c.Exec(ctx, "SELECT pg_sleep(10)") }()
		time.Sleep(100 * time.Millisecond)
		_ = c.PgConn().Conn().Close()
	}
	for i := 0; i < 4; i++ {
		c := connectMode(t, cs, pgx.QueryExecModeExec)
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(ctx)
	}
	// A client that stops reading a long result (its server is parked)
	// and leaves, and one that leaves in the middle of a CopyData message.
	{
		host, port, _ := net.SplitHostPort(p.Addr())
		_, nc := openRaw(t, ctx, host, port, "")
		_, _ = nc.Write(codec.AppendQuery(nil, "SELECT repeat('x', 1000) FROM generate_series(1, 200000)"))
		time.Sleep(300 * time.Millisecond)
		_ = nc.Close()
		_, nc = openRaw(t, ctx, host, port, "")
		_, _ = nc.Write(codec.AppendQuery(nil, "CREATE TEMP TABLE ct (a text); COPY ct FROM STDIN"))
		time.Sleep(100 * time.Millisecond)
		_, _ = nc.Write(append([]byte{'d', 0, 1, 0, 0}, "abc"...)) // 64 kB announced, 3 bytes sent
		time.Sleep(100 * time.Millisecond)
		_ = nc.Close()
	}
	// The idle timeout closes them all.
	eventually(t, 10*time.Second, "idle servers to close", func() bool { return serverConns(t, pg, "postgres") == 0 })
	// Servers open when RECONNECT retires them, and when the proxy stops.
	for i := 0; i < 2; i++ {
		c := connectMode(t, cs, pgx.QueryExecModeExec)
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	p.Pools().Reconnect("")
	c := connectMode(t, cs, pgx.QueryExecModeExec)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "servers to close", func() bool { return serverConns(t, pg, "postgres") == 0 })
	time.Sleep(200 * time.Millisecond) // the backends' last words reach the log
	log := readFrom(t, pg.LogPath, logStart)
	for _, bad := range []string{"Connection reset by peer", "unexpected EOF on client connection"} {
		if n := strings.Count(log, bad); n > 0 {
			t.Errorf("Postgres logged %q %d times:\n%s", bad, n, log)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func readFrom(t *testing.T, path string, off int64) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[off:])
}
