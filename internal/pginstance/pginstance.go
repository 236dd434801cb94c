package pginstance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Options describe the instance Start brings up.
type Options struct {
	// Dir holds the data directory (Dir/data) and the Unix socket directory
	// (Dir/sock); created if missing. Required. An existing Dir/data with a
	// PG_VERSION file is reused as is (no initdb).
	Dir string
	// Port is the TCP port on Host; 0 picks a free one (and retries with
	// another if the server finds it taken).
	Port int
	// Host is the address the server listens on and is reached at; ""
	// means 127.0.0.1. With NetNS it is an address of that namespace.
	Host string
	// NetNS, when set, is the path of a network namespace (such as
	// /run/netns/NAME; Linux only) the postmaster starts in, so that the
	// server is reached only over that namespace's links (internal/netns
	// makes them). initdb, pg_basebackup and the readiness check stay in
	// this process's namespace: the check goes through the Unix socket,
	// which a network namespace does not hide, or to Host. The port is
	// picked as without it (a port free here is free there too).
	NetNS string
	// PreferPort, with Port 0, is tried first: a port kept from an earlier
	// run (belay up keeps it per directory). If it is taken, a free one is
	// picked as with Port 0.
	PreferPort int
	// BinDir holds initdb and postgres; "" means FindBinDir.
	BinDir string
	// Settings are extra postgresql.conf settings, passed as -c k=v; they
	// override the defaults (max_connections=200, shared_buffers=128MB).
	// Tests set fsync=off etc. here; fsync=off also makes initdb skip its sync.
	Settings map[string]string
	// HBA lines are placed before the default trust lines of pg_hba.conf.
	// pg_hba.conf is rewritten at every Start.
	HBA []string
	// Superuser is the bootstrap superuser (initdb -U); "" means "postgres".
	Superuser string
	// InitdbArgs are more arguments for initdb when it makes Dir/data
	// (e.g. "-k" for data checksums).
	InitdbArgs []string
	// BaseBackup, when not nil, makes a missing Dir/data a copy of a
	// running server instead of initdb: these are the arguments of
	// pg_basebackup besides -D (e.g. -d CONNINFO -R -S SLOT -X stream). The
	// copy is made in Dir/data.new and renamed Dir/data once complete, so an
	// interrupted one is started afresh the next time.
	BaseBackup []string
	// Log receives the server log; nil means the file Dir/postgres.log (appended to).
	Log io.Writer
	// Cgroup, when set, is the directory of a cgroup (v1 or v2, Linux only)
	// the postmaster starts in, so that the limits of that cgroup hold the
	// whole server: its children inherit the cgroup at fork. The cgroup must
	// exist. See startInCgroup for how the postmaster gets there before it
	// forks anything.
	Cgroup string
}

// Instance is a running PostgreSQL server started by Start.
// It is safe for concurrent use.
type Instance struct {
	Port      int    // TCP port on Host
	Host      string // Options.Host: "127.0.0.1" unless told otherwise
	SocketDir string // Unix socket directory; "" when Dir's path is too long for a socket
	DataDir   string
	Superuser string
	PID       int    // the postmaster's PID
	BinDir    string // where initdb and postgres were found
	LogPath   string // the server log file; "" when Options.Log was given

	cmd      *exec.Cmd
	done     chan struct{} // closed once the postmaster has exited and been reaped
	exitErr  error         // cmd.Wait's result; written before done is closed
	logFile  *os.File      // nil when Options.Log was given
	logStart int64         // size of logFile when this instance started
	tail     *tailBuffer   // last bytes of the log when Options.Log was given

	stopOnce sync.Once
	stopErr  error
}

// ErrNoBinaries is returned by FindBinDir when no PostgreSQL server is installed.
var ErrNoBinaries = errors.New("pginstance: PostgreSQL server binaries (initdb, postgres) not found on PATH nor under /usr/lib/postgresql/*/bin")

const (
	defaultReadyTimeout = 60 * time.Second
	maxPortAttempts     = 5
	tailSize            = 8 << 10
	// maxSocketPath is the longest Unix socket path we let Postgres create
	// (sun_path is 108 bytes on Linux, 104 on macOS, including the NUL).
	maxSocketPath = 103
)

// FindBinDir returns the directory holding initdb and postgres: the one of
// initdb found on PATH (symlinks resolved), else the newest
// /usr/lib/postgresql/<version>/bin (the Debian and Ubuntu layout).
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if d := filepath.Dir(p); isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(a, b int) bool { // newest version first
		return versionLess(filepath.Base(filepath.Dir(dirs[b])), filepath.Base(filepath.Dir(dirs[a])))
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

// versionLess orders "9.6" < "10" < "15" numerically, component by component.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for k := 0; k < len(as) && k < len(bs); k++ {
		x, errx := strconv.Atoi(as[k])
		y, erry := strconv.Atoi(bs[k])
		if errx != nil || erry != nil {
			if as[k] != bs[k] {
				return as[k] < bs[k]
			}
			continue
		}
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs is the account initdb and postgres run as: nil cred means this process's own.
type runAs struct {
	cred     *syscall.Credential
	uid, gid int
	name     string
}

func currentRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("pginstance: running as root, and PostgreSQL refuses to: need the unprivileged user \"postgres\" to run it as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("pginstance: user postgres has non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		uid:  uid, gid: gid, name: "postgres",
	}, nil
}

// Start brings up PostgreSQL as described by o: initdb if Dir/data has no
// PG_VERSION, then the postmaster, and returns once it accepts connections.
// Without a deadline on ctx, readiness is awaited for at most 60s. On failure
// the error includes the tail of the server log and nothing is left running.
func Start(ctx context.Context, o Options) (*Instance, error) {
	if o.Dir == "" {
		return nil, errors.New("pginstance: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("pginstance: %w", err)
	}
	binDir := o.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	su := o.Superuser
	if su == "" {
		su = "postgres"
	}
	as, err := currentRunAs()
	if err != nil {
		return nil, err
	}

	if err := mkdirAll0755(dir); err != nil {
		return nil, err
	}
	sockDir := filepath.Join(dir, "sock")
	if len(sockDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		sockDir = "" // too long for a Unix socket: TCP only
	} else if err := mkdirAll0755(sockDir); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	if as.cred != nil {
		if err := chownR(dir, as.uid, as.gid); err != nil {
			return nil, err
		}
		if err := checkTraversable(dir, as); err != nil {
			return nil, err
		}
	}

	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if o.BaseBackup != nil {
			err = baseBackup(ctx, binDir, dir, dataDir, o.BaseBackup, as)
		} else {
			err = initdb(ctx, binDir, dir, dataDir, su, o.Settings, o.InitdbArgs, as)
		}
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pginstance: %w", err)
	}
	if err := writeHBA(dataDir, o.HBA, as); err != nil {
		return nil, err
	}

	for attempt := 1; ; attempt++ {
		port := o.Port
		if port == 0 && attempt == 1 && o.PreferPort > 0 && portFree(o.PreferPort) {
			port = o.PreferPort
		} else if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		inst, err := launch(ctx, o, binDir, dir, dataDir, sockDir, su, port, as)
		if err == nil {
			return inst, nil
		}
		if o.Port == 0 && attempt < maxPortAttempts && errors.Is(err, errAddrInUse) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}
}

var errAddrInUse = errors.New("address already in use")

func launch(ctx context.Context, o Options, binDir, dir, dataDir, sockDir, su string, port int, as runAs) (*Instance, error) {
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	inst := &Instance{
		Port:      port,
		Host:      host,
		SocketDir: sockDir,
		DataDir:   dataDir,
		Superuser: su,
		BinDir:    binDir,
		done:      make(chan struct{}),
	}
	settings := map[string]string{
		"max_connections": "200",
		"shared_buffers":  "128MB",
	}
	for k, v := range o.Settings {
		settings[k] = v
	}
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=" + host,
		"-c", "unix_socket_directories=" + sockDir,
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}

	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = serverProcAttr(as.cred)
	// Backends inherit the log pipe (when Options.Log is a plain writer); if the
	// postmaster is killed they may hold it briefly: do not let Wait hang on them.
	cmd.WaitDelay = 5 * time.Second
	if o.Log == nil {
		inst.LogPath = filepath.Join(dir, "postgres.log")
		f, err := os.OpenFile(inst.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("pginstance: %w", err)
		}
		if fi, err := f.Stat(); err == nil {
			inst.logStart = fi.Size()
		}
		inst.logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		inst.tail = &tailBuffer{}
		w := &logWriter{tail: inst.tail, w: o.Log}
		cmd.Stdout, cmd.Stderr = w, w
	}
	inst.cmd = cmd
	release := func() {}
	if o.Cgroup != "" {
		var err error
		if release, err = startInCgroup(cmd, o.Cgroup, as); err != nil {
			inst.closeLog()
			return nil, err
		}
	}

	err := StartCmdIn(cmd, o.NetNS)
	release()
	if err != nil {
		inst.closeLog()
		return nil, fmt.Errorf("pginstance: starting postgres: %w", err)
	}
	inst.PID = cmd.Process.Pid
	go func() {
		inst.exitErr = cmd.Wait()
		close(inst.done)
	}()

	if err := inst.waitReady(ctx); err != nil {
		_ = inst.Stop()
		tail := inst.LogTail()
		if strings.Contains(tail, "Address already in use") || strings.Contains(tail, "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w (port %d): %v", errAddrInUse, port, err)
		}
		return nil, fmt.Errorf("pginstance: postgres in %s did not become ready: %w\n--- server log (tail) ---\n%s", dataDir, err, tail)
	}
	return inst, nil
}

// waitReady polls until the server answers a connection. It probes the
// instance's own Unix socket when there is one, so that it can never mistake
// another server on the same TCP port for this one.
func (i *Instance) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	host := i.Host
	if i.SocketDir != "" {
		host = i.SocketDir
	}
	connStr := fmt.Sprintf("host=%s port=%d dbname=postgres user=%s sslmode=disable connect_timeout=5",
		quoteConnValue(host), i.Port, quoteConnValue(i.Superuser))
	var lastErr error
	for {
		select {
		case <-i.done:
			return fmt.Errorf("postgres exited during startup: %v", i.exitErr)
		default:
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgconn.Connect(actx, connStr)
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03 cannot_connect_now: starting up
			return nil // the server answers; it refused us (e.g. an HBA line asks for a password)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last connection error: %v", ctx.Err(), lastErr)
		case <-i.done:
			return fmt.Errorf("postgres exited during startup: %v", i.exitErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ConnString returns a libpq keyword/value connection string for db as user
// over TCP: "host=HOST port=N dbname=db user=user sslmode=disable".
func (i *Instance) ConnString(db, user string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable",
		i.Host, i.Port, quoteConnValue(db), quoteConnValue(user))
}

// Addr returns the TCP address "HOST:port".
func (i *Instance) Addr() string { return net.JoinHostPort(i.Host, strconv.Itoa(i.Port)) }

// Done is closed once the postmaster has exited, whether through Stop or not.
func (i *Instance) Done() <-chan struct{} { return i.done }

// ExitErr is the postmaster's exit status once Done is closed (nil for a clean exit).
func (i *Instance) ExitErr() error {
	select {
	case <-i.done:
		return i.exitErr
	default:
		return nil
	}
}

// Stop shuts the server down: SIGINT (fast shutdown) to the postmaster, then
// SIGQUIT after 30s, then SIGKILL to its process group after 10 more seconds.
// It waits for the exit and never hangs on a server that already died (it
// then returns nil and reaps any backends left in the group). Idempotent:
// later calls return the first call's result.
func (i *Instance) Stop() error {
	i.stopOnce.Do(func() { i.stopErr = i.stop() })
	return i.stopErr
}

func (i *Instance) stop() error {
	defer i.closeLog()
	select {
	case <-i.done:
		// Died on its own: sweep whatever is left of its process group.
		_ = syscall.Kill(-i.PID, syscall.SIGKILL)
		return nil
	default:
	}
	_ = i.cmd.Process.Signal(syscall.SIGINT)
	if i.waitDone(30 * time.Second) {
		if i.exitErr != nil {
			return fmt.Errorf("pginstance: postgres (pid %d) exited with %v on fast shutdown", i.PID, i.exitErr)
		}
		return nil
	}
	_ = i.cmd.Process.Signal(syscall.SIGQUIT)
	if i.waitDone(10 * time.Second) {
		return fmt.Errorf("pginstance: postgres (pid %d) ignored fast shutdown for 30s; stopped by immediate shutdown", i.PID)
	}
	_ = syscall.Kill(-i.PID, syscall.SIGKILL)
	i.waitDone(10 * time.Second)
	return fmt.Errorf("pginstance: postgres (pid %d) did not shut down; killed", i.PID)
}

func (i *Instance) waitDone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-i.done:
		return true
	case <-t.C:
		return false
	}
}

func (i *Instance) closeLog() {
	if i.logFile != nil {
		_ = i.logFile.Close()
	}
}

// LogTail returns the last few kilobytes the server logged since this Start.
func (i *Instance) LogTail() string {
	if i.tail != nil {
		return i.tail.String()
	}
	if i.LogPath == "" {
		return ""
	}
	f, err := os.Open(i.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	from := i.logStart
	if fi.Size()-from > tailSize {
		from = fi.Size() - tailSize
	}
	b := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(b, from)
	return string(b[:n])
}

func initdb(ctx context.Context, binDir, dir, dataDir, su string, settings map[string]string, extra []string, as runAs) error {
	args := []string{"-D", dataDir, "-U", su, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if strings.EqualFold(settings["fsync"], "off") {
		args = append(args, "--no-sync")
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pginstance: initdb %s: %v\n%s", dataDir, err, out)
	}
	return nil
}

// baseBackup makes dataDir a copy of a running server with pg_basebackup,
// in dataDir.new first (removed if an earlier attempt left it), renamed
// dataDir once complete. dataDir must not exist, or be an empty directory.
func baseBackup(ctx context.Context, binDir, dir, dataDir string, extra []string, as runAs) error {
	tmp := dataDir + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("pginstance: %w", err)
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pginstance: %s has no PG_VERSION and is not empty: not a data directory to make a copy in: %w", dataDir, err)
	}
	args := append([]string{"-D", tmp}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_basebackup"), args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("pginstance: pg_basebackup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("pginstance: %w", err)
	}
	return nil
}

// serverEnv is this process's environment without the libpq/server variables
// that would override what Start asks for.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PGDATA=") || strings.HasPrefix(kv, "PGPORT=") ||
			strings.HasPrefix(kv, "PGHOST=") || strings.HasPrefix(kv, "PGOPTIONS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

const hbaDefaults = `local   all          all                  trust
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
host    replication  all   ::1/128        trust
`

func writeHBA(dataDir string, extra []string, as runAs) error {
	var b strings.Builder
	b.WriteString("# Written by belay (internal/pginstance) at every start: edits here are overwritten.\n")
	for _, l := range extra {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(hbaDefaults)
	p := filepath.Join(dataDir, "pg_hba.conf")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pginstance: %w", err)
	}
	if as.cred != nil {
		if err := os.Lchown(p, as.uid, as.gid); err != nil {
			return fmt.Errorf("pginstance: %w", err)
		}
	}
	return nil
}

// mkdirAll0755 creates dir and its missing parents with mode 0755 (not
// subject to umask), so that the postgres user can traverse them.
func mkdirAll0755(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("pginstance: %s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll0755(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pginstance: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("pginstance: %w", err)
	}
	return nil
}

func chownR(dir string, uid, gid int) error {
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("pginstance: giving %s to the postgres user: %w", dir, err)
	}
	return nil
}

// checkTraversable makes sure the account postgres runs as can reach dir.
func checkTraversable(dir string, as runAs) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pginstance: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			perm := fi.Mode().Perm()
			var can bool
			switch {
			case int(st.Uid) == as.uid:
				can = perm&0o100 != 0
			case int(st.Gid) == as.gid:
				can = perm&0o010 != 0
			default:
				can = perm&0o001 != 0
			}
			if !can {
				return fmt.Errorf("pginstance: PostgreSQL runs as user %s (we are root) and cannot reach %s: %s is mode %#o; "+
					"use a directory elsewhere (e.g. under /tmp) or allow traversal with: chmod o+x %s", as.name, dir, p, perm, p)
			}
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pginstance: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree says whether port can be listened on at 127.0.0.1 now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// quoteConnValue quotes a libpq keyword/value connection string value when needed.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\\=") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// logWriter copies the server log to the caller's writer and keeps its tail.
// It never fails: a failing caller writer must not make postgres see EPIPE.
type logWriter struct {
	tail *tailBuffer
	w    io.Writer
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.tail.Write(p)
	_, _ = l.w.Write(p)
	return len(p), nil
}

// tailBuffer keeps the last tailSize bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu sync.Mutex // guards b
	b  []byte
}

func (t *tailBuffer) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > tailSize {
		t.b = append(t.b[:0:0], t.b[len(t.b)-tailSize:]...)
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Rewind makes the stopped server of Dir a standby of the running server
// at source (a libpq connection string, as a superuser): pg_rewind brings
// Dir/data back to where its timeline left source's (a server that
// crashed is first recovered and shut down cleanly by pg_rewind itself),
// and writes standby.signal and source as its primary_conninfo (-R). The
// data directory must have data checksums or wal_log_hints = on. It runs
// as the user Start runs the server as. extra are more arguments of
// pg_rewind (--no-sync for a server run with fsync off).
func Rewind(ctx context.Context, binDir, dir, source string, extra ...string) error {
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return err
		}
	}
	as, err := currentRunAs()
	if err != nil {
		return err
	}
	args := append([]string{"-D", filepath.Join(dir, "data"), "--source-server", source, "-R"}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "pg_rewind"), args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: as.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pginstance: pg_rewind %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
