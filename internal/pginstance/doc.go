// Package pginstance starts and stops a real PostgreSQL server on this machine:
// initdb on first use (or pg_basebackup from another server, for a replica:
// Options.BaseBackup), then the postmaster as a child process listening on a
// loopback port (and a Unix socket), with readiness checked through pgconn.
//
// It serves both the test harness (internal/pgtest) and `belay up`, so it
// imports no testing packages and its defaults are safe for data that persists:
// durability settings (fsync, synchronous_commit, full_page_writes) are left at
// PostgreSQL's defaults unless the caller overrides them in Options.Settings.
//
// Running as root: PostgreSQL refuses to run as root, so when the effective
// user is root, initdb, pg_basebackup and postgres run as the unprivileged user "postgres"
// (SysProcAttr.Credential), Options.Dir is chowned to it recursively, the
// directories Start creates are made 0755, and Start fails with a clear error
// if a parent directory of Dir is not traversable by that user (e.g. /root).
//
// Lifetime: the postmaster is started in its own process group (so a terminal's
// Ctrl-C reaches only the Go program, which then calls Stop) and with a
// parent-death signal (SIGINT, fast shutdown), so a Go process that dies without
// calling Stop does not leave a server behind. The fork happens on a dedicated,
// permanently locked OS thread, because Linux delivers the parent-death signal
// when the forking thread exits, not the process.
//
// Cgroups (Linux): with Options.Cgroup the postmaster starts inside a cgroup
// the caller made (cgroup v2: placed there by the kernel as it is created;
// v1: through /bin/sh, which moves itself there and execs postgres), so
// that every process of the server is held to its limits (belay bench
// gives each node of a cluster its own CPU quota this way).
//
// Network namespaces (Linux): with Options.NetNS the postmaster starts in
// that network namespace, listening on Options.Host (an address of the
// namespace): the fork thread enters the namespace (setns), forks and goes
// back at once (StartCmdIn), so the child inherits it and nothing else of
// this process runs there. internal/netns makes such namespaces for tests.
//
// Concurrency: Start may be called from several goroutines at once. An Instance
// is safe for concurrent use; Stop is idempotent.
//
// Never imports: anything of belay, testing.
package pginstance
