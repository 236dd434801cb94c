// Package ha holds belay's picture of a cluster: its topology (shards, each
// with a primary and replicas, and the primary's term), kept in etcd and
// watched by every proxy; the orchestrator's decisions and the hold buffer
// for failovers.
//
// # The model (model.go)
//
// A Topology is an immutable snapshot: readers (the event loops) load the
// current one through an atomic pointer and never lock; a change builds a
// new snapshot. The model, its validation and its transitions are pure (no
// I/O, no clock); the etcd store and watch live in files of their own.
//
// # Keys and values in etcd
//
// Everything of cluster C lives under the prefix /belay/C/:
//
//	/belay/C/shards/S  {"term": 3, "primary": "pg1"}
//	/belay/C/nodes/N   {"shard": "S", "addr": "127.0.0.1:5433", "state": "up"}
//	/belay/C/sharding  shard.Schema's JSON: {"version": 1, "shards": N, "sharded": [...], "reference": [...]}
//	/belay/C/2pc/TX    {"decision": "commit", "shards": [0, 1], "at_ms": ...} (twopc_store.go)
//
// The sharding record (sharding.go) makes the cluster hash-sharded: its
// shard k is the topology's shard named "k" (ShardName); every snapshot
// carries it (Topology.Sharding); UpdateSharding changes it under a compare
// of its revision.
//
// A shard's record names its primary and carries its term, which increases
// with each promotion: whoever acts on a topology (a proxy, a pooler, a
// node) ignores one whose term for a shard is older than the one it knows.
// A node's role is derived (the shard's primary, or a replica), so the two
// records can never disagree about it. A node's record says where belay
// connects to it (host:port, or /socket/dir:port) and its administrative
// state ("up", or "down": taken out of service).
//
// Names (clusters, shards, nodes) are single key segments: CheckName.
//
// # Transitions (transition.go)
//
// Pure decisions on a snapshot: ChangePrimary (the only way a shard's
// primary changes: from the current term only, to term+1), CheckRemove (not
// a shard's primary), CheckSuccessor (a shard's term never goes back).
//
// # The store and the watch (store.go, watch.go)
//
// A Store reads and writes one cluster's records through a
// *clientv3.Client: Load (a validated snapshot at one revision), PutNode,
// CreateShard (if absent), SetPrimary (ChangePrimary's decision written with
// a compare-and-swap on the revisions of the records it was decided on,
// retried on a concurrent change: a stale term fails with ErrStaleTerm),
// RemoveNode. It blocks on etcd: never call it on an event loop.
//
// A Watcher (Store.Watch) keeps the current snapshot in an atomic pointer:
// Current never blocks and never locks, so the event loops read it
// directly. One goroutine of its own applies etcd's events, builds each new
// snapshot, validates it (an invalid one is logged and kept out), stores it
// and calls the optional OnChange; after a watch error or a compaction it
// reloads the whole cluster. See Watcher for the details.
//
// # Health and lag (health.go, lag.go)
//
// A Checker asks each node of a topology, every 200 ms over a connection of
// its own, whether it is a standby and its WAL position, and publishes a
// NodeHealth per node (an atomic pointer the event loops load); a replica's
// lag is measured in bytes and in time against its primary's positions.
//
// # Failover decisions (failover.go)
//
// Analyze names a shard's condition from a measurement (ShardView), after
// Vitess VTOrc's table: Healthy, ReplicaNotFollowing, StalePrimary,
// PrimaryUnreachable, DeadPrimary, DeadPrimaryTooFewReplicas,
// PromotedReplica, SplitBrain. A Decider, pure after etcd-io/raft's
// RawNode (the time and each measurement come in, idempotent actions come
// out: Detach, Promote, Follow, Rejoin, SetSync, Publish), decides the
// failover of a dead primary with no lost commit under ANY k synchronous
// replication; it keeps only its choice, so a new leader finishes a
// failover from what it sees. Tested by testdata/failover.txt
// (datadriven, -rewrite) and against a simple model (TestFailoverOracle).
//
// # The orchestrator (orch.go, probe.go)
//
// An Orchestrator is the decider's I/O shell: it campaigns in an etcd
// election under /belay/C/orch/ (concurrency.Election, a 2 s lease); while
// it leads it measures every node each 200 ms over a connection of its own
// (probe.go: one query), steps each shard's Decider and carries out its
// actions on the nodes (ALTER SYSTEM and a reload, pg_promote, a slot on the
// new primary) and in etcd (Store.SetPrimary with the leader's election
// key as a condition: a leader that lost its lease publishes nothing,
// ErrNotLeader). Rejoin (pg_rewind) is a hook: only a process that has the
// node's data directory (belay up) can carry it out. Tests:
// TestOrchestratorFailover, TestOrchestratorDiesMidFailover.
//
// # The hold (hold.go)
//
// A Hold is the proxy's decision for work routed to a shard's lost
// primary, after Vitess's vtgate/buffer/shard_buffer.go: Lost starts a
// hold, a topology with a primary of a newer term (Published) or the same
// primary answering a health check that began after the loss (Recovered)
// ends it; Admit says Send, Wait (until the bound) or Fail (the bound
// passed: fail at once until a primary is back); Tick expires it. Pure but
// for its mutex: every method takes the time. The proxy (loop/failover.go)
// parks and wakes the clients.
//
// ha never imports loop.
package ha
