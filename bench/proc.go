package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
)

// Placement is where the harness starts the proxies under test, with
// respect to the kernel's autogroup scheduling
// (/proc/sys/kernel/sched_autogroup_enabled): with it on, every session is a
// scheduling group with a CPU share of its own, so a proxy in pgbench's
// session competes with pgbench and PostgreSQL for one share while a proxy
// in a session of its own gets another. Every proxy is started the same way.
type Placement string

const (
	// PlaceOwnSession starts each proxy in a session of its own (setsid), as
	// a daemon runs (PgBouncer's -d, a service manager). The default.
	PlaceOwnSession Placement = "own-session"
	// PlaceShared starts every proxy in the harness's session, which is
	// pgbench's and PostgreSQL's.
	PlaceShared Placement = "shared"
)

// describe says in the report where the proxies ran.
func (pl Placement) describe() string {
	ag := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err == nil {
		ag = strings.TrimSpace(string(b))
	}
	if pl == PlaceShared {
		return fmt.Sprintf("every proxy in the harness's session, with pgbench and PostgreSQL (`--placement shared`; sched_autogroup_enabled=%s)", ag)
	}
	return fmt.Sprintf("each proxy in a session of its own (setsid), pgbench and PostgreSQL in the harness's (`--placement own-session`; sched_autogroup_enabled=%s: a session is a scheduling group)", ag)
}

// process is a long-lived child (PgBouncer, belay) in its own process group
// and, with PlaceOwnSession, its own session.
type process struct {
	name string
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	err  error // Wait's result, set before done is closed
	log  *os.File

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts bin with args, its output appended to logPath, as cred's
// user when cred is not nil, placed as pl says.
func startProcess(name, bin string, args, env []string, logPath string, cred *syscall.Credential, pl Placement) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
	if pl == PlaceOwnSession {
		// A new session is a new process group too (Setpgid with it would
		// make setsid fail: the child would already lead a group).
		cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Setsid = false, true
	}
	if err := pginstance.StartCmd(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), log: f}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill kills the process with SIGKILL (a crash, as a fault scenario makes
// one) and waits for it; Stop afterwards only closes its log.
func (p *process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		return err
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM, waits up to 15s, then kills the process group.
// Idempotent. It returns an error only if the process had to be killed.
func (p *process) Stop() error {
	p.stopOnce.Do(func() {
		defer p.log.Close()
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(15 * time.Second):
		}
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		p.stopErr = fmt.Errorf("bench: %s (pid %d) ignored SIGTERM for 15s; killed", p.name, p.pid)
	})
	return p.stopErr
}

// postgresCred is the credential to run PgBouncer with: the "postgres" user
// when we are root (PgBouncer refuses to run as root), else nil.
func postgresCred() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("bench: running as root, PgBouncer must run as user postgres: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, 0, 0, errors.New("bench: user postgres has a non-numeric uid/gid")
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// raiseNoFile raises RLIMIT_NOFILE to at least want (raising the hard limit
// too when we may), so that the harness, pgbench and the proxies it starts
// (they inherit it) can hold many connections. It returns the soft limit now
// in force.
func raiseNoFile(want uint64) uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	if r.Cur >= want {
		return r.Cur
	}
	n := r
	n.Cur = want
	if n.Max < want {
		n.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n); err != nil {
		n.Max = r.Max
		n.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	return r.Cur
}
