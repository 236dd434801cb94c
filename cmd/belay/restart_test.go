package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// netnsChild marks the test binary re-executed inside its own network
// namespace; migrateReqEnv sets net.ipv4.tcp_migrate_req there (default 1).
const (
	netnsChild    = "BELAY_TEST_NETNS_CHILD"
	migrateReqEnv = "BELAY_TEST_MIGRATE_REQ"
)

// inNetns re-runs the test alone in a network namespace of its own, where
// net.ipv4.tcp_migrate_req can be set without touching the host's, and
// reports whether the caller is that child (and should run the test).
func inNetns(t *testing.T) bool {
	if os.Getenv(netnsChild) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (unshare --net)")
	}
	for _, tool := range []string{"unshare", "ip", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to create a network namespace: %v", tool, err)
		}
	}
	req := os.Getenv(migrateReqEnv)
	if req == "" {
		req = "1"
	}
	if req != "0" && req != "1" {
		t.Fatalf("%s=%q: want 0 or 1", migrateReqEnv, req)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "sh", "-c",
		`ip link set lo up && sysctl -q -w net.ipv4.tcp_migrate_req="$0" && exec "$@"`, req,
		self, "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // pgtest stops its Postgres
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), netnsChild+"=1")
	cmd.Dir, _ = os.Getwd()
	out, err := cmd.CombinedOutput()
	t.Logf("in a network namespace with net.ipv4.tcp_migrate_req=%s:\n%s", req, out)
	if err != nil {
		t.Fatalf("the test in its network namespace: %v", err)
	}
	return false
}

// belayProc is one belay proxy process of the test.
type belayProc struct {
	cmd     *exec.Cmd
	log     string // its stderr
	metrics string
	exited  chan struct{} // closed when it has exited
	err     error         // its exit status, once exited is closed
}

// startBelay starts belay with tier's arguments (the subcommand and what
// it needs: belay proxy --server ..., belay gateway --etcd ...) on listen,
// with --reuse-port.
func startBelay(t *testing.T, bin, listen string, tier ...string) *belayProc {
	t.Helper()
	metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
	b := &belayProc{log: filepath.Join(t.TempDir(), "belay.log"), metrics: metrics, exited: make(chan struct{})}
	f, err := os.Create(b.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b.cmd = exec.Command(bin, append(tier, "--listen", listen, "--auth-type", "trust",
		"--reuse-port", "--pool-size", "8", "--metrics-listen", metrics, "--log-level", "info")...)
	b.cmd.Stdout, b.cmd.Stderr = f, f
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
	})
	// Up once its metrics answer (it listens for clients before that).
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", metrics); err == nil {
			c.Close()
			return b
		}
		select {
		case <-b.exited:
			t.Fatalf("belay exited at start: %v\n%s", b.err, b.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("belay did not start:\n%s", b.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *belayProc) logText() string {
	out, _ := os.ReadFile(b.log)
	return string(out)
}

// served is how many clients the process has logged in (belay_client_logins_total).
func (b *belayProc) served(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("curl", "-s", "http://"+b.metrics+"/metrics").Output()
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^belay_client_logins_total (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no belay_client_logins_total in\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// term sends SIGTERM (PgBouncer's WAIT_FOR_CLIENTS) and waits for the exit.
func (b *belayProc) term(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.exited:
		if b.err != nil {
			t.Fatalf("belay after SIGTERM: %v\n%s", b.err, b.logText())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("belay did not exit after SIGTERM:\n%s", b.logText())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRollingRestart replaces belay twice under pgbench load on one port,
// belay proxy and then belay gateway (issue I: a rolling restart of the
// gateways, a pooler beside the node behind them):
// each new process starts with --reuse-port beside the old one, which then
// gets SIGTERM, stops accepting and exits once its last client has left.
// One pgbench opens a connection per transaction (-C) throughout; another
// keeps its connections on the first process until it ends. Neither may see
// a failed transaction or an aborted client, and every process must have
// served clients.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds belay and runs pgbench for ~15 s")
	}
	for _, tool := range []string{"pgbench", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if !inNetns(t) {
		return
	}
	pg := pgtest.Shared(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS rolling")
	if _, err := admin.Exec(ctx, "CREATE DATABASE rolling"); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	pgHost, pgPort, _ := net.SplitHostPort(pg.Addr())
	if out, err := exec.Command("pgbench", "-i", "-s", "1", "-q", "-h", pgHost, "-p", pgPort, "-U", "postgres", "rolling").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	bin := buildBelay(t)
	t.Run("proxy", func(t *testing.T) {
		peer := 0
		rollingRestart(t, bin, func() []string {
			peer++
			return []string{"proxy", "--server", pg.Addr(), "--peer-id", strconv.Itoa(peer)}
		})
	})
	t.Run("gateway", func(t *testing.T) {
		e := etcdtest.New(t)
		store, err := ha.NewStore(etcdtest.Client(t, e), "rolling")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutNode(ctx, "pg", ha.NodeRecord{Shard: "0", Addr: pg.Addr()}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: "pg"}); err != nil {
			t.Fatal(err)
		}
		pooler := "127.0.0.1:" + strconv.Itoa(freePort(t))
		startProc(t, bin, "pooler", "--listen", pooler, "--server", pg.Addr(), "--etcd", e.Endpoint(), "--cluster", "rolling",
			"--auth-type", "trust", "--pool-size", "8")
		waitListening(t, pooler)
		rollingRestart(t, bin, func() []string {
			return []string{"gateway", "--etcd", e.Endpoint(), "--cluster", "rolling"}
		})
	})
}

// rollingRestart is TestRollingRestart's choreography, each process
// started with the arguments next gives.
func rollingRestart(t *testing.T, bin string, next func() []string) {

	port := strconv.Itoa(freePort(t))
	listen := "127.0.0.1:" + port

	a := startBelay(t, bin, listen, next()...)
	type result struct {
		name string
		out  []byte
		err  error
	}
	results := make(chan result, 2)
	pgbench := func(name string, args ...string) {
		args = append([]string{"-h", "127.0.0.1", "-p", port, "-U", "postgres", "-S", "-M", "simple", "-n"}, args...)
		out, err := exec.Command("pgbench", append(args, "rolling")...).CombinedOutput()
		results <- result{name, out, err}
	}
	go pgbench("pgbench -C", "-C", "-c", "4", "-j", "2", "-T", "12")
	go pgbench("pgbench (long connections)", "-c", "2", "-j", "1", "-T", "5")

	// The choreography waits on purpose: each process must take clients.
	time.Sleep(2 * time.Second)
	b := startBelay(t, bin, listen, next()...)
	time.Sleep(time.Second)
	servedA := a.served(t)
	a.term(t) // returns once the long connections have ended
	time.Sleep(time.Second)
	c := startBelay(t, bin, listen, next()...)
	time.Sleep(time.Second)
	servedB := b.served(t)
	b.term(t)

	for range 2 {
		r := <-results
		t.Logf("%s:\n%s", r.name, r.out)
		if r.err != nil {
			t.Errorf("%s: %v (an aborted client makes pgbench exit non-zero)", r.name, r.err)
		}
		m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindSubmatch(r.out)
		if m == nil || string(m[1]) != "0" {
			t.Errorf("%s: failed transactions: %q", r.name, m)
		}
		if !regexp.MustCompile(`number of transactions actually processed: [1-9]`).Match(r.out) {
			t.Errorf("%s processed nothing", r.name)
		}
	}
	servedC := c.served(t)
	c.term(t)
	t.Logf("clients served: first %d, second %d, third %d", servedA, servedB, servedC)
	if servedA == 0 || servedB == 0 || servedC == 0 {
		t.Errorf("a process served no client: %d, %d, %d", servedA, servedB, servedC)
	}
	for i, p := range []*belayProc{a, b, c} {
		if strings.Contains(p.logText(), "level=ERROR") {
			t.Errorf("belay %d logged errors:\n%s", i+1, p.logText())
		}
	}
}
