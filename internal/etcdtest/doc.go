// Package etcdtest gives tests a real etcd: New starts one in this test
// process (internal/etcdlocal) in a temporary directory, on free loopback
// ports, with fsync off, and stops it and removes the directory when the
// test ends, whether it passed or not. An etcd in the test process dies
// with it, so a killed test binary leaves no etcd behind (only its
// temporary directory, belay-etcdtest-* under os.TempDir).
//
// Use it as:
//
//	func TestX(t *testing.T) {
//		srv := etcdtest.New(t)
//		cli := etcdtest.Client(t, srv)
//		...
//	}
//
// Concurrency: New and Client may be called from parallel tests; each
// test gets an etcd of its own (about a second to start).
//
// Never imports: anything of belay except internal/etcdlocal.
package etcdtest
