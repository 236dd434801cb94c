package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// RegisterPooler registers rec as node's pooler (PoolerKey) under a lease
// of ttl seconds, and keeps it registered until stop is called, which
// deletes the registration at once. A pooler that dies stops renewing its
// lease: its registration disappears ttl seconds later. Should the lease be
// lost while the pooler runs (etcd out of reach for longer than ttl), it
// registers again once etcd answers. It returns once the first
// registration is written.
func (s *Store) RegisterPooler(ctx context.Context, node string, rec PoolerRecord, ttl int, logger *slog.Logger) (stop func(), err error) {
	if err := CheckName("node", node); err != nil {
		return nil, err
	}
	if rec.Addr == "" {
		return nil, fmt.Errorf("ha: pooler of node %q: no address", node)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	stop, err = s.keep(ctx, PoolerKey(s.cluster, node), v, ttl, false, logger)
	if err != nil {
		return nil, fmt.Errorf("ha: registering node %s's pooler: %w", node, err)
	}
	return stop, nil
}

// errTaken: keep's key exists, and it was to create it.
var errTaken = errors.New("ha: the key is taken")

// keep writes key = v under a lease of ttl seconds (only if key does not
// exist, with onlyNew: errTaken otherwise) and keeps it until stop, which
// revokes the lease and so deletes the key. A lease lost while it runs
// (etcd out of reach for longer than ttl) is replaced, and the key written
// again, once etcd answers.
//
// Concurrency: the lease is kept by a goroutine of its own, which stop ends
// and waits for.
func (s *Store) keep(ctx context.Context, key string, v []byte, ttl int, onlyNew bool, logger *slog.Logger) (stop func(), err error) {
	put := func(ctx context.Context) (*concurrency.Session, error) {
		sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		op := clientv3.OpPut(key, string(v), clientv3.WithLease(sess.Lease()))
		var ok bool
		if onlyNew {
			var r *clientv3.TxnResponse
			if r, err = s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(op).Commit(); err == nil {
				ok = r.Succeeded
			}
		} else if _, err = s.cli.Do(ctx, op); err == nil {
			ok = true
		}
		if err == nil && !ok {
			err = errTaken
		}
		if err != nil {
			c, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = s.cli.Revoke(c, sess.Lease())
			cancel()
			return nil, err
		}
		return sess, nil
	}
	// The lease lives as long as the registration, not as ctx, which
	// bounds only the first write.
	rctx, cancel := context.WithCancel(context.Background())
	first := context.AfterFunc(ctx, cancel)
	sess, err := put(rctx)
	if !first() || err != nil {
		cancel()
		if err == nil {
			_ = sess.Close()
			err = ctx.Err()
		}
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-rctx.Done():
				// Revoking the lease deletes the key (with a context of
				// its own: the session's is over).
				c, cancel := context.WithTimeout(context.Background(), time.Duration(ttl)*time.Second)
				_, _ = s.cli.Revoke(c, sess.Lease())
				cancel()
				return
			case <-sess.Done():
			}
			logger.Warn("a registration's lease was lost: registering again", "key", key)
			for {
				var err error
				if sess, err = put(rctx); err == nil {
					break
				}
				if rctx.Err() != nil {
					return
				}
				logger.Warn("registering again", "key", key, "err", err)
				select {
				case <-rctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// ViaPoolers is t as a gateway serves it: every node's address is its
// pooler's, so that the gateway's connections, health checks included, go
// through the pooler beside the node, never to Postgres itself. A node
// whose pooler's registration lapsed (it died, or stopped) keeps the
// address its pooler last had (last, by node name, which ViaPoolers
// updates): the pooler, or its successor there, is down until it answers,
// and the gateway's health checks say so. A node that never had a pooler
// is left out; a primary left out leaves its shard without one.
func ViaPoolers(t *Topology, last map[string]string) *Topology {
	out := &Topology{Cluster: t.Cluster, Revision: t.Revision, Shards: make([]Shard, len(t.Shards)), Sharding: t.Sharding}
	for i, s := range t.Shards {
		o := Shard{Name: s.Name, Term: s.Term, Primary: s.Primary}
		for _, n := range s.Nodes {
			if n.Pooler != "" {
				last[n.Name] = n.Pooler
			}
			addr := last[n.Name]
			if addr == "" {
				if n.Name == o.Primary {
					o.Primary = ""
				}
				continue
			}
			n.Addr = addr
			o.Nodes = append(o.Nodes, n)
		}
		out.Shards[i] = o
	}
	return out
}

// PoolerView is a topology source's view through the poolers (ViaPoolers),
// for a gateway. Safe for concurrent use.
type PoolerView struct {
	src interface{ Current() *Topology }
	mu  sync.Mutex
	in  *Topology // the source's topology last mapped
	out *Topology // its mapping
	// last: the poolers' last addresses, by node.
	last map[string]string
}

// NewPoolerView maps src's topologies through the poolers.
func NewPoolerView(src interface{ Current() *Topology }) *PoolerView {
	return &PoolerView{src: src, last: map[string]string{}}
}

// Current is the source's current topology through the poolers: the same
// pointer while the source's is the same.
func (v *PoolerView) Current() *Topology {
	t := v.src.Current()
	if t == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if t != v.in {
		v.in, v.out = t, ViaPoolers(t, v.last)
	}
	return v.out
}

// MustFence says whether node's pooler must stop serving it (and why):
// when the topology names another primary for its shard while the node,
// not in recovery, still runs as a primary: a stale primary, which a
// partition or a failover behind its back left behind (issue H: a node
// that learns of a newer term stops acting as primary). A shard with no
// primary named (work held during a failover or a switchover) fences
// nothing: the old primary's running transactions may still finish.
//
// tli is the node's timeline and primaryTLI the named primary's, as that
// primary says (0: it could not be asked). A node on a newer timeline than
// the named primary was promoted after it: a failover or switchover that
// has promoted it and not yet published it (the orchestrator promotes,
// then publishes), never a stale primary. The verdict is sure only when
// the named primary is on a timeline at least as new as the node's; when
// the named primary cannot be asked (dead, say, while its successor is
// promoted) it is (true, false) and the caller decides: a pooler fences
// once that has lasted longer than a publication takes (FenceGuard);
// belay up rewinds only a sure one (pg_rewind needs the named primary).
// Pure.
func MustFence(t *Topology, node string, inRecovery bool, tli, primaryTLI uint32) (fence, sure bool, why string) {
	if inRecovery || t == nil {
		return false, false, ""
	}
	n := t.Node(node)
	if n == nil {
		return false, false, ""
	}
	s := t.Shard(n.Shard)
	if s == nil || s.Primary == "" || s.Primary == node {
		return false, false, ""
	}
	if primaryTLI != 0 && primaryTLI < tli {
		return false, false, ""
	}
	return true, primaryTLI != 0, fmt.Sprintf("node %s runs as a primary, but shard %s's primary in term %d is %s", node, s.Name, s.Term, s.Primary)
}

// FenceGraceDefault is how long a pooler waits, while its node runs as a
// primary beside the one the topology names and that one cannot be asked
// its timeline, before it fences its node: longer than an orchestrator
// takes from a promotion to its publication.
const FenceGraceDefault = 10 * time.Second

// FenceGuard turns a pooler's successive MustFence verdicts into whether
// it fences its node: at once on a sure verdict; on an unsure one once
// unsure verdicts have lasted Grace (a node promoted by a failover whose
// publication is late is thus not fenced; one left behind by a partition,
// whose successor its pooler cannot reach, is after Grace); a fenced node
// stays fenced while the verdicts say fence, sure or not; a verdict of no
// fence lifts it. Pure, with the clock injected; not safe for concurrent
// use.
type FenceGuard struct {
	Grace  time.Duration
	since  time.Time // the first of the current run of unsure verdicts
	fenced bool
}

// Step takes a verdict at now and says whether the node is fenced.
func (g *FenceGuard) Step(now time.Time, fence, sure bool) bool {
	switch {
	case !fence:
		g.since, g.fenced = time.Time{}, false
	case sure:
		g.fenced = true
	default:
		if g.since.IsZero() {
			g.since = now
		}
		if now.Sub(g.since) >= g.Grace {
			g.fenced = true
		}
	}
	return g.fenced
}

// PoolerLoss follows the nodes' pooler registrations for an orchestrator of
// a split deployment, where a node is served only through its pooler: a
// primary whose pooler it saw registered and then saw lapse can take no
// more work, however healthy its Postgres, and its shard must move to a
// standby that has a pooler. A pooler never seen (one still starting, or
// registered before this orchestrator led) is not taken as lost.
//
// Pure; not safe for concurrent use.
type PoolerLoss struct {
	seen map[string]string // node → the pooler address last seen
}

// PoolerLost is a shard whose primary lost its pooler, and the standby to
// move it to ("": none has a pooler).
type PoolerLost struct {
	Shard, Primary, To string
}

// Step takes a new topology and returns the shards whose primary lost its
// pooler.
func (p *PoolerLoss) Step(t *Topology) []PoolerLost {
	if p.seen == nil {
		p.seen = map[string]string{}
	}
	var lost []PoolerLost
	for _, s := range t.Shards {
		for _, n := range s.Nodes {
			if n.Pooler != "" {
				p.seen[n.Name] = n.Pooler
				continue
			}
			if n.Name != s.Primary || p.seen[n.Name] == "" {
				continue
			}
			l := PoolerLost{Shard: s.Name, Primary: n.Name}
			for _, o := range s.Nodes {
				if o.Name != n.Name && o.Pooler != "" && o.State != StateDown {
					l.To = o.Name
					break
				}
			}
			lost = append(lost, l)
		}
	}
	return lost
}
