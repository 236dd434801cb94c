package ha

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/belaydb/belay/shard"
)

// Prefix is the etcd prefix of everything of cluster: "/belay/CLUSTER/".
func Prefix(cluster string) string { return "/belay/" + cluster + "/" }

// ShardKey is the etcd key of shard's record in cluster.
func ShardKey(cluster, shard string) string { return Prefix(cluster) + "shards/" + shard }

// NodeKey is the etcd key of node's record in cluster.
func NodeKey(cluster, node string) string { return Prefix(cluster) + "nodes/" + node }

// PoolerKey is the etcd key of node's pooler registration in cluster: kept
// alive by a lease while `belay pooler` runs beside the node.
func PoolerKey(cluster, node string) string { return Prefix(cluster) + "poolers/" + node }

// CheckName reports whether s can name a cluster, a shard or a node: it is
// one segment of an etcd key, so not empty, no "/", no spaces or control
// characters, at most 63 bytes.
func CheckName(kind, s string) error {
	if s == "" || len(s) > 63 || strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("ha: %q is not a valid %s name (1 to 63 bytes, no '/', no spaces or control characters)", s, kind)
	}
	return nil
}

// records are the decoded records of one cluster.
type records struct {
	shards   map[string]ShardRecord
	nodes    map[string]NodeRecord
	poolers  map[string]PoolerRecord
	sharding *shard.Schema
}

// decodeRecords decodes the key/value pairs under Prefix(cluster). Keys
// under the prefix that are neither a shard nor a node (written by a later
// version of belay) are ignored; a record that does not decode is an error.
func decodeRecords(cluster string, kvs map[string][]byte) (records, error) {
	r := records{shards: map[string]ShardRecord{}, nodes: map[string]NodeRecord{}, poolers: map[string]PoolerRecord{}}
	p := Prefix(cluster)
	for k, v := range kvs {
		rest, ok := strings.CutPrefix(k, p)
		if !ok {
			continue
		}
		if rest == "sharding" {
			sc, err := shard.Decode(v)
			if err != nil {
				return records{}, fmt.Errorf("ha: %s: %w", k, err)
			}
			r.sharding = sc
			continue
		}
		kind, name, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(name, "/") {
			continue
		}
		switch kind {
		case "shards":
			var s ShardRecord
			if err := json.Unmarshal(v, &s); err != nil {
				return records{}, fmt.Errorf("ha: %s: %w", k, err)
			}
			r.shards[name] = s
		case "nodes":
			var n NodeRecord
			if err := json.Unmarshal(v, &n); err != nil {
				return records{}, fmt.Errorf("ha: %s: %w", k, err)
			}
			r.nodes[name] = n
		case "poolers":
			var pr PoolerRecord
			if err := json.Unmarshal(v, &pr); err != nil {
				return records{}, fmt.Errorf("ha: %s: %w", k, err)
			}
			r.poolers[name] = pr
		}
	}
	return r, nil
}

// snapshot decodes kvs, the whole of cluster's keys at revision rev, into a
// Topology, and validates it.
func snapshot(cluster string, rev int64, kvs map[string][]byte) (*Topology, error) {
	r, err := decodeRecords(cluster, kvs)
	if err != nil {
		return nil, err
	}
	t := Build(cluster, rev, r.shards, r.nodes)
	t.setPoolers(r.poolers)
	t.Sharding = r.sharding
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("ha: cluster %s at revision %d: %w", cluster, rev, err)
	}
	return t, nil
}
