package loop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
)

// procCounters are the process's read and write system calls (/proc/self/io:
// syscr, syscw; every thread's, dead ones too) and its context switches
// (getrusage: every thread's, voluntary and involuntary).
type procCounters struct {
	reads, writes, vcsw, ivcsw float64
	scheds                     float64 // sampled: the count of runtime/metrics' /sched/latencies:seconds
}

func readProcCounters(t testing.TB) procCounters {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	var c procCounters
	for _, l := range bytes.Split(b, []byte("\n")) {
		k, v, _ := bytes.Cut(l, []byte(": "))
		n, _ := strconv.ParseFloat(string(v), 64)
		switch string(k) {
		case "syscr":
			c.reads = n
		case "syscw":
			c.writes = n
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	c.vcsw, c.ivcsw = float64(ru.Nvcsw), float64(ru.Nivcsw)
	m := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(m)
	for _, n := range m[0].Value.Float64Histogram().Counts {
		c.scheds += float64(n)
	}
	return c
}

func (c procCounters) sub(d procCounters) procCounters {
	return procCounters{c.reads - d.reads, c.writes - d.writes, c.vcsw - d.vcsw, c.ivcsw - d.ivcsw, c.scheds - d.scheds}
}

func (c procCounters) per(n float64) procCounters {
	return procCounters{c.reads / n, c.writes / n, c.vcsw / n, c.ivcsw / n, c.scheds / n}
}

func (c procCounters) String() string {
	return fmt.Sprintf("%.2f reads, %.2f writes, %.2f voluntary and %.2f involuntary context switches, %.3f sampled schedulings",
		c.reads, c.writes, c.vcsw, c.ivcsw, c.scheds)
}

// TestSyscallsPerTransaction is the guard of the event loop's idle path
// (issue 16, third_party/gnet/BELAY_PATCH.md): one pgbench client, one
// select-only transaction at a time through an in-process belay with one
// event loop, so that the loop goes idle twice per transaction (waiting for
// the server, then for the client). It counts, per transaction and less what
// the process does idle for as long, the process's read and write system
// calls, its context switches and how often the Go scheduler ran a
// goroutine (sampled by the runtime: the count of /sched/latencies:seconds).
//
// The patched loop blocks in epoll_wait each time it has nothing to do, and
// yields to the scheduler only on a time bound, switched off here: no
// scheduling of its goroutine (measured 0.001 per transaction; 0.004 to
// 0.006 with the time bound on) and about one voluntary context switch per
// read (measured 0.88 to 1.19). gnet as released polls again with a zero
// timeout and calls runtime.Gosched before it blocks, which wakes another
// thread that goes back to sleep: 0.21 to 0.23 sampled schedulings per
// transaction, 1.34 to 1.58 voluntary context switches per read. Counts,
// not times, so the machine's load moves them little; but it does move the
// context switches, so their bound is loose (a handoff to another thread
// per message would still break it) and the schedulings decide.
func TestSyscallsPerTransaction(t *testing.T) {
	defer func(d time.Duration) { netpoll.YieldInterval = d }(netpoll.YieldInterval)
	netpoll.YieldInterval = time.Hour // before the loops start; restored after they stop
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 4, 1 })
	pgbench := pgtest.RequireBinary(t, "pgbench")
	cs := p.connString("postgres", "postgres")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", cs).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	run := func(n int) {
		out, err := exec.Command(pgbench, "-n", "-S", "-M", "simple", "-c", "1", "-t", strconv.Itoa(n), cs).CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench: %v\n%s", err, out)
		}
	}
	run(200) // warm: the server is open and the plan cached
	const txs = 5000
	before := readProcCounters(t)
	start := time.Now()
	run(txs)
	took := time.Since(start)
	after := readProcCounters(t)
	time.Sleep(took) // what the process does idle (ticks, sweeps) is not the data path's
	idle := readProcCounters(t)
	busy, background := after.sub(before), idle.sub(after)
	per := busy.sub(background).per(txs)
	t.Logf("per transaction: %v (%d transactions in %v; idle for as long: %v)", per, txs, took.Round(time.Millisecond), background)
	// pgbench's output is read by this process too: a few reads in all.
	if per.reads < 1.9 || per.reads > 2.5 || per.writes < 1.9 || per.writes > 2.5 {
		t.Errorf("%.2f reads and %.2f writes per transaction; want 2 of each (the query and its result, each read once and written once)", per.reads, per.writes)
	}
	if per.scheds > 0.05 {
		t.Errorf("%.3f sampled schedulings per transaction; want none: the loop should not pass through the scheduler on its way to epoll_wait", per.scheds)
	}
	if r := per.vcsw / per.reads; r > 1.5 {
		t.Errorf("%.2f voluntary context switches per read system call; want about 1 (the loop blocks in epoll_wait when it has nothing to do), not 2 (a yield to the scheduler, waking another thread, before each block)", r)
	}
}
