package admin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestColumnsMatchPgBouncer starts the installed PgBouncer (no Postgres is
// needed for its console) and compares the names and types of every SHOW
// subject belay mirrors with what it sends. belay's extra columns come after
// PgBouncer's, so only PgBouncer's prefix is compared.
func TestColumnsMatchPgBouncer(t *testing.T) {
	bin := findPgBouncer()
	if bin == "" {
		if os.Getenv("BELAY_COMPAT_REQUIRE") != "" {
			t.Fatal("pgbouncer is not installed (make deps installs it)")
		}
		t.Skip("pgbouncer is not installed")
	}
	dir, err := os.MkdirTemp("", "belay-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o777) // PgBouncer runs as nobody when we are root
	port := freePort(t)
	ini := fmt.Sprintf(`[databases]
app = host=127.0.0.1 port=1 dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
admin_users = admin
pidfile = %s/pgbouncer.pid
`, port, dir, dir)
	for name, body := range map[string]string{"pgbouncer.ini": ini, "users.txt": `"admin" ""` + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("postgres://admin@127.0.0.1:%d/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol", port)
	var conn *pgx.Conn
	for {
		if conn, err = pgx.Connect(ctx, url); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("PgBouncer did not come up: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SHOW VERSION").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("comparing with %s", version)
	for subject, want := range PgBouncerColumns {
		if subject == "STATE" && strings.HasPrefix(version, "PgBouncer 1.1") {
			continue // SHOW STATE came with 1.21
		}
		rows, err := conn.Query(ctx, "SHOW "+subject)
		if err != nil {
			t.Errorf("SHOW %s on PgBouncer: %v", subject, err)
			continue
		}
		fds := rows.FieldDescriptions()
		rows.Close()
		var got, exp []string
		for _, f := range fds {
			got = append(got, fmt.Sprintf("%s:%d", f.Name, f.DataTypeOID))
		}
		for _, c := range want {
			exp = append(exp, fmt.Sprintf("%s:%d", c.Name, c.OID))
		}
		// A newer PgBouncer may add columns at the end; belay must send
		// the ones 1.18 sent, in its order.
		if len(got) < len(exp) || strings.Join(got[:len(exp)], " ") != strings.Join(exp, " ") {
			t.Errorf("SHOW %s:\n PgBouncer: %s\n belay:     %s", subject, strings.Join(got, " "), strings.Join(exp, " "))
		}
	}
}

func findPgBouncer() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
