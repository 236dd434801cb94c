// Package compat is belay's client compatibility suite; it has tests only.
//
// Each real client (psql, pgbench, pgx in every query mode, node-postgres,
// psycopg 3, the PostgreSQL JDBC driver) runs one scenario program: SET and
// read back, driver-level and SQL-level prepared statements across many
// transactions, a temp table, LISTEN/NOTIFY on one connection, errors (22012,
// 42601, 26000) and COPY both ways. A scenario prints a deterministic
// transcript, one line per step. The test runs it once directly against
// PostgreSQL (the reference; twice, to prove it deterministic), then 8
// instances concurrently through an in-process belay in transaction pooling
// with only 2 server connections, and requires every transcript to equal the
// reference and belay's server connections to be idle afterwards.
//
// The scenario programs live under testdata/<client>/. Clients that are not
// installed make their test skip, or fail when BELAY_COMPAT_REQUIRE=1 (as in
// `make test`; `make deps` installs them all on Debian).
//
// Goroutines: each external scenario runs in its own process in its own
// process group, waited for by the test goroutine that started it and killed
// (the whole group) when it outlives its timeout. The pgx scenarios run
// in-process, one goroutine per instance.
package compat
