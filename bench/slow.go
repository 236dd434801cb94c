package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// runSlow is the slow-client scenario: one client sends slowQuery through t
// and reads the result at e.o.SlowRate bytes/s for e.o.SlowDuration, then
// goes away; the proxy's RSS is sampled every 100 ms throughout and for a
// second after. Then: how long the server kept running the query after the
// client left, and whether the proxy still serves a new client.
func (e *env) runSlow(ctx context.Context, t Target, r *RunResult) error {
	base, err := readRSS(t.PID)
	if err != nil {
		return err
	}
	r.RSSBase = base
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	c, err := dialRaw(dctx, t.Addr(), "postgres", t.DB, 64<<10)
	cancel()
	if err != nil {
		r.Errors = append(r.Errors, "connect: "+err.Error())
		return nil
	}
	start := time.Now()
	var (
		mu      sync.Mutex
		samples []RSSSample
		peak    = base
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			if rss, err := readRSS(t.PID); err == nil {
				mu.Lock()
				samples = append(samples, RSSSample{T: time.Since(start).Seconds(), RSS: rss})
				peak = max(peak, rss)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	if err := c.sendQuery(slowQuery); err != nil {
		r.Errors = append(r.Errors, "query: "+err.Error())
	}
	buf := make([]byte, 16<<10)
	var read int64
	readStart := time.Now()
	for {
		el := time.Since(readStart)
		if el >= e.o.SlowDuration || ctx.Err() != nil {
			break
		}
		allowed := int64(el.Seconds()*float64(e.o.SlowRate)) - read
		if allowed <= 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		n := int(min(allowed, int64(len(buf))))
		_ = c.c.SetReadDeadline(time.Now().Add(time.Second))
		m, err := c.c.Read(buf[:n])
		read += int64(m)
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				continue
			}
			r.Errors = append(r.Errors, fmt.Sprintf("read after %s: %v", mib(read), err))
			break
		}
	}
	r.BytesRead = read
	r.ReadRate = float64(read) / time.Since(readStart).Seconds()
	_ = c.c.Close() // the client goes away mid-result, without Terminate
	left := time.Now()
	r.ServerReleaseMs = e.queryEnded(ctx, left, 10*time.Second)
	if d := time.Second - time.Since(left); d > 0 { // sample a second after the client left
		time.Sleep(d)
	}
	close(stop)
	<-done
	mu.Lock()
	r.RSSSamples, r.RSSPeak = samples, peak
	mu.Unlock()
	r.Seconds = time.Since(start).Seconds()
	if r.ServerReleaseMs < 0 {
		r.Errors = append(r.Errors, "the server was still running the query 10s after the client left")
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if c2, err := dialRaw(sctx, t.Addr(), "postgres", t.DB, 0); err == nil {
		err = c2.query(sctx, "SELECT 1")
		_ = c2.Close()
		r.StillServes = err == nil
		if err != nil {
			r.Errors = append(r.Errors, "SELECT 1 afterwards: "+err.Error())
		}
	} else {
		r.Errors = append(r.Errors, "connecting afterwards: "+err.Error())
	}
	return nil
}

// queryEnded polls pg_stat_activity until no backend runs slowQuery and
// returns the milliseconds since left; -1 if it still runs after limit.
func (e *env) queryEnded(ctx context.Context, left time.Time, limit time.Duration) float64 {
	conn, err := pgconn.Connect(ctx, e.pg.ConnString("postgres", e.pg.Superuser))
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	const q = "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'SELECT repeat(''x'', 1000) FROM generate_series%'"
	for {
		res, err := conn.Exec(ctx, q).ReadAll()
		if err == nil && len(res) == 1 && len(res[0].Rows) == 1 && string(res[0].Rows[0][0]) == "0" {
			return float64(time.Since(left).Microseconds()) / 1000
		}
		if time.Since(left) > limit || ctx.Err() != nil {
			return -1
		}
		time.Sleep(50 * time.Millisecond)
	}
}
