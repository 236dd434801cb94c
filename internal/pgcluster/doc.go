// Package pgcluster runs a PostgreSQL cluster on this machine: a primary
// and streaming replicas, each one an internal/pginstance (so root-safe,
// in its own process group, with a parent-death signal), for `belay up`
// and for the tests of the cluster (through internal/pgtest).
//
// # Layout and reuse
//
// Node pgK lives in Options.Dir/pgK: its data directory (data/), its Unix
// socket directory (sock/), its log (postgres.log) and its TCP port (port),
// kept so that the node listens on the same port at the next Start when it
// is free. It listens on 127.0.0.1, unless Options.Place gives it an
// address of its own, in a network namespace of its own, with the
// pg_hba.conf lines that let the others in (pgtest.NewNetCluster: each node
// behind a link a test can take down); replication, pg_basebackup and
// pg_rewind then go to that address. pg0 is the primary, pg1..pgN the replicas.
// Options.Prefix names them otherwise (s1pg0, s1pg1, ... for the nodes of
// belay up's shard 1), so that the clusters of several shards can share one
// Dir: a node's name is also its slot's and its application_name.
// Start reuses every data directory it finds; it makes what is missing:
// the primary with initdb, a replica with pg_basebackup from the primary.
//
// # Replication
//
// With at least one replica, every node runs with wal_level=replica,
// wal_log_hints=on and wal_keep_size=256MB (pg_rewind will need them),
// hot_standby=on,
// hot_standby_feedback=on and enough WAL senders and slots; the primary is
// made with data checksums (initdb -k). These settings are on the
// postmaster's command line (pginstance's Options.Settings) and the same
// on every node, so a promotion does not change them. What depends on a
// node's role is in its postgresql.auto.conf (ALTER SYSTEM), so that a
// later failover can change it without a restart: on the primary,
// synchronous_standby_names = 'ANY 1 (pg1, ..., pgN)' and
// synchronous_commit = on, set once the replicas exist; on a replica
// (made by pg_basebackup -R, which writes standby.signal), primary_conninfo
// with application_name = its name, and primary_slot_name = its name, the
// physical replication slot Start keeps on the primary for it. A replica
// whose slot is missing on the primary (the primary is new, or the replica
// was left out of an earlier Start) may lack WAL it needs: Start makes it
// again. Slots of nodes beyond Options.Replicas are dropped, so that the
// primary keeps no WAL for them; their directories are left alone. With no
// replica, none of this is set (and a synchronous_standby_names left by an
// earlier Start is reset, or every commit would wait forever).
//
// Roles are fixed for now: pg0 is always the primary. Promotion, pg_rewind
// and repointing replicas belong to failover (issue H).
//
// # Concurrency
//
// A Cluster and its Nodes are safe for concurrent use. Each Node's mutex
// serializes what changes its server (Start, Stop, Kill); Cluster methods
// take the nodes' mutexes one at a time, never two at once.
//
// Never imports: anything of belay except internal/pginstance; testing.
package pgcluster
