package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/bankcheck"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/internal/testcert"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// startProc starts bin with args, its output on the test's stderr when
// verbose; it is killed at the test's end unless the caller kills it
// first (kill).
func startProc(t *testing.T, bin string, args ...string) (cmd *exec.Cmd, kill func()) {
	t.Helper()
	cmd = exec.Command(bin, args...)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	kill = func() {
		if !done {
			done = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	return cmd, kill
}

// waitListening waits until something accepts connections on addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	// A process built with -race, started while CI runs every package at
	// once, has been seen to take more than eventually's 20 s to listen.
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s listens: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tiers is a primary and a standby, their topology in an etcd, a `belay
// pooler` beside each and `belay gateway`s in front, all as processes.
type tiers struct {
	cl       *pgcluster.Cluster
	store    *ha.Store
	etcd     string
	poolers  map[string]string // node name → the pooler's address
	killPool map[string]func()
	gateways []string // their addresses
	killGate []func() // kill -9 of each
}

// startTiers starts the processes: gateways gateways, and with orch an
// orchestrator that requires poolers.
func startTiers(t *testing.T, ctx context.Context, bin string, replicas, gateways int, orch bool) *tiers {
	t.Helper()
	e := etcdtest.New(t)
	tr := &tiers{cl: pgtest.NewCluster(t, pgcluster.Options{Replicas: replicas}), etcd: e.Endpoint(),
		poolers: map[string]string{}, killPool: map[string]func(){}}
	var err error
	if tr.store, err = ha.NewStore(etcdtest.Client(t, e), "tiers"); err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.cl.Nodes() {
		if _, err := tr.store.PutNode(ctx, n.Name, ha.NodeRecord{Shard: "0", Addr: n.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tr.store.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: tr.cl.Primary().Name}); err != nil {
		t.Fatal(err)
	}
	for _, n := range tr.cl.Nodes() {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		_, tr.killPool[n.Name] = startProc(t, bin, "pooler", "--listen", addr, "--server", n.Addr(),
			"--etcd", tr.etcd, "--cluster", "tiers", "--auth-type", "trust", "--pool-size", "10", "--fence-grace", "1s")
		tr.poolers[n.Name] = addr
	}
	for _, n := range tr.cl.Nodes() {
		waitListening(t, tr.poolers[n.Name])
	}
	for range gateways {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		_, kill := startProc(t, bin, "gateway", "--listen", addr, "--etcd", tr.etcd, "--cluster", "tiers",
			"--auth-type", "trust", "--admin-users", "postgres", "--pool-size", "10")
		tr.gateways = append(tr.gateways, addr)
		tr.killGate = append(tr.killGate, kill)
	}
	for _, g := range tr.gateways {
		waitListening(t, g)
	}
	if orch {
		startProc(t, bin, "orch", "--etcd", tr.etcd, "--cluster", "tiers", "--id", "orch-1", "--require-poolers")
	}
	return tr
}

// cancelVia sends a CancelRequest for (pid, secret) to addr.
func cancelVia(t *testing.T, addr string, pid, secret uint32) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := binary.BigEndian.AppendUint32(nil, 16)
	b = binary.BigEndian.AppendUint32(b, 80877102)
	b = binary.BigEndian.AppendUint32(b, pid)
	b = binary.BigEndian.AppendUint32(b, secret)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	_, _ = c.Read(one[:]) // closed once taken
}

// portOf is addr's port.
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// connString is a libpq connection string to gateway i.
func (tr *tiers) connString(i int, db string) string {
	host, port, _ := net.SplitHostPort(tr.gateways[i])
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable", host, port, db)
}

// TestTiers (issue I): the split shape. Writes reach the primary and reads
// a replica, each through the pooler beside its node; the gateway's nodes
// are the poolers; session state and prepared statements cross both tiers;
// a replica's pooler killed with -9 sends its reads to the primary without
// an error, and its registration lapses.
func TestTiers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, two Postgres, two poolers and a gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr := startTiers(t, ctx, buildBelay(t), 1, 2, false)
	pri, rep := tr.cl.Primary(), tr.cl.Replicas()[0]

	admin, err := pgx.Connect(ctx, tr.connString(0, "belay"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	eventually(t, "the gateway to see both nodes up, at their poolers", func() bool {
		rows, err := admin.Query(ctx, "SHOW NODES", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return false
		}
		up := 0
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				return false
			}
			m := map[string]any{}
			for i, f := range rows.FieldDescriptions() {
				m[f.Name] = vals[i]
			}
			name, _ := m["node"].(string)
			addr := net.JoinHostPort(fmt.Sprint(m["host"]), fmt.Sprint(m["port"]))
			if addr != tr.poolers[name] {
				t.Fatalf("the gateway's node %s is at %s, not its pooler's %s", name, addr, tr.poolers[name])
			}
			if m["state"] == "up" {
				up++
			}
		}
		return rows.Err() == nil && up == 2
	})

	c, err := pgx.Connect(ctx, tr.connString(0, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	port := func(sql string) int {
		t.Helper()
		var p int
		if err := c.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&p); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return p
	}
	if _, err := c.Exec(ctx, "CREATE TABLE tiers_t (port int)"); err != nil {
		t.Fatal(err)
	}
	if p := port("INSERT INTO tiers_t VALUES (inet_server_port()) RETURNING port"); p != pri.Port() {
		t.Fatalf("a write ran on port %d, not the primary's %d", p, pri.Port())
	}
	if _, err := c.Exec(ctx, "SET belay.consistency = eventual"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SET application_name = 'through-two-tiers'"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a read on the replica", func() bool { return port("SELECT inet_server_port()") == rep.Port() })
	for i := range 20 { // a prepared statement and a setting, on whichever servers the tiers pick
		var name string
		var n int
		if err := c.QueryRow(ctx, "SELECT current_setting('application_name'), $1::int", i).Scan(&name, &n); err != nil || name != "through-two-tiers" || n != i {
			t.Fatalf("read %d: %q %d %v", i, name, n, err)
		}
	}

	// A cancel request sent to the other gateway cancels the query: that
	// gateway forwards it to the one that issued the key (its peer id).
	sleeper, err := pgx.Connect(ctx, tr.connString(0, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Close(ctx)
	slept := make(chan error, 1)
	go func() {
		_, err := sleeper.Exec(ctx, "SELECT pg_sleep(60)")
		slept <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancelVia(t, tr.gateways[1], sleeper.PgConn().PID(), binary.BigEndian.Uint32(sleeper.PgConn().SecretKey()))
	select {
	case err := <-slept:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("the query cancelled through the other gateway: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a cancel request sent to the other gateway did not cancel the query")
	}

	// A newer term names the replica primary while the primary still runs
	// as one: the primary's pooler fences it (its clients closed, logins
	// refused with 57P03) until the topology names it again. The replica,
	// named by hand here, is still a standby: it has no timeline of a
	// primary to compare, so the pooler fences once that lasted its
	// --fence-grace (ha.FenceGuard).
	rec, err := tr.store.SetPrimary(ctx, "0", 1, rep.Name)
	if err != nil {
		t.Fatal(err)
	}
	direct := "host=127.0.0.1 port=" + portOf(tr.poolers[pri.Name]) + " user=postgres dbname=postgres sslmode=disable"
	eventually(t, "the stale primary's pooler to refuse logins", func() bool {
		pc, err := pgx.Connect(ctx, direct)
		if err == nil {
			pc.Close(ctx)
			return false
		}
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "57P03"
	})
	if _, err := tr.store.SetPrimary(ctx, "0", rec.Term, pri.Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the primary's pooler to serve again", func() bool {
		pc, err := pgx.Connect(ctx, direct)
		if err == nil {
			pc.Close(ctx)
		}
		return err == nil
	})
	if p := port("INSERT INTO tiers_t VALUES (inet_server_port()) RETURNING port"); p != pri.Port() {
		t.Fatalf("a write after the fence ran on port %d", p)
	}

	// The replica's pooler dies: its reads go to the primary.
	tr.killPool[rep.Name]()
	deadline := time.Now().Add(20 * time.Second)
	for port("SELECT inet_server_port()") != pri.Port() {
		if time.Now().After(deadline) {
			t.Fatal("reads stayed on the replica whose pooler died")
		}
	}
	eventually(t, "the dead pooler's registration to lapse", func() bool {
		top, err := tr.store.Load(ctx)
		return err == nil && top.Node(rep.Name).Pooler == "" && top.Node(pri.Name).Pooler == tr.poolers[pri.Name]
	})

	// kill -9 of a gateway under load: its clients lose their
	// connections, the other gateway's see no error.
	var busy sync.WaitGroup
	stop := make(chan struct{})
	errs := make([]atomic.Int64, 2)
	done := make([]atomic.Int64, 2)
	for g := range 2 {
		for range 4 {
			wc, err := pgx.Connect(ctx, tr.connString(g, "postgres"))
			if err != nil {
				t.Fatal(err)
			}
			busy.Add(1)
			go func() {
				defer busy.Done()
				defer wc.Close(context.Background())
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := wc.Exec(ctx, "INSERT INTO tiers_t VALUES (1)"); err != nil {
						errs[g].Add(1)
						if wc.IsClosed() {
							return
						}
						continue
					}
					done[g].Add(1)
				}
			}()
		}
	}
	time.Sleep(time.Second)
	tr.killGate[1]()
	before := done[0].Load()
	time.Sleep(2 * time.Second)
	close(stop)
	busy.Wait()
	t.Logf("kill -9 of gateway 2: its clients' errors %d; gateway 1: %d statements after the kill, %d errors",
		errs[1].Load(), done[0].Load()-before, errs[0].Load())
	if errs[0].Load() != 0 || done[0].Load() == before {
		t.Errorf("the other gateway's clients: %d errors, %d statements after the kill", errs[0].Load(), done[0].Load()-before)
	}
	if errs[1].Load() == 0 {
		t.Error("the killed gateway's clients saw no error")
	}
}

// TestTiersPrimaryPoolerKilled (issue I): kill -9 of the primary's pooler
// under the bank checker, through a gateway, with an orchestrator that
// requires poolers: its Postgres is healthy, yet it can take no more work;
// once the pooler's registration lapses the orchestrator switches the
// shard over to the standby, whose pooler serves it. No acknowledged
// commit lost; only what was in flight fails, with 08007 or 40001.
func TestTiersPrimaryPoolerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, two Postgres, two poolers, a gateway and an orchestrator")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Two standbys: the old primary, fenced, is no standby until it is
	// rewound (belay up does it; this test does not), and the new
	// primary's commits need one synchronous copy.
	tr := startTiers(t, ctx, buildBelay(t), 2, 1, true)
	pri, rep := tr.cl.Primary(), tr.cl.Replicas()[0]
	o := bankcheck.Options{ConnString: tr.connString(0, "postgres"), Clients: 4}
	conn, err := pgx.Connect(ctx, o.ConnString)
	if err != nil {
		t.Fatal(err)
	}
	if err := bankcheck.Setup(ctx, conn, o); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cctx, stopChecker := context.WithCancel(ctx)
	recorded := make(chan *bankcheck.Recorder, 1)
	go func() { recorded <- bankcheck.Run(cctx, o) }()
	time.Sleep(3 * time.Second)
	tr.killPool[pri.Name]()
	killed := time.Now()
	var top *ha.Topology
	eventually(t, "the standby published as the primary", func() bool {
		top, err = tr.store.Load(ctx)
		return err == nil && top.Shard("0").Primary == rep.Name
	})
	published := time.Since(killed)
	time.Sleep(2 * time.Second)
	stopChecker()
	rec := <-recorded
	if sh := top.Shard("0"); sh.Term != 3 {
		t.Fatalf("term %d after the move (want exactly one switchover: its hold, then its new primary)", sh.Term)
	}
	np, err := pgx.Connect(ctx, rep.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer np.Close(ctx)
	res, err := rec.Check(ctx, np, killed, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published %v after the kill; checker: %s", published.Round(time.Millisecond), res)
	checkFault(t, res)
}

// TestTiersSecureHop (issue I): the hop between gateway and pooler is
// mutual TLS, and SCRAM passthrough works end to end. The pooler
// registers its node and the shard itself (--node, --shard). The client proves
// its password to the gateway (its userlist holds the role's verifier);
// the gateway logs in to the pooler with the ClientKey it recovered, over
// TLS with its client certificate; the pooler checks it against the
// verifier its auth query reads from Postgres and logs in to Postgres,
// whose pg_hba.conf asks the role for scram-sha-256, with that key too.
// The pooler refuses a client without TLS or without a certificate of the
// CA; a wrong password is refused at the gateway.
func TestTiersSecureHop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, Postgres, a pooler and a gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildBelay(t)
	cl := pgtest.NewCluster(t, pgcluster.Options{Place: func(string) (pgcluster.Placement, error) {
		return pgcluster.Placement{HBA: []string{"host all app 127.0.0.1/32 scram-sha-256"}}, nil
	}})
	pri := cl.Primary()
	const pw = "hop secret"
	su, err := pgx.Connect(ctx, pri.ConnString("postgres", cl.Superuser()))
	if err != nil {
		t.Fatal(err)
	}
	var verifier string
	if _, err = su.Exec(ctx, "SET password_encryption = 'scram-sha-256'; CREATE ROLE app LOGIN PASSWORD '"+pw+"'"); err == nil {
		err = su.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").Scan(&verifier)
	}
	su.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	userlist := dir + "/userlist.txt"
	passfile := dir + "/pgpass"
	if err := os.WriteFile(userlist, []byte(`"app" "`+verifier+`"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passfile, []byte("*:*:*:app:"+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testcert.New(t)
	poolerCert := ca.Server(t, "pooler", "127.0.0.1")
	gatewayCert := ca.Client(t, "gateway")

	e := etcdtest.New(t)
	store, err := ha.NewStore(etcdtest.Client(t, e), "hop")
	if err != nil {
		t.Fatal(err)
	}
	// The pooler registers its node, and the shard with it as its
	// primary: the node is not in recovery and the shard has no record.
	pooler := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startProc(t, bin, "pooler", "--listen", pooler, "--server", pri.Addr(), "--etcd", e.Endpoint(), "--cluster", "hop",
		"--node", pri.Name, "--shard", "0", "--node-addr", pri.Addr(),
		"--auth-type", "scram-sha-256", "--auth-user", cl.Superuser(),
		"--tls-mode", "verify-full", "--tls-cert", poolerCert.CertFile, "--tls-key", poolerCert.KeyFile, "--tls-ca", ca.CertFile,
		"--health-user", cl.Superuser())
	waitListening(t, pooler)
	eventually(t, "the pooler to register its node and shard", func() bool {
		top, err := store.Load(ctx)
		if err != nil || top.Node(pri.Name) == nil {
			return false
		}
		sh := top.Shard("0")
		return sh.Term == 1 && sh.Primary == pri.Name && top.Node(pri.Name).Addr == pri.Addr() && top.Node(pri.Name).Pooler == pooler
	})
	gateway := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startProc(t, bin, "gateway", "--listen", gateway, "--etcd", e.Endpoint(), "--cluster", "hop",
		"--auth-type", "scram-sha-256", "--auth-file", userlist,
		"--server-tls-mode", "verify-full", "--server-tls-ca-file", ca.CertFile,
		"--server-tls-cert-file", gatewayCert.CertFile, "--server-tls-key-file", gatewayCert.KeyFile,
		"--health-user", "app", "--passfile", passfile)
	waitListening(t, gateway)

	cs := "host=127.0.0.1 port=" + portOf(gateway) + " dbname=postgres sslmode=disable user=app password="
	var c *pgx.Conn
	eventually(t, "a login through both tiers", func() bool {
		c, err = pgx.Connect(ctx, cs+"'"+pw+"'")
		return err == nil
	})
	defer c.Close(ctx)
	var user string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
		t.Fatalf("through both tiers: user %q, %v", user, err)
	}
	// Postgres saw app log in with SCRAM (its pg_hba.conf line): the
	// backend serving the client is app's, from the pooler.
	su, err = pgx.Connect(ctx, pri.ConnString("postgres", cl.Superuser()))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	var n int
	if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'").Scan(&n); err != nil || n == 0 {
		t.Fatalf("no backend of app on Postgres: %d %v", n, err)
	}

	var pe *pgconn.PgError
	if _, err := pgx.Connect(ctx, cs+"wrong"); !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("a wrong password through the gateway: %v", err)
	}
	// The pooler: no TLS, or TLS without a certificate of the CA, is refused.
	pcs := "host=127.0.0.1 port=" + portOf(pooler) + " dbname=postgres user=app password='" + pw + "'"
	if pc, err := pgx.Connect(ctx, pcs+" sslmode=disable"); err == nil {
		pc.Close(ctx)
		t.Fatal("the pooler took a client without TLS")
	}
	if pc, err := pgx.Connect(ctx, pcs+" sslmode=require"); err == nil {
		pc.Close(ctx)
		t.Fatal("the pooler took a client without a certificate")
	}
	other := testcert.New(t).Client(t, "intruder")
	if pc, err := pgx.Connect(ctx, pcs+" sslmode=require sslcert="+other.CertFile+" sslkey="+other.KeyFile); err == nil {
		pc.Close(ctx)
		t.Fatal("the pooler took a certificate of another CA")
	}
	if pc, err := pgx.Connect(ctx, pcs+" sslmode=require sslcert="+gatewayCert.CertFile+" sslkey="+gatewayCert.KeyFile); err != nil {
		t.Fatalf("the pooler refused the gateway's certificate: %v", err)
	} else {
		pc.Close(ctx)
	}
}
