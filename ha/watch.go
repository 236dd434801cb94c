package ha

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// OnChange, if not nil, is called with each new snapshot after the one
	// Watch loaded (read that one with Current). It runs on the watcher's
	// goroutine, never on Watch's caller's, one call at a time, in revision
	// order, after the snapshot has become Current. The next snapshot waits
	// for it to return: it must not block for long (hand the snapshot to
	// the event loops, do not serve on it).
	OnChange func(*Topology)
	// Logger receives the watcher's warnings (an interrupted watch, an
	// invalid snapshot kept out); nil means slog.Default().
	Logger *slog.Logger
}

// Watcher keeps the current topology of a cluster, as etcd has it, in an
// atomic pointer.
//
// Concurrency: one goroutine, started by Watch and ended by Stop or by the
// cancellation of Watch's context, owns the fields below cur; it watches
// the cluster's prefix and, after each batch of events (one etcd revision
// or more), builds a new immutable snapshot from the records it holds,
// validates it and stores it in cur. Current may be called from any
// goroutine, event loops included: it is one atomic load, it never blocks
// and never locks. After a watch error (the member lost its leader, the
// revision it resumes from was compacted, the channel closed) the
// goroutine reads the whole cluster again (a resync) and watches from
// there, retrying with a backoff while etcd cannot be reached; in the
// meantime Current keeps the last good snapshot.
//
// A snapshot that does not validate (Topology.Validate), whose records do
// not decode, or in which a shard's term went backwards (CheckSuccessor),
// is logged and kept out: Current keeps the last good one until a later
// revision repairs the records.
type Watcher struct {
	store *Store
	opts  WatchOptions
	log   *slog.Logger
	cur   atomic.Pointer[Topology] // the last good snapshot; never nil

	cancel  context.CancelFunc
	done    chan struct{} // closed when the goroutine has returned
	resyncs atomic.Int64  // full reloads after a watch error (for tests)

	// Owned by the watcher's goroutine.
	kvs map[string][]byte // every key of the cluster, at rev
	rev int64
}

// Watch loads the cluster's topology, which Current returns from then on,
// and starts watching it for changes until ctx is cancelled or Stop is
// called. It fails if the first load fails or its snapshot is invalid.
func (s *Store) Watch(ctx context.Context, o WatchOptions) (*Watcher, error) {
	kvs, rev, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	return startWatcher(ctx, s, o, kvs, rev)
}

// startWatcher starts the watch from kvs, the cluster's keys at rev.
func startWatcher(ctx context.Context, s *Store, o WatchOptions, kvs map[string][]byte, rev int64) (*Watcher, error) {
	t, err := snapshot(s.cluster, rev, kvs)
	if err != nil {
		return nil, err
	}
	w := &Watcher{store: s, opts: o, log: o.Logger, done: make(chan struct{}), kvs: kvs, rev: rev}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.cur.Store(t)
	ctx, w.cancel = context.WithCancel(ctx)
	go w.run(ctx)
	return w, nil
}

// Current is the last good snapshot. It never blocks and never locks: safe
// on an event loop.
func (w *Watcher) Current() *Topology { return w.cur.Load() }

// Stop ends the watch and waits for the watcher's goroutine to return
// (and so for any OnChange call to end: do not call Stop from OnChange).
// Current keeps working. Idempotent.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

// Done is closed once the watcher has stopped.
func (w *Watcher) Done() <-chan struct{} { return w.done }

const (
	resyncBackoffMin = 50 * time.Millisecond
	resyncBackoffMax = 2 * time.Second
)

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		err := w.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("ha: topology watch interrupted: reloading the cluster", "cluster", w.store.cluster, "revision", w.rev, "err", err)
		if !w.resync(ctx) {
			return
		}
	}
}

// watch follows the cluster's keys from w.rev+1 until an error or ctx's end.
func (w *Watcher) watch(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		// clientv3 keeps the stream it makes for a watch whose context
		// ended before the watch was sent, until the client closes.
		return err
	}
	// WithRequireLeader: a member cut off from its cluster's leader cancels
	// the watch (rather than sending nothing), so that we reload elsewhere.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := w.store.cli.Watch(wctx, Prefix(w.store.cluster), clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.Canceled {
			return errors.New("watch cancelled by the server")
		}
		if len(resp.Events) == 0 {
			continue // created, or a progress notification
		}
		for _, ev := range resp.Events {
			switch ev.Type {
			case mvccpb.PUT:
				w.kvs[string(ev.Kv.Key)] = ev.Kv.Value
			case mvccpb.DELETE:
				delete(w.kvs, string(ev.Kv.Key))
			}
			w.rev = ev.Kv.ModRevision
		}
		w.publish()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

// resync reads the whole cluster again, retrying with a backoff until it
// can, and publishes its snapshot if anything changed. It returns false if
// ctx ended first.
func (w *Watcher) resync(ctx context.Context) bool {
	w.resyncs.Add(1)
	backoff := resyncBackoffMin
	for {
		kvs, rev, err := w.store.get(ctx)
		if err == nil {
			changed := !maps.EqualFunc(kvs, w.kvs, bytes.Equal)
			w.kvs, w.rev = kvs, rev
			if changed {
				w.publish()
			}
			return true
		}
		w.log.Warn("ha: cannot reload the topology; retrying", "cluster", w.store.cluster, "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, resyncBackoffMax)
	}
}

// publish makes the snapshot of w.kvs current, if it is good, and calls
// OnChange with it.
func (w *Watcher) publish() {
	t, err := snapshot(w.store.cluster, w.rev, w.kvs)
	prev := w.cur.Load()
	if err == nil {
		err = CheckSuccessor(prev, t)
	}
	if err != nil {
		w.log.Error("ha: ignoring an invalid topology: keeping the last good one", "cluster", w.store.cluster,
			"revision", w.rev, "kept", prev.Revision, "err", err)
		return
	}
	w.cur.Store(t)
	if w.opts.OnChange != nil {
		w.opts.OnChange(t)
	}
}
