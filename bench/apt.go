package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// aptInstall installs Debian's package pkg with apt-get (as root), keeping
// its maintainer scripts from starting the service the package ships
// (named service; stopped and disabled afterwards should it run anyway):
// the harness runs its own on ports of its own. what names the program in
// errors.
func aptInstall(ctx context.Context, pkg, service, what string, logf func(string, ...any)) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("bench: %s is not installed and there is no apt-get here: install %s yourself", pkg, what)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("bench: %s is not installed; as root, run: apt-get install -y %s", pkg, pkg)
	}
	logf("installing %s: apt-get update && apt-get install -y %s", what, pkg)
	// policy-rc.d is how Debian asks maintainer scripts not to start
	// daemons; one already there is left as it is.
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# written by belay bench while installing "+pkg+"\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("bench: %s: %v\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
		return nil
	}
	if err := run("apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq"); err != nil {
		return err
	}
	if err := run("apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "--no-install-recommends", pkg); err != nil {
		return err
	}
	stopPackagedService(ctx, service)
	return nil
}

// stopPackagedService stops and disables the service name that Debian's
// package may have started.
func stopPackagedService(ctx context.Context, name string) {
	quiet := func(args ...string) {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		_ = cmd.Run()
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		quiet("systemctl", "disable", "--now", name+".service")
	}
	if _, err := os.Stat("/etc/init.d/" + name); err == nil {
		quiet("/etc/init.d/"+name, "stop")
		if _, err := exec.LookPath("update-rc.d"); err == nil {
			quiet("update-rc.d", name, "disable")
		}
	}
}

// findOrInstall returns the program bin (on PATH, or in a directory
// where Debian's packages put programs), installing Debian's package pkg
// with apt-get when it is missing and install is set; what names it in
// messages. The package's service is named pkg.
func findOrInstall(ctx context.Context, bin, pkg, what string, install bool, logf func(string, ...any)) (string, error) {
	return findOrInstallService(ctx, bin, pkg, pkg, what, install, logf)
}

// findOrInstallService is findOrInstall for a package whose service is
// named service (etcd-server's is etcd).
func findOrInstallService(ctx context.Context, bin, pkg, service, what string, install bool, logf func(string, ...any)) (string, error) {
	look := func() string {
		if p, err := exec.LookPath(bin); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			p := filepath.Join(d, bin)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	if p := look(); p != "" {
		return p, nil
	}
	if !install {
		return "", fmt.Errorf("bench: %s is not installed (Debian: apt-get install %s, or make deps), and installing it was not asked for", bin, pkg)
	}
	if err := aptInstall(ctx, pkg, service, what, logf); err != nil {
		return "", err
	}
	if p := look(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("bench: installed %s but cannot find its program, %s", pkg, bin)
}
