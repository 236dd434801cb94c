package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestUp runs `belay up` as a newcomer would: it must print a connection
// string that works, and stop Postgres and itself on SIGTERM and on SIGINT,
// reusing its data directory on the second start.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	bin := buildBelay(t)
	// Not t.TempDir: its parent is private (0700), and Postgres runs as the
	// postgres user when the test runs as root.
	dir, err := os.MkdirTemp("", "belay-up-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		cmd := exec.Command(bin, "up", "--dir", filepath.Join(dir, "cluster"), "--port", strconv.Itoa(freePort(t)))
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		url := waitForURL(t, stdout)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			cancel()
			_ = cmd.Process.Kill()
			t.Fatalf("connect to %s: %v", url, err)
		}
		if i == 0 {
			_, err = c.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
		} else {
			var x int
			err = c.QueryRow(ctx, "SELECT x FROM kept").Scan(&x) // the second run reuses the data
		}
		c.Close(ctx)
		cancel()
		if err != nil {
			_ = cmd.Process.Kill()
			t.Fatal(err)
		}
		_ = cmd.Process.Signal(sig)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("belay up exited with %v after %v", err, sig)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("belay up did not stop on %v", sig)
		}
		if out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "cluster")).Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Fatalf("processes left running after %v: %s", sig, out)
		}
	}
}

var urlRE = regexp.MustCompile(`postgres://\S+`)

func waitForURL(t *testing.T, r interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	found := make(chan string, 1)
	var lines []string
	go func() {
		sc := bufio.NewScanner(r)
		url := ""
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if m := urlRE.FindString(sc.Text()); m != "" && url == "" {
				url = m
			}
			if strings.Contains(sc.Text(), "belay is up") || (url != "" && strings.Contains(sc.Text(), "psql")) {
				if url != "" {
					found <- url
					url = "sent"
				}
			}
		}
		if url != "sent" {
			found <- ""
		}
	}()
	select {
	case u := <-found:
		if u == "" {
			t.Fatalf("belay up exited before printing a connection string:\n%s", strings.Join(lines, "\n"))
		}
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("belay up printed no connection string in 60 s")
	}
	return ""
}
