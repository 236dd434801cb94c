package loop

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/panjf2000/gnet/v2"
)

// staticTopology is a ClusterSource a test sets by hand.
type staticTopology struct{ t atomic.Pointer[ha.Topology] }

func (s *staticTopology) Current() *ha.Topology { return s.t.Load() }

// healthDial checks nodes as postgres, as belay up does.
func healthDial(ctx context.Context, addr string) (*pgx.Conn, error) {
	host, port, _ := net.SplitHostPort(addr)
	return pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable")
}

// topologyOf is shard "0" of cluster "t" with primary pri and the replicas.
func topologyOf(pri string, nodes map[string]string) *ha.Topology {
	recs := map[string]ha.NodeRecord{}
	for name, addr := range nodes {
		recs[name] = ha.NodeRecord{Shard: "0", Addr: addr}
	}
	return ha.Build("t", 0, map[string]ha.ShardRecord{"0": {Term: 1, Primary: pri}}, recs)
}

// knodeServers are the shared server as a primary and a new one as a
// replica, each saying which it is in table knode. The replica is a
// standby of no primary: in recovery (belay sends no read to a replica
// that is not), with rows of its own.
func knodeServers(t *testing.T) (pri, rep *pginstance.Instance) {
	t.Helper()
	pri = pgtest.Shared(t)
	repDir := pgtest.TempDir(t)
	rep = pgtest.New(t, pginstance.Options{Dir: repDir})
	ctx := context.Background()
	for name, pg := range map[string]*pginstance.Instance{"primary": pri, "replica": rep} {
		c := connect(t, pg.ConnString("postgres", "postgres"))
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS knode; CREATE TABLE knode (name text); INSERT INTO knode VALUES ('"+name+"')"); err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	}
	if err := rep.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rep.DataDir, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return pri, pgtest.New(t, pginstance.Options{Dir: repDir})
}

// TestBlindWrite: with no replica in the topology, a write's WAL position
// is not asked; once a replica joins, the client's reads stay on the
// primary (read-your-writes: the replica is not known to have its write)
// until a write of its own is asked its position, and a client that never
// wrote reads on the replica.
func TestBlindWrite(t *testing.T) {
	pri, rep := knodeServers(t)
	ctx := context.Background()
	src := &staticTopology{}
	src.t.Store(topologyOf("p", map[string]string{"p": pri.Addr()}))
	p := startProxy(t, pri, func(c *Config) { c.Cluster, c.HealthDial = src, healthDial })
	writer := connect(t, p.connString("postgres", "postgres"))
	if _, err := writer.Exec(ctx, "UPDATE knode SET name = name"); err != nil {
		t.Fatal(err)
	}
	reader := connect(t, p.connString("postgres", "postgres"))
	src.t.Store(topologyOf("p", map[string]string{"p": pri.Addr(), "r": rep.Addr()}))
	p.TopologyChanged()
	eventually(t, 10*time.Second, "the replica's health check", func() bool {
		v := p.cluster.view.Load()
		for _, n := range v.nodes {
			if h := n.health.Current(); h == nil || !h.Up {
				return false
			}
		}
		return len(v.nodes) == 2
	})
	where := func(c *pgx.Conn) string {
		t.Helper()
		var name string
		if err := c.QueryRow(ctx, "SELECT name FROM knode").Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	if got := where(reader); got != "replica" {
		t.Fatalf("a client that never wrote read on the %s", got)
	}
	for range 3 {
		if got := where(writer); got != "primary" {
			t.Fatalf("after a write made with no replica, a read ran on the %s", got)
		}
	}
}

// TestClusterRouting: in front of two servers named primary and replica
// (each says which it is in a table), reads go to the replica and
// everything else to the primary, a session's or a statement's own route
// wins, prepared statements follow the client to both, and a topology
// change applies without a restart. (Real streaming replication is the
// cluster tests' business; here the router's choices are what is checked.)
func TestClusterRouting(t *testing.T) {
	pri, rep := knodeServers(t)
	ctx := context.Background()
	src := &staticTopology{}
	src.t.Store(topologyOf("p", map[string]string{"p": pri.Addr(), "r": rep.Addr()}))
	p := startProxy(t, pri, func(c *Config) {
		c.Cluster, c.HealthDial, c.Eventual = src, healthDial, true
		c.AdminUsers = []string{"postgres"}
	})
	eventually(t, 10*time.Second, "the replica's health check", func() bool {
		v := p.cluster.view.Load()
		for _, n := range v.nodes {
			if h := n.health.Current(); h == nil || !h.Up {
				return false
			}
		}
		return true
	})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := connectMode(t, p.connString("postgres", "postgres"), mode)
			where := func(sql string) string {
				t.Helper()
				var name string
				if err := c.QueryRow(ctx, sql).Scan(&name); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
				return name
			}
			expect := func(sql, want string) {
				t.Helper()
				if got := where(sql); got != want {
					t.Fatalf("%s ran on the %s, want the %s", sql, got, want)
				}
			}
			expect("SELECT name FROM knode", "replica")
			expect("SELECT name FROM knode FOR UPDATE", "primary")
			expect("/* belay.route=primary */ SELECT name FROM knode", "primary")
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.QueryRow(ctx, "SELECT name FROM knode").Scan(new(string)); err != nil {
				t.Fatal(err)
			}
			var in string
			_ = tx.QueryRow(ctx, "SELECT name FROM knode").Scan(&in)
			_ = tx.Commit(ctx)
			if in != "primary" {
				t.Fatalf("a read in a read-write transaction ran on the %s", in)
			}
			tx, err = c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err != nil {
				t.Fatal(err)
			}
			_ = tx.QueryRow(ctx, "SELECT name FROM knode").Scan(&in)
			_ = tx.Commit(ctx)
			if in != "replica" {
				t.Fatalf("a READ ONLY transaction ran on the %s", in)
			}
			// The session's own route, and its end.
			if _, err := c.Exec(ctx, "SET belay.route = 'primary'"); err != nil {
				t.Fatal(err)
			}
			expect("SELECT name FROM knode", "primary")
			if _, err := c.Exec(ctx, "RESET belay.route"); err != nil {
				t.Fatal(err)
			}
			expect("SELECT name FROM knode", "replica")
		})
	}
	// SHOW NODES on the console counts what each node served.
	con := connectMode(t, p.connString("belay", "postgres"), pgx.QueryExecModeSimpleProtocol)
	rows, err := con.Query(ctx, "SHOW NODES")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][3]int64{} // role: reads, writes, port
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if v[5] != "up" {
			t.Errorf("node %v is %v", v[1], v[5])
		}
		got[v[4].(string)] = [3]int64{v[10].(int64), v[11].(int64), int64(v[3].(int32))}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if r, w := got["replica"], got["primary"]; r[0] < 6 || r[1] != 0 || w[1] < 6 || w[0] < 3 || r[2] != int64(rep.Port) || w[2] != int64(pri.Port) {
		t.Fatalf("SHOW NODES: %v", got)
	}
	t.Logf("SHOW NODES: %v", got)
	var b strings.Builder
	p.metrics.set.WritePrometheus(&b)
	for _, want := range []string{`belay_node_reads_total{node="r",role="replica"} ` + fmt.Sprint(got["replica"][0]),
		`belay_node_up{node="p",role="primary"} 1`, `belay_pool_servers_open{database="postgres",user="postgres",node="r"}`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A replica whose server dies before answering a read (terminated,
	// then killed): the read is sent again, to the primary.
	admin := connect(t, rep.ConnString("postgres", "postgres"))
	for _, how := range []string{"terminate", "kill"} {
		eventually(t, 10*time.Second, "the replica back", func() bool {
			h := p.cluster.view.Load().nodes[1].health.Current()
			return h != nil && h.Up
		})
		c := connect(t, p.connString("postgres", "postgres"))
		done := make(chan string, 1)
		go func() {
			var name string
			err := c.QueryRow(ctx, "SELECT name FROM knode, pg_sleep(1)").Scan(&name)
			if err != nil {
				name = err.Error()
			}
			done <- name
		}()
		var pid int
		eventually(t, 10*time.Second, "the read to run on the replica", func() bool {
			err := admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1)%' AND pid <> pg_backend_pid()").Scan(&pid)
			return err == nil
		})
		if how == "terminate" {
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
		} else if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if got := <-done; got != "primary" {
			t.Fatalf("%s: the read got %q, want its answer from the primary", how, got)
		}
		if how == "kill" {
			admin = nil // the postmaster restarted every backend
		}
	}
	if n := p.cluster.view.Load().nodes[1].retries.Load(); n != 2 {
		t.Fatalf("%d reads sent again, want 2", n)
	}

	// The replica out of the topology: reads go to the primary, at once.
	src.t.Store(topologyOf("p", map[string]string{"p": pri.Addr()}))
	c := connect(t, p.connString("postgres", "postgres"))
	eventually(t, 5*time.Second, "the topology change", func() bool {
		var name string
		_ = c.QueryRow(ctx, "SELECT name FROM knode").Scan(&name)
		return name == "primary"
	})
}

// TestLoginHeld (issue H): while a switchover's hold leaves the cluster
// without a primary, a client's login waits instead of failing; it goes on
// to the primary published next, and a client that gives up while it
// waits leaves nothing behind.
func TestLoginHeld(t *testing.T) {
	pri := pgtest.Shared(t)
	ctx := context.Background()
	src := &staticTopology{}
	nodes := map[string]ha.NodeRecord{"p": {Shard: "0", Addr: pri.Addr()}}
	publish := func(term uint64, primary string) {
		src.t.Store(ha.Build("t", 0, map[string]ha.ShardRecord{"0": {Term: term, Primary: primary}}, nodes))
	}
	publish(1, "p")
	p := startProxy(t, pri, func(c *Config) { c.Cluster, c.HealthDial = src, healthDial })
	publish(2, "") // the hold
	p.TopologyChanged()
	// One that gives up while held.
	gctx, giveUp := context.WithTimeout(ctx, 200*time.Millisecond)
	if c, err := pgx.Connect(gctx, p.connString("postgres", "postgres")); err == nil {
		c.Close(ctx)
		t.Fatal("a login went through with no primary published")
	}
	giveUp()
	type result struct {
		c   *pgx.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := pgx.Connect(ctx, p.connString("postgres", "postgres"))
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("a login during the hold did not wait: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	publish(3, "p")
	p.TopologyChanged()
	r := <-done
	if r.err != nil {
		t.Fatalf("the held login once a primary is published: %v", r.err)
	}
	defer r.c.Close(ctx)
	var one int
	if err := r.c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 after the held login: %d, %v", one, err)
	}
	eventually(t, 5*time.Second, "the held list to be empty", func() bool {
		n := 0
		for i := range p.cluster.held {
			l := p.pools.Loop(i)
			if l == nil {
				continue
			}
			got := make(chan int, 1)
			_ = l.EventLoop().Execute(ctx, gnet.RunnableFunc(func(context.Context) error { got <- len(p.cluster.held[i]); return nil }))
			n += <-got
		}
		return n == 0
	})
}
