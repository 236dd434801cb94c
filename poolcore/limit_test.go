package poolcore

import (
	"runtime"
	"testing"
)

// A node on this machine starts its adaptive limit at twice the cores plus
// one, under its ceiling; a node elsewhere (or one of whose hosts is) at
// the ceiling.
func TestLimitStartsAtThePriorOnThisMachine(t *testing.T) {
	prior := 2*runtime.NumCPU() + 1
	for _, c := range []struct {
		server  string
		ceiling int
		want    int
	}{
		{"127.0.0.1:5432", 100, prior},
		{"[::1]:5432", 100, prior},
		{"localhost:5432", 100, prior},
		{"/run/postgresql:5432", 100, prior},
		{"127.0.0.1:5432", 2, 2}, // the ceiling bounds it
		{"10.1.2.3:5432", 100, 100},
		{"db.example.com:5432", 100, 100},
		{"127.0.0.1:5432,10.1.2.3:5432", 100, 100},
	} {
		n := &node{}
		n.setServer(c.server)
		n.init(Options{MaxDBConnections: c.ceiling, AdaptiveLimit: true})
		if got := n.limiter.Limit(); got != c.want || n.budget() != c.want {
			t.Errorf("%s, ceiling %d: limit %d, budget %d; want %d", c.server, c.ceiling, got, n.budget(), c.want)
		}
	}
}
