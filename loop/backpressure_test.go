package loop

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/internal/pgtest"
)

// TestSlowReaderBoundedMemory streams more than 1 GiB of query results
// through belay to a client that reads slowly, and checks that belay's heap
// (gnet's buffers live there) stays far below what it would hold if it
// buffered the result, and that belay parked the server to get there.
func TestSlowReaderBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB")
	}
	pg := pgtest.Shared(t)
	const maxBuf = 1 << 20
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 1; c.MaxBufferedBytes = maxBuf })
	r := dialRaw(t, p)
	r.login("postgres")

	// 131072 rows of 8 KiB: 1 GiB of payload (plus framing).
	const rows, width = 131072, 8192
	r.send(codec.AppendQuery(nil, "SELECT repeat('x', 8192) FROM generate_series(1, 131072)"))

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	// Read slowly: 256 KiB, then a pause, so that Postgres produces faster
	// than the client consumes.
	var total int64
	var got int
	buf := make([]byte, 256<<10)
	var pending []byte
	start := time.Now()
	done := false
	for !done {
		_ = r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := r.c.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", total, err)
		}
		total += int64(n)
		pending = append(pending, buf[:n]...)
		for {
			f, m, err := codec.ReadFrame(pending, 1<<20)
			if err == codec.ErrShortBuffer {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			switch f.Type {
			case codec.MsgDataRow:
				got++
			case codec.MsgErrorResponse:
				e, _ := codec.ParseErrorFields(f.Body)
				t.Fatalf("error: %s", e.Message)
			case codec.MsgReadyForQuery:
				done = true
			}
			pending = pending[m:]
		}
		pending = append([]byte(nil), pending...)
		time.Sleep(500 * time.Microsecond)
	}
	close(stop)
	<-sampled
	elapsed := time.Since(start)
	if got != rows || total < int64(rows)*width {
		t.Fatalf("got %d rows, %d bytes", got, total)
	}
	grow := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("streamed %d MiB in %v (%.0f MiB/s); heap in use grew by at most %d KiB (bound %d KiB); parks %d",
		total>>20, elapsed.Round(time.Millisecond), float64(total>>20)/elapsed.Seconds(), grow>>10, maxBuf>>10, p.Stats().Parks)
	if p.Stats().Parks == 0 {
		t.Fatal("the server was never parked: the reader was not slow enough to test backpressure")
	}
	// belay may hold the bound on each side plus gnet's read buffers; 64 MiB
	// is 1/16 of what passed through.
	if grow > 64<<20 {
		t.Fatalf("heap grew by %d MiB while streaming: the result is being buffered", grow>>20)
	}
}
