package pgtest

import (
	"testing"

	"github.com/belaydb/belay/internal/netns"
	"github.com/belaydb/belay/internal/pgcluster"
)

// NewNetCluster is NewCluster with each node in a network namespace of its
// own (internal/netns): its own address on a bridge of this process's
// namespace, reached by belay and by the other nodes over its link, which
// the returned Net takes down (Partition) and brings back (Heal). What
// earlier test processes left of their namespaces is swept first; the
// cluster is stopped, then the namespaces and links removed, when the test
// ends. It skips the test, with the reason, where network namespaces
// cannot be made (not root).
func NewNetCluster(t testing.TB, o pgcluster.Options) (*pgcluster.Cluster, *netns.Net) {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skip(err)
	}
	if err := netns.Sweep(); err != nil {
		t.Logf("pgtest: sweeping the namespaces of earlier runs: %v", err)
	}
	nw, err := netns.New()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Registered first: removed after the cluster is stopped.
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	o.Place = func(node string) (pgcluster.Placement, error) {
		nd, err := nw.Add(node)
		if err != nil {
			return pgcluster.Placement{}, err
		}
		return pgcluster.Placement{Host: nd.Addr.String(), NetNS: nd.Path, HBA: nw.HBA()}, nil
	}
	return NewCluster(t, o), nw
}
