package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLI: each command's -h has a synopsis and lists its flags as
// --name; `belay version` answers; an error is printed once, prefixed
// once; gnet's own log line follows --log-format.
func TestCLI(t *testing.T) {
	bin := buildBelay(t)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	for _, c := range []struct {
		args     []string
		code     int
		has, not []string
	}{
		{[]string{"proxy", "-h"}, 0, []string{"Usage: belay proxy [flags] [pgbouncer.ini]\n", "\n  --listen string\n", "\n  --pool-size int\n"}, []string{"Usage of", "\n  -listen"}},
		{[]string{"up", "-h"}, 0, []string{"Usage: belay up [flags]\n", "\n  --dir string\n"}, nil},
		{[]string{"bench", "-h"}, 0, []string{"Usage: belay bench [flags]\n", "\n  --quick\n"}, nil},
		{[]string{"version"}, 0, []string{"belay 0.1"}, nil},
		{[]string{"--version"}, 0, []string{"belay 0.1"}, nil},
		{[]string{"proxy", "a.ini", "b.ini"}, 1, []string{"belay proxy: one configuration file at most"}, []string{"belay: belay"}},
		{[]string{"up", "--log-level", "loud"}, 1, []string{"belay up: --log-level \"loud\""}, []string{"belay: belay"}},
		{[]string{"proxy", "--bogus"}, 2, []string{"flag provided but not defined: -bogus\nUsage: belay proxy"}, []string{"belay proxy: flag provided"}},
	} {
		out, code := run(c.args...)
		if code != c.code {
			t.Errorf("belay %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.code, out)
		}
		for _, s := range c.has {
			if !strings.Contains(out, s) {
				t.Errorf("belay %s: no %q in\n%s", strings.Join(c.args, " "), s, out)
			}
		}
		for _, s := range c.not {
			if strings.Contains(out, s) {
				t.Errorf("belay %s: %q in\n%s", strings.Join(c.args, " "), s, out)
			}
		}
	}

	// gnet's "Launching gnet" line is a JSON line like the others.
	cmd := exec.Command(bin, "proxy", "--log-format", "json", "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--server", "127.0.0.1:1", "--auth-type", "trust")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("belay proxy exited; its log:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("a log line that is not JSON: %q", l)
			}
			if rec["component"] == "gnet" && strings.Contains(rec["msg"].(string), "Launching gnet") {
				_ = cmd.Process.Signal(os.Interrupt)
				return
			}
		case <-timeout:
			t.Fatalf("no gnet log line in 30 s:\n%s", strings.Join(seen, "\n"))
		}
	}
}
