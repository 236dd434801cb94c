// Package netns gives the nodes of a test cluster a network of their own,
// so that a node behaves like a separate machine whose link can fail: each
// node lives in a Linux network namespace of its own, linked by a veth pair
// to a bridge in this process's namespace (the root, for tests run as
// root), on a private /24 of 10.231.0.0/16 that New picks free. The root
// namespace has the subnet's first address on the bridge, so this process
// (belay, the orchestrator, the test) reaches every node directly, and the
// nodes reach one another across the bridge (no IP forwarding: the host's
// routing is not touched).
//
// A partition (Partition) takes the node's link down on the bridge's side:
// its frames go nowhere in either direction, no reset and no error is
// sent, and TCP on both sides sees only silence, as when a cable is cut or
// a switch fails. Heal brings the link back; connections that TCP has not
// given up on carry on.
//
// Only what a Net made is touched. Names carry this process's PID:
// namespaces are belay-PID-K-NODE, links blyPIDxK... (PID in base 36, to fit
// the 15 bytes of an interface name). Close removes a Net's namespaces,
// veth pairs and bridge, even with processes still running inside; Sweep
// removes what a process that no longer runs left behind (a test killed
// before its cleanup). Postgres is started inside a namespace by
// internal/pginstance (Options.NetNS: the fork thread enters it); Node.Do
// runs Go code there (a listener, a dial) for tests.
//
// It needs root (CAP_SYS_ADMIN for namespaces, CAP_NET_ADMIN for links)
// and iproute2's ip: Available says whether they are there, so that a test
// can skip with the reason.
//
// Concurrency: a Net is safe for concurrent use (mu guards its nodes).
// Making a Net takes a file lock (/run/lock/belay-netns.lock, else under
// the temporary directory) while it picks its subnet, so that processes
// started at once do not pick the same one.
//
// Never imports: anything of belay; testing.
package netns
