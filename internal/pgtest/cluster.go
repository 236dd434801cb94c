package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgcluster"
)

// clusterSettings make a cluster's nodes faster without changing what
// replication guarantees: fsync off only (synchronous_commit must stay on
// for synchronous replication, full_page_writes on for pg_rewind).
var clusterSettings = map[string]string{"fsync": "off"}

// SharedReplicas is the number of replicas of the shared cluster.
const SharedReplicas = 2

var (
	clustersMu   sync.Mutex // guards liveClusters
	liveClusters = map[*pgcluster.Cluster]struct{}{}

	sharedClusterMu  sync.Mutex // guards the fields below; held while the shared cluster starts
	sharedCluster    *pgcluster.Cluster
	sharedClusterErr error
)

// SharedCluster returns the package's shared cluster, a primary and
// SharedReplicas streaming replicas with synchronous replication, starting
// it on first use (and waiting for its replicas to stream). The package
// must have func TestMain(m *testing.M) { pgtest.Main(m) }, which stops it.
// Tests must leave it as they found it: every node running and streaming,
// no changes to global settings they do not undo (kill or stop nodes in a
// cluster of their own: NewCluster).
func SharedCluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	mu.Lock()
	ok := mainCalled
	mu.Unlock()
	if !ok {
		t.Fatal("pgtest.SharedCluster: the package needs func TestMain(m *testing.M) { pgtest.Main(m) } so that the shared cluster is stopped")
	}
	sharedClusterMu.Lock()
	defer sharedClusterMu.Unlock()
	if sharedCluster == nil && sharedClusterErr == nil {
		sharedCluster, _, sharedClusterErr = startCluster(pgcluster.Options{Replicas: SharedReplicas})
	}
	if sharedClusterErr != nil {
		t.Fatalf("pgtest: starting the shared cluster: %v", sharedClusterErr)
	}
	for _, n := range sharedCluster.Nodes() {
		if inst := n.Instance(); inst == nil {
			t.Fatalf("pgtest: node %s of the shared cluster is stopped (a test stopped it?)", n.Name)
		} else {
			select {
			case <-inst.Done():
				t.Fatalf("pgtest: node %s of the shared cluster (pid %d) has exited (%v); log tail:\n%s", n.Name, inst.PID, inst.ExitErr(), inst.LogTail())
			default:
			}
		}
	}
	return sharedCluster
}

// NewCluster starts a private cluster, stopped (and its temporary directory
// removed) when the test ends, and waits for its replicas to stream. If
// o.Dir is empty a temporary directory is used; fsync is off unless
// o.Settings says otherwise.
func NewCluster(t testing.TB, o pgcluster.Options) *pgcluster.Cluster {
	t.Helper()
	c, tmp, err := startCluster(o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	stopAtEnd(t, c.Stop, func() {
		clustersMu.Lock()
		delete(liveClusters, c)
		clustersMu.Unlock()
	}, tmp)
	return c
}

// startCluster starts a cluster with the cluster settings, in a new
// temporary directory (returned) when o.Dir is empty, waits for its
// replicas to stream, and registers it for cleanupAll.
func startCluster(o pgcluster.Options) (_ *pgcluster.Cluster, tmp string, _ error) {
	o.Settings = withDefaults(clusterSettings, o.Settings)
	if o.Dir == "" {
		var err error
		if tmp, err = makeTempDir(); err != nil {
			return nil, "", err
		}
		o.Dir = tmp
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout*(1+2*time.Duration(o.Replicas)))
	defer cancel()
	c, err := pgcluster.Start(ctx, o)
	if err != nil {
		if tmp != "" {
			removeTempDir(tmp)
		}
		return nil, "", err
	}
	clustersMu.Lock()
	liveClusters[c] = struct{}{} // from now on a SIGINT stops it too
	clustersMu.Unlock()
	if err := c.WaitStreaming(ctx); err != nil {
		var tails strings.Builder
		for _, n := range c.Nodes() {
			if inst := n.Instance(); inst != nil {
				fmt.Fprintf(&tails, "\n--- %s's log (tail) ---\n%s", n.Name, inst.LogTail())
			}
		}
		_ = c.Stop()
		clustersMu.Lock()
		delete(liveClusters, c)
		clustersMu.Unlock()
		if tmp != "" {
			removeTempDir(tmp)
		}
		return nil, "", fmt.Errorf("%w%s", err, tails.String())
	}
	return c, tmp, nil
}

// stopClusters stops every live cluster (for cleanupAll).
func stopClusters() {
	clustersMu.Lock()
	cs := make([]*pgcluster.Cluster, 0, len(liveClusters))
	for c := range liveClusters {
		cs = append(cs, c)
	}
	clear(liveClusters)
	clustersMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
		}()
	}
	wg.Wait()
}
