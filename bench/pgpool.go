package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// findPgpool returns the pgpool binary (pgpool-II), installing Debian's
// package pgpool2 with apt-get when it is missing and install is set.
func findPgpool(ctx context.Context, install bool, logf func(string, ...any)) (string, error) {
	return findOrInstall(ctx, "pgpool", "pgpool2", "pgpool-II", install, logf)
}

// pgpoolVersion is the first line of `pgpool --version`, e.g. "pgpool-II
// version 4.3.5 (tamahomeboshi)".
func pgpoolVersion(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}

// pgpoolSpec is one pgpool-II in front of some nodes of the cluster.
type pgpoolSpec struct {
	Dir      string   // its configuration, socket, PID file and status file
	Port     int      // on 127.0.0.1
	PCPPort  int      // its PCP port (on the Unix socket in Dir only)
	Backends []string // host:port, the primary first
	// Children is num_init_children: the most clients at once (one
	// process each).
	Children int
	// SessionBalance leaves statement_level_load_balance off: each
	// session's reads go to one node chosen when it connects.
	SessionBalance bool
	// DelayThreshold is the replication delay in bytes past which a
	// standby gets no reads (delay_threshold; 0: none).
	// Placement: where it runs with respect to autogroup scheduling,
	// as every proxy under test.
	Placement      Placement
	DelayThreshold uint64
}

// pgpoolConf is pgpool.conf for s: streaming-replication mode, load
// balancing on (every node weighs the same, the primary included, as
// pgpool-II does by default), reads balanced per statement unless
// SessionBalance, a standby past DelayThreshold skipped, the replication
// checked every second as the superuser postgres (trust), no health check
// nor failover (nothing fails here), no watchdog, no query cache, no
// pool_hba.conf (the nodes trust loopback).
func pgpoolConf(s pgpoolSpec) (string, error) {
	if len(s.Backends) == 0 {
		return "", errors.New("bench: pgpool-II without a backend")
	}
	var b strings.Builder
	b.WriteString("# written by belay bench\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	kv("backend_clustering_mode", q("streaming_replication"))
	kv("listen_addresses", q("127.0.0.1"))
	kv("port", fmt.Sprint(s.Port))
	kv("socket_dir", q(s.Dir))
	kv("pcp_listen_addresses", q(""))
	kv("pcp_port", fmt.Sprint(s.PCPPort))
	kv("pcp_socket_dir", q(s.Dir))
	for i, a := range s.Backends {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return "", fmt.Errorf("bench: pgpool-II backend %q: %w", a, err)
		}
		kv(fmt.Sprintf("backend_hostname%d", i), q(host))
		kv(fmt.Sprintf("backend_port%d", i), port)
		kv(fmt.Sprintf("backend_weight%d", i), "1")
		kv(fmt.Sprintf("backend_flag%d", i), q("DISALLOW_TO_FAILOVER"))
	}
	kv("num_init_children", fmt.Sprint(max(s.Children, 1)))
	kv("max_pool", "1")
	kv("connection_cache", "on")
	kv("load_balance_mode", "on")
	kv("statement_level_load_balance", onOff(!s.SessionBalance))
	kv("disable_load_balance_on_write", q("transaction"))
	kv("sr_check_period", "1")
	kv("sr_check_user", q("postgres"))
	kv("sr_check_password", q(""))
	kv("sr_check_database", q("postgres"))
	kv("delay_threshold", fmt.Sprint(s.DelayThreshold))
	kv("health_check_period", "0")
	kv("failover_on_backend_error", "off")
	kv("use_watchdog", "off")
	kv("memory_cache_enabled", "off")
	kv("enable_pool_hba", "off")
	kv("pool_passwd", q(filepath.Join(s.Dir, "pool_passwd")))
	kv("pid_file_name", q(filepath.Join(s.Dir, "pgpool.pid")))
	kv("logdir", q(s.Dir))
	kv("log_destination", q("stderr"))
	kv("log_min_messages", "warning")
	return b.String(), nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// stopPgpool stops pgpool-II with a fast shutdown (SIGINT: its SIGTERM is
// a smart shutdown, which may wait on its children past process.Stop's
// patience) and waits up to 15 s for it; process.Stop does the rest.
func stopPgpool(p *process) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(p.pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
	}
}

// startPgpool writes s's configuration in s.Dir and starts pgpool-II in
// the foreground (-n), as user postgres when we are root, forgetting any
// node status of an earlier run (-D); it returns once a client gets an
// answer through it.
func startPgpool(ctx context.Context, bin string, s pgpoolSpec) (*process, error) {
	conf, err := pgpoolConf(s)
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := postgresCred()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{
		"pgpool.conf": conf,
		"pcp.conf":    "", // no PCP user: nobody manages this pgpool-II
		"pool_passwd": "", // trust: no password to keep
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	if cred != nil {
		if err := filepath.WalkDir(s.Dir, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			return nil, err
		}
	}
	log := filepath.Join(s.Dir, "pgpool.log")
	p, err := startProcess("pgpool-II", bin, []string{"-n", "-D", "-f", filepath.Join(s.Dir, "pgpool.conf"), "-F", filepath.Join(s.Dir, "pcp.conf")},
		clientEnv(), log, cred, s.Placement)
	if err != nil {
		return nil, err
	}
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", s.Port), benchDB); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\n--- pgpool-II log ---\n%s", err, readTail(log, 2000))
	}
	return p, nil
}
