package ha

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/belaydb/belay/shard"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The sharding schema (issue J) is one record of the cluster,
// /belay/C/sharding: shard.Schema's JSON form. Its shard k is the
// topology's shard named "k" (ShardName), each with its own primary,
// replicas, term and failovers. A cluster without the record is not
// sharded.

// ShardingKey is the etcd key of cluster's sharding schema.
func ShardingKey(cluster string) string { return Prefix(cluster) + "sharding" }

// ShardName is the topology's name of the schema's shard k.
func ShardName(k int) string { return strconv.Itoa(k) }

// ErrShardingChanged: the schema changed since it was read (UpdateSharding
// gave up after casRetries attempts).
var ErrShardingChanged = errors.New("ha: the sharding schema changed concurrently")

// Sharding reads the cluster's sharding schema (nil: the cluster is not
// sharded) and its record's modification revision (0 without one).
func (s *Store) Sharding(ctx context.Context) (*shard.Schema, int64, error) {
	resp, err := s.cli.Get(ctx, ShardingKey(s.cluster))
	if err != nil {
		return nil, 0, fmt.Errorf("ha: reading the sharding schema: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	sc, err := shard.Decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, fmt.Errorf("ha: %s: %w", ShardingKey(s.cluster), err)
	}
	return sc, resp.Kvs[0].ModRevision, nil
}

// UpdateSharding changes the cluster's sharding schema with change, which
// gets the current one (nil: none yet) and returns the new one (nil:
// delete the record). The write compares the record's revision with the
// one read, so that two concurrent changes are never merged blindly: on a
// conflict it reads again and calls change again. It returns the schema
// written.
func (s *Store) UpdateSharding(ctx context.Context, change func(cur *shard.Schema) (*shard.Schema, error)) (*shard.Schema, error) {
	key := ShardingKey(s.cluster)
	for range casRetries {
		cur, rev, err := s.Sharding(ctx)
		if err != nil {
			return nil, err
		}
		next, err := change(cur)
		if err != nil {
			return nil, err
		}
		op := clientv3.OpDelete(key)
		if next != nil {
			b, err := next.MarshalJSON()
			if err != nil {
				return nil, err
			}
			op = clientv3.OpPut(key, string(b))
		}
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(op).Commit()
		if err != nil {
			return nil, fmt.Errorf("ha: writing the sharding schema: %w", err)
		}
		if resp.Succeeded {
			return next, nil
		}
	}
	return nil, ErrShardingChanged
}
