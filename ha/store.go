package ha

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store reads and writes one cluster's records in etcd (the keys of
// doc.go). Every write is a single etcd transaction; those that depend on
// what was read (SetPrimary, RemoveNode) compare the keys' revisions, so
// a concurrent change makes them read again rather than overwrite it.
//
// Concurrency: a Store is safe for concurrent use; it holds no state but
// the client and the cluster's name. Its methods block on etcd: never call
// them on an event loop.
type Store struct {
	cli     *clientv3.Client
	cluster string
}

// NewStore returns the store of cluster's records through cli, which the
// caller keeps (and closes).
func NewStore(cli *clientv3.Client, cluster string) (*Store, error) {
	if err := CheckName("cluster", cluster); err != nil {
		return nil, err
	}
	return &Store{cli: cli, cluster: cluster}, nil
}

// Cluster is the cluster's name.
func (s *Store) Cluster() string { return s.cluster }

// Client is the etcd client the store was made with.
func (s *Store) Client() *clientv3.Client { return s.cli }

// casRetries bounds how often SetPrimary and RemoveNode read again after a
// concurrent change of the keys they depend on.
const casRetries = 10

// Load reads every record of the cluster at one revision and builds its
// snapshot (Build), which it validates (Topology.Validate).
func (s *Store) Load(ctx context.Context) (*Topology, error) {
	t, _, _, err := s.load(ctx)
	return t, err
}

// load is Load that also returns the raw key/values and their revision.
func (s *Store) load(ctx context.Context) (*Topology, map[string][]byte, int64, error) {
	kvs, rev, err := s.get(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	t, err := snapshot(s.cluster, rev, kvs)
	return t, kvs, rev, err
}

// get reads every key of the cluster at one revision.
func (s *Store) get(ctx context.Context) (map[string][]byte, int64, error) {
	resp, err := s.cli.Get(ctx, Prefix(s.cluster), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("ha: loading cluster %s: %w", s.cluster, err)
	}
	kvs := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv.Value
	}
	return kvs, resp.Header.Revision, nil
}

// loadAsIs is the cluster's topology built without validation: the
// writes that may repair an invalid one (SetPrimary) decide on it.
func (s *Store) loadAsIs(ctx context.Context) (*Topology, error) {
	kvs, rev, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	r, err := decodeRecords(s.cluster, kvs)
	if err != nil {
		return nil, err
	}
	return Build(s.cluster, rev, r.shards, r.nodes), nil
}

// PutNode registers node, or updates its record: where it is (r.Addr), its
// shard, its state ("" means up). It returns the revision of the write.
func (s *Store) PutNode(ctx context.Context, node string, r NodeRecord) (int64, error) {
	if err := CheckName("node", node); err != nil {
		return 0, err
	}
	if err := CheckName("shard", r.Shard); err != nil {
		return 0, err
	}
	if r.State == "" {
		r.State = StateUp
	}
	if r.State != StateUp && r.State != StateDown {
		return 0, fmt.Errorf("ha: node %q: unknown state %q", node, r.State)
	}
	if r.Addr == "" {
		return 0, fmt.Errorf("ha: node %q: no address", node)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Put(ctx, NodeKey(s.cluster, node), string(v))
	if err != nil {
		return 0, fmt.Errorf("ha: registering node %s: %w", node, err)
	}
	return resp.Header.Revision, nil
}

// CreateShard writes shard's record r unless the shard already has one. It
// returns the record the shard has afterwards (r if it was created) and
// whether it was created.
func (s *Store) CreateShard(ctx context.Context, shard string, r ShardRecord) (ShardRecord, bool, error) {
	if err := CheckName("shard", shard); err != nil {
		return ShardRecord{}, false, err
	}
	if r.Term == 0 {
		return ShardRecord{}, false, fmt.Errorf("ha: shard %q: a record's term starts at 1", shard)
	}
	v, err := json.Marshal(r)
	if err != nil {
		return ShardRecord{}, false, err
	}
	key := ShardKey(s.cluster, shard)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(v))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return ShardRecord{}, false, fmt.Errorf("ha: creating shard %s: %w", shard, err)
	}
	if resp.Succeeded {
		return r, true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return ShardRecord{}, false, fmt.Errorf("ha: creating shard %s: its record vanished", shard)
	}
	var cur ShardRecord
	if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
		return ShardRecord{}, false, fmt.Errorf("ha: %s: %w", key, err)
	}
	return cur, false, nil
}

// SetPrimary makes node primary the primary of shard, whose current term
// the caller says is term, and returns the shard's new record (term+1).
// The decision is ChangePrimary's, on a snapshot just read; the write
// happens only if neither the shard's record nor the node's changed since
// (compared by revision), else SetPrimary reads again and decides again. A
// term that is not the current one fails with ErrStaleTerm. A primary of
// "" clears the shard's primary instead (ClearPrimary: a switchover's
// hold).
//
// conds are more conditions of the write: the orchestrator's that its
// election key is still the one it won with (a leader that lost its lease
// publishes nothing); when one fails SetPrimary fails with ErrNotLeader.
func (s *Store) SetPrimary(ctx context.Context, shard string, term uint64, primary string, conds ...clientv3.Cmp) (ShardRecord, error) {
	skey, nkey := ShardKey(s.cluster, shard), NodeKey(s.cluster, primary)
	for range casRetries {
		t, err := s.loadAsIs(ctx)
		if err != nil {
			return ShardRecord{}, err
		}
		var next ShardRecord
		if primary == "" {
			next, err = t.ClearPrimary(shard, term)
		} else {
			next, err = t.ChangePrimary(shard, term, primary)
		}
		if err != nil {
			return ShardRecord{}, err
		}
		v, err := json.Marshal(next)
		if err != nil {
			return ShardRecord{}, err
		}
		cmps := append([]clientv3.Cmp{unchangedSince(skey, t.Revision), clientv3.Compare(clientv3.CreateRevision(skey), ">", 0)}, conds...)
		if primary != "" {
			cmps = append(cmps, unchangedSince(nkey, t.Revision), clientv3.Compare(clientv3.CreateRevision(nkey), ">", 0))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(skey, string(v))).Commit()
		if err != nil {
			return ShardRecord{}, fmt.Errorf("ha: changing shard %s's primary: %w", shard, err)
		}
		if resp.Succeeded {
			return next, nil
		}
		if len(conds) > 0 {
			// Which failed? The caller's conditions alone, once.
			r, err := s.cli.Txn(ctx).If(conds...).Commit()
			if err != nil {
				return ShardRecord{}, fmt.Errorf("ha: changing shard %s's primary: %w", shard, err)
			}
			if !r.Succeeded {
				return ShardRecord{}, ErrNotLeader
			}
		}
	}
	return ShardRecord{}, fmt.Errorf("ha: changing shard %s's primary: its records kept changing (%d tries)", shard, casRetries)
}

// RemoveNode deletes node's record. It refuses (ErrIsPrimary) while the
// node is its shard's primary; removing a node that has no record is not
// an error.
func (s *Store) RemoveNode(ctx context.Context, node string) error {
	if err := CheckName("node", node); err != nil {
		return err
	}
	nkey := NodeKey(s.cluster, node)
	for range casRetries {
		t, err := s.loadAsIs(ctx)
		if err != nil {
			return err
		}
		if err := t.CheckRemove(node); err != nil {
			return err
		}
		n := t.Node(node)
		if n == nil {
			return nil
		}
		skey := ShardKey(s.cluster, n.Shard)
		resp, err := s.cli.Txn(ctx).
			If(unchangedSince(skey, t.Revision), unchangedSince(nkey, t.Revision)).
			Then(clientv3.OpDelete(nkey)).
			Commit()
		if err != nil {
			return fmt.Errorf("ha: removing node %s: %w", node, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("ha: removing node %s: its shard's record kept changing (%d tries)", node, casRetries)
}

// unchangedSince compares key's last modification (0 if it has none) with rev.
func unchangedSince(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "<", rev+1)
}
