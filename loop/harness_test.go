package loop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProxy runs a belay in front of pg for the test.
func startProxy(t testing.TB, pg *pginstance.Instance, mod func(*Config)) *Proxy {
	t.Helper()
	cfg := Config{
		Listen:   []string{"127.0.0.1:" + strconv.Itoa(freePort(t))},
		Server:   pg.Addr(),
		PoolSize: 4,
		AuthType: "trust",
		// Two loops even on small machines: the cross-loop paths of the
		// pools (slot moves, waiters on another loop) must be exercised.
		EventLoops: 2,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Getenv("BELAY_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

func (p *Proxy) connString(db, user string) string {
	host, port, _ := net.SplitHostPort(p.Addr())
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s sslmode=disable", host, port, db, user)
}

func connect(t testing.TB, connString string) *pgx.Conn {
	t.Helper()
	return connectMode(t, connString, pgx.QueryExecModeCacheStatement)
}

// connectMode connects with pgx in the given query execution mode; the
// connection is closed when the test ends.
func connectMode(t testing.TB, connString string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", connString, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// serverConns counts Postgres backends of user that are client backends.
func serverConns(t testing.TB, pg *pginstance.Instance, user string) int {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pg.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()", user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
