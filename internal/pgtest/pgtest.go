package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
)

// tempPattern names the temporary directories of instances (os.MkdirTemp).
const tempPattern = "belay-pgtest-*"

// StartTimeout bounds initdb plus startup of one instance.
const StartTimeout = 2 * time.Minute

// testSettings make servers fast and non-durable; a private instance's own
// Options.Settings override them.
var testSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
}

var (
	mu         sync.Mutex // guards the fields below
	mainCalled bool
	live       = map[*pginstance.Instance]struct{}{}
	tempDirs   = map[string]struct{}{}

	sharedMu  sync.Mutex // guards the fields below; held while the shared instance starts
	shared    *pginstance.Instance
	sharedErr error
)

// Main runs the package's tests, then stops every instance this package
// started and removes their temporary directories, and exits with the tests'
// code. It does the same on SIGINT or SIGTERM.
func Main(m *testing.M) {
	mu.Lock()
	mainCalled = true
	mu.Unlock()
	sweepStale()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-sigc
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "pgtest: %v: stopping PostgreSQL instances\n", sig)
		cleanupAll()
		signal.Reset(sig)
		if s, ok := sig.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), s)
			time.Sleep(time.Second)
		}
		os.Exit(1)
	}()

	code := m.Run()
	signal.Stop(sigc)
	close(sigc)
	cleanupAll()
	os.Exit(code)
}

// cleanupAll stops every live cluster and instance (concurrently) and
// removes every temp dir.
func cleanupAll() {
	stopClusters()
	mu.Lock()
	insts := make([]*pginstance.Instance, 0, len(live))
	for i := range live {
		insts = append(insts, i)
	}
	dirs := make([]string, 0, len(tempDirs))
	for d := range tempDirs {
		dirs = append(dirs, d)
	}
	mu.Unlock()

	var wg sync.WaitGroup
	for _, i := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := i.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			}
		}()
	}
	wg.Wait()
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	mu.Lock()
	for _, i := range insts {
		delete(live, i)
	}
	for _, d := range dirs {
		delete(tempDirs, d)
	}
	mu.Unlock()
}

// sweepStale removes temporary directories that test binaries killed
// earlier left behind: older than 10 minutes, and with no live postmaster.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPattern))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 {
				if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
					continue // still running
				}
			}
		}
		_ = os.RemoveAll(d)
	}
}

// Shared returns the package's shared instance, starting it on first use.
// The package must have func TestMain(m *testing.M) { pgtest.Main(m) }.
// Tests must leave it usable: no stopping it, no changes to global settings
// they do not undo. It fails the test if the instance cannot be started or
// has died.
func Shared(t testing.TB) *pginstance.Instance {
	t.Helper()
	mu.Lock()
	ok := mainCalled
	mu.Unlock()
	if !ok {
		t.Fatal("pgtest.Shared: the package needs func TestMain(m *testing.M) { pgtest.Main(m) } so that the shared PostgreSQL is stopped")
	}

	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, _, sharedErr = start(pginstance.Options{})
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: starting the shared PostgreSQL: %v", sharedErr)
	}
	select {
	case <-shared.Done():
		t.Fatalf("pgtest: the shared PostgreSQL (pid %d) has exited (%v); log tail:\n%s", shared.PID, shared.ExitErr(), shared.LogTail())
	default:
	}
	return shared
}

// New starts a private instance, stopped (and its temporary directory removed)
// when the test ends. If o.Dir is empty a temporary directory is used; the
// test settings (fsync=off, ...) apply unless o.Settings overrides them.
func New(t testing.TB, o pginstance.Options) *pginstance.Instance {
	t.Helper()
	inst, tmp, err := start(o)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	stopAtEnd(t, inst.Stop, func() {
		mu.Lock()
		delete(live, inst)
		mu.Unlock()
	}, tmp)
	return inst
}

// start starts an instance with the test settings, in a new temporary
// directory (returned) when o.Dir is empty, and registers both for cleanupAll.
func start(o pginstance.Options) (_ *pginstance.Instance, tmp string, _ error) {
	o.Settings = withDefaults(testSettings, o.Settings)
	if o.Dir == "" {
		var err error
		if tmp, err = makeTempDir(); err != nil {
			return nil, "", err
		}
		o.Dir = tmp
	}

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	inst, err := pginstance.Start(ctx, o)
	if err != nil {
		if tmp != "" {
			removeTempDir(tmp)
		}
		return nil, "", err
	}
	mu.Lock()
	live[inst] = struct{}{}
	mu.Unlock()
	return inst, tmp, nil
}

// withDefaults is defaults overridden by settings.
func withDefaults(defaults, settings map[string]string) map[string]string {
	m := make(map[string]string, len(defaults)+len(settings))
	maps.Copy(m, defaults)
	maps.Copy(m, settings)
	return m
}

// makeTempDir makes a temporary directory for a server or a cluster,
// registered for cleanupAll.
func makeTempDir() (string, error) {
	tmp, err := os.MkdirTemp("", tempPattern)
	if err != nil {
		return "", err
	}
	// MkdirTemp makes it 0700; when we are root, postgres runs as the
	// postgres user, who must be able to traverse it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	mu.Lock()
	tempDirs[tmp] = struct{}{}
	mu.Unlock()
	return tmp, nil
}

// stopAtEnd stops what stop stops when t ends, then forgets it (forget)
// and removes its temporary directory tmp, if any.
func stopAtEnd(t testing.TB, stop func() error, forget func(), tmp string) {
	t.Cleanup(func() {
		err := stop()
		forget()
		if err != nil {
			t.Errorf("pgtest: %v", err)
		}
		if tmp != "" {
			removeTempDir(tmp)
		}
	})
}

func removeTempDir(d string) {
	_ = os.RemoveAll(d)
	mu.Lock()
	delete(tempDirs, d)
	mu.Unlock()
}

// RequireBinary returns the path of a PostgreSQL program (psql, pgbench,
// pg_dump, ...): the one beside the server binaries (pginstance.FindBinDir),
// else the one on PATH. A missing binary fails the test: it never skips.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if d, err := pginstance.FindBinDir(); err == nil {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("pgtest: %s not found beside the PostgreSQL server binaries nor on PATH; install it (make deps; on Debian: apt-get install postgresql postgresql-client postgresql-contrib)", name)
	return ""
}

// NewTLS starts a private instance with ssl=on, serving certFile and keyFile
// (and verifying client certificates against caFile when it is not empty),
// with the given pg_hba.conf lines first. Postgres reads the files as its own
// user (postgres when the tests run as root), wants the key 0600 and owned by
// it, and cannot traverse test temporary directories: so they are copied
// into a directory of their own, chowned to that user.
func NewTLS(t testing.TB, certFile, keyFile, caFile string, hba []string) *pginstance.Instance {
	t.Helper()
	dir, err := os.MkdirTemp("", tempPattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTempDir(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	cp := func(src, name string, mode os.FileMode) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Chown(dst, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		return dst
	}
	settings := map[string]string{
		"ssl":           "on",
		"ssl_cert_file": cp(certFile, "server.crt", 0o644),
		"ssl_key_file":  cp(keyFile, "server.key", 0o600),
	}
	if caFile != "" {
		settings["ssl_ca_file"] = cp(caFile, "ca.crt", 0o644)
	}
	return New(t, pginstance.Options{Settings: settings, HBA: hba})
}

// TempDir is a temporary directory that a server started as the postgres
// user (when the tests run as root) can use, as Options.Dir; removed when
// t ends (after the servers in it stopped: register it before them).
func TempDir(t testing.TB) string {
	t.Helper()
	d, err := makeTempDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { removeTempDir(d) })
	return d
}
