package loop

import (
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
)

// TestRouterNodeTimeline: a standby is given reads only on the primary's
// timeline, or when either timeline is not known; a node out of recovery
// that the topology calls a replica never.
func TestRouterNodeTimeline(t *testing.T) {
	node := func(h ha.Health) *clusterNode {
		n := &clusterNode{health: &ha.NodeHealth{}, nodeStats: &nodeStats{}}
		h.At, h.Up = time.Now(), true
		n.health.Publish(&h)
		return n
	}
	for _, c := range []struct {
		name       string
		h          ha.Health
		primaryTLI uint32
		usable     bool
	}{
		{"same timeline", ha.Health{InRecovery: true, Timeline: 2}, 2, true},
		{"a fork's timeline", ha.Health{InRecovery: true, Timeline: 2}, 3, false},
		{"receiver not running", ha.Health{InRecovery: true}, 3, true},
		{"primary's not known", ha.Health{InRecovery: true, Timeline: 2}, 0, true},
		{"out of recovery", ha.Health{Timeline: 3}, 3, false},
	} {
		if got := node(c.h).routerNode(c.primaryTLI).Usable; got != c.usable {
			t.Errorf("%s: usable %v, want %v", c.name, got, c.usable)
		}
	}
}
