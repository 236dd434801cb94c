package loop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestLimits: each limit ends the client with its SQLSTATE and leaves the
// pool clean. Clients use pgx's QueryExecModeExec: named prepared statements
// pin a client to its server until issue C.
func TestLimits(t *testing.T) {
	pg := pgtest.Shared(t)

	t.Run("client login timeout", func(t *testing.T) {
		ac := newAuthCluster(t)
		p := startProxy(t, ac.pg, func(c *Config) {
			c.AuthType = "scram-sha-256"
			c.AuthFile = ac.authFile
			c.ClientLoginTimeout = 300 * time.Millisecond
		})
		// A client that starts SCRAM and never answers.
		r := dialRaw(t, p)
		r.send(codec.AppendStartupMessage(nil, codec.ProtocolVersion30, "user", "alice", "database", "postgres"))
		if f, err := r.next(); err != nil || f.Type != codec.MsgAuthentication {
			t.Fatalf("want AuthenticationSASL, got %q %v", f.Type, err)
		}
		r.expectFatal(sqlstate.QueryCanceled, "canceling authentication due to timeout")
		// One that never sends its startup packet.
		r = dialRaw(t, p)
		r.expectFatal(sqlstate.QueryCanceled, "canceling authentication due to timeout")
		if n := p.Stats().Clients; n != 0 {
			t.Fatalf("%d clients counted after the timeouts", n)
		}
	})

	t.Run("query wait timeout", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) {
			c.PoolSize = 1
			c.QueryWaitTimeout = 300 * time.Millisecond
		})
		ctx := context.Background()
		tx := holdServer(t, p)
		waiter := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		_, err := waiter.Exec(ctx, "SELECT 1")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != string(sqlstate.ProtocolViolation) || pe.Message != "query_wait_timeout" || !strings.Contains(pe.Detail, "no server connection for postgres@postgres within") {
			t.Fatalf("waiter: %v, want 08P01 query_wait_timeout", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		checkPoolClean(t, p, pg, "postgres", 1)
	})

	t.Run("idle transaction timeout", func(t *testing.T) {
		p := startProxy(t, pg, func(c *Config) {
			c.PoolSize = 1
			c.IdleTransactionTimeout = 300 * time.Millisecond
		})
		ctx := context.Background()
		c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		if _, err := c.Exec(ctx, "BEGIN; CREATE TEMP TABLE idle_tx_probe (i int)"); err != nil {
			t.Fatal(err)
		}
		// A busy transaction is not idle: a query longer than the timeout runs.
		if _, err := c.Exec(ctx, "SELECT pg_sleep(0.6)"); err != nil {
			t.Fatalf("a running query was taken for idleness: %v", err)
		}
		time.Sleep(900 * time.Millisecond)
		_, err := c.Exec(ctx, "SELECT 1")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != string(sqlstate.IdleInTransactionSessionTimeout) {
			// The FATAL may arrive before the query is sent; pgx then
			// reports the closed connection. Either way the client is gone.
			if !c.IsClosed() {
				t.Fatalf("after the idle timeout: %v, want 25P03", err)
			}
		}
		// The transaction was rolled back and the server reused.
		other := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		var n int
		if err := other.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'idle_tx_probe'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the idle transaction's table is still there: %d %v", n, err)
		}
		checkPoolClean(t, p, pg, "postgres", 1)
	})
}

// TestCancelPsql: psql's Ctrl-C (SIGINT, which makes libpq send a
// CancelRequest) stops a long query through belay.
func TestCancelPsql(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, nil)
	psql := pgtest.RequireBinary(t, "psql")
	cmd := exec.Command(psql, "-X", "-c", "SELECT pg_sleep(30)")
	cmd.Env = clientEnv(p)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "psql's query to run", func() bool { return serverBusy(t, pg) })
	sent := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("psql still running 20 s after Ctrl-C:\n%s", out.String())
	}
	t.Logf("psql ended %v after SIGINT", time.Since(sent).Round(time.Millisecond))
	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Fatalf("psql output: %s", out.String())
	}
}

// serverBusy: a client backend of pg runs pg_sleep.
func serverBusy(t *testing.T, pg interface{ ConnString(db, user string) string }) bool {
	c, err := pgx.Connect(context.Background(), pg.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	_ = c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()").Scan(&n)
	return n > 0
}

// TestLateCancels: clients that cancel their own queries at random moments,
// many just as the query ends (late), share two servers with clients that
// never cancel; no query of the latter may ever be cancelled (pgbouncer issue
// #245). Without poolcore's hold on servers with a cancel in flight, victims
// do get 57014 here.
func TestLateCancels(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 2 })
	ctx, stop := context.WithTimeout(context.Background(), 4*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var victimQueries, victimCancelled, cancels, cancellerQueries atomic.Int64
	var victimErrs sync.Map
	for i := 0; i < 6; i++ {
		victim := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, err := victim.Exec(context.Background(), "SELECT pg_sleep(0.002)")
				victimQueries.Add(1)
				if err != nil {
					victimCancelled.Add(1)
					victimErrs.Store(err.Error(), true)
					if victim.IsClosed() {
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 6; i++ {
		canceller := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// The cancel races the end of the query: some reach Postgres
				// just as the query ends and the server goes to a victim.
				delay := time.Duration(rand.Int64N(int64(2 * time.Millisecond)))
				sent := make(chan struct{})
				go func() {
					time.Sleep(delay)
					_ = canceller.PgConn().CancelRequest(context.Background())
					cancels.Add(1)
					close(sent)
				}()
				_, _ = canceller.Exec(context.Background(), "SELECT pg_sleep(0.001)")
				cancellerQueries.Add(1)
				<-sent
			}
		}()
	}
	wg.Wait()
	t.Logf("%d victim queries, %d canceller queries, %d late cancels", victimQueries.Load(), cancellerQueries.Load(), cancels.Load())
	if victimCancelled.Load() > 0 {
		var errs []string
		victimErrs.Range(func(k, _ any) bool { errs = append(errs, k.(string)); return true })
		sort.Strings(errs)
		t.Fatalf("%d queries of clients that never cancelled failed: %s", victimCancelled.Load(), strings.Join(errs, "; "))
	}
	if victimQueries.Load() < 50 || cancels.Load() < 50 {
		t.Fatalf("too little traffic to mean anything: %d victim queries, %d cancels", victimQueries.Load(), cancels.Load())
	}
	checkPoolClean(t, p, pg, "postgres", 2)
}

// TestCancelAcrossPeers: two belays share a port with SO_REUSEPORT; a
// CancelRequest that reaches the process which did not issue the key is
// forwarded to the one that did, and stops the query there.
func TestCancelAcrossPeers(t *testing.T) {
	pg := pgtest.Shared(t)
	shared := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	own := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	peers := map[int]string{1: own[0], 2: own[1]}
	var ps [2]*Proxy
	for i := range ps {
		ps[i] = startProxy(t, pg, func(c *Config) {
			c.Listen = []string{own[i], shared}
			c.ReusePort = true
			c.PeerID = i + 1
			c.Peers = peers
		})
	}
	// The client is on peer 1; its cancel goes to peer 2.
	c := connectMode(t, ps[0].connString("postgres", "postgres"), pgx.QueryExecModeExec)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(30)")
		errc <- err
	}()
	eventually(t, 10*time.Second, "the query to run", func() bool { return serverBusy(t, pg) })
	conn, err := net.Dial("tcp", own[1])
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _ = conn.Write(codec.AppendCancelRequest(nil, c.PgConn().PID(), c.PgConn().SecretKey()))
	_ = conn.Close()
	select {
	case err := <-errc:
		checkCode(t, err, string(sqlstate.QueryCanceled))
		t.Logf("cancelled through the other peer in %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("the cancel sent to the other peer did not stop the query")
	}
	// Both still serve on the shared port.
	for i := 0; i < 4; i++ {
		cc := connectMode(t, strings.Replace(ps[0].connString("postgres", "postgres"), "port="+portOf(own[0]), "port="+portOf(shared), 1), pgx.QueryExecModeExec)
		if _, err := cc.Exec(context.Background(), "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// TestCancelWhileWaiting: a client waiting for a server gets its query
// cancelled without a server and without touching the client that holds it.
func TestCancelWhileWaiting(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 1 })
	ctx := context.Background()
	tx := holdServer(t, p)
	waiter := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	errc := make(chan error, 1)
	go func() {
		_, err := waiter.Exec(ctx, "SELECT 'never ran'")
		errc <- err
	}()
	eventually(t, 10*time.Second, "the client to wait", func() bool {
		for _, pool := range p.Pools().Pools() {
			if pool.Stats().Waiting > 0 {
				return true
			}
		}
		return false
	})
	if err := waiter.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		checkCode(t, err, string(sqlstate.QueryCanceled))
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting client's cancel did nothing")
	}
	// The holder's transaction is untouched; the waiter works once it ends.
	if _, err := tx.Exec(ctx, "SELECT 2"); err != nil {
		t.Fatalf("holder after the other's cancel: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := waiter.Exec(ctx, "SELECT 3"); err != nil {
		t.Fatalf("waiter after its cancel: %v", err)
	}
	checkPoolClean(t, p, pg, "postgres", 1)
}

// holdServer opens a transaction through p that holds one server until the
// returned transaction ends.
func holdServer(t *testing.T, p *Proxy) pgx.Tx {
	t.Helper()
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	tx, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	return tx
}
