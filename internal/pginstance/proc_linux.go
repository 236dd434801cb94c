package pginstance

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// serverProcAttr puts the postmaster in its own process group and asks the
// kernel to send it SIGINT (fast shutdown) if the thread that forked it dies.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: syscall.SIGINT}
}

var (
	forkOnce sync.Once
	forkReqs chan func()
)

// StartCmd starts cmd from a goroutine locked to its OS thread for the life of
// the process. Linux sends the parent-death signal when the forking thread
// exits (go.dev/issue/27505), and the Go runtime ends a thread when a goroutine
// locked to it returns; forking from a thread that never ends makes the signal
// mean "this process died". Use it for any child that sets Pdeathsig.
func StartCmd(cmd *exec.Cmd) error { return StartCmdIn(cmd, "") }

// StartCmdIn is StartCmd with the child in the network namespace at path
// ("" for this process's): the forking thread enters that namespace
// (setns), forks, and goes back to its own before it forks anything else.
// A child inherits its forking thread's namespaces; nothing else runs on
// that thread, so nothing else ever sees the namespace.
func StartCmdIn(cmd *exec.Cmd, netns string) error {
	forkOnce.Do(func() {
		forkReqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for f := range forkReqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	forkReqs <- func() {
		if netns == "" {
			errc <- cmd.Start()
			return
		}
		errc <- startInNetNS(cmd, netns)
	}
	return <-errc
}

// startInNetNS starts cmd in the network namespace at path. It runs on the
// fork thread, which it leaves in the namespace it found it in (the
// process's): if it cannot go back, the process is not safe to go on with
// (every later server would start there), so it panics.
func startInNetNS(cmd *exec.Cmd, path string) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pginstance: network namespace %s: %w", path, err)
	}
	defer unix.Close(target)
	own, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pginstance: this thread's network namespace: %w", err)
	}
	defer unix.Close(own)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("pginstance: entering network namespace %s: %w", path, err)
	}
	startErr := cmd.Start()
	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		panic(fmt.Sprintf("BUG: pginstance: the fork thread cannot leave network namespace %s: %v", path, err))
	}
	return startErr
}

// startInCgroup makes cmd (not started yet) start its process in the
// cgroup at dir, before that process can fork: the server's children
// inherit it. On cgroup v2 the kernel creates the process there (clone3
// with CLONE_INTO_CGROUP, SysProcAttr.UseCgroupFD): it needs no rights of
// the account postgres runs as. cgroup v1 has no such thing, so the
// process starts as /bin/sh, which writes its own PID into dir/cgroup.procs
// and then execs the server, keeping that PID; when we are root the file
// is handed to the account postgres runs as first (the cgroup is the
// caller's, made for this server). release, called once cmd has started
// (or failed to), frees what the start needed.
func startInCgroup(cmd *exec.Cmd, dir string, as runAs) (release func(), err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("pginstance: cgroup %s: %w", dir, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("pginstance: cgroup %s: %w", dir, err)
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		return func() { _ = unix.Close(fd) }, nil
	case unix.CGROUP_SUPER_MAGIC:
		procs := filepath.Join(dir, "cgroup.procs")
		if as.cred != nil {
			if err := os.Chown(procs, as.uid, as.gid); err != nil {
				return nil, fmt.Errorf("pginstance: cgroup %s: %w", dir, err)
			}
		}
		// sh -c SCRIPT $0 $1...: $0 is the file, "$@" the server's command line.
		args := append([]string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, procs}, cmd.Args...)
		args[4] = cmd.Path
		cmd.Path, cmd.Args = "/bin/sh", args
		return func() {}, nil
	}
	return nil, fmt.Errorf("pginstance: %s is not in a cgroup file system", dir)
}
