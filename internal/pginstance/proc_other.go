//go:build !linux

package pginstance

import (
	"errors"
	"os/exec"
	"syscall"
)

// serverProcAttr puts the postmaster in its own process group. There is no
// parent-death signal outside Linux: a Go process that dies without Stop
// leaves the server running.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

func StartCmd(cmd *exec.Cmd) error { return cmd.Start() }

// StartCmdIn starts cmd; network namespaces are Linux only.
func StartCmdIn(cmd *exec.Cmd, netns string) error {
	if netns != "" {
		return errors.New("pginstance: network namespaces are Linux only")
	}
	return cmd.Start()
}

func startInCgroup(*exec.Cmd, string, runAs) (func(), error) {
	return nil, errors.New("pginstance: cgroups are Linux only")
}
