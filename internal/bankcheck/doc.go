// Package bankcheck is a fault-test checker in the spirit of Jepsen's bank
// and set checkers, run against belay (or anything speaking Postgres's
// protocol) while a fault is injected.
//
// Clients transfer amounts between accounts in transactions that also
// append a unique id to a set (one INSERT per transaction), and read the
// sum of all balances. Every outcome is recorded: acknowledged (COMMIT
// answered), ambiguous (08007 transaction_resolution_unknown, or the
// connection lost while COMMIT was in flight: the outcome is not known),
// or failed with a SQLSTATE (the transaction did not commit). Check reads
// the final state and verifies that
//   - every acknowledged id is there (no acknowledged commit lost),
//   - no id is there that was never attempted, and failed ids are absent
//     (an error that was a lie),
//   - the balances sum to the total, at the end and in every read,
//
// and counts the ambiguous ids found and not found apart, never as
// acknowledged. After a partition, CheckOldTimeline compares the ids an old
// primary holds (read from it directly, before it is rewound) with the new
// primary's: those only the old one has were committed on its timeline
// after the fork, and none of them may have been acknowledged.
//
// Concurrency: each client is a goroutine with its own connection;
// Recorder's mu guards what they record.
package bankcheck
