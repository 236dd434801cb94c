package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Patroni (Debian's patroni, 3.0.x) is the peer of the failover scenario:
// three Patroni processes manage three PostgreSQL nodes, their DCS a
// Debian etcd-server (/usr/bin/etcd, 3.4) that the harness starts on
// loopback ports with a data directory of its own (never the system
// service). Patroni runs PostgreSQL itself, so it runs as user postgres
// when the harness is root.

// patroniSetup is one Patroni configuration the failover scenario
// measures: Patroni's dynamic settings written in bootstrap.dcs beside
// synchronous_mode (the others keep Patroni's defaults).
type patroniSetup struct {
	Target string
	// DCS are the dynamic settings set, in order; nil: Patroni's defaults.
	DCS [][2]string
}

// Targets of the failover scenario.
const (
	failoverBelay          = "belay"
	patroniDefaultsPst0    = "patroni-defaults-pst0"
	patroniTunedPst0       = "patroni-tuned-pst0"
	patroniDefaultsAsIs    = "patroni-defaults"
	patroniPrimaryStartKey = "primary_start_timeout"
)

// patroniDefaults are Patroni 3.0's defaults of the settings that time a
// failover (patroni/config.py).
var patroniDefaults = [][2]string{{"ttl", "30"}, {"loop_wait", "10"}, {"retry_timeout", "10"}, {patroniPrimaryStartKey, "300"}}

// patroniSetups are the Patroni configurations of the failover scenario:
// the defaults and ttl 10, loop_wait 1, retry_timeout 4, each with
// primary_start_timeout 0 (else Patroni restarts a killed primary in
// place rather than failing over); with asIs, the defaults as they are
// too.
func patroniSetups(asIs bool) []patroniSetup {
	s := []patroniSetup{
		{Target: patroniDefaultsPst0, DCS: [][2]string{{patroniPrimaryStartKey, "0"}}},
		{Target: patroniTunedPst0, DCS: [][2]string{{"ttl", "10"}, {"loop_wait", "1"}, {"retry_timeout", "4"}, {patroniPrimaryStartKey, "0"}}},
	}
	if asIs {
		s = append(s, patroniSetup{Target: patroniDefaultsAsIs})
	}
	return s
}

// patroniSetupOf is the setup of target, if it is a Patroni target.
func patroniSetupOf(target string) (patroniSetup, bool) {
	for _, s := range patroniSetups(true) {
		if s.Target == target {
			return s, true
		}
	}
	return patroniSetup{}, false
}

// effective is every timing setting of s with Patroni's defaults filled
// in, e.g. "ttl 30, loop_wait 10, retry_timeout 10, primary_start_timeout 0".
func (s patroniSetup) effective() string {
	var parts []string
	for _, d := range patroniDefaults {
		v := d[1]
		for _, kv := range s.DCS {
			if kv[0] == d[0] {
				v = kv[1]
			}
		}
		parts = append(parts, d[0]+" "+v)
	}
	return strings.Join(parts, ", ")
}

// patroniNode is one Patroni process and the PostgreSQL node it runs.
type patroniNode struct {
	Name     string // pg0, pg1, pg2
	Dir      string // its configuration, log, pgpass, socket; data in Dir/data
	RestPort int    // its REST API on 127.0.0.1
	PGPort   int    // PostgreSQL on 127.0.0.1
}

// DataDir is the node's PostgreSQL data directory.
func (n patroniNode) DataDir() string { return filepath.Join(n.Dir, "data") }

// patroniSpec is what a Patroni node's configuration is made of.
type patroniSpec struct {
	Scope  string // the cluster's name in the DCS
	Node   patroniNode
	Etcd   string // host:port of the etcd (v3 API)
	BinDir string // PostgreSQL's programs
	Setup  patroniSetup
	// Parameters are PostgreSQL settings of every node, put in the DCS
	// (Patroni keeps some there only, max_connections among them).
	Parameters map[string]string
}

// yamlQuote quotes v as a YAML single-quoted scalar.
func yamlQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// patroniConfig is the YAML configuration of one Patroni node of s:
// etcd3 as the DCS, synchronous_mode on, pg_rewind and slots, initdb with
// data checksums, trust for loopback (as the belay cluster of the scenario),
// s.Setup's timing settings in bootstrap.dcs.
func patroniConfig(s patroniSpec) string {
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	n := s.Node
	w(0, "# written by belay bench")
	w(0, "scope: %s", yamlQuote(s.Scope))
	w(0, "namespace: /service/")
	w(0, "name: %s", yamlQuote(n.Name))
	w(0, "log:")
	w(1, "level: INFO")
	w(0, "restapi:")
	w(1, "listen: 127.0.0.1:%d", n.RestPort)
	w(1, "connect_address: 127.0.0.1:%d", n.RestPort)
	w(0, "etcd3:")
	w(1, "hosts: %s", yamlQuote(s.Etcd))
	w(0, "bootstrap:")
	w(1, "dcs:")
	for _, kv := range s.Setup.DCS {
		w(2, "%s: %s", kv[0], kv[1])
	}
	w(2, "synchronous_mode: true")
	w(2, "postgresql:")
	w(3, "use_pg_rewind: true")
	w(3, "use_slots: true")
	w(3, "parameters:")
	keys := make([]string, 0, len(s.Parameters))
	for k := range s.Parameters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w(4, "%s: %s", k, yamlQuote(s.Parameters[k]))
	}
	w(1, "initdb:")
	w(1, "- data-checksums")
	w(1, "- encoding: UTF8")
	w(0, "postgresql:")
	w(1, "listen: 127.0.0.1:%d", n.PGPort)
	w(1, "connect_address: 127.0.0.1:%d", n.PGPort)
	w(1, "data_dir: %s", yamlQuote(n.DataDir()))
	w(1, "bin_dir: %s", yamlQuote(s.BinDir))
	w(1, "pgpass: %s", yamlQuote(filepath.Join(n.Dir, "pgpass")))
	w(1, "authentication:")
	w(2, "superuser:")
	w(3, "username: postgres")
	w(2, "replication:")
	w(3, "username: postgres")
	w(1, "pg_hba:")
	w(1, "- local all all trust")
	w(1, "- host all all 127.0.0.1/32 trust")
	w(1, "- host replication all 127.0.0.1/32 trust")
	w(1, "parameters:")
	w(2, "unix_socket_directories: %s", yamlQuote(n.Dir))
	return b.String()
}

// findPatroni returns the patroni and etcd programs, installing Debian's
// patroni and etcd-server with apt-get when missing and install is set
// (neither package's service is left running).
func findPatroni(ctx context.Context, install bool, logf func(string, ...any)) (patroni, etcd string, err error) {
	if patroni, err = findOrInstall(ctx, "patroni", "patroni", "Patroni", install, logf); err != nil {
		return "", "", err
	}
	if etcd, err = findOrInstallService(ctx, "etcd", "etcd-server", "etcd", "etcd (Debian's etcd-server)", install, logf); err != nil {
		return "", "", err
	}
	return patroni, etcd, nil
}

// versionRE finds a version number in a program's --version output.
var versionRE = regexp.MustCompile(`[0-9]+\.[0-9]+(\.[0-9]+)?`)

// programVersion is the first version number `bin --version` prints, or
// "unknown".
func programVersion(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	if v := versionRE.FindString(string(out)); v != "" {
		return v
	}
	return "unknown"
}

// startEtcd starts etcd (bin) on two free loopback ports with its data in
// dir, as a single-member cluster, and returns once it answers on its
// client port; endpoint is "127.0.0.1:PORT".
func startEtcd(ctx context.Context, bin, dir string, pl Placement) (p *process, endpoint string, err error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	args := []string{"--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn"}
	log := filepath.Join(dir, "etcd.log")
	// ETCD_* variables in our environment would configure it too.
	var env []string
	for _, kv := range clientEnv() {
		if !strings.HasPrefix(kv, "ETCD") {
			env = append(env, kv)
		}
	}
	if p, err = startProcess("etcd", bin, args, env, log, nil, pl); err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		if p.exited() {
			return nil, "", fmt.Errorf("bench: etcd exited at startup: %v\n%s", p.err, readTail(log, 2000))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, client+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, fmt.Sprintf("127.0.0.1:%d", ports[0]), nil
			}
		}
		select {
		case <-ctx.Done():
			_ = p.Stop()
			return nil, "", fmt.Errorf("bench: etcd not healthy on %s: %w\n%s", client, ctx.Err(), readTail(log, 2000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startPatroni writes s's configuration in s.Node.Dir (owned by postgres
// when we are root) and starts Patroni on it, as postgres when we are
// root.
func startPatroni(bin string, s patroniSpec, pl Placement) (*process, error) {
	cred, uid, gid, err := postgresCred()
	if err != nil {
		return nil, err
	}
	dir := s.Node.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "patroni.yml")
	if err := os.WriteFile(conf, []byte(patroniConfig(s)), 0o600); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "patroni.log")
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Close()
	}
	if cred != nil {
		for _, p := range []string{dir, conf, log} {
			if err := os.Lchown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	env := append(clientEnv(), "HOME="+dir, "PATRONI_LOG_LEVEL=INFO")
	return startProcess("patroni "+s.Node.Name, bin, []string{conf}, env, log, cred, pl)
}

// postmasterPID is the PID in dataDir's postmaster.pid (0: none).
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	l, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(l))
	return pid
}

// stopPatroni stops a Patroni process (SIGTERM: it stops its PostgreSQL
// first), then whatever PostgreSQL is still running in dataDir: Patroni
// starts the postmaster in a session of its own, so stopping Patroni's
// process group does not reach it.
func stopPatroni(p *process, dataDir string) error {
	err := p.Stop()
	if pid := postmasterPID(dataDir); pid > 0 && syscall.Kill(pid, 0) == nil && isPostmaster(pid, dataDir) {
		_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			err = errors.Join(err, fmt.Errorf("bench: the postmaster in %s (pid %d) outlived Patroni and SIGQUIT; killed", dataDir, pid))
		}
	}
	return err
}

// isPostmaster says whether process pid runs postgres on dataDir (and is
// not a process that took the PID of a postmaster long gone).
func isPostmaster(pid int, dataDir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "postgres" && slices.Contains(args, dataDir)
}
