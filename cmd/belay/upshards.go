package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/shard"
)

// belay up --shards N (issue J): N hash shards, each a PostgreSQL cluster
// of its own (a primary and --replicas replicas, as one shard is without
// --shards), all in one etcd topology (shard k is ha.ShardName(k)) and
// served by the same gateways, poolers and orchestrator; the cluster's
// sharding schema in etcd is made with the N shards (belay shard init N),
// so that the user only names tables (belay shard table, reference).
//
// Names: without --shards (N = 1) the nodes are pg0 (the primary), pg1,
// ... as they always were; with N > 1, shard k's are sKpg0, sKpg1, ...
// (pgcluster's Prefix), in DIR/sKpgI, so that ps, SHOW NODES and the
// logs (DIR/log/pooler-sKpgI.log) say which shard a process serves.
//
// A directory keeps its number of shards: its node directories and the
// schema in etcd say what it is, and belay up refuses another (resharding
// is not supported).

// maxUpShards bounds --shards: every node of every shard runs on this
// machine.
const maxUpShards = 16

// upPreparedTransactions is the max_prepared_transactions of a sharded
// cluster's nodes: max_connections (pginstance's 200), so that every server
// connection a pooler may open can hold a prepared transaction of a
// statement that ran on every shard (loop/spread.go).
const upPreparedTransactions = "200"

// nodePrefix is the prefix of the names of shard k's nodes among n shards:
// pg (pg0, pg1, ...) without sharding, else sKpg.
func nodePrefix(n, k int) string {
	if n == 1 {
		return "pg"
	}
	return "s" + strconv.Itoa(k) + "pg"
}

var (
	plainNodeDir   = regexp.MustCompile(`^pg[0-9]*$`)          // pg (an old single node), pg0, pg1, ...
	shardedNodeDir = regexp.MustCompile(`^s([0-9]+)pg[0-9]+$`) // sKpgI
)

// dirShards says how many shards the PostgreSQL data in root was made for:
// 1 for nodes pgI (or an old single node, pg), K+1 for nodes up to sKpgI,
// 0 when root holds no node's data yet. The data are the node directories
// holding data/PG_VERSION.
func dirShards(root string) int {
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, e.Name(), "data", "PG_VERSION")); err != nil {
			continue
		}
		if plainNodeDir.MatchString(e.Name()) {
			n = max(n, 1)
		} else if m := shardedNodeDir.FindStringSubmatch(e.Name()); m != nil {
			if k, err := strconv.Atoi(m[1]); err == nil && k < maxUpShards {
				n = max(n, k+1)
			}
		}
	}
	return n
}

// checkDirShards refuses a --shards of want over a directory made for
// another number of shards.
func checkDirShards(root string, want int) error {
	have := dirShards(root)
	if have == 0 || have == want {
		return nil
	}
	return fmt.Errorf("%s holds %s; --shards %d asks for %s: changing the number of shards (resharding) is not supported. "+
		"Start it with %s, or give another --dir", root, shardsText(have), want, shardsText(want), shardsFlag(have))
}

func shardsText(n int) string {
	if n == 1 {
		return "an unsharded cluster (nodes pg0, pg1, ...)"
	}
	return fmt.Sprintf("a cluster of %d shards (nodes s0pg0 ... s%dpg0, ...)", n, n-1)
}

func shardsFlag(n int) string {
	if n == 1 {
		return "--shards 1 (the default)"
	}
	return fmt.Sprintf("--shards %d", n)
}

// claimShards checks, in etcd, that the cluster has the number of shards
// asked for, if it is there already (a sharding schema says how many; a
// topology without one has one shard), and makes the sharding schema of
// a cluster of N > 1 shards that has none (belay shard init N), before
// any proxy reads the topology.
func (c *cluster) claimShards(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, done, err := c.store()
	if err != nil {
		return err
	}
	defer done()
	where := fmt.Sprintf("cluster %s in etcd at %s", c.info.Name, strings.Join(c.info.Endpoints, ","))
	sc, _, err := st.Sharding(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	top, err := st.Load(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	want, have := c.info.Shards, 0
	switch {
	case sc != nil:
		have = sc.Shards()
	case len(top.Shards) > 0:
		have = 1
	}
	if have != 0 && have != want {
		what := "is not sharded (one shard, no sharding schema)"
		if sc != nil {
			what = fmt.Sprintf("is sharded over %d shards (its sharding schema)", have)
		}
		return fmt.Errorf("%s %s; --shards %d asks for %d: changing the number of shards (resharding) is not supported. "+
			"Start it with %s, or give another --cluster", where, what, want, want, shardsFlag(have))
	}
	if want == 1 || sc != nil {
		return nil
	}
	if _, err := st.UpdateSharding(ctx, func(cur *shard.Schema) (*shard.Schema, error) {
		return changeSchema(cur, []string{"init", strconv.Itoa(want)})
	}); err != nil {
		return fmt.Errorf("%s: making it sharded over %d shards: %w", where, want, err)
	}
	fmt.Fprintf(os.Stderr, "belay up: cluster %s sharded over %d shards in etcd (belay shard init %d)\n", c.info.Name, want, want)
	return nil
}

// selfCommand is how the banner names belay in the commands it prints:
// as it was started, unless by go run (a temporary binary).
func selfCommand() string {
	if a := os.Args[0]; a != "" && !strings.Contains(a, "go-build") {
		return a
	}
	return "go run ./cmd/belay"
}
