package ha

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/belaydb/belay/shard"
)

// Role is a node's role in its shard.
type Role string

const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// State is a node's administrative state.
type State string

const (
	StateUp   State = "up"
	StateDown State = "down" // taken out of service: no traffic
)

// Node is one Postgres server of a shard.
type Node struct {
	Name  string // unique in the cluster
	Shard string
	Role  Role   // derived from the shard's primary
	Addr  string // where belay connects: host:port, or /socket/dir:port
	State State
	// Pooler is the address of the `belay pooler` running beside the node
	// ("": none registered), where gateways send its work.
	Pooler string
}

// Shard is a primary and its replicas.
type Shard struct {
	Name    string
	Term    uint64 // increases with each promotion
	Primary string // the primary's node name ("" while it has none)
	Nodes   []Node // sorted by name
}

// Topology is an immutable snapshot of a cluster: never modified once
// built, so safe to read from any goroutine without a lock.
type Topology struct {
	Cluster  string
	Revision int64   // the etcd revision it was read at (0: not from etcd)
	Shards   []Shard // sorted by name
	// Sharding is the sharding schema (sharding.go); nil when the cluster
	// is not sharded.
	Sharding *shard.Schema
}

// ShardRecord is the value of /belay/C/shards/S.
type ShardRecord struct {
	Term    uint64 `json:"term"`
	Primary string `json:"primary"`
}

// NodeRecord is the value of /belay/C/nodes/N.
type NodeRecord struct {
	Shard string `json:"shard"`
	Addr  string `json:"addr"`
	State State  `json:"state"`
}

// Build makes the snapshot of cluster's records: shards by name, nodes by
// name. A node of a shard without a record is in a shard with no primary
// and term 0. Roles follow the shards' primaries.
func Build(cluster string, rev int64, shards map[string]ShardRecord, nodes map[string]NodeRecord) *Topology {
	t := &Topology{Cluster: cluster, Revision: rev}
	names := make([]string, 0, len(shards))
	for n := range shards {
		names = append(names, n)
	}
	for _, r := range nodes {
		names = append(names, r.Shard)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// Every shard first, then pointers into t.Shards: appending after
	// taking them would leave them in an old array.
	t.Shards = make([]Shard, 0, len(names))
	for _, n := range names {
		r := shards[n]
		t.Shards = append(t.Shards, Shard{Name: n, Term: r.Term, Primary: r.Primary})
	}
	byName := make(map[string]*Shard, len(names))
	for i := range t.Shards {
		byName[t.Shards[i].Name] = &t.Shards[i]
	}
	for name, r := range nodes {
		s := byName[r.Shard]
		role := RoleReplica
		if s.Primary == name {
			role = RolePrimary
		}
		state := r.State
		if state == "" {
			state = StateUp
		}
		s.Nodes = append(s.Nodes, Node{Name: name, Shard: r.Shard, Role: role, Addr: r.Addr, State: state})
	}
	for i := range t.Shards {
		slices.SortFunc(t.Shards[i].Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	}
	return t
}

// PoolerRecord is the value of /belay/C/poolers/N, written under a lease
// by node N's pooler (RegisterPooler).
type PoolerRecord struct {
	Addr string `json:"addr"` // where gateways reach it
}

// setPoolers notes the registered poolers on t's nodes (while t is built).
func (t *Topology) setPoolers(poolers map[string]PoolerRecord) {
	for i := range t.Shards {
		for j := range t.Shards[i].Nodes {
			n := &t.Shards[i].Nodes[j]
			n.Pooler = poolers[n.Name].Addr
		}
	}
}

// Shard returns the shard named name, or nil.
func (t *Topology) Shard(name string) *Shard {
	for i := range t.Shards {
		if t.Shards[i].Name == name {
			return &t.Shards[i]
		}
	}
	return nil
}

// Node returns the node named name, or nil.
func (t *Topology) Node(name string) *Node {
	for i := range t.Shards {
		for j := range t.Shards[i].Nodes {
			if t.Shards[i].Nodes[j].Name == name {
				return &t.Shards[i].Nodes[j]
			}
		}
	}
	return nil
}

// PrimaryNode is the shard's primary, or nil.
func (s *Shard) PrimaryNode() *Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == s.Primary {
			return &s.Nodes[i]
		}
	}
	return nil
}

// Validate reports what makes t unusable: a shard whose primary is not one
// of its nodes, a node without an address or a shard, a node in a state
// that is neither up nor down, duplicate names.
func (t *Topology) Validate() error {
	seen := map[string]bool{}
	for _, s := range t.Shards {
		if s.Name == "" {
			return fmt.Errorf("a shard without a name (a node's record names no shard?)")
		}
		if s.Primary != "" && s.PrimaryNode() == nil {
			return fmt.Errorf("shard %q: primary %q is not one of its nodes", s.Name, s.Primary)
		}
		for _, n := range s.Nodes {
			if seen[n.Name] {
				return fmt.Errorf("node %q appears twice", n.Name)
			}
			seen[n.Name] = true
			if n.Addr == "" {
				return fmt.Errorf("node %q has no address", n.Name)
			}
			if n.State != StateUp && n.State != StateDown {
				return fmt.Errorf("node %q: unknown state %q", n.Name, n.State)
			}
		}
	}
	return nil
}
