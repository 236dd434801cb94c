package loop

import (
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
)

// TestHotPathAllocations runs pgbench through an in-process belay in each
// protocol mode and counts the heap allocations of the whole process per
// transaction, less what it allocates idle for as long: forwarding, the plan
// cache, prepared-statement mapping and the reply queue allocate nothing per
// message. A count, not a time, so the machine's load does not decide it.
func TestHotPathAllocations(t *testing.T) {
	pg := pgtest.Shared(t)
	// More servers than clients and one event loop: no client ever waits and no
	// server slot moves between loops (a wait or a new login has costs of its
	// own, per event, not per message).
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 8, 1 })
	pgbench := pgtest.RequireBinary(t, "pgbench")
	cs := p.connString("postgres", "postgres")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", cs).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	const clients, perClient = 4, 4000
	for _, mode := range []string{"prepared", "extended", "simple"} {
		run := func(n int) {
			out, err := exec.Command(pgbench, "-n", "-S", "-M", mode, "-c", strconv.Itoa(clients), "-t", strconv.Itoa(n), cs).CombinedOutput()
			if err != nil {
				t.Fatalf("pgbench -M %s: %v\n%s", mode, err, out)
			}
		}
		run(100) // warm: servers open, statements planned and prepared
		var before, after, idle runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		run(perClient)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		// What the process allocates anyway in that time (sweeps, timers,
		// the test's own goroutines), measured idle, is not the data path's.
		time.Sleep(took)
		runtime.ReadMemStats(&idle)
		background := idle.Mallocs - after.Mallocs
		busy := after.Mallocs - before.Mallocs
		perTx := (float64(busy) - float64(background)) / (clients * perClient)
		t.Logf("-M %s: %.2f allocations, %.0f bytes per transaction (%d allocations in %v, %d in as long idle)",
			mode, perTx, float64(after.TotalAlloc-before.TotalAlloc)/(clients*perClient), busy, took.Round(time.Millisecond), background)
		if perTx > 0.2 {
			t.Errorf("-M %s: %.2f allocations per transaction; the data path should allocate nothing", mode, perTx)
		}
	}
}
