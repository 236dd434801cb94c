package pginstance

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
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
func StartCmd(cmd *exec.Cmd) error {
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
	forkReqs <- func() { errc <- cmd.Start() }
	return <-errc
}
