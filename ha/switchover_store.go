package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Switchover requests in etcd: whoever asks for a planned switchover
// (`belay switchover`, the console's SWITCHOVER) writes a request under
// /belay/C/switchover/S; the leading orchestrator carries it out and writes
// the outcome into the same record, which the asker watches.

// SwitchoverKey is the etcd key of shard's switchover request in cluster.
func SwitchoverKey(cluster, shard string) string { return Prefix(cluster) + "switchover/" + shard }

// Switchover request states.
const (
	SwitchRequested = "requested" // written by the asker
	SwitchRunning   = "running"   // taken by the leading orchestrator
	SwitchSucceeded = "done"
	SwitchAborted   = "failed"
)

// SwitchoverRecord is the value of /belay/C/switchover/S.
type SwitchoverRecord struct {
	ID    string `json:"id"`           // the asker's, to find its outcome
	To    string `json:"to,omitempty"` // the target ("": the orchestrator chooses)
	State string `json:"state"`
	// Set by the orchestrator:
	From   string `json:"from,omitempty"`    // the old primary
	Term   uint64 `json:"term,omitempty"`    // the term published at the end
	HeldMs int64  `json:"held_ms,omitempty"` // from the hold published to the end
	Reason string `json:"reason,omitempty"`  // why it failed
}

// Finished says whether the switchover is over.
func (r SwitchoverRecord) Finished() bool {
	return r.State == SwitchSucceeded || r.State == SwitchAborted
}

// ErrSwitchoverRunning: a switchover of the shard is already asked for.
var ErrSwitchoverRunning = errors.New("ha: a switchover of this shard is already under way")

// RequestSwitchover asks the leading orchestrator to switch shard's primary
// over to node to ("": the standby it finds best). shard "" is the
// cluster's only shard. It returns the request (its ID finds the outcome,
// WaitSwitchover). A request still under way refuses a second one
// (ErrSwitchoverRunning).
func (s *Store) RequestSwitchover(ctx context.Context, shard, to string) (string, SwitchoverRecord, error) {
	t, err := s.Load(ctx)
	if err != nil {
		return "", SwitchoverRecord{}, err
	}
	if shard == "" {
		if len(t.Shards) != 1 {
			return "", SwitchoverRecord{}, fmt.Errorf("ha: cluster %s has %d shards: name the shard", s.cluster, len(t.Shards))
		}
		shard = t.Shards[0].Name
	}
	sh := t.Shard(shard)
	if sh == nil || sh.Term == 0 {
		return "", SwitchoverRecord{}, fmt.Errorf("%w: %q", ErrNoShard, shard)
	}
	if to != "" {
		if n := t.Node(to); n == nil || n.Shard != shard {
			return "", SwitchoverRecord{}, fmt.Errorf("%w: %q in shard %q", ErrNoNode, to, shard)
		}
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	rec := SwitchoverRecord{ID: hex.EncodeToString(id[:]), To: to, State: SwitchRequested}
	v, err := json.Marshal(rec)
	if err != nil {
		return "", SwitchoverRecord{}, err
	}
	key := SwitchoverKey(s.cluster, shard)
	for range casRetries {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return "", SwitchoverRecord{}, err
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) == 1 {
			var cur SwitchoverRecord
			if json.Unmarshal(resp.Kvs[0].Value, &cur) == nil && !cur.Finished() {
				return "", SwitchoverRecord{}, fmt.Errorf("%w (%s, request %s)", ErrSwitchoverRunning, cur.State, cur.ID)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		tr, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(v))).Commit()
		if err != nil {
			return "", SwitchoverRecord{}, err
		}
		if tr.Succeeded {
			return shard, rec, nil
		}
	}
	return "", SwitchoverRecord{}, fmt.Errorf("ha: requesting a switchover of shard %s: its record kept changing", shard)
}

// WaitSwitchover waits until the request id of shard is finished and
// returns its outcome; ctx bounds the wait.
func (s *Store) WaitSwitchover(ctx context.Context, shard, id string) (SwitchoverRecord, error) {
	key := SwitchoverKey(s.cluster, shard)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return SwitchoverRecord{}, err
		}
		if len(resp.Kvs) == 0 {
			return SwitchoverRecord{}, fmt.Errorf("ha: the switchover request of shard %s vanished", shard)
		}
		var cur SwitchoverRecord
		if err := json.Unmarshal(resp.Kvs[0].Value, &cur); err != nil {
			return SwitchoverRecord{}, fmt.Errorf("ha: %s: %w", key, err)
		}
		if cur.ID != id {
			return SwitchoverRecord{}, fmt.Errorf("ha: the switchover request of shard %s was replaced (%s)", shard, cur.ID)
		}
		if cur.Finished() {
			return cur, nil
		}
		wc := s.cli.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1))
		select {
		case <-ctx.Done():
			return cur, fmt.Errorf("ha: the switchover of shard %s is %s: %w", shard, cur.State, ctx.Err())
		case <-wc:
		}
	}
}

// switchoverRequests reads every switchover record of the cluster, by
// shard, with its modification revision.
func (s *Store) switchoverRequests(ctx context.Context) (map[string]SwitchoverRecord, map[string]int64, error) {
	p := Prefix(s.cluster) + "switchover/"
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	recs, revs := map[string]SwitchoverRecord{}, map[string]int64{}
	for _, kv := range resp.Kvs {
		shard := strings.TrimPrefix(string(kv.Key), p)
		var r SwitchoverRecord
		if json.Unmarshal(kv.Value, &r) != nil || strings.Contains(shard, "/") {
			continue
		}
		recs[shard], revs[shard] = r, kv.ModRevision
	}
	return recs, revs, nil
}

// updateSwitchover writes rec for shard if its record is still at rev and
// conds hold (the leader's); it returns the new revision.
func (s *Store) updateSwitchover(ctx context.Context, shard string, rev int64, rec SwitchoverRecord, conds ...clientv3.Cmp) (int64, error) {
	key := SwitchoverKey(s.cluster, shard)
	v, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tr, err := s.cli.Txn(ctx).If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, conds...)...).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return 0, err
	}
	if !tr.Succeeded {
		return 0, fmt.Errorf("ha: the switchover request of shard %s changed meanwhile", shard)
	}
	return tr.Header.Revision, nil
}
