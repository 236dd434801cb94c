package pgcluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, ctx context.Context, n *pgcluster.Node) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, n.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func show(t *testing.T, ctx context.Context, c *pgx.Conn, setting string) string {
	t.Helper()
	var v string
	if err := c.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
		t.Fatalf("%s: %v", setting, err)
	}
	return v
}

// waitRow waits until node n has the row x = want in table.
func waitRow(t *testing.T, ctx context.Context, n *pgcluster.Node, table string, want int) {
	t.Helper()
	c := connect(t, ctx, n)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		err := c.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE x = $1", table), want).Scan(&got)
		if err == nil && got == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never had the row %d of %s (last: %d rows, %v)", n.Name, want, table, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplication: on the shared cluster, a row written on the primary is
// read on each replica; the primary replicates synchronously to ANY 1 of
// them; the replicas are read-only, streaming through their own slots by
// their own names.
func TestReplication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := pgtest.SharedCluster(t)
	if len(cl.Replicas()) != pgtest.SharedReplicas || !cl.Primary().IsPrimary() || cl.Primary().Name != "pg0" {
		t.Fatalf("nodes: %v", cl.Nodes())
	}
	p := connect(t, ctx, cl.Primary())
	if v := show(t, ctx, p, "synchronous_standby_names"); v != "ANY 1 (pg1, pg2)" || v != cl.SyncStandbyNames() {
		t.Errorf("synchronous_standby_names = %q, want ANY 1 (pg1, pg2)", v)
	}
	for setting, want := range map[string]string{"synchronous_commit": "on", "data_checksums": "on", "wal_log_hints": "on", "wal_level": "replica"} {
		if v := show(t, ctx, p, setting); v != want {
			t.Errorf("primary: %s = %q, want %q", setting, v, want)
		}
	}
	rows, err := p.Query(ctx, "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var repl []string
	var name, state, sync string
	if _, err := pgx.ForEachRow(rows, []any{&name, &state, &sync}, func() error {
		repl = append(repl, name+" "+state+" "+sync)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(repl, ", "); got != "pg1 streaming quorum, pg2 streaming quorum" {
		t.Errorf("pg_stat_replication: %s", got)
	}

	table := fmt.Sprintf("repl_%d", time.Now().UnixNano())
	if _, err := p.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (x int); INSERT INTO %[1]s VALUES (42)", table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE "+table) })
	for _, r := range cl.Replicas() {
		waitRow(t, ctx, r, table, 42)
		c := connect(t, ctx, r)
		var inRecovery bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
			t.Errorf("%s: pg_is_in_recovery() = %v, %v", r.Name, inRecovery, err)
		}
		if v := show(t, ctx, c, "primary_slot_name"); v != r.Name {
			t.Errorf("%s: primary_slot_name = %q", r.Name, v)
		}
		if v := show(t, ctx, c, "primary_conninfo"); !strings.Contains(v, "application_name="+r.Name) ||
			!strings.Contains(v, fmt.Sprintf("port=%d", cl.Primary().Port())) {
			t.Errorf("%s: primary_conninfo = %q", r.Name, v)
		}
		if v := show(t, ctx, c, "hot_standby_feedback"); v != "on" {
			t.Errorf("%s: hot_standby_feedback = %q", r.Name, v)
		}
		_, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (1)", table))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25006" { // read_only_sql_transaction
			t.Errorf("%s: a write on a replica: %v, want SQLSTATE 25006", r.Name, err)
		}
	}
}

// logs collects what a cluster's Start says it does.
type logs struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestNodeFaultsAndReuse: a replica killed with SIGKILL takes nothing
// down (the primary commits through the other one) and comes back with
// Start; a stopped one catches up; a cluster started again in the same
// directory reuses its data and ports; with fewer replicas the others'
// slots are dropped (and those replicas are made again later), and with
// none the primary does not wait for a standby.
func TestNodeFaultsAndReuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	dir := cl.Dir
	ports := map[string]int{}
	for _, n := range cl.Nodes() {
		ports[n.Name] = n.Port()
	}
	p := connect(t, ctx, cl.Primary())
	if _, err := p.Exec(ctx, "CREATE TABLE f (x int)"); err != nil {
		t.Fatal(err)
	}
	insert := func(c *pgx.Conn, x int) {
		t.Helper()
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := c.Exec(ictx, "INSERT INTO f VALUES ($1)", x); err != nil {
			t.Fatalf("insert %d: %v", x, err)
		}
	}

	// kill -9 of pg1's postmaster.
	pg1 := cl.Node("pg1")
	pid := pg1.Instance().PID
	if err := pg1.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pg1's postmaster (pid %d) still exists after Kill: %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("processes of pg1 (group %d) still exist after Kill: %v", pid, err)
	}
	if pg1.Instance() != nil {
		t.Fatal("pg1 has an instance after Kill")
	}
	insert(p, 1) // ANY 1: pg2 acknowledges
	if err := pg1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
	waitRow(t, ctx, pg1, "f", 1)

	// A clean stop of pg2, then a start: it catches up.
	pg2 := cl.Node("pg2")
	if err := pg2.Stop(); err != nil {
		t.Fatal(err)
	}
	insert(p, 2)
	if err := pg2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitRow(t, ctx, pg2, "f", 2)
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}

	// Again in the same directory: same ports, same data, nothing made anew.
	start := func(replicas int) (*pgcluster.Cluster, *logs) {
		t.Helper()
		l := &logs{}
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Replicas: replicas, Settings: map[string]string{"fsync": "off"}, Logf: l.logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Stop() })
		if err := c.WaitStreaming(ctx); err != nil {
			t.Fatal(err)
		}
		return c, l
	}
	cl, l := start(2)
	for _, n := range cl.Nodes() {
		if n.Port() != ports[n.Name] {
			t.Errorf("%s moved from port %d to %d", n.Name, ports[n.Name], n.Port())
		}
	}
	if s := l.String(); strings.Contains(s, "initdb") || strings.Contains(s, "pg_basebackup") {
		t.Errorf("the second start made nodes anew:\n%s", s)
	}
	for _, n := range cl.Nodes() {
		waitRow(t, ctx, n, "f", 2)
	}
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}

	// One replica: pg2's slot goes, synchronous_standby_names follows.
	cl, l = start(1)
	p = connect(t, ctx, cl.Primary())
	if v := show(t, ctx, p, "synchronous_standby_names"); v != "ANY 1 (pg1)" {
		t.Errorf("with one replica: synchronous_standby_names = %q", v)
	}
	var slots string
	if err := p.QueryRow(ctx, "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots").Scan(&slots); err != nil || slots != "pg1" {
		t.Errorf("with one replica: slots %q, %v; want pg1", slots, err)
	}
	insert(p, 3)
	p.Close(ctx)
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}

	// No replica: the primary must not wait for one.
	cl, _ = start(0)
	p = connect(t, ctx, cl.Primary())
	if v := show(t, ctx, p, "synchronous_standby_names"); v != "" {
		t.Errorf("without replicas: synchronous_standby_names = %q", v)
	}
	insert(p, 4)
	p.Close(ctx)
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}

	// Two again: both replicas lost their slots, so both are made again.
	cl, l = start(2)
	if s := l.String(); strings.Count(s, "making it again") != 2 || strings.Count(s, "pg_basebackup") != 2 {
		t.Errorf("pg1 and pg2 had no slot: they must be made again; Start said:\n%s", s)
	}
	for _, n := range cl.Nodes() {
		waitRow(t, ctx, n, "f", 4)
	}
}

// TestNetCluster: a primary and a replica, each in a network namespace of
// its own (Options.Place, through pgtest.NewNetCluster): each postmaster
// runs in its namespace and listens on its own address only (not on this
// namespace's loopback); the replica streams from the primary across the
// bridge, synchronously; with the replica's link down a commit waits (no
// synchronous standby answers), and it completes once the link is back.
func TestNetCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Postgres servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, nw := pgtest.NewNetCluster(t, pgcluster.Options{Replicas: 1})
	pri, rep := cl.Primary(), cl.Replicas()[0]
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes() {
		if !nw.Subnet.Contains(netip.MustParseAddr(n.Host())) {
			t.Fatalf("%s listens on %s, outside %v", n.Name, n.Host(), nw.Subnet)
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.Instance().PID))
		if err != nil || ns == own {
			t.Fatalf("%s's postmaster runs in network namespace %s (%v), this process in %s", n.Name, ns, err, own)
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port()), time.Second); err == nil {
			c.Close()
			t.Fatalf("%s answers on 127.0.0.1:%d", n.Name, n.Port())
		}
	}
	p := connect(t, ctx, pri)
	if s := show(t, ctx, p, "synchronous_standby_names"); s != "ANY 1 (pg1)" {
		t.Fatalf("synchronous_standby_names %q", s)
	}
	var client string
	if err := p.QueryRow(ctx, "SELECT client_addr::text FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", rep.Name).Scan(&client); err != nil {
		t.Fatalf("%s does not stream from %s: %v", rep.Name, pri.Name, err)
	}
	if client != rep.Host()+"/32" && client != rep.Host() {
		t.Fatalf("%s streams from %s, not from its own address %s", rep.Name, client, rep.Host())
	}
	if _, err := p.Exec(ctx, "CREATE TABLE tn (x int); INSERT INTO tn VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	waitRow(t, ctx, rep, "tn", 1)

	if err := nw.Partition(rep.Name); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := p.Exec(ctx, "INSERT INTO tn VALUES (2)"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a commit with the only standby cut off returned: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	if err := nw.Heal(rep.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit did not complete within 30 s of the heal")
	}
	waitRow(t, ctx, rep, "tn", 2)
}

// TestPrefix: a node name prefix that could not be a replication slot's
// name is refused before anything starts.
func TestPrefix(t *testing.T) {
	for _, bad := range []string{"S1pg", "s-1", "1pg", "pg 0", strings.Repeat("p", 40)} {
		if _, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: t.TempDir(), Prefix: bad}); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("prefix %q: %v", bad, err)
		}
	}
}
