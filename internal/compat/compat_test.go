package compat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/loop"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	// compatUser and compatDB: every scenario logs in as this role to its
	// own database, so that pg_stat_activity tells belay's server
	// connections apart from the test's own.
	compatUser = "compat"
	compatDB   = "compat"
	// instances of a scenario run concurrently through belay, which has
	// only poolSize server connections.
	instances = 8
	poolSize  = 2
	// runTimeout bounds one scenario process (or in-process run); it is
	// killed, with its whole process group, when it runs longer.
	runTimeout = 90 * time.Second
	// requireEnv set to 1 turns a missing client into a failure.
	requireEnv = "BELAY_COMPAT_REQUIRE"
)

// endpoint is where a scenario connects: Postgres itself or belay.
type endpoint struct {
	Host string
	Port int
}

// connString is the libpq keyword/value form.
func (e endpoint) connString() string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable connect_timeout=10", e.Host, e.Port, compatDB, compatUser)
}

// url is the postgres:// form.
func (e endpoint) url() string {
	u := url.URL{Scheme: "postgres", User: url.User(compatUser), Host: net.JoinHostPort(e.Host, strconv.Itoa(e.Port)), Path: "/" + compatDB, RawQuery: "sslmode=disable"}
	return u.String()
}

var (
	setupMu   sync.Mutex // guards setupDone; held while the role and database are created
	setupDone bool
)

// compatPG returns the shared Postgres with the compat role and database.
func compatPG(t *testing.T) *pginstance.Instance {
	t.Helper()
	pg := pgtest.Shared(t)
	setupMu.Lock()
	defer setupMu.Unlock()
	if setupDone {
		return pg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.ConnString("postgres", pg.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", compatUser).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		if _, err := c.Exec(ctx, "CREATE ROLE "+compatUser+" LOGIN"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", compatDB).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+compatDB+" OWNER "+compatUser); err != nil {
			t.Fatal(err)
		}
	}
	setupDone = true
	return pg
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

// startBelay runs belay in front of pg in transaction pooling with poolSize
// server connections, stopped when the test ends.
func startBelay(t *testing.T, pg *pginstance.Instance) (*loop.Proxy, endpoint) {
	t.Helper()
	port := freePort(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BELAY_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := loop.Start(loop.Config{
		Listen:     []string{"127.0.0.1:" + strconv.Itoa(port)},
		Server:     pg.Addr(),
		PoolSize:   poolSize,
		AuthType:   "trust",
		EventLoops: 2,
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stopping belay: %v", err)
		}
	})
	return p, endpoint{Host: "127.0.0.1", Port: port}
}

// need skips the test with a clear message when a client is missing, or
// fails it when BELAY_COMPAT_REQUIRE=1.
func need(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...) + " (`make deps` installs it)"
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s; %s=1, so a missing client is a failure", msg, requireEnv)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, requireEnv)
}

// pgBinary finds a PostgreSQL client program: beside the server binaries,
// else on PATH (not Debian's pg_wrapper, which needs a cluster config).
func pgBinary(t *testing.T, name string) string {
	t.Helper()
	if d, err := pginstance.FindBinDir(); err == nil {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	p, err := exec.LookPath(name)
	need(t, err == nil, "%s not found beside the PostgreSQL server binaries nor on PATH", name)
	return p
}

// testdata returns the absolute path of a file under testdata/.
func testdata(t *testing.T, elem ...string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(append([]string{"testdata"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runProgram runs argv in dir in a process group of its own and returns
// what it wrote to stdout (and stderr too, interleaved, when mergeStderr).
// A process still running when ctx ends is killed with its whole group; one
// that exits leaving a child that holds its output is an error too.
func runProgram(ctx context.Context, dir string, env []string, mergeStderr bool, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if mergeStderr {
		cmd.Stderr = &stdout
	} else {
		cmd.Stderr = &stderr
	}
	start := time.Now()
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// The program exited but something it started still holds its
		// output: the group still exists (so its id is not reused), end it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("left a process behind (killed its group): %w", err)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v, killed with its process group: %w", time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\nstderr:\n%s", filepath.Base(argv[0]), err, stderr.String())
	}
	return stdout.String(), nil
}

// runFunc runs one instance of a scenario against ep and returns its transcript.
type runFunc func(ctx context.Context, ep endpoint, id int) (string, error)

// normalizeID replaces the instance's own tag, zq<id>, in names and values
// with zqN, so that transcripts of different instances compare equal. Only
// its own: another instance's tag (a setting or notification that leaked
// between clients) stays and shows up in the diff.
func normalizeID(s string, id int) string {
	own := "zq" + strconv.Itoa(id)
	return tagRe.ReplaceAllStringFunc(s, func(tag string) string {
		if tag == own {
			return "zqN"
		}
		return tag
	})
}

var tagRe = regexp.MustCompile(`zq[0-9]+`)

// compareThroughBelay runs the scenario twice directly against Postgres (the
// reference, which must be the same both times), then instances of it
// concurrently through a belay with poolSize server connections, and
// requires each transcript to equal the reference and belay's server
// connections to be idle afterwards. norm (optional) normalizes what may
// differ between runs beyond the id.
func compareThroughBelay(t *testing.T, name string, run runFunc, norm func(string) string) {
	t.Helper()
	pg := compatPG(t)
	normalize := func(s string, id int) string {
		s = normalizeID(s, id)
		if norm != nil {
			s = norm(s)
		}
		return s
	}
	direct := endpoint{Host: pg.Host, Port: pg.Port}
	var refs [2]string
	for i := range refs {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		out, err := run(ctx, direct, 0)
		cancel()
		if err != nil {
			t.Fatalf("%s directly against PostgreSQL: %v\ntranscript:\n%s", name, err, out)
		}
		refs[i] = normalize(out, 0)
		t.Logf("%s direct run %d: %d lines in %v", name, i+1, strings.Count(out, "\n"), time.Since(start).Round(time.Millisecond))
	}
	if refs[0] != refs[1] {
		t.Fatalf("%s is not deterministic: two direct runs differ (- first, + second):\n%s", name, lineDiff(refs[0], refs[1]))
	}
	if strings.TrimSpace(refs[0]) == "" {
		t.Fatalf("%s printed nothing", name)
	}
	ref := refs[0]
	if os.Getenv("BELAY_COMPAT_SHOW") != "" {
		t.Logf("%s reference transcript:\n%s", name, ref)
	}

	p, ep := startBelay(t, pg)
	runThrough(t, name, run, ep, ref, normalize)
	checkIdle(t, pg, p)
}

// runThrough runs instances of the scenario concurrently against ep (ids
// 1..instances) and compares each transcript with ref.
func runThrough(t *testing.T, name string, run runFunc, ep endpoint, ref string, normalize func(string, int) string) {
	t.Helper()
	type result struct {
		out string
		err error
		d   time.Duration
	}
	var (
		wg      sync.WaitGroup
		results [instances]result
	)
	start := time.Now()
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			s := time.Now()
			out, err := run(ctx, ep, i+1)
			results[i] = result{out, err, time.Since(s)}
		}()
	}
	wg.Wait()
	var took []string
	for i, r := range results {
		took = append(took, r.d.Round(time.Millisecond).String())
		switch {
		case r.err != nil:
			t.Errorf("%s instance %d through belay: %v\ntranscript:\n%s", name, i+1, r.err, r.out)
		case normalize(r.out, i+1) != ref:
			t.Errorf("%s instance %d through belay differs from the direct reference (- direct, + belay):\n%s", name, i+1, lineDiff(ref, normalize(r.out, i+1)))
		}
	}
	t.Logf("%s: %d instances through belay (%d server connections) in %v (each: %s)", name, instances, poolSize, time.Since(start).Round(time.Millisecond), strings.Join(took, " "))
}

// checkIdle waits until belay has no client left, nothing pinned, and every
// Postgres backend of the compat user (belay's server connections, at most
// poolSize) is idle: a scenario must not leak a server.
func checkIdle(t *testing.T, pg *pginstance.Instance, p *loop.Proxy) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pg.ConnString("postgres", pg.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var (
		total, idle int
		st          loop.Stats
		qerr        error
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st = p.Stats()
		qerr = c.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE state = 'idle')
			FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'`, compatUser).Scan(&total, &idle)
		if qerr == nil && st.Clients == 0 && st.Pinned == 0 && total == idle && total <= poolSize {
			t.Logf("after the run: belay %+v; %d server connections, all idle", st, total)
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("belay did not return to idle: stats %+v; backends of %s: %d, idle %d (at most %d expected, all idle); query error: %v",
		st, compatUser, total, idle, poolSize, qerr)
}

// lineDiff is a minimal line diff of a and b (longest common subsequence):
// lines only in a start with "- ", only in b with "+ ", common ones with
// "  "; runs of more than 3 common lines are elided.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var out []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			out = append(out, line{' ', x[i]})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, line{'+', y[j]})
			j++
		default:
			out = append(out, line{'-', x[i]})
			i++
		}
	}
	var sb strings.Builder
	elided := false
	for k, l := range out {
		if l.op == ' ' {
			near := false
			for d := -2; d <= 2; d++ {
				if k+d >= 0 && k+d < len(out) && out[k+d].op != ' ' {
					near = true
				}
			}
			if !near {
				if !elided {
					sb.WriteString("  ...\n")
					elided = true
				}
				continue
			}
		}
		elided = false
		fmt.Fprintf(&sb, "%c %s\n", l.op, l.text)
	}
	return sb.String()
}

// TestHarness checks the comparison itself: only the instance's own tag is
// normalized, and the diff shows what differs.
func TestHarness(t *testing.T) {
	if got := normalizeID("app_zq3 tenant_zq3 ch_zq31 sp_zq5", 3); got != "app_zqN tenant_zqN ch_zq31 sp_zq5" {
		t.Errorf("normalizeID = %q", got)
	}
	d := lineDiff("a\nb\nc\nd\ne\nf\ng\nh", "a\nb\nc\nd\nX\nf\ng\nh")
	for _, want := range []string{"- e\n", "+ X\n", "  d\n", "  f\n", "  ...\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("lineDiff lacks %q:\n%s", want, d)
		}
	}
}

// TestRunProgramTimeout: a scenario that hangs is killed at its deadline
// with everything it started.
func TestRunProgramTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	pidFile := filepath.Join(t.TempDir(), "child")
	start := time.Now()
	_, err := runProgram(ctx, "", nil, false, "/bin/sh", "-c", "sleep 60 & echo $! > "+pidFile+"; wait")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a time-out", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v to kill", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(child, 0) == nil {
		// A killed child stays a zombie until init reaps it; it is gone
		// once /proc says so or it no longer exists.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil && strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the timed-out program is still running", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunProgramLeftBehind: a program that exits leaving a child that holds
// its output is an error, and the child is killed.
func TestRunProgramLeftBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	_, err := runProgram(ctx, "", nil, false, "/bin/sh", "-c", "sleep 60 &")
	if err == nil || !strings.Contains(err.Error(), "left a process behind") {
		t.Fatalf("err = %v, want a process left behind", err)
	}
}
