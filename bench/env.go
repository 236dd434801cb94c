package bench

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/internal/buildvcs"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/testcert"
	"github.com/jackc/pgx/v5/pgconn"
)

// Target is one way of reaching Postgres that a scenario is run against.
type Target struct {
	Name  string // "direct", "pgbouncer", "pgbouncer-session", "belay"
	Label string // as shown in the report
	Host  string
	Port  int
	DB    string
	// PID is the proxy process whose CPU and memory are measured; 0 for direct.
	PID int
	// Metrics is belay's Prometheus endpoint ("" for the other targets).
	Metrics string
	// LimitMetrics is the Prometheus endpoint of the process that keeps
	// the node's adaptive limit, when it is not Metrics' (the two tiers:
	// the pooler's; a gateway leaves the limit to it).
	LimitMetrics string
	// Parts, for a target of several processes (belay's two tiers), is
	// each one's PID: the CPU is measured for each and summed.
	Parts []Part
	// Second is a second front process beside the one at Port (belay's
	// second gateway), which the idle scenario spreads clients over.
	Second *Part
}

// Part is one process of a target of several.
type Part struct {
	Tier string // "gateway", "pooler"
	PID  int
	Port int // where it listens, for a Second
}

// Addr is "host:port".
func (t Target) Addr() string { return fmt.Sprintf("%s:%d", t.Host, t.Port) }

// limitMetrics is where t's node limit is read ("" when t has none).
func (t Target) limitMetrics() string {
	if t.LimitMetrics != "" {
		return t.LimitMetrics
	}
	return t.Metrics
}

// Target names.
const (
	Direct           = "direct"
	PgBouncer        = "pgbouncer"
	PgBouncerSession = "pgbouncer-session"
	Belay            = "belay"
	BelayTiers       = "belay-tiers" // belay gateway in front of belay pooler
)

// benchDB is the database pgbench initializes and every scenario uses.
const benchDB = "pgbench"

// pgSettings are the PostgreSQL settings of the benchmark server. Durability
// is off: the bench measures the proxies, not the disk.
func pgSettings(maxConns int) map[string]string {
	return map[string]string{
		"max_connections":    strconv.Itoa(maxConns),
		"shared_buffers":     "256MB",
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_wal_size":       "4GB",
		"checkpoint_timeout": "30min",
	}
}

// startPostgres starts the server and initializes pgbench's tables at
// scale. cgroup, when set, is the cgroup directory the postmaster starts
// in (see pginstance.Options.Cgroup).
func startPostgres(ctx context.Context, dir, cgroup string, maxConns, scale int, pgbenchBin string, logf func(string, ...any)) (*pginstance.Instance, error) {
	inst, err := pginstance.Start(ctx, pginstance.Options{Dir: dir, Settings: pgSettings(maxConns), Cgroup: cgroup})
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.Connect(ctx, inst.ConnString("postgres", inst.Superuser))
	if err == nil {
		err = conn.Exec(ctx, "CREATE DATABASE "+benchDB).Close()
		_ = conn.Close(ctx)
	}
	if err != nil {
		_ = inst.Stop()
		return nil, fmt.Errorf("bench: creating database %s: %w", benchDB, err)
	}
	logf("pgbench -i -s %d (PostgreSQL on %s)", scale, inst.Addr())
	cmd := pgbenchInit(ctx, pgbenchBin, inst.Host, inst.Port, inst.Superuser, scale)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = inst.Stop()
		return nil, fmt.Errorf("bench: pgbench -i: %v\n%s", err, out)
	}
	return inst, nil
}

// pgbenchInit is `pgbench -i` of benchDB at scale on host:port as user.
func pgbenchInit(ctx context.Context, pgbenchBin, host string, port int, user string, scale int) *exec.Cmd {
	cmd := exec.CommandContext(ctx, pgbenchBin, "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", host, "-p", strconv.Itoa(port), "-U", user, benchDB)
	cmd.Env = clientEnv()
	return cmd
}

// serverVersion returns SHOW server_version.
func serverVersion(ctx context.Context, inst *pginstance.Instance) string {
	conn, err := pgconn.Connect(ctx, inst.ConnString("postgres", inst.Superuser))
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "SHOW server_version").ReadAll()
	if err != nil || len(res) == 0 || len(res[0].Rows) == 0 {
		return "unknown"
	}
	return string(res[0].Rows[0][0])
}

// findPgBouncer returns the pgbouncer binary, installing Debian's package
// with apt-get when it is missing and install is set.
func findPgBouncer(ctx context.Context, install bool, logf func(string, ...any)) (string, error) {
	return findOrInstall(ctx, "pgbouncer", "pgbouncer", "PgBouncer", install, logf)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// pgbouncerVersion is the first line of `pgbouncer --version`.
func pgbouncerVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}

// pgbouncerIni is the configuration of the harness's PgBouncer: two entries
// for the same database, "pgbench" in transaction mode and
// "pgbench_session" in session mode. Session mode gives each client a server
// for its whole connection, so its pool is sized for every client of the
// session-mode scenarios (sessionPoolSize): with fewer servers than clients,
// pgbench -M prepared deadlocks in it (a thread blocks in one client's
// PQprepare while its other clients hold the servers).
//
// maxDB, when > 0, is the budget of the "pgbench" entry: its
// max_db_connections, the server connections of all its users' pools together.
func pgbouncerIni(dir string, port, pgPort, poolSize, maxClients, maxDB int, cert testcert.Pair) string {
	budget := ""
	if maxDB > 0 {
		budget = fmt.Sprintf(" max_db_connections=%d", maxDB)
	}
	return fmt.Sprintf(`;; written by belay bench
[databases]
%[6]s = host=127.0.0.1 port=%[3]d dbname=%[6]s%[10]s
%[6]s_session = host=127.0.0.1 port=%[3]d dbname=%[6]s pool_mode=session pool_size=%[9]d


[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[2]d
unix_socket_dir = %[1]s
auth_type = trust
auth_file = %[1]s/userlist.txt
pool_mode = transaction
default_pool_size = %[4]d
max_client_conn = %[5]d
listen_backlog = 4096
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = %[1]s/pgbouncer.log
client_tls_sslmode = allow
client_tls_cert_file = %[7]s
client_tls_key_file = %[8]s
`, dir, port, pgPort, poolSize, maxClients, benchDB, cert.CertFile, cert.KeyFile, sessionPoolSize, budget)
}

// sessionPoolSize is the server pool of PgBouncer's session-mode entry: at
// least the clients of any scenario with a session row.
const sessionPoolSize = 200

// startPgBouncer writes its configuration under dir and starts it. users
// are the user names of its auth_file (trust authentication still wants
// them listed); maxDB is as for pgbouncerIni.
func startPgBouncer(ctx context.Context, bin, dir string, pgPort, poolSize, maxClients, maxDB int, users []string, cert testcert.Pair, pl Placement) (*process, int, error) {
	cred, uid, gid, err := postgresCred()
	if err != nil {
		return nil, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	var userlist strings.Builder
	for _, u := range users {
		fmt.Fprintf(&userlist, "\"%s\" \"\"\n", u)
	}
	files := map[string]string{
		ini:                                pgbouncerIni(dir, port, pgPort, poolSize, maxClients, maxDB, cert),
		filepath.Join(dir, "userlist.txt"): userlist.String(),
	}
	for p, s := range files {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			return nil, 0, err
		}
	}
	if cred != nil {
		for _, p := range []string{dir, ini, filepath.Join(dir, "userlist.txt"), filepath.Dir(cert.KeyFile), cert.CertFile, cert.KeyFile} {
			if err := os.Lchown(p, uid, gid); err != nil {
				return nil, 0, err
			}
		}
	}
	p, err := startProcess("pgbouncer", bin, []string{ini}, clientEnv(), filepath.Join(dir, "stderr.log"), cred, pl)
	if err != nil {
		return nil, 0, err
	}
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port), benchDB); err != nil {
		_ = p.Stop()
		return nil, 0, fmt.Errorf("%w\n--- pgbouncer log ---\n%s", err, readTail(filepath.Join(dir, "pgbouncer.log"), 2000))
	}
	return p, port, nil
}

// startBelay starts `exe proxy` in front of pgAddr, with its metrics on
// metricsPort, its log in dir/belay.log; maxDB, when > 0, is its
// --max-db-connections; extra are more flags (a BelayVariant's). Without
// a certificate (cert.CertFile "") it serves no TLS.
func startBelay(ctx context.Context, exe string, env []string, dir, pgAddr string, poolSize, maxDB int, cpuProfile string, cert testcert.Pair, metricsPort int, pl Placement, extra ...string) (*process, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	args := []string{"proxy", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--server", pgAddr,
		"--pool-size", strconv.Itoa(poolSize), "--log-level", "warn", "--auth-type", "trust",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	if cert.CertFile != "" {
		args = append(args, "--tls-mode", "allow", "--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile)
	}
	if maxDB > 0 {
		args = append(args, "--max-db-connections", strconv.Itoa(maxDB))
	}
	if cpuProfile != "" {
		args = append(args, "--cpu-profile", cpuProfile)
	}
	args = append(args, extra...)
	logPath := filepath.Join(dir, "belay.log")
	p, err := startProcess("belay", exe, args, append(clientEnv(), env...), logPath, nil, pl)
	if err != nil {
		return nil, 0, err
	}
	if err := waitServing(ctx, p, fmt.Sprintf("127.0.0.1:%d", port), benchDB); err != nil {
		_ = p.Stop()
		return nil, 0, fmt.Errorf("%w\n--- belay log ---\n%s", err, readTail(logPath, 2000))
	}
	return p, port, nil
}

// waitServing polls addr until a login and SELECT 1 succeed (or p exits).
func waitServing(ctx context.Context, p *process, addr, db string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("bench: %s exited at startup: %v", p.name, p.err)
		}
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := dialRaw(qctx, addr, "postgres", db, 0)
		if err == nil {
			err = c.query(qctx, "SELECT 1")
			c.Close()
		}
		qcancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s not serving on %s: %v", p.name, addr, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}

// belayCommit is the commit belay was built from: the one exe recorded
// (go build in a checkout records it, unless -buildvcs=false), else the
// checkout in dir's (gitCommit).
func belayCommit(exe, dir string) string {
	if bi, err := buildinfo.ReadFile(exe); err == nil {
		if vcs := buildvcs.Of(bi); vcs.Revision != "" {
			if vcs.Modified {
				return vcs.Short() + "+dirty"
			}
			return vcs.Short()
		}
	}
	return gitCommit(dir)
}

// gitCommit describes the belay source in dir: short commit, "+dirty" when
// the tree has changes; "unknown" outside a git checkout.
func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "+dirty"
	}
	return c
}

// cpuModel is the "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotal is MemTotal of /proc/meminfo, e.g. "24.0 GiB".
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "unknown"
}

// proxyCert makes the certificate PgBouncer and belay present in the TLS
// scenarios, signed by a throwaway CA, under dir.
func proxyCert(dir string) (testcert.Pair, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return testcert.Pair{}, err
	}
	ca, err := testcert.NewCA(dir)
	if err != nil {
		return testcert.Pair{}, err
	}
	return ca.IssueServer("bench", "127.0.0.1", "localhost")
}

// planCacheCounts reads belay's plan cache hits and misses from its
// Prometheus endpoint.
func planCacheCounts(ctx context.Context, url string) (hits, misses uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "belay_plan_cache_hits_total":
			hits = uint64(n)
		case "belay_plan_cache_misses_total":
			misses = uint64(n)
		}
	}
	return hits, misses, nil
}
