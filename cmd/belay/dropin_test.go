package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/lib/pq" // pgbouncer_exporter's driver
)

// dropIn is a belay proxy started from a PgBouncer configuration, as an
// operator replacing PgBouncer would start it.
type dropIn struct {
	t      *testing.T
	dir    string
	port   int
	pgPort int
	cmd    *exec.Cmd
	exited chan error
	conns  []*pgx.Conn // every client connection the test opened
}

// connect opens a client connection the test closes at the end, or
// SHUTDOWN WAIT_FOR_CLIENTS closes first.
func (d *dropIn) connect(url string) (*pgx.Conn, error) {
	c, err := pgx.Connect(context.Background(), url)
	if err == nil {
		d.conns = append(d.conns, c)
		d.t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

const dropInUsers = `"app" "app-secret"
"admin" "admin-secret"
"stats" "stats-secret"
`

// ini is a realistic pgbouncer.ini with default_pool_size = poolSize.
func (d *dropIn) ini(poolSize string) string {
	return fmt.Sprintf(`;; pgbouncer.ini as a PgBouncer operator writes it
[databases]
postgres = host=127.0.0.1 port=%d dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s/userlist.txt
admin_users = admin
stats_users = stats, monitoring
pool_mode = transaction
default_pool_size = %s
max_client_conn = 200
max_db_connections = 0
max_user_connections = 0
server_lifetime = 3600
server_idle_timeout = 600
server_connect_timeout = 15
query_wait_timeout = 120
client_login_timeout = 60
idle_transaction_timeout = 0
stats_period = 1
log_connections = 1
logfile = %s/belay.log
pidfile = %s/belay.pid
`, d.pgPort, d.port, d.dir, poolSize, d.dir, d.dir)
}

func (d *dropIn) write(name, text string) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.dir, name), []byte(text), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func startDropIn(t *testing.T, bin string) *dropIn {
	pg := pgtest.Shared(t)
	c, err := pgx.Connect(context.Background(), pg.ConnString("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"app", "admin", "stats"} {
		if _, err := c.Exec(context.Background(), "DO $$BEGIN CREATE ROLE "+r+" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$"); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(context.Background())
	d := &dropIn{t: t, dir: t.TempDir(), port: freePort(t), pgPort: pg.Port, exited: make(chan error, 1)}
	d.write("userlist.txt", dropInUsers)
	d.write("pgbouncer.ini", d.ini("2"))
	d.cmd = exec.Command(bin, "proxy", filepath.Join(d.dir, "pgbouncer.ini"))
	d.cmd.Stdout, d.cmd.Stderr = os.Stderr, os.Stderr
	if !testing.Verbose() {
		d.cmd.Stdout, d.cmd.Stderr = nil, nil
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", d.addr()); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("belay did not listen on %s; log:\n%s", d.addr(), d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

func (d *dropIn) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

func (d *dropIn) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "belay.log"))
	return string(b)
}

func (d *dropIn) url(user, pass, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, pass, d.addr(), db)
}

// console is an admin console connection (simple protocol, as psql).
func (d *dropIn) console(user, pass string) *pgx.Conn {
	d.t.Helper()
	c, err := d.connect(d.url(user, pass, "pgbouncer") + "&default_query_exec_mode=simple_protocol")
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// show runs SHOW subject and returns its column names and rows as maps.
func show(t *testing.T, c *pgx.Conn, subject string) ([]string, []map[string]string) {
	t.Helper()
	mrr := c.PgConn().Exec(context.Background(), "SHOW "+subject)
	defer mrr.Close()
	if !mrr.NextResult() {
		t.Fatalf("SHOW %s: %v", subject, mrr.Close())
	}
	rr := mrr.ResultReader()
	var cols []string
	for _, f := range rr.FieldDescriptions() { // pgconn's Result.Read drops them when there are no rows
		cols = append(cols, f.Name)
	}
	var rows []map[string]string
	for rr.NextRow() {
		m := map[string]string{}
		for i, v := range rr.Values() {
			m[cols[i]] = string(v)
		}
		rows = append(rows, m)
	}
	if _, err := rr.Close(); err != nil {
		t.Fatalf("SHOW %s: %v", subject, err)
	}
	return cols, rows
}

func poolRow(t *testing.T, c *pgx.Conn, user string) map[string]string {
	_, rows := show(t, c, "POOLS")
	for _, r := range rows {
		if r["user"] == user && r["database"] == "postgres" {
			return r
		}
	}
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func buildBelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "belay")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestPgBouncerDropIn starts belay from a realistic pgbouncer.ini and
// userlist and operates it as a PgBouncer operator would: the console's
// columns, RELOAD applying a new pool size to clients already waiting,
// PAUSE and RESUME around an open transaction, SET, a bad reload keeping the
// running configuration, pgbouncer_exporter's queries, and SHUTDOWN
// WAIT_FOR_CLIENTS.
func TestPgBouncerDropIn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Postgres and belay")
	}
	d := startDropIn(t, buildBelay(t))
	ctx := context.Background()
	adm := d.console("admin", "admin-secret")

	t.Run("columns", func(t *testing.T) {
		for _, subject := range []string{"POOLS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "SERVERS", "CLIENTS",
			"DATABASES", "USERS", "LISTS", "CONFIG", "MEM", "VERSION", "STATE", "TOTALS"} {
			got, _ := show(t, adm, subject)
			want := admin.PgBouncerColumns[subject]
			if len(got) < len(want) {
				t.Fatalf("SHOW %s: %d columns %v, PgBouncer has %d", subject, len(got), got, len(want))
			}
			for i, c := range want {
				if got[i] != c.Name {
					t.Errorf("SHOW %s column %d is %q, PgBouncer's is %q", subject, i, got[i], c.Name)
				}
			}
		}
	})

	// Four clients each open a transaction; with default_pool_size = 2,
	// two wait for a server.
	type client struct {
		c    *pgx.Conn
		tx   pgx.Tx
		err  error
		done chan struct{}
	}
	open := func(n int) []*client {
		var cs []*client
		for range n {
			c, err := d.connect(d.url("app", "app-secret", "postgres"))
			if err != nil {
				t.Fatal(err)
			}
			cl := &client{c: c, done: make(chan struct{})}
			go func() {
				defer close(cl.done)
				if cl.tx, cl.err = c.Begin(ctx); cl.err == nil {
					_, cl.err = cl.tx.Exec(ctx, "SELECT 1")
				}
			}()
			cs = append(cs, cl)
		}
		return cs
	}
	commit := func(cs []*client) {
		for _, cl := range cs {
			<-cl.done
			if cl.err != nil {
				t.Fatalf("a client's transaction failed: %v", cl.err)
			}
			if err := cl.tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("RELOAD applies a new pool size", func(t *testing.T) {
		cs := open(4)
		eventually(t, "two clients hold servers and two wait", func() bool {
			r := poolRow(t, adm, "app")
			return r != nil && r["sv_active"] == "2" && r["cl_waiting"] == "2"
		})
		d.write("pgbouncer.ini", d.ini("4"))
		if _, err := adm.Exec(ctx, "RELOAD"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the waiting clients get servers of the larger pool", func() bool {
			r := poolRow(t, adm, "app")
			return r["sv_active"] == "4" && r["cl_waiting"] == "0"
		})
		commit(cs) // no client was dropped
		_, dbs := show(t, adm, "DATABASES")
		for _, r := range dbs {
			if r["name"] == "postgres" && r["pool_size"] != "4" {
				t.Errorf("SHOW DATABASES pool_size %s after RELOAD, want 4", r["pool_size"])
			}
		}
	})

	t.Run("a bad RELOAD keeps the running configuration", func(t *testing.T) {
		d.write("pgbouncer.ini", strings.Replace(d.ini("4"), "default_pool_size = 4", "default_pool_size = lots", 1))
		_, err := adm.Exec(ctx, "RELOAD")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, "pgbouncer.ini:") {
			t.Fatalf("RELOAD of an invalid file: %v, want 22023 naming the file and line", err)
		}
		_, dbs := show(t, adm, "DATABASES")
		for _, r := range dbs {
			if r["name"] == "postgres" && r["pool_size"] != "4" {
				t.Errorf("pool_size %s after a failed RELOAD, want 4", r["pool_size"])
			}
		}
		d.write("pgbouncer.ini", d.ini("4"))
	})

	t.Run("SET", func(t *testing.T) {
		logBefore, _ := os.ReadFile(filepath.Join(d.dir, "belay.log"))
		if !strings.Contains(string(logBefore), "log_connections: PgBouncer setting not supported by belay") {
			t.Error("the log does not say log_connections is a PgBouncer setting belay does not support")
		}
		if _, err := adm.Exec(ctx, "SET default_pool_size = 3"); err != nil {
			t.Fatal(err)
		}
		// The log says what changed, once, and does not repeat the file's warnings.
		logAfter, _ := os.ReadFile(filepath.Join(d.dir, "belay.log"))
		added := strings.TrimSpace(strings.TrimPrefix(string(logAfter), string(logBefore)))
		if strings.Count(added, `msg="console SET" key=default_pool_size value=3`) != 1 ||
			strings.Contains(added, "level=WARN") || strings.Contains(added, "reloaded") {
			t.Errorf("the log after SET default_pool_size = 3, want one line saying so and no warning:\n%s", added)
		}
		_, cfg := show(t, adm, "CONFIG")
		found := false
		for _, r := range cfg {
			if r["key"] == "default_pool_size" {
				found = r["value"] == "3"
			}
		}
		if !found {
			t.Error("SHOW CONFIG does not show default_pool_size = 3 after SET")
		}
		if _, err := adm.Exec(ctx, "SET listen_port = 1"); err == nil {
			t.Error("SET listen_port succeeded; it needs a restart")
		}
		stats := d.console("stats", "stats-secret")
		var pe *pgconn.PgError
		if _, err := stats.Exec(ctx, "SET default_pool_size = 9"); !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("a stats user ran SET: %v", err)
		}
	})

	t.Run("PAUSE waits for transactions, RESUME serves the waiters", func(t *testing.T) {
		cs := open(1)
		<-cs[0].done
		paused := make(chan error, 1)
		pc := d.console("admin", "admin-secret")
		go func() { _, err := pc.Exec(ctx, "PAUSE"); paused <- err }()
		eventually(t, "SHOW STATE says paused", func() bool {
			_, st := show(t, adm, "STATE")
			return len(st) > 1 && st[1]["value"] == "yes"
		})
		select {
		case err := <-paused:
			t.Fatalf("PAUSE returned (%v) while a transaction was open", err)
		default:
		}
		commit(cs)
		if err := <-paused; err != nil {
			t.Fatalf("PAUSE: %v", err)
		}
		if r := poolRow(t, adm, "app"); r["sv_active"] != "0" || r["sv_idle"] != "0" {
			t.Fatalf("servers open after PAUSE: %v", r)
		}
		c, err := d.connect(d.url("app", "app-secret", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { _, err := c.Exec(ctx, "SELECT 1"); got <- err }()
		eventually(t, "the query waits while paused", func() bool { return poolRow(t, adm, "app")["cl_waiting"] == "1" })
		if _, err := adm.Exec(ctx, "RESUME"); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("the query after RESUME: %v", err)
		}
	})

	t.Run("signals: SIGHUP reloads, SIGUSR1 pauses, SIGUSR2 resumes", func(t *testing.T) {
		d.write("pgbouncer.ini", d.ini("5"))
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "SIGHUP applied default_pool_size = 5", func() bool {
			_, dbs := show(t, adm, "DATABASES")
			for _, r := range dbs {
				if r["name"] == "postgres" {
					return r["pool_size"] == "5"
				}
			}
			return false
		})
		state := func() string {
			_, st := show(t, adm, "STATE")
			return st[1]["value"] // the "paused" row
		}
		_ = d.cmd.Process.Signal(syscall.SIGUSR1)
		eventually(t, "SIGUSR1 paused", func() bool { return state() == "yes" })
		_ = d.cmd.Process.Signal(syscall.SIGUSR2)
		eventually(t, "SIGUSR2 resumed", func() bool { return state() == "no" })
	})

	t.Run("DISABLE, ENABLE, RECONNECT, WAIT_CLOSE, KILL_CLIENT, KILL", func(t *testing.T) {
		var pe *pgconn.PgError
		mustExec := func(q string) {
			t.Helper()
			if _, err := adm.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		mustExec("DISABLE postgres")
		if _, err := pgx.Connect(ctx, d.url("app", "app-secret", "postgres")); !errors.As(err, &pe) || pe.Code != "55000" {
			t.Fatalf("a login to a disabled database: %v, want 55000", err)
		}
		mustExec("ENABLE postgres")
		c, err := d.connect(d.url("app", "app-secret", "postgres"))
		if err != nil {
			t.Fatalf("a login after ENABLE: %v", err)
		}
		pid := func() int {
			var n int
			if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := pid()
		mustExec("RECONNECT postgres")
		mustExec("WAIT_CLOSE postgres")
		if after := pid(); after == before {
			t.Fatalf("the server %d survived RECONNECT and WAIT_CLOSE", before)
		}
		// KILL_CLIENT with the ptr SHOW CLIENTS gives.
		victim, err := d.connect(d.url("app", "app-secret", "postgres") + "&application_name=victim")
		if err != nil {
			t.Fatal(err)
		}
		var ptr string
		_, clients := show(t, adm, "CLIENTS")
		for _, r := range clients {
			if r["application_name"] == "victim" {
				ptr = r["ptr"]
			}
		}
		if ptr == "" {
			t.Fatalf("SHOW CLIENTS does not list the client: %v", clients)
		}
		mustExec("KILL_CLIENT " + ptr)
		if _, err := victim.Exec(ctx, "SELECT 1"); err == nil {
			t.Fatal("a client survived KILL_CLIENT")
		}
		mustExec("KILL postgres")
		if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
			t.Fatal("a client survived KILL")
		}
		if r := poolRow(t, adm, "app"); r["sv_active"] != "0" || r["sv_idle"] != "0" {
			t.Fatalf("servers left after KILL: %v", r)
		}
		mustExec("RESUME postgres") // KILL leaves the database paused, as in PgBouncer
		if _, err := d.connect(d.url("app", "app-secret", "postgres")); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.Exec(ctx, "KILL nosuchdb"); !errors.As(err, &pe) || pe.Code != "3D000" {
			t.Fatalf("KILL of an unknown database: %v, want 3D000", err)
		}
	})

	t.Run("pgbouncer_exporter's queries", func(t *testing.T) {
		exporterQueries(t, d.url("stats", "stats-secret", "pgbouncer"))
	})

	t.Run("SHUTDOWN WAIT_FOR_CLIENTS", func(t *testing.T) {
		c, err := d.connect(d.url("app", "app-secret", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := adm.Exec(ctx, "SHUTDOWN WAIT_FOR_CLIENTS"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "new clients are refused", func() bool {
			_, err := pgx.Connect(ctx, d.url("app", "app-secret", "postgres"))
			return err != nil
		})
		for i := range 3 { // the connected client is still served
			var n int
			if err := c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
				t.Fatalf("a connected client during SHUTDOWN WAIT_FOR_CLIENTS: %v", err)
			}
		}
		select {
		case err := <-d.exited:
			t.Fatalf("belay exited (%v) with clients connected", err)
		case <-time.After(200 * time.Millisecond):
		}
		for _, cc := range d.conns { // every client leaves; the last one's exit ends belay
			cc.Close(ctx)
		}
		select {
		case err := <-d.exited:
			d.exited <- err // for the cleanup
			if err != nil {
				t.Fatalf("belay exited with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("belay did not exit once its clients left")
		}
		if _, err := os.Stat(filepath.Join(d.dir, "belay.pid")); !os.IsNotExist(err) {
			t.Errorf("pidfile left behind: %v", err)
		}
	})
}

// exporterQueries runs the queries of prometheus-community/pgbouncer_exporter
// (collector.go: SHOW VERSION, LISTS, CONFIG, and its metric maps over SHOW
// DATABASES, STATS_TOTALS, POOLS, after a SHOW STATS ping) through lib/pq and
// database/sql, as it does, and converts every value as it does: label
// columns to strings, metric columns to float64.
func exporterQueries(t *testing.T, url string) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.Query("SHOW STATS")
	if err != nil {
		t.Fatalf("the exporter's ping: %v", err)
	}
	rows.Close()
	var version string
	cols := mustQuery(t, db, "SHOW VERSION;", func(r *sql.Rows) error { return r.Scan(&version) })
	if len(cols) != 1 || cols[0] != "version" || version == "" {
		t.Errorf("SHOW VERSION: columns %v, version %q", cols, version)
	}
	var list string
	var items sql.RawBytes
	cols = mustQuery(t, db, "SHOW LISTS;", func(r *sql.Rows) error {
		if err := r.Scan(&list, &items); err != nil {
			return err
		}
		_, err := strconv.ParseFloat(string(items), 64)
		return err
	})
	if len(cols) != 2 {
		t.Errorf("SHOW LISTS has %d columns, the exporter wants 2", len(cols))
	}
	var key, def, changeable string
	var value sql.RawBytes
	seen := map[string]bool{}
	cols = mustQuery(t, db, "SHOW CONFIG;", func(r *sql.Rows) error {
		if err := r.Scan(&key, &value, &def, &changeable); err != nil {
			return err
		}
		if key == "max_client_conn" || key == "max_user_connections" {
			seen[key] = true
			if _, err := strconv.ParseFloat(string(value), 64); err != nil {
				return fmt.Errorf("%s = %q: %w", key, value, err)
			}
		}
		return nil
	})
	if len(cols) != 4 || !seen["max_client_conn"] || !seen["max_user_connections"] {
		t.Errorf("SHOW CONFIG: columns %v, saw %v", cols, seen)
	}
	// The exporter's metric maps: label columns, then numeric ones.
	for subject, m := range map[string]struct{ labels, metrics []string }{
		"DATABASES": {[]string{"name", "host", "port", "database", "force_user", "pool_mode"},
			[]string{"pool_size", "reserve_pool", "max_connections", "current_connections", "paused", "disabled"}},
		"STATS_TOTALS": {[]string{"database"}, []string{"query_count", "query_time", "bytes_received", "bytes_sent", "wait_time", "xact_count", "xact_time"}},
		"POOLS": {[]string{"database", "user"}, []string{"cl_active", "cl_active_cancel_req", "cl_waiting", "cl_waiting_cancel_req",
			"sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait"}},
	} {
		r, err := db.Query("SHOW " + subject + ";")
		if err != nil {
			t.Errorf("SHOW %s: %v", subject, err)
			continue
		}
		names, _ := r.Columns()
		idx := map[string]int{}
		for i, n := range names {
			idx[n] = i
		}
		n := 0
		for r.Next() {
			vals := make([]any, len(names))
			ptrs := make([]any, len(names))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatalf("SHOW %s: %v", subject, err)
			}
			n++
			for _, l := range m.labels {
				i, ok := idx[l]
				if !ok {
					t.Errorf("SHOW %s has no column %s", subject, l)
					continue
				}
				switch vals[i].(type) {
				case string, int64, nil:
				default:
					t.Errorf("SHOW %s: label %s is a %T, which the exporter cannot use", subject, l, vals[i])
				}
			}
			for _, c := range m.metrics {
				i, ok := idx[c]
				if !ok {
					t.Errorf("SHOW %s has no column %s", subject, c)
					continue
				}
				if _, ok := exporterFloat(vals[i]); !ok {
					t.Errorf("SHOW %s: %s = %v (%T) does not convert to a float", subject, c, vals[i], vals[i])
				}
			}
		}
		if err := r.Err(); err != nil {
			t.Errorf("SHOW %s: %v", subject, err)
		}
		r.Close()
		if n == 0 {
			t.Errorf("SHOW %s: no rows", subject)
		}
	}
}

// exporterFloat is the exporter's dbToFloat64.
func exporterFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case []byte:
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case nil:
		return 0, true
	}
	return 0, false
}

func mustQuery(t *testing.T, db *sql.DB, q string, scan func(*sql.Rows) error) []string {
	t.Helper()
	r, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer r.Close()
	cols, _ := r.Columns()
	for r.Next() {
		if err := scan(r); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return cols
}
