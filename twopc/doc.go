// Package twopc is the pure part of belay's two-phase commit (issue J): a
// transaction that wrote on more than one shard commits with PostgreSQL's
// PREPARE TRANSACTION and COMMIT PREPARED, the decision to commit recorded
// durably (in etcd, by ha's store) between the two phases, so that no
// shard commits what another may roll back, whatever crashes.
//
// The protocol, as the Coordinator drives it for one transaction:
//
//  1. PREPARE TRANSACTION 'belay:<tx>:<shard>' on every shard it wrote on
//     (GID). A shard that fails to prepare (a deferred constraint, a
//     serialization failure, a lost server) aborts the transaction: the
//     shards that prepared roll back (ROLLBACK PREPARED), the others' open
//     transactions roll back, and the client gets that shard's error.
//  2. Once every shard prepared, the decision Commit is written, if no
//     decision is there yet (etcd compare on the key's creation). Written:
//     the transaction is committed, whatever happens next. Found Abort
//     there (a resolver gave up on this coordinator): every shard rolls
//     back and the client gets 40001. Not known (etcd unreachable, the
//     write's outcome unknown): the client gets 08007 and the resolver
//     decides later.
//  3. COMMIT PREPARED on every shard; one that cannot be reached now is the
//     resolver's to finish. The client's COMMIT is acknowledged once the
//     decision is durable.
//
// The resolver (Resolve), run by whoever finds prepared transactions of
// belay's on a shard (the orchestrator, a gateway at start): a decision
// recorded is carried out; none, on a transaction prepared longer ago than
// a grace period (the coordinator is gone), is settled as Abort by writing
// that decision first, with the same compare, so that a late coordinator
// cannot commit what the resolver rolls back: whoever writes first
// decides.
//
// Concurrency: the package is pure (no I/O, no clock, no goroutines); a
// Coordinator is not safe for concurrent use (one per transaction, on its
// session's loop). It imports nothing of belay.
package twopc
