package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPipelineWhileWaiting: a client that sends more while it waits for a
// server is queued once: it gets its answers from one server, and no server
// is left owned by it (queued twice, it was handed a second server while it
// ran on the first, which then leaked).
func TestPipelineWhileWaiting(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 2, 1 })
	a := holdServer(t, p)
	a2 := holdServer(t, p)
	host, port, _ := net.SplitHostPort(p.Addr())
	ctx := context.Background()
	f, _ := openRaw(t, ctx, host, port, "")
	f.Send(&pgproto3.Query{String: "SELECT 1"})
	_ = f.Flush()
	time.Sleep(200 * time.Millisecond)
	f.Send(&pgproto3.Query{String: "SELECT pg_sleep(0.5)"})
	_ = f.Flush()
	time.Sleep(200 * time.Millisecond)
	for _, pool := range p.Pools().Pools() {
		if st := pool.Stats(); st.Waiting != 1 {
			t.Fatalf("the client is queued %d times", st.Waiting)
		}
	}
	_ = a.Commit(ctx)
	time.Sleep(200 * time.Millisecond)
	_ = a2.Commit(ctx)
	n := 0
	for n < 2 {
		m, err := f.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			n++
		}
	}
	checkPoolClean(t, p, pg, "postgres", 2)
}
