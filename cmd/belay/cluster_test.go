package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestProxyServesClusterFromEtcd (issue G): belay proxy --etcd serves the
// cluster etcd describes: reads on the replicas, writes on the primary (SHOW
// NODES and each node's pg_stat_database agree), and a replica added to or
// removed from etcd applies while clients stay connected.
func TestProxyServesClusterFromEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, three Postgres and belay")
	}
	bin := buildBelay(t)
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	etcd := etcdtest.New(t)
	store, err := ha.NewStore(etcdtest.Client(t, etcd), "k")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := store.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: cl.Primary().Name}); err != nil {
		t.Fatal(err)
	}
	register := func(n *pgcluster.Node) {
		if _, err := store.PutNode(ctx, n.Name, ha.NodeRecord{Shard: "0", Addr: n.Addr(), State: ha.StateUp}); err != nil {
			t.Fatal(err)
		}
	}
	register(cl.Primary())
	register(cl.Replicas()[0])
	port := strconv.Itoa(freePort(t))
	cmd := exec.Command(bin, "proxy", "--listen", "127.0.0.1:"+port, "--etcd", etcd.Endpoint(), "--cluster", "k",
		"--auth-type", "trust", "--admin-users", "postgres", "--pool-size", "10")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() })
	eventually(t, "belay to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	cs := "host=127.0.0.1 port=" + port + " user=postgres sslmode=disable dbname="
	c, err := pgx.Connect(ctx, cs+"postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	con, err := pgx.Connect(ctx, cs+"belay")
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(ctx)
	nodes := func() map[string][2]int64 { // name: reads, writes
		t.Helper()
		rows, err := con.Query(ctx, "SHOW NODES", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][2]int64{}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if v[5] == "up" {
				out[v[1].(string)] = [2]int64{v[10].(int64), v[11].(int64)}
			}
		}
		return out
	}
	eventually(t, "both nodes up", func() bool { return len(nodes()) == 2 })
	if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS ketcd; CREATE TABLE ketcd (x int)"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := c.Exec(ctx, "INSERT INTO ketcd VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM ketcd").Scan(&n); err != nil || n != i+1 {
			t.Fatalf("read back %d rows, %v; want %d", n, err, i+1)
		}
	}
	got := nodes()
	pri, rep := got[cl.Primary().Name], got[cl.Replicas()[0].Name]
	if pri[0] != 0 || rep[1] != 0 || rep[0] < 40 {
		t.Fatalf("SHOW NODES: primary %v, replica %v (reads, writes)", pri, rep)
	}
	// The sharding schema, written with belay shard's commands, is shown
	// by SHOW SHARDED_TABLES as soon as the proxy's watch sees it; SHOW
	// SHARDS lists the topology's shard.
	show := func(q string) string {
		t.Helper()
		rows, err := con.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.TrimSpace(fmt.Sprintln(v...)))
		}
		return strings.Join(lines, "; ")
	}
	names := []string{cl.Primary().Name, cl.Replicas()[0].Name}
	slices.Sort(names)
	if got, want := show("SHOW SHARDS"), fmt.Sprintf("0 %s 1 2 %s", cl.Primary().Name, strings.Join(names, ",")); got != want {
		t.Errorf("SHOW SHARDS: %q, want %q", got, want)
	}
	if got := show("SHOW SHARDED_TABLES"); got != "" {
		t.Errorf("SHOW SHARDED_TABLES of a cluster not sharded: %q", got)
	}
	for _, args := range [][]string{{"init", "1"}, {"table", "ketcd", "x", "int"}, {"reference", "refs"}} {
		if err := shardCommand(ctx, store, args, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "SHOW SHARDED_TABLES to show the schema", func() bool {
		return show("SHOW SHARDED_TABLES") == "public.ketcd sharded x integer 1; public.refs reference <nil> <nil> 1"
	})
	// The second replica joins through etcd alone, while c stays connected.
	register(cl.Replicas()[1])
	eventually(t, "the new replica serving reads", func() bool {
		for i := 0; i < 20; i++ {
			if _, err := c.Exec(ctx, "SELECT count(*) FROM ketcd"); err != nil {
				t.Fatal(err)
			}
		}
		return nodes()[cl.Replicas()[1].Name][0] > 0
	})
	// And the first leaves.
	if err := store.RemoveNode(ctx, cl.Replicas()[0].Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removed replica gone from SHOW NODES", func() bool {
		_, ok := nodes()[cl.Replicas()[0].Name]
		return !ok
	})
}
