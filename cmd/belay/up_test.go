package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// upRun is one `belay up` process started by a test, with what its banner
// said.
type upRun struct {
	cmd    *exec.Cmd
	exited chan error
	url    string   // the connection string
	psql   string   // the admin console line
	nodes  []upNode // PostgreSQL's nodes, the primary first
	etcd   string   // etcd's endpoint
	lines  []string
}

type upNode struct{ name, role, addr string }

// startUp starts `belay up` in dir, with more flags if any, and waits for
// its banner.
func startUp(t *testing.T, bin, dir string, flags ...string) *upRun {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--dir", dir, "--port", strconv.Itoa(freePort(t)), "--stop-timeout", "5s"}, flags...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upRun{cmd: cmd, exited: make(chan error, 1)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it exited
	})
	u.readBanner(t, stdout)
	go func() { u.exited <- cmd.Wait() }()
	return u
}

var (
	urlRE     = regexp.MustCompile(`postgres://\S+`)
	consoleRE = regexp.MustCompile(`^\s*(psql -h \S+ -p \d+ -U \S+ belay -c 'SHOW POOLS')\s*$`)
	nodeRE    = regexp.MustCompile(`^\s+(pg\d+|s\d+pg\d+)\s+(primary|replica)\s+(127\.0\.0\.1:\d+)\s`)
	etcdRE    = regexp.MustCompile(`^\s+etcd: (http://127\.0\.0\.1:\d+)[ ,]`)
)

// readBanner reads belay up's output until "Press Ctrl-C", then drains the
// rest in the background.
func (u *upRun) readBanner(t *testing.T, r io.Reader) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		ready := false
		for sc.Scan() {
			l := sc.Text()
			if !ready {
				u.lines = append(u.lines, l)
				if u.url == "" {
					u.url = urlRE.FindString(l)
				}
				if m := consoleRE.FindStringSubmatch(l); m != nil {
					u.psql = m[1]
				}
				if m := nodeRE.FindStringSubmatch(l); m != nil {
					u.nodes = append(u.nodes, upNode{m[1], m[2], m[3]})
				}
				if m := etcdRE.FindStringSubmatch(l); m != nil {
					u.etcd = m[1]
				}
				if strings.Contains(l, "Press Ctrl-C") {
					ready = true
					done <- true
				}
			} else if testing.Verbose() {
				t.Log(l)
			}
		}
		if !ready {
			done <- false
		}
	}()
	select {
	case ok := <-done:
		if !ok || u.url == "" || u.psql == "" || len(u.nodes) == 0 || u.etcd == "" {
			t.Fatalf("belay up printed no complete banner:\n%s", strings.Join(u.lines, "\n"))
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("belay up printed no banner in 3 minutes")
	}
}

// stop sends sig and waits for belay up to exit; it must exit 0.
func (u *upRun) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	_ = u.cmd.Process.Signal(sig)
	select {
	case err := <-u.exited:
		if err != nil {
			t.Fatalf("belay up exited with %v after %v", err, sig)
		}
	case <-time.After(30 * time.Second):
		_ = u.cmd.Process.Kill()
		t.Fatalf("belay up did not stop on %v", sig)
	}
}

// upDir is a directory for belay up's cluster. Not t.TempDir: its parent is
// private (0700), and Postgres runs as the postgres user when the test runs
// as root.
func upDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "belay-up-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "cluster")
}

// killNode kills the postmaster of belay up's node in dir with SIGKILL.
func killNode(t *testing.T, dir, node string) {
	t.Helper()
	pidFile, err := os.ReadFile(filepath.Join(dir, node, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func noProcessesLeft(t *testing.T, dir string) {
	t.Helper()
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("processes left running: %s", out)
	}
}

// TestUp runs `belay up` as a newcomer would: it must start etcd, a
// primary and two streaming replicas registered in etcd, print a connection
// string that works and a console line that works as pasted, keep its data
// (PostgreSQL's and etcd's) and every node's port across runs, refuse a
// second `belay up` in the same directory with a clear message, and stop
// every process on SIGTERM and on SIGINT, exiting 0.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	bin := buildBelay(t)
	dir := upDir(t)
	var first *upRun
	for i, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		u := startUp(t, bin, dir)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		checkUpCluster(t, ctx, u, dir)
		c, err := pgx.Connect(ctx, u.url)
		if err != nil {
			cancel()
			t.Fatalf("connect to %s: %v", u.url, err)
		}
		if i == 0 {
			_, err = c.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
			first = u
		} else {
			var x int
			err = c.QueryRow(ctx, "SELECT x FROM kept").Scan(&x) // the second run reuses the data
			if !reflect.DeepEqual(u.nodes, first.nodes) {
				t.Errorf("PostgreSQL's nodes were %v, then %v: they must keep their ports between two runs in one directory", first.nodes, u.nodes)
			}
			if u.etcd != first.etcd {
				t.Errorf("etcd moved from %s to %s between two runs in one directory", first.etcd, u.etcd)
			}
		}
		c.Close(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		// The row written through belay is on both replicas.
		for _, n := range u.nodes[1:] {
			waitForRow(t, ctx, n, "SELECT x FROM kept", 7)
		}
		etcdMarker(t, ctx, u, i == 0) // etcd's data is kept too
		cancel()
		if i == 0 {
			checkUpRouting(t, u)
			// The console line, as pasted into a shell.
			out, err := exec.Command("bash", "-c", u.psql).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "postgres  | postgres") {
				t.Errorf("%s: %v\n%s", u.psql, err, out)
			}
			// A second belay up in the same directory.
			out, err = exec.Command(bin, "up", "--dir", dir, "--port", strconv.Itoa(freePort(t))).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "belay up: already running in "+dir) {
				t.Errorf("a second belay up in the same directory: %v\n%s", err, out)
			}
		}
		if i == 1 {
			checkUpFailover(t, u, dir)
		}
		u.stop(t, sig)
		noProcessesLeft(t, dir)
	}
}

// checkUpFailover kills the primary's postmaster with SIGKILL: belay up's
// orchestrator promotes a replica at term 2, the proxy writes to it, and
// the old primary comes back as a replica of it (pg_rewind), all with no
// one's help.
func checkUpFailover(t *testing.T, u *upRun, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	killNode(t, dir, "pg0")
	killed := time.Now()
	cfg, err := pgx.ParseConfig(u.url)
	if err != nil {
		t.Fatal(err)
	}
	var wrote time.Duration
	var tries []string // each failed attempt: when, and why
	// Each attempt writes a value of its own: one whose outcome was not
	// known (08007, a lost connection) may have committed too, and one
	// told it failed must not have.
	var acked int
	var failed []int
	for n := 8000; wrote == 0; n++ {
		if ctx.Err() != nil {
			t.Fatalf("no write through belay within 2 minutes of the primary's kill; attempts: %q", tries)
		}
		// Each attempt bounded, so that one that hangs is seen as such.
		actx, acancel := context.WithTimeout(ctx, 15*time.Second)
		c, err := pgx.ConnectConfig(actx, cfg)
		if err == nil {
			_, err = c.Exec(actx, "INSERT INTO kept VALUES ($1)", n)
			c.Close(ctx)
		}
		acancel()
		if err == nil {
			wrote, acked = time.Since(killed), n
			break
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && !strings.HasPrefix(pe.Code, "08") && !strings.HasPrefix(pe.Code, "57P") {
			failed = append(failed, n)
		}
		if len(tries) < 20 {
			tries = append(tries, fmt.Sprintf("%v: %v", time.Since(killed).Round(time.Millisecond), err))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg.Database = "belay"
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(ctx)
	var state string
	for {
		rows, err := con.Query(ctx, "SHOW NODES", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%v %v %v term %v", v[1], v[4], v[5], v[8]))
		}
		state = strings.Join(got, ", ")
		if strings.Contains(state, "pg0 replica up term 2") && strings.Count(state, "primary up term 2") == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the kill of pg0: SHOW NODES says %s; want pg0 a replica, up, and a new primary at term 2", state)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("kill -9 of the primary under belay up: a write through belay succeeded %v after it; then %s", wrote.Round(time.Millisecond), state)
	waitForRow(t, ctx, u.nodes[0], fmt.Sprintf("SELECT count(*) FROM kept WHERE x = %d", acked), 1) // pg0 replays the new primary's WAL
	for _, n := range failed {
		waitForRow(t, ctx, u.nodes[0], fmt.Sprintf("SELECT count(*) FROM kept WHERE x = %d", n), 0) // told it failed: not there
	}
	t.Logf("the attempts that failed before: %q", tries)
}

// checkUpCluster checks what belay up said it started: three PostgreSQL
// postmasters in dir, pg0 the primary and pg1, pg2 replicas streaming from
// it, each registered in etcd (shard 0, the primary's term at least 1).
func checkUpCluster(t *testing.T, ctx context.Context, u *upRun, dir string) {
	t.Helper()
	if len(u.nodes) != 3 || u.nodes[0] != (upNode{"pg0", "primary", u.nodes[0].addr}) ||
		u.nodes[1].name != "pg1" || u.nodes[1].role != "replica" || u.nodes[2].name != "pg2" || u.nodes[2].role != "replica" {
		t.Fatalf("belay up's nodes: %v\n%s", u.nodes, strings.Join(u.lines, "\n"))
	}
	// Postmasters are the processes whose command line still names their
	// data directory (a backend's shows its role instead).
	// A backend just forked shows the postmaster's command line until it
	// sets its own: count again a few times.
	n := 0
	for try := 0; try < 50; try++ {
		out, _ := exec.Command("pgrep", "-f", "postgres -D "+dir+"/pg[0-9]/data").Output()
		if n = len(strings.Fields(string(out))); n == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != 3 {
		t.Errorf("%d PostgreSQL postmasters in %s, want 3", n, dir)
	}
	p, err := pgx.Connect(ctx, "postgres://postgres@"+u.nodes[0].addr+"/postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var streaming string
	if err := p.QueryRow(ctx, "SELECT string_agg(application_name || ' ' || state || ' ' || sync_state, ', ' ORDER BY application_name) FROM pg_stat_replication").Scan(&streaming); err != nil ||
		streaming != "pg1 streaming quorum, pg2 streaming quorum" {
		t.Errorf("pg_stat_replication on the primary: %q, %v", streaming, err)
	}

	cli, err := etcdlocal.NewClient([]string{u.etcd})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := ha.NewStore(cli, "local")
	if err != nil {
		t.Fatal(err)
	}
	top, err := st.Load(ctx)
	if err != nil {
		t.Fatalf("etcd at %s: %v", u.etcd, err)
	}
	s := top.Shard("0")
	if len(top.Shards) != 1 || s == nil || s.Primary != "pg0" || s.Term < 1 || len(s.Nodes) != 3 {
		t.Fatalf("the topology in etcd: %+v", top)
	}
	for i, n := range s.Nodes {
		if n.Name != u.nodes[i].name || string(n.Role) != u.nodes[i].role || n.Addr != u.nodes[i].addr || n.State != ha.StateUp {
			t.Errorf("etcd has node %+v; belay up said %v", n, u.nodes[i])
		}
	}
}

// waitForRow waits until query, on node n, returns want.
func waitForRow(t *testing.T, ctx context.Context, n upNode, query string, want int) {
	t.Helper()
	c, err := pgx.Connect(ctx, "postgres://postgres@"+n.addr+"/postgres")
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	defer c.Close(ctx)
	for {
		var got int
		err := c.QueryRow(ctx, query).Scan(&got)
		if err == nil && got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s: %d, %v; want %d", n.name, query, got, err, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// etcdMarker writes a key in belay up's etcd (write) or checks that it is
// still there (!write).
func etcdMarker(t *testing.T, ctx context.Context, u *upRun, write bool) {
	t.Helper()
	cli, err := etcdlocal.NewClient([]string{u.etcd})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if write {
		if _, err := cli.Put(ctx, "/belay-test/marker", "kept"); err != nil {
			t.Fatal(err)
		}
		return
	}
	r, err := cli.Get(ctx, "/belay-test/marker")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "kept" {
		t.Errorf("etcd's data was not kept across runs: %v, %v", r, err)
	}
}

// TestUpStopsLikeProxy: on Ctrl-C, belay up stops as belay proxy does on
// SIGINT before it stops Postgres: an idle client gets FATAL 57P01, a client
// inside a transaction may finish it (and then gets 57P01), and nobody sees
// the connection drop without a word.
func TestUpStopsLikeProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	dir, bin := upDir(t), buildBelay(t)
	u := startUp(t, bin, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idle, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	busy, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE during_stop (x int)"); err != nil {
		t.Fatal(err)
	}
	_ = u.cmd.Process.Signal(os.Interrupt)

	// The idle client is closed with 57P01 (pgx reads it on its next use).
	want57P01 := func(who string, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P01" {
			t.Errorf("%s: %v, want FATAL 57P01 admin_shutdown", who, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := idle.Exec(ctx, "SELECT 1")
		if err != nil {
			want57P01("the idle client", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle client was still served 10 s after Ctrl-C")
		}
		time.Sleep(50 * time.Millisecond) // the shutdown has not reached it yet
	}
	select {
	case err := <-u.exited:
		t.Fatalf("belay up exited (%v) while a transaction was open", err)
	default:
	}
	// The transaction runs on and commits; then the client is closed.
	if _, err := tx.Exec(ctx, "INSERT INTO during_stop VALUES (1)"); err != nil {
		t.Fatalf("the transaction open at Ctrl-C: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("COMMIT of the transaction open at Ctrl-C: %v", err)
	}
	_, err = busy.Exec(ctx, "SELECT 1")
	want57P01("the client after its transaction", err)
	select {
	case err := <-u.exited:
		if err != nil {
			t.Fatalf("belay up exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("belay up did not exit after its last client left")
	}
	noProcessesLeft(t, dir)

	// The commit reached Postgres.
	u = startUp(t, bin, dir)
	c, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = c.QueryRow(ctx, "SELECT count(*) FROM during_stop").Scan(&n)
	c.Close(ctx)
	if err != nil || n != 1 {
		t.Errorf("rows committed during the stop: %d, %v; want 1", n, err)
	}
	u.stop(t, os.Interrupt)
}

// TestUpSingleNodeOwnEtcd: `belay up --replicas 0 --etcd ENDPOINT
// --cluster NAME` starts one PostgreSQL without replication settings,
// registers it in that etcd under that name, and starts no etcd of its own.
func TestUpSingleNodeOwnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	srv := etcdtest.New(t)
	bin := buildBelay(t)
	// Both shapes: the tiers as processes of their own (the default), and
	// one belay proxy.
	for _, shape := range []string{"split", "proxy"} {
		t.Run(shape, func(t *testing.T) { upSingleNode(t, srv, bin, shape) })
	}
}

func upSingleNode(t *testing.T, srv *etcdlocal.Server, bin, shape string) {
	cluster := "solo-" + shape
	dir := upDir(t)
	u := startUp(t, bin, dir, "--replicas", "0", "--etcd", srv.Endpoint(), "--cluster", cluster, "--shape", shape)
	defer u.stop(t, os.Interrupt)
	if len(u.nodes) != 1 || u.nodes[0].name != "pg0" || u.nodes[0].role != "primary" || u.etcd != srv.Endpoint() {
		t.Fatalf("nodes %v, etcd %s:\n%s", u.nodes, u.etcd, strings.Join(u.lines, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd")); err == nil {
		t.Error("belay up --etcd made an etcd directory of its own")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := ha.NewStore(etcdtest.Client(t, srv), cluster)
	if err != nil {
		t.Fatal(err)
	}
	top, err := st.Load(ctx)
	if err != nil || len(top.Shards) != 1 || top.Shards[0].Primary != "pg0" || top.Shards[0].Term != 1 ||
		len(top.Shards[0].Nodes) != 1 || top.Shards[0].Nodes[0].Addr != u.nodes[0].addr {
		t.Fatalf("the topology in etcd: %+v, %v", top, err)
	}
	if pooled := top.Shards[0].Nodes[0].Pooler != ""; pooled != (shape == "split") {
		t.Errorf("shape %s: a pooler registered for pg0: %v", shape, pooled)
	}
	c, err := pgx.Connect(ctx, u.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var sync, checksums string
	if err := c.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names'), current_setting('data_checksums')").Scan(&sync, &checksums); err != nil {
		t.Fatal(err)
	}
	if sync != "" || checksums != "off" {
		t.Errorf("a single node: synchronous_standby_names %q, data_checksums %s; want none of the cluster's settings", sync, checksums)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE solo (x int); INSERT INTO solo VALUES (1)"); err != nil {
		t.Fatal(err) // would wait forever for a standby with synchronous_standby_names set
	}
}

// TestMoveSingleNode: the PostgreSQL of a directory made by an earlier
// belay up (DIR/pg) becomes the primary (DIR/pg0), once.
func TestMoveSingleNode(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "pg", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pg/data/PG_VERSION", "pg/port"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("15\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := moveSingleNode(root); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"pg0/data/PG_VERSION", "pg0/port"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("after the move: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "pg")); err == nil {
		t.Error("DIR/pg is still there")
	}
	if err := moveSingleNode(root); err != nil { // nothing to move any more
		t.Error(err)
	}
}

// checkUpRouting runs pgbench through belay up (issue G): -S reads go to the
// replicas and none to the primary, TPC-B's writes to the primary and none
// to a replica, with no failed transaction (SHOW NODES counts them).
func checkUpRouting(t *testing.T, u *upRun) {
	t.Helper()
	pgbench := pgtest.RequireBinary(t, "pgbench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(u.url)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PGHOST="+cfg.Host, "PGPORT="+strconv.Itoa(int(cfg.Port)), "PGUSER="+cfg.User, "PGDATABASE=postgres", "PGSSLMODE=disable")
	bench := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, pgbench, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil || (!slices.Contains(args, "-i") && !strings.Contains(string(out), "number of failed transactions: 0 ")) {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
	}
	cfg.Database = "belay"
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close(ctx)
	nodes := func() map[string][2]int64 { // role+name: reads, writes
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
			out[v[4].(string)+" "+v[1].(string)] = [2]int64{v[10].(int64), v[11].(int64)}
		}
		return out
	}
	bench("-i", "-s", "1", "-q")
	before := nodes()
	bench("-S", "-n", "-c", "4", "-T", "3")
	mid := nodes()
	bench("-n", "-c", "4", "-T", "3")
	after := nodes()
	replicaReads := int64(0)
	for k, v := range mid {
		if strings.HasPrefix(k, "primary") && v[0] != before[k][0] {
			t.Errorf("%s served %d of pgbench -S's reads", k, v[0]-before[k][0])
		}
		if strings.HasPrefix(k, "replica") {
			replicaReads += v[0] - before[k][0]
			if after[k][1] != before[k][1] {
				t.Errorf("%s was given %d writes", k, after[k][1]-before[k][1])
			}
		}
	}
	if replicaReads == 0 {
		t.Errorf("no read went to a replica: %v then %v", before, mid)
	}
	t.Logf("SHOW NODES (reads, writes) before pgbench %v, after -S %v, after TPC-B %v", before, mid, after)
}
