// Package pgtest is the real-PostgreSQL test harness: tests of a package share
// one server, started lazily on first use and stopped when the package's tests
// end, and may start private servers (e.g. with pg_hba.conf lines asking for
// SCRAM) that are stopped when the test ends.
//
// Use it as:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		pg := pgtest.Shared(t)
//		conn, err := pgconn.Connect(ctx, pg.ConnString("postgres", pg.Superuser))
//		...
//	}
//
// A package's tests may also share one cluster, a primary and two streaming
// replicas with synchronous replication (internal/pgcluster), started on
// first use of SharedCluster and stopped with the shared server; a test that
// kills or stops nodes starts a cluster of its own with NewCluster. Cluster
// nodes run with fsync off only: synchronous_commit stays on, as synchronous
// replication needs, and full_page_writes on, as pg_rewind needs.
//
// Servers run with fsync, synchronous_commit and full_page_writes off (unless
// a private instance's Options.Settings say otherwise) in temporary directories
// that are removed afterwards. A missing server or client binary fails the
// test, it never skips it: CI installs them (make deps).
//
// Cleanup: Main stops every instance and removes every temporary directory
// after the tests, and also on SIGINT or SIGTERM of the test binary (then it
// exits by the same signal). A package whose tests send SIGINT/SIGTERM to
// their own process must therefore not use Main. If the test binary dies
// without cleaning up (panic, timeout), the servers still shut down through
// their parent-death signal (see internal/pginstance); only their temporary
// directories (belay-pgtest-* under os.TempDir) are left.
//
// Concurrency: every function here may be called from parallel tests.
//
// Never imports: anything of belay except internal/pginstance and
// internal/pgcluster.
package pgtest
