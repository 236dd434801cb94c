package pginstance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestCgroup starts a server with Options.Cgroup in each cgroup hierarchy
// this machine lets us write to (v1's cpu controller, and v2): the
// postmaster and a backend it forks later must both be in the cgroup.
func TestCgroup(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Fatal(err) // CI installs PostgreSQL (make deps): never skip silently
	}
	hierarchies := []struct{ name, mount, line string }{
		{"v1", "/sys/fs/cgroup/cpu", ":cpu:"},   // the cpu controller's hierarchy, where cgroup v1 is mounted so
		{"v2", "/sys/fs/cgroup", "0::"},         // a pure cgroup v2 machine
		{"v2", "/sys/fs/cgroup/unified", "0::"}, // v2 beside v1 (systemd's hybrid layout)
	}
	ran := 0
	for _, h := range hierarchies {
		var st syscall.Statfs_t
		if syscall.Statfs(h.mount, &st) != nil {
			continue
		}
		if want := map[string]int64{"v1": 0x27e0eb, "v2": 0x63677270}[h.name]; int64(st.Type) != want {
			continue
		}
		dir := filepath.Join(h.mount, fmt.Sprintf("belay-pginstance-test-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Logf("%s at %s: cannot make a cgroup (%v): not tested there", h.name, h.mount, err)
			continue
		}
		ran++
		t.Run(h.name, func(t *testing.T) {
			defer removeCgroup(t, dir)
			i, err := Start(context.Background(), Options{Dir: tempDir(t), Cgroup: dir, Settings: map[string]string{"fsync": "off"}})
			if err != nil {
				t.Fatal(err)
			}
			defer i.Stop()
			want := h.line + "/" + filepath.Base(dir)
			if got := procCgroup(t, i.PID, h.line); got != want {
				t.Errorf("postmaster %d: cgroup %q, want %q", i.PID, got, want)
			}
			// A backend, forked after the postmaster moved in.
			conn, err := pgconn.Connect(context.Background(), i.ConnString("postgres", i.Superuser))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			res, err := conn.Exec(context.Background(), "SELECT pg_backend_pid()").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			backend, err := strconv.Atoi(string(res[0].Rows[0][0]))
			if err != nil {
				t.Fatal(err)
			}
			if got := procCgroup(t, backend, h.line); got != want {
				t.Errorf("backend %d: cgroup %q, want %q", backend, got, want)
			}
		})
	}
	if ran == 0 {
		t.Skip("no cgroup hierarchy here that this process may make a cgroup in (cgroup v1's cpu, or v2)")
	}
}

// procCgroup is pid's line of /proc/PID/cgroup that contains sub, up to
// the cgroup's path ("1:cpu:/x" becomes ":cpu:/x").
func procCgroup(t *testing.T, pid int, sub string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, sub); i >= 0 {
			return l[i:]
		}
	}
	return ""
}

// removeCgroup removes the empty cgroup dir, waiting for the server's
// last processes to leave it.
func removeCgroup(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("removing cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
