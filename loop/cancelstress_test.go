package loop

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// TestCancelStress (issue K.3): many clients on few servers run short
// queries and cancel each at a random moment, so that hundreds of cancels a
// second race the queries' ends, the wait for a server, and the servers'
// hand-offs. Every query must come back at once, with its result or 57014
// (a hang is one that takes longer than hangAfter); the queries of clients
// that never cancel must never fail (victims). BELAY_CANCEL_STRESS sets how
// long it runs (default 6s).
func TestCancelStress(t *testing.T) {
	pg := pgtest.Shared(t)
	pool := 4
	if n, err := strconv.Atoi(os.Getenv("BELAY_CANCEL_STRESS_POOL")); err == nil {
		pool = n
	}
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = pool })
	dur := 6 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BELAY_CANCEL_STRESS")); err == nil {
		dur = d
	}
	const hangAfter = 5 * time.Second
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var wg sync.WaitGroup
	var queries, cancels, cancelled, hangs, victimQueries, victims atomic.Int64
	var firstHang, firstVictim atomic.Value
	var slowest atomic.Int64 // the longest query of a client that never cancels
	modes := []pgx.QueryExecMode{pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement}
	for i := 0; i < 24; i++ {
		// A third cancel as libpq's PQcancel does, a third through a
		// context deadline with pgx's CancelRequestContextWatcherHandler (a
		// cancel request, then the reply awaited for up to DeadlineDelay),
		// a third through pgx's default, which closes the connection at the
		// deadline, and connect again.
		byDeadline, closing := i%3 != 0, i%3 == 2
		connect := func() (*pgx.Conn, error) {
			cfg, err := pgx.ParseConfig(p.connString("postgres", "postgres"))
			if err != nil {
				return nil, err
			}
			cfg.DefaultQueryExecMode = modes[i%len(modes)]
			if !closing {
				cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
					return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 3 * hangAfter}
				}
			}
			cctx, cancel := context.WithTimeout(context.Background(), 3*hangAfter)
			defer cancel()
			return pgx.ConnectConfig(cctx, cfg)
		}
		c, err := connect()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = c.Close(context.Background()) }()
			for ctx.Err() == nil {
				if c.IsClosed() {
					start := time.Now()
					var err error
					if c, err = connect(); err != nil {
						t.Errorf("connecting again: %v", err)
						return
					}
					if took := time.Since(start); took > hangAfter {
						hangs.Add(1)
						firstHang.CompareAndSwap(nil, "connect: "+took.String())
					}
				}
				delay := time.Duration(rand.Int64N(int64(4 * time.Millisecond)))
				sent := make(chan struct{})
				qctx, cancel := context.WithTimeout(context.Background(), 3*hangAfter)
				if byDeadline {
					qctx, cancel = context.WithTimeout(context.Background(), delay)
					close(sent)
					cancels.Add(1)
				} else {
					go func() {
						defer close(sent)
						time.Sleep(delay)
						cctx, cancel := context.WithTimeout(context.Background(), hangAfter)
						defer cancel()
						if c.PgConn().CancelRequest(cctx) == nil {
							cancels.Add(1)
						}
					}()
				}
				start := time.Now()
				_, err := c.Exec(qctx, "SELECT pg_sleep($1::float8 / 1000)", rand.IntN(4))
				took := time.Since(start)
				cancel()
				queries.Add(1)
				var pe *pgconn.PgError
				switch {
				case took > hangAfter:
					hangs.Add(1)
					firstHang.CompareAndSwap(nil, took.String()+": "+errString(err))
				case errors.As(err, &pe) && pe.Code == string(sqlstate.QueryCanceled),
					byDeadline && errors.Is(err, context.DeadlineExceeded):
					cancelled.Add(1)
				case err != nil:
					t.Errorf("query failed: %v", err)
					<-sent
					return
				}
				<-sent
			}
		}()
	}
	for i := 0; i < 4; i++ {
		v := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				qctx, cancel := context.WithTimeout(context.Background(), 3*hangAfter)
				start := time.Now()
				_, err := v.Exec(qctx, "SELECT pg_sleep(0.001)")
				took := time.Since(start)
				cancel()
				victimQueries.Add(1)
				for old := slowest.Load(); int64(took) > old && !slowest.CompareAndSwap(old, int64(took)); old = slowest.Load() {
				}
				if took > hangAfter {
					hangs.Add(1)
					firstHang.CompareAndSwap(nil, "victim: "+took.String()+": "+errString(err))
				}
				if err != nil {
					victims.Add(1)
					firstVictim.CompareAndSwap(nil, err.Error())
					if v.IsClosed() {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("queries issued %d (cancelled %d), cancels sent %d (%.0f/s), hangs %d, queries of clients that never cancel %d (slowest %v), victims %d",
		queries.Load(), cancelled.Load(), cancels.Load(), float64(cancels.Load())/dur.Seconds(), hangs.Load(), victimQueries.Load(),
		time.Duration(slowest.Load()).Round(time.Millisecond), victims.Load())
	if hangs.Load() > 0 {
		t.Errorf("%d queries hung; the first: %v", hangs.Load(), firstHang.Load())
	}
	if victims.Load() > 0 {
		t.Errorf("%d queries of clients that never cancelled failed; the first: %v", victims.Load(), firstVictim.Load())
	}
	if cancels.Load() < 100 || cancelled.Load() < 10 {
		t.Errorf("too few cancels to mean anything: %d sent, %d queries cancelled", cancels.Load(), cancelled.Load())
	}
	checkPoolClean(t, p, pg, "postgres", pool)
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
