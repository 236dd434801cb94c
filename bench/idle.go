package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// holdIdle opens n logged-in connections to addr, dialing with the given
// concurrency. It returns the open connections, the number of failures and
// the first failure.
func holdIdle(ctx context.Context, addr, db string, n, concurrency int) ([]*rawConn, int, error) {
	var (
		mu       sync.Mutex
		conns    = make([]*rawConn, 0, n)
		fails    int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan struct{})
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				c, err := dialRaw(dctx, addr, "postgres", db, 0)
				cancel()
				mu.Lock()
				if err != nil {
					fails++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return conns, fails, firstErr
}

// closeAll closes conns, a few at a time in parallel.
func closeAll(conns []*rawConn) {
	var wg sync.WaitGroup
	const par = 16
	for p := 0; p < par; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := p; i < len(conns); i += par {
				_ = conns[i].Close()
			}
		}(p)
	}
	wg.Wait()
}

// stillOpen counts the connections the peer has not closed: a read with an
// immediate deadline times out on a live idle connection.
func stillOpen(conns []*rawConn) int {
	n := 0
	for _, c := range conns {
		_ = c.c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		_, err := c.c.Read(b[:])
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			n++
		}
		_ = c.c.SetReadDeadline(time.Time{})
	}
	return n
}

// runIdle holds sc.Idle idle clients open through t, measures the proxy's RSS
// per idle client, then runs sc's pgbench workers with the idle clients held.
func (e *env) runIdle(ctx context.Context, sc Scenario, t Target, r *RunResult) error {
	r.IdleWanted = sc.Idle
	time.Sleep(200 * time.Millisecond)
	before, err := readRSS(t.PID)
	if err != nil {
		return err
	}
	start := time.Now()
	conns, fails, firstErr := holdIdle(ctx, t.Addr(), t.DB, sc.Idle, 64)
	defer closeAll(conns)
	r.IdleOpenSecs = time.Since(start).Seconds()
	r.IdleOpened, r.IdleOpenErrors = len(conns), fails
	time.Sleep(300 * time.Millisecond)
	after, err := readRSS(t.PID)
	if err != nil {
		return err
	}
	r.RSSBefore, r.RSSIdle = before, after
	if len(conns) > 0 {
		r.RSSPerIdle = float64(after-before) / float64(len(conns))
	}
	perr := e.pgbenchInto(ctx, sc, t, r)
	if firstErr != nil {
		r.Errors = append([]string{fmt.Sprintf("%d of %d idle connections failed: %v", fails, sc.Idle, firstErr)}, r.Errors...)
	}
	if perr != nil {
		return perr
	}
	r.IdleStillOpen = stillOpen(conns)
	if r.IdleStillOpen < len(conns) {
		r.Errors = append(r.Errors, fmt.Sprintf("%d idle connections were closed by the proxy during the run", len(conns)-r.IdleStillOpen))
	}
	return nil
}
