package ha

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestConninfo(t *testing.T) {
	in := `host=127.0.0.1 port=5433 user=postgres application_name=pg1 password='a b\'c' sslmode=disable`
	m := parseConninfo(in)
	if m["host"] != "127.0.0.1" || m["port"] != "5433" || m["password"] != `a b'c` || m["application_name"] != "pg1" {
		t.Fatalf("parseConninfo: %v", m)
	}
	if a := conninfoAddr(in); a != "127.0.0.1:5433" {
		t.Fatalf("conninfoAddr: %q", a)
	}
	if a := conninfoAddr("host=/run/postgresql user=x"); a != "/run/postgresql:5432" {
		t.Fatalf("conninfoAddr of a socket: %q", a)
	}
	if conninfoAddr("") != "" {
		t.Fatal("an empty primary_conninfo names a primary")
	}
	got, err := followConninfo(in, "127.0.0.1:6000", "pg1")
	if err != nil {
		t.Fatal(err)
	}
	m2 := parseConninfo(got)
	if m2["port"] != "6000" || m2["password"] != `a b'c` || m2["user"] != "postgres" || m2["application_name"] != "pg1" {
		t.Fatalf("followConninfo: %s -> %v", got, m2)
	}
	if s := syncStandbyNames(1, []string{"pg0", `we"ird`}); s != `ANY 1 ("pg0", "we""ird")` {
		t.Fatalf("syncStandbyNames: %s", s)
	}
}

func dialSuperuser(ctx context.Context, addr string) (*pgx.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	return pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable application_name=belay_orch")
}

// TestOrchestratorFailover: a primary and two synchronous standbys (ANY 1)
// under writes, two orchestrators; kill -9 of the primary. One promotion
// (term 2), the standby with the most WAL, every acknowledged write on it,
// the other standby following it, synchronous replication on it; then the
// old primary, restarted as it was (a primary on the old timeline, which
// can acknowledge nothing: no standby follows it), is rewound and rejoins
// as a standby; the leader stopped, the other takes over.
func TestOrchestratorFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Postgres servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	s, cli := newStore(t)
	registerCluster(t, ctx, s, cl)
	var rejoins atomic.Int32
	startedBack := make(chan struct{}) // the test's own Start of the old primary returned
	rejoin := func(ctx context.Context, node, primary Node) error {
		select {
		case <-startedBack:
		case <-ctx.Done():
			return ctx.Err()
		}
		rejoins.Add(1)
		if err := cl.SetPrimary(primary.Name); err != nil {
			return err
		}
		return cl.Node(node.Name).Rejoin(ctx)
	}
	orchs := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b"} {
		octx, stop := context.WithCancel(ctx)
		orchs[id] = stop
		o := NewOrchestrator(OrchOptions{Store: s, Client: cli, ID: id, Dial: dialSuperuser, Rejoin: rejoin})
		wg.Add(1)
		go func() { defer wg.Done(); _ = o.Run(octx) }()
	}
	defer func() {
		for _, stop := range orchs {
			stop()
		}
		wg.Wait()
	}()

	// Writers: each acknowledged id is recorded; an id whose INSERT failed
	// is never counted (its outcome may be unknown, never acknowledged).
	p0, err := pgx.Connect(ctx, cl.Primary().ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p0.Exec(ctx, "CREATE TABLE acked (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	p0.Close(ctx)
	var (
		mu       sync.Mutex
		acked    []int
		failed   int
		killedAt time.Time // when the old primary was gone
		resumed  time.Duration
	)
	stopWrites := make(chan struct{})
	var wwg sync.WaitGroup
	for w := range 4 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			var conn *pgx.Conn
			for i := 0; ; i++ {
				select {
				case <-stopWrites:
					if conn != nil {
						conn.Close(context.Background())
					}
					return
				default:
				}
				id := w*1_000_000 + i
				mu.Lock()
				after := !killedAt.IsZero() // this write starts after the kill
				mu.Unlock()
				if conn == nil {
					top, err := s.Load(ctx)
					if err != nil {
						continue
					}
					n := top.Node(top.Shard("0").Primary)
					cctx, c := context.WithTimeout(ctx, time.Second)
					conn, err = dialSuperuser(cctx, n.Addr)
					c()
					if err != nil {
						conn = nil
						time.Sleep(20 * time.Millisecond)
						continue
					}
				}
				wctx, c := context.WithTimeout(ctx, 2*time.Second)
				_, err := conn.Exec(wctx, "INSERT INTO acked VALUES ($1)", id)
				c()
				mu.Lock()
				if err != nil {
					failed++
					mu.Unlock()
					conn.Close(context.Background())
					conn = nil
					continue
				}
				acked = append(acked, id)
				if after && resumed == 0 {
					resumed = time.Since(killedAt)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	old := cl.Primary()
	if err := old.Kill(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	var top *Topology
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if top, err = s.Load(ctx); err == nil && top.Shard("0").Term > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover within 30 s of the kill: %+v, %v", top, err)
		}
	}
	published := time.Since(killedAt)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		r := resumed
		mu.Unlock()
		if r > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no write succeeded within 20 s of the publication")
		}
	}
	time.Sleep(500 * time.Millisecond)
	close(stopWrites)
	wwg.Wait()
	sh := top.Shard("0")
	if sh.Term != 2 || sh.Primary == "pg0" {
		t.Fatalf("after the failover: term %d, primary %s (want term 2, not pg0)", sh.Term, sh.Primary)
	}
	if err := cl.SetPrimary(sh.Primary); err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 of %s: %s published at term %d after %v, writes resumed after %v; %d writes acknowledged, %d failed",
		old.Name, sh.Primary, sh.Term, published.Round(time.Millisecond), resumed.Round(time.Millisecond), len(acked), failed)

	np, err := pgx.Connect(ctx, cl.Primary().ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer np.Close(ctx)
	var lost int
	if err := np.QueryRow(ctx, "SELECT count(*) FROM unnest($1::int[]) id WHERE id NOT IN (SELECT id FROM acked)", acked).Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if lost != 0 {
		t.Fatalf("%d acknowledged writes are not on the new primary", lost)
	}
	var ssn string
	if err := np.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&ssn); err != nil || !strings.HasPrefix(ssn, "ANY 1") {
		t.Fatalf("the new primary's synchronous_standby_names: %q, %v", ssn, err)
	}
	other := ""
	for _, n := range cl.Nodes() {
		if n.Name != "pg0" && n.Name != sh.Primary {
			other = n.Name
		}
	}
	streaming := func(name string) bool {
		var n int
		err := np.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", name).Scan(&n)
		return err == nil && n == 1
	}
	waitTrue(t, 20*time.Second, other+" streaming from the new primary", func() bool { return streaming(other) })

	// The old primary comes back as it was: a primary on the old timeline.
	// It is rewound and rejoins as a standby of the new one.
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	close(startedBack)
	if !eventually(60*time.Second, func() bool { return streaming("pg0") }) {
		b, _ := os.ReadFile(filepath.Join(old.Dir, "postgres.log"))
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Fatalf("the old primary does not stream from the new one; its log ends with:\n%s", b)
	}
	if rejoins.Load() == 0 {
		t.Fatal("pg0 streams, but was never rejoined")
	}
	if top, err := s.Load(ctx); err != nil || top.Shard("0").Term != 2 {
		t.Fatalf("after the rejoin: %+v, %v (exactly one promotion: term 2)", top, err)
	}

	// The leader stopped: the other takes over.
	lead, err := Leader(ctx, cli, "c")
	if err != nil || orchs[lead] == nil {
		t.Fatalf("leader %q, %v", lead, err)
	}
	orchs[lead]()
	delete(orchs, lead)
	waitTrue(t, 10*time.Second, "the other orchestrator leading", func() bool {
		l, err := Leader(ctx, cli, "c")
		return err == nil && l != "" && l != lead
	})
}

func waitTrue(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventually(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// eventually says whether cond held within d.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestOrchestratorDiesMidFailover: the leader dies right after it promoted
// a standby, before it published it (its etcd client closed, so its lease
// expires; its goroutine stalled). The other orchestrator takes over and
// finishes that failover (PromotedReplica): exactly one promotion, term 2.
// The stalled leader, let go afterwards, publishes nothing (ErrNotLeader
// or a stale term), so the term stays 2.
func TestOrchestratorDiesMidFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Postgres servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 2})
	etcd := etcdtest.New(t)
	s, cli := storeOn(t, etcd)
	registerCluster(t, ctx, s, cl)
	// The first leader: its own client, closed when it has promoted.
	firstStore, firstCli := storeOn(t, etcd)
	stalled, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	var promoted atomic.Bool
	first := NewOrchestrator(OrchOptions{Store: firstStore, Client: firstCli, ID: "first", Dial: dialSuperuser})
	first.o.afterAction = func(a Action) {
		if _, ok := a.(Promote); ok && promoted.CompareAndSwap(false, true) {
			_ = firstCli.Close() // its lease is kept alive no more
			close(stalled)
			<-release
		}
	}
	fctx, stopFirst := context.WithCancel(ctx)
	firstDone := make(chan struct{})
	go func() { defer close(firstDone); _ = first.Run(fctx) }()
	defer func() { let(); stopFirst(); <-firstDone }()
	waitTrue(t, 10*time.Second, "the first orchestrator leading", func() bool {
		l, err := Leader(ctx, cli, "c")
		return err == nil && l == "first"
	})
	second := NewOrchestrator(OrchOptions{Store: s, Client: cli, ID: "second", Dial: dialSuperuser})
	sctx, stopSecond := context.WithCancel(ctx)
	secondDone := make(chan struct{})
	go func() { defer close(secondDone); _ = second.Run(sctx) }()
	defer func() { stopSecond(); <-secondDone }()

	if err := cl.Primary().Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the first leader never promoted")
	}
	var top *Topology
	waitTrue(t, 30*time.Second, "the second orchestrator publishing the promoted standby", func() bool {
		var err error
		top, err = s.Load(ctx)
		return err == nil && top.Shard("0").Term > 1
	})
	sh := top.Shard("0")
	let() // the first wakes up, too late
	time.Sleep(2 * time.Second)
	top, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := top.Shard("0"); got.Term != 2 || got.Primary != sh.Primary || sh.Primary == "pg0" {
		t.Fatalf("after the takeover: term %d primary %s, then term %d primary %s; want one promotion (term 2)", sh.Term, sh.Primary, got.Term, got.Primary)
	}
	// Exactly one node is a primary.
	primaries := 0
	for _, n := range cl.Replicas() {
		c, err := pgx.Connect(ctx, n.ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var rec bool
		err = c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
		c.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rec {
			primaries++
		}
	}
	if primaries != 1 {
		t.Fatalf("%d of the standbys are primaries: want exactly one promotion", primaries)
	}
}

// registerCluster writes cl's nodes in shard 0 and the shard (term 1,
// primary pg0).
func registerCluster(t *testing.T, ctx context.Context, s *Store, cl *pgcluster.Cluster) {
	t.Helper()
	for _, n := range cl.Nodes() {
		if _, err := s.PutNode(ctx, n.Name, NodeRecord{Shard: "0", Addr: n.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CreateShard(ctx, "0", ShardRecord{Term: 1, Primary: "pg0"}); err != nil {
		t.Fatal(err)
	}
}

// storeOn is a store of cluster "c" over a client of its own on etcd.
func storeOn(t *testing.T, etcd *etcdlocal.Server) (*Store, *clientv3.Client) {
	t.Helper()
	cli := etcdtest.Client(t, etcd)
	s, err := NewStore(cli, "c")
	if err != nil {
		t.Fatal(err)
	}
	return s, cli
}

// TestMeasureRedialsInBackground: a node unreachable at the last measure is
// dialled in the background, one dial at a time, and a measure does not
// wait for a dial that hangs (a partitioned node's), whatever the timeout.
func TestMeasureRedialsInBackground(t *testing.T) {
	var dials atomic.Int32
	release := make(chan struct{})
	r := NewOrchestrator(OrchOptions{Timeout: time.Hour, Dial: func(ctx context.Context, addr string) (*pgx.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, errors.New("refused") // the first: the node is found down
		}
		select { // then its link is cut: a dial hangs
		case <-release:
		case <-ctx.Done():
		}
		return nil, errors.New("timed out")
	}})
	sh := Shard{Name: "0", Term: 1, Primary: "a", Nodes: []Node{{Name: "a", Addr: "10.0.0.1:5432"}}}
	measure := func(step string) NodeView {
		t.Helper()
		done := make(chan ShardView, 1)
		go func() { done <- r.measure(context.Background(), sh) }()
		select {
		case v := <-done:
			return v.Nodes[0]
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the measure waited for a hanging dial", step)
			return NodeView{}
		}
	}
	for i, want := range []int32{1, 2, 2} {
		if nv := measure(fmt.Sprint("measure ", i+1)); nv.Reachable {
			t.Fatalf("measure %d: reachable", i+1)
		}
		if got := dials.Load(); got != want {
			t.Fatalf("after measure %d: %d dials, want %d", i+1, got, want)
		}
	}
	close(release) // the hanging dial fails; the next measure takes that, the one after dials again
	for len(r.late["a"]) == 0 {
		time.Sleep(time.Millisecond)
	}
	measure("after the dial failed")
	if _, ok := r.late["a"]; ok || dials.Load() != 2 {
		t.Fatalf("the failed dial was not taken: late %v, %d dials", ok, dials.Load())
	}
	measure("next")
	if dials.Load() != 3 {
		t.Fatalf("%d dials, want a new one", dials.Load())
	}
	r.closeConns()
}
