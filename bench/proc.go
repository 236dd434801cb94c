package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
)

// process is a long-lived child (PgBouncer, belay) in its own process group.
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
// user when cred is not nil.
func startProcess(name, bin string, args, env []string, logPath string, cred *syscall.Credential) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
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
