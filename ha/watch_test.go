package ha

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/etcdtest"
)

// collect returns an OnChange that sends every snapshot to the channel.
func collect() (func(*Topology), chan *Topology) {
	ch := make(chan *Topology, 1000)
	return func(t *Topology) { ch <- t }, ch
}

// waitFor waits until Current satisfies ok.
func waitFor(t *testing.T, w *Watcher, what string, ok func(*Topology) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok(w.Current()) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher never saw %s; it has %+v", what, w.Current())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a slog handler's output, safe for the watcher's goroutine
// to write while the test reads it.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// watchLogged starts watching s, logging to the returned buffer, until t ends.
func watchLogged(t *testing.T, ctx context.Context, s *Store) (*Watcher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	w, err := s.Watch(ctx, WatchOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w, logs
}

// TestWatchInOrder: the watcher delivers every change, in revision order,
// and ends on the snapshot Load reads.
func TestWatchInOrder(t *testing.T) {
	ctx := testCtx(t)
	s, _ := newStore(t)
	register(t, ctx, s, 3)
	onChange, changes := collect()
	w, err := s.Watch(ctx, WatchOptions{OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	first := w.Current()
	if first.Shard("0").Term != 1 || first.Node("pg0").Role != RolePrimary {
		t.Fatalf("first snapshot %+v", first)
	}

	for term := uint64(1); term <= 10; term++ {
		if _, err := s.SetPrimary(ctx, "0", term, []string{"pg1", "pg2"}[term%2]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutNode(ctx, "pg0", NodeRecord{Shard: "0", Addr: "127.0.0.1:7000", State: StateDown}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}

	prev := first
	timeout := time.After(20 * time.Second)
	for prev.Revision < want.Revision {
		select {
		case top := <-changes:
			if top.Revision <= prev.Revision {
				t.Fatalf("snapshot at revision %d after one at %d", top.Revision, prev.Revision)
			}
			if top.Shard("0").Term < prev.Shard("0").Term {
				t.Fatalf("term %d after term %d", top.Shard("0").Term, prev.Shard("0").Term)
			}
			if p := top.Shard("0").PrimaryNode(); p == nil || p.Role != RolePrimary {
				t.Fatalf("snapshot at revision %d: primary %+v", top.Revision, p)
			}
			prev = top
		case <-timeout:
			t.Fatalf("the watcher is at revision %d, etcd at %d", prev.Revision, want.Revision)
		}
	}
	if !reflect.DeepEqual(prev, want) {
		t.Errorf("the watcher's last snapshot:\n%+v\nLoad's:\n%+v", prev, want)
	}
	if w.Current() != prev {
		t.Errorf("Current is not the last snapshot OnChange got")
	}
	if want.Shard("0").Term != 11 || want.Node("pg1").Role != RolePrimary || want.Node("pg0").State != StateDown {
		t.Errorf("final topology %+v", want)
	}
}

// TestWatchKeepsLastGood: records that do not decode, a topology that does
// not validate, a term that goes back: each is logged and Current keeps
// the last good snapshot until the records are repaired.
func TestWatchKeepsLastGood(t *testing.T) {
	ctx := testCtx(t)
	s, cli := newStore(t)
	register(t, ctx, s, 2)
	w, logs := watchLogged(t, ctx, s)
	good := w.Current()

	const ignored = "ignoring an invalid topology"
	for i, bad := range []struct{ key, value, restore string }{ // restore "": delete
		{NodeKey("c", "pg5"), `{"shard":`, ""},                                                                 // does not decode
		{NodeKey("c", "pg5"), `{"shard":"0"}`, ""},                                                             // no address
		{ShardKey("c", "0"), `{"term":1,"primary":"pg9"}`, `{"term":1,"primary":"pg0"}`},                       // a primary that is no node
		{ShardKey("c", "0"), `{"term":0,"primary":"pg0"}`, `{"term":1,"primary":"pg0"}`},                       // the term goes back
		{NodeKey("c", "pg1"), `{"shard":"0","addr":"a","state":"x"}`, `{"shard":"0","addr":"a","state":"up"}`}, // an unknown state
	} {
		if _, err := cli.Put(ctx, bad.key, bad.value); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for logs.count(ignored) < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %s: not logged as ignored", bad.key, bad.value)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if w.Current() != good {
			t.Fatalf("%s = %s replaced the last good snapshot: %+v", bad.key, bad.value, w.Current())
		}
		var err error
		if bad.restore == "" {
			_, err = cli.Delete(ctx, bad.key)
		} else {
			_, err = cli.Put(ctx, bad.key, bad.restore)
		}
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, "the restored "+bad.key, func(top *Topology) bool { return top.Revision > good.Revision })
		good = w.Current()
	}
	// Repaired: the next good revision is taken.
	if _, err := cli.Put(ctx, NodeKey("c", "pg1"), `{"shard":"0","addr":"b","state":"up"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, NodeKey("c", "pg5"), `{"shard":"0","addr":"c"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, ShardKey("c", "0"), `{"term":2,"primary":"pg5"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "the repaired records", func(top *Topology) bool {
		return top.Shard("0").Term == 2 && top.Node("pg5") != nil && top.Node("pg5").Role == RolePrimary && top.Node("pg1").Addr == "b"
	})
}

// TestWatchResyncAfterRestart: the watcher's etcd stops and starts again
// on the same ports and data; changes made after it is back reach the
// watcher, and while it is away Current keeps the last snapshot.
func TestWatchResyncAfterRestart(t *testing.T) {
	ctx := testCtx(t)
	srv := etcdtest.New(t)
	cli := etcdtest.Client(t, srv)
	s, err := NewStore(cli, "c")
	if err != nil {
		t.Fatal(err)
	}
	register(t, ctx, s, 2)
	w, _ := watchLogged(t, ctx, s)

	srv.Stop()
	if top := w.Current(); top == nil || top.Shard("0").Term != 1 {
		t.Fatalf("with etcd away: %+v", top)
	}
	time.Sleep(time.Second) // long enough for the watcher's client to notice and back off
	srv = etcdtest.Restart(t, srv)
	// Changes, then a compaction, through another client: if they are done
	// before the watcher's client is back, its watch cannot resume (the
	// revision is compacted) and it reloads; else it resumes. Either way it
	// must end on the last change.
	other, err := NewStore(etcdtest.Client(t, srv), "c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.SetPrimary(ctx, "0", 1, "pg1"); err != nil {
		t.Fatal(err)
	}
	rev, err := other.PutNode(ctx, "pg0", NodeRecord{Shard: "0", Addr: "127.0.0.1:8000"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "the changes made after the restart", func(top *Topology) bool {
		return top.Shard("0").Term == 2 && top.Node("pg0").Addr == "127.0.0.1:8000"
	})
	t.Logf("resyncs: %d (0: clientv3 resumed the watch by itself)", w.resyncs.Load())
}

// TestWatchResyncAfterCompaction: a watcher whose next revision was
// compacted away reloads the whole cluster and carries on from there.
func TestWatchResyncAfterCompaction(t *testing.T) {
	ctx := testCtx(t)
	s, cli := newStore(t)
	register(t, ctx, s, 2)
	kvs, rev, err := s.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPrimary(ctx, "0", 1, "pg1"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, NodeKey("c", "pg0"), `{"shard":"0","addr":"127.0.0.1:9","state":"down"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	onChange, changes := collect()
	var logs logBuffer
	w, err := startWatcher(ctx, s, WatchOptions{OnChange: onChange, Logger: logs.logger()}, kvs, rev)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case top := <-changes:
		if top.Revision != resp.Header.Revision || top.Shard("0").Term != 2 || top.Node("pg0").State != StateDown {
			t.Errorf("after the resync: %+v", top)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no snapshot after the compaction")
	}
	if n := w.resyncs.Load(); n != 1 {
		t.Errorf("%d resyncs, want 1", n)
	}
	if logs.count("compacted") == 0 {
		t.Errorf("the compaction was not logged:\n%s", logs.b.String())
	}
	// And it watches on from there.
	if _, err := s.SetPrimary(ctx, "0", 2, "pg0"); err == nil {
		t.Fatal("pg0 is down: SetPrimary accepted it")
	}
	if _, err := s.PutNode(ctx, "pg2", NodeRecord{Shard: "0", Addr: "127.0.0.1:10"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "pg2", func(top *Topology) bool { return top.Node("pg2") != nil })
}

// goroutines counts the goroutines whose stack mentions each of names.
func goroutines(names ...string) map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	counts := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, name := range names {
			if strings.Contains(g, name) {
				counts[name]++
			}
		}
	}
	return counts
}

// TestWatchStopLeavesNoGoroutine: after Stop, or the cancellation of
// Watch's context, neither the watcher's goroutine nor the etcd client's
// watch stream is left.
func TestWatchStopLeavesNoGoroutine(t *testing.T) {
	ctx := testCtx(t)
	s, _ := newStore(t)
	register(t, ctx, s, 1)
	const mine, stream = "belay/ha.(*Watcher)", "etcd/client/v3.(*watchGRPCStream)"
	noneLeft := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c := goroutines(mine, stream)
			if c[mine] == 0 && c[stream] == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: goroutines left: %v", when, c)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	noneLeft("before the watch")

	w, err := s.Watch(ctx, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := 0
	watching := func(w *Watcher) {
		t.Helper()
		// A change the watcher must see: its watch is established (a
		// watch cancelled before etcd confirmed it may leave the client's
		// stream behind, an etcd client race outside this test's reach).
		seen++
		addr := fmt.Sprintf("127.0.0.1:%d", 6000+seen)
		if _, err := s.PutNode(ctx, "pg0", NodeRecord{Shard: "0", Addr: addr}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, "the node's new address", func(top *Topology) bool {
			n := top.Node("pg0")
			return n != nil && n.Addr == addr
		})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			c := goroutines(mine, stream)
			if c[mine] == 1 && c[stream] > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("while watching: %v (the count must see them)", c)
			}
		}
	}
	watching(w)
	w.Stop()
	w.Stop() // idempotent
	if c := goroutines(mine); c[mine] != 0 {
		t.Fatalf("the watcher's goroutine outlived Stop: %v", c)
	}
	noneLeft("after Stop")

	cctx, cancel := context.WithCancel(ctx)
	w, err = s.Watch(cctx, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watching(w)
	cancel()
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not stop when its context was cancelled")
	}
	noneLeft("after the cancellation")
	if w.Current() == nil {
		t.Error("Current after the stop: nil")
	}
}
