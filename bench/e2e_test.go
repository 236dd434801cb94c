package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdlocal"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

// proxyEnv, set in the environment of this test binary, makes it act as
// `belay proxy` (so the end-to-end test needs no separate build of belay).
const proxyEnv = "BELAY_BENCH_TEST_PROXY"

func TestMain(m *testing.M) {
	if os.Getenv(proxyEnv) == "1" {
		if err := testProxy(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "test proxy:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testProxy is a minimal `belay proxy`: the flags the harness passes.
func testProxy(args []string) error {
	if len(args) == 0 || args[0] != "proxy" {
		return fmt.Errorf("want: proxy [flags], got %q", args)
	}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	server := fs.String("server", "", "")
	poolSize := fs.Int("pool-size", 0, "")
	maxDB := fs.Int("max-db-connections", 0, "")
	adaptive := fs.Bool("adaptive-limit", true, "") // on by default, as in belay proxy
	fs.String("log-level", "warn", "")
	authType := fs.String("auth-type", "trust", "")
	tlsMode := fs.String("tls-mode", "", "")
	tlsCert := fs.String("tls-cert", "", "")
	tlsKey := fs.String("tls-key", "", "")
	cpuProfile := fs.String("cpu-profile", "", "")
	metricsAddr := fs.String("metrics-listen", "", "")
	etcd := fs.String("etcd", "", "")
	cluster := fs.String("cluster", "", "")
	healthUser := fs.String("health-user", "postgres", "")
	healthDB := fs.String("health-dbname", "postgres", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	cfg := loop.Config{
		Listen: []string{*listen}, Server: *server, PoolSize: *poolSize, MaxDBConnections: *maxDB, AdaptiveLimit: *adaptive, AuthType: *authType,
		TLSMode: *tlsMode, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if *etcd != "" {
		// The cluster in etcd, as `belay proxy --etcd --cluster` serves it.
		stop, err := watchTestCluster(&cfg, *etcd, *cluster, *healthUser, *healthDB)
		if err != nil {
			return err
		}
		defer stop()
	}
	p, err := loop.Start(cfg)
	if err != nil {
		return err
	}
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { p.Metrics().WritePrometheus(w) }),
			ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
	}
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Stop(ctx)
}

// watchTestCluster makes cfg serve cluster from the etcd at endpoint, its
// health checks logging in as user to db; stop ends the watch.
func watchTestCluster(cfg *loop.Config, endpoint, cluster, user, db string) (stop func(), err error) {
	cli, err := etcdlocal.NewClient([]string{endpoint})
	if err != nil {
		return nil, err
	}
	st, err := ha.NewStore(cli, cluster)
	if err == nil {
		var w *ha.Watcher
		if w, err = st.Watch(context.Background(), ha.WatchOptions{}); err == nil {
			cfg.Cluster = w
			cfg.HealthDial = func(ctx context.Context, addr string) (*pgx.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, user, db))
			}
			return func() { w.Stop(); _ = cli.Close() }, nil
		}
	}
	_ = cli.Close()
	return nil, err
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEndToEnd runs a tiny bench: Postgres, PgBouncer (installed with
// apt-get if missing and possible), belay (this test binary as proxy), one
// second per run, a few clients, every kind of scenario, report and charts.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end bench starts PostgreSQL, PgBouncer and a proxy")
	}
	if _, err := pginstance.FindBinDir(); err != nil {
		t.Fatal(err) // CI installs PostgreSQL (make deps): never skip silently
	}
	o := Options{
		Out: t.TempDir(), Duration: time.Second, Rounds: 1, Scale: 1, PoolSize: 4,
		SlowDuration: 3 * time.Second, SlowRate: 256 << 10, Jobs: 2, WarmUp: -1,
		BelayExe: os.Args[0], BelayEnv: []string{proxyEnv + "=1"},
		InstallPgBouncer: true, Command: "go test ./bench -run TestEndToEnd",
		Scenarios: []Scenario{
			{ID: "select-simple-c4", Title: "select-only simple, 4 clients", PgbenchArgs: []string{"-S", "-M", "simple"}, Clients: 4},
			withTLS(Scenario{ID: "select-simple-c4", Title: "select-only simple, 4 clients", PgbenchArgs: []string{"-S", "-M", "simple"}, Clients: 4}),
			{ID: "select-prepared-c4", Title: "select-only prepared, 4 clients", PgbenchArgs: []string{"-S", "-M", "prepared"}, Clients: 4, SessionRow: true},
			{ID: "idle-50", Title: "50 idle clients", Kind: KindIdle, PgbenchArgs: []string{"-S"}, Clients: 2, Idle: 50, DirectNA: "n/a"},
			{ID: "slow-client", Title: "slow client", Kind: KindSlow, DirectNA: "n/a"},
			{ID: "noisy-neighbour", Title: "noisy neighbour", Kind: KindNoisy, PgbenchArgs: []string{"-S", "-M", "simple"},
				Clients: 8, QuietClients: 2, Budget: 3, Arrivals: 5, DirectNA: "n/a"},
		},
	}
	withBouncer := true
	if _, err := exec.LookPath("pgbouncer"); err != nil && !fileExists("/usr/sbin/pgbouncer") {
		if _, aerr := exec.LookPath("apt-get"); aerr != nil || os.Geteuid() != 0 {
			t.Logf("PgBouncer is not installed and cannot be (apt-get: %v, root: %v): its rows are left out", aerr, os.Geteuid() == 0)
			o.NoPgBouncer, withBouncer = true, false
		} else {
			t.Log("PgBouncer is not installed: the harness installs it with apt-get")
		}
	}
	// Our own work directory, to read belay's log afterwards: a data race
	// found by -race in the proxy (this binary) must fail the test.
	work, err := os.MkdirTemp("", "belay-bench-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	o.WorkDir = work
	rep := runLogged(t, o)
	if log, _ := os.ReadFile(filepath.Join(work, "belay.log")); bytes.Contains(log, []byte("DATA RACE")) || bytes.Contains(log, []byte("panic:")) {
		t.Errorf("the proxy reported a data race or panicked:\n%s", log)
	}
	md, err := os.ReadFile(filepath.Join(o.Out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range o.Scenarios {
		if !bytes.Contains(md, []byte("## "+sc.Title)) {
			t.Errorf("report.md lacks the section of %s", sc.ID)
		}
	}
	if _, err := os.Stat(filepath.Join(o.Out, "results.json")); err != nil {
		t.Error(err)
	}
	pngs, _ := filepath.Glob(filepath.Join(o.Out, "*.png"))
	if len(pngs) < 7 {
		t.Errorf("want 7 charts, got %v", pngs)
	}
	for _, sr := range rep.Scenarios {
		sc := sr.Scenario
		targets := []string{Direct, Belay}
		if withBouncer {
			targets = append(targets, PgBouncer)
		}
		for _, name := range targets {
			r := sr.Row(name)
			if r == nil {
				t.Fatalf("%s: no row for %s", sc.ID, name)
			}
			if name == Direct && sc.DirectNA != "" {
				if r.NA == "" {
					t.Errorf("%s: direct should be n/a", sc.ID)
				}
				continue
			}
			if r.NA != "" {
				t.Errorf("%s %s: n/a: %s", sc.ID, name, r.NA)
				continue
			}
			// PgBouncer in transaction mode may fail prepared statements:
			// that is recorded, not a failure of the harness.
			preparedOnBouncer := name == PgBouncer && strings.Contains(sc.ID, "prepared")
			switch sc.Kind {
			case KindNoisy:
				// Whether the quiet user gets its share is the proxy's
				// business; the harness must measure every phase.
				f := r.Noisy
				if f == nil || f.NoisyTx == 0 || f.QuietAloneTPS <= 0 || f.QuietAloneP99 <= 0 || f.QuietFirstMs < 0 || f.WindowSeconds <= 0 ||
					f.Arrivals != sc.Arrivals || f.CalmArrivals != calmArrivals || f.CalmP50 <= 0 || f.ArrivalP50 <= 0 ||
					f.NoisyServersAtStart == 0 || f.MaxServers == 0 || r.ErrorCount() > 0 {
					t.Errorf("%s %s: %+v, errors %d %q", sc.ID, name, f, r.ErrorCount(), r.Errors)
				}
			case KindSlow:
				if r.BytesRead <= 0 || !r.Serves || r.RSSPeak <= 0 || len(r.Runs[0].RSSSamples) < 5 {
					t.Errorf("%s %s: read %d bytes, serves %v, peak RSS %d, %d samples; errors %q", sc.ID, name, r.BytesRead, r.Serves, r.RSSPeak, len(r.Runs[0].RSSSamples), r.Errors)
				}
			default:
				if !preparedOnBouncer && (r.TPS <= 0 || r.P50 <= 0 || r.P999 < r.P50 || r.ErrorCount() > 0) {
					t.Errorf("%s %s: tps %v p50 %v p99.9 %v errors %d %q", sc.ID, name, r.TPS, r.P50, r.P999, r.ErrorCount(), r.Errors)
				}
				if name != Direct && !preparedOnBouncer && r.CPUPer1k < 0 {
					t.Errorf("%s %s: no proxy CPU figure", sc.ID, name)
				}
				if name == Belay && sc.Kind == KindPgbench && r.Runs[0].PlanHits+r.Runs[0].PlanMisses == 0 {
					t.Errorf("%s: no plan cache counts read from belay's /metrics", sc.ID)
				}
				if sc.Kind == KindIdle && r.IdleOpened != sc.Idle {
					t.Errorf("%s %s: %d idle connections open, want %d (%q)", sc.ID, name, r.IdleOpened, sc.Idle, r.Errors)
				}
			}
		}
	}
}

// runLogged runs the bench o (3 minutes at most), logs its progress and
// fails the test if it fails.
func runLogged(t *testing.T, o Options) *Report {
	t.Helper()
	var progress syncBuffer
	o.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestHoldIdleFailure: failed dials are counted, not fatal.
func TestHoldIdleFailure(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	conns, fails, first := holdIdle(context.Background(), fmt.Sprintf("127.0.0.1:%d", port), "x", 5, 2)
	if len(conns) != 0 || fails != 5 || first == nil || !errors.Is(first, syscall.ECONNREFUSED) {
		t.Fatalf("got %d conns, %d fails, %v", len(conns), fails, first)
	}
}
