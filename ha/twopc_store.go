package ha

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/belaydb/belay/twopc"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The decisions of two-phase commits (issue J; package twopc): one record
// per distributed transaction, /belay/C/2pc/TX, written once: the
// coordinator writes Commit, a resolver that gave up on a coordinator
// writes Abort, and whoever writes first decides (a compare of the key's
// creation). Neither is ever changed; Forget deletes a record once no shard
// holds the transaction prepared.

// TwoPCKey is the etcd key of tx's decision in cluster.
func TwoPCKey(cluster string, tx twopc.TxID) string { return Prefix(cluster) + "2pc/" + tx.String() }

// twoPCRecord is the value of a decision's key.
type twoPCRecord struct {
	Decision string `json:"decision"`
	Shards   []int  `json:"shards,omitempty"`
	AtMs     int64  `json:"at_ms"`
}

// RecordDecision writes d for tx (over shards) unless a decision is
// recorded already, and returns the decision the record holds afterwards:
// d if written, else the one found. An error means the outcome of the
// write is not known.
func (s *Store) RecordDecision(ctx context.Context, tx twopc.TxID, d twopc.Decision, shards []int) (twopc.Decision, error) {
	if d == twopc.None {
		return twopc.None, fmt.Errorf("ha: no decision to record for %s", tx)
	}
	v, err := json.Marshal(twoPCRecord{Decision: d.String(), Shards: shards, AtMs: time.Now().UnixMilli()})
	if err != nil {
		return twopc.None, err
	}
	key := TwoPCKey(s.cluster, tx)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(v))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return twopc.None, fmt.Errorf("ha: recording %s of %s: %w", d, tx, err)
	}
	if resp.Succeeded {
		return d, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return twopc.None, fmt.Errorf("ha: the decision of %s vanished", tx)
	}
	return decodeDecision(key, kvs[0].Value)
}

// Decision reads tx's decision (None: none recorded).
func (s *Store) Decision(ctx context.Context, tx twopc.TxID) (twopc.Decision, error) {
	key := TwoPCKey(s.cluster, tx)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return twopc.None, fmt.Errorf("ha: reading the decision of %s: %w", tx, err)
	}
	if len(resp.Kvs) == 0 {
		return twopc.None, nil
	}
	return decodeDecision(key, resp.Kvs[0].Value)
}

// ForgetDecision deletes tx's record: for when no shard holds tx prepared
// any more (a record deleted earlier would let a resolver decide anew).
func (s *Store) ForgetDecision(ctx context.Context, tx twopc.TxID) error {
	_, err := s.cli.Delete(ctx, TwoPCKey(s.cluster, tx))
	return err
}

// DecisionAge is a recorded decision's transaction and when it was
// recorded.
type DecisionAge struct {
	Tx twopc.TxID
	At time.Time
}

// Decisions lists the recorded decisions.
func (s *Store) Decisions(ctx context.Context) ([]DecisionAge, error) {
	prefix := Prefix(s.cluster) + "2pc/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("ha: listing the decisions: %w", err)
	}
	var out []DecisionAge
	for _, kv := range resp.Kvs {
		tx, err := twopc.ParseTxID(strings.TrimPrefix(string(kv.Key), prefix))
		if err != nil {
			continue
		}
		var r twoPCRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			continue
		}
		out = append(out, DecisionAge{Tx: tx, At: time.UnixMilli(r.AtMs)})
	}
	return out, nil
}

func decodeDecision(key string, v []byte) (twopc.Decision, error) {
	var r twoPCRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return twopc.None, fmt.Errorf("ha: %s: %w", key, err)
	}
	d, err := twopc.ParseDecision(r.Decision)
	if err != nil {
		return twopc.None, fmt.Errorf("ha: %s: %w", key, err)
	}
	return d, nil
}
