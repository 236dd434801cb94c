// Package etcdlocal runs a single-member etcd inside this process
// (go.etcd.io/etcd/server/v3/embed), listening on loopback only, with its
// data, its ports and its log in one directory, so that starting it again
// in the same directory brings back the same data on the same ports. It
// serves `belay up` (DIR/etcd) and, through internal/etcdtest, the tests
// of every package that needs a real etcd.
//
// Layout of Options.Dir: data/ (etcd's data directory), ports (the client
// and peer ports, kept for the next start), etcd.log (etcd's own log,
// appended to).
//
// Concurrency: Start may be called from several goroutines for different
// directories; a Server is safe for concurrent use and Stop is idempotent.
// The etcd server runs on goroutines of its own, all ended by Stop.
//
// Never imports: anything of belay, testing.
package etcdlocal
