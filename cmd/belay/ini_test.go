package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/fairness"
)

// TestIniMapsOntoFlags: every setting a pgbouncer.ini can give belay lands
// on a real flag of belay proxy, with PgBouncer's meaning; flags on the
// command line win; what belay does not apply is reported.
func TestIniMapsOntoFlags(t *testing.T) {
	fs, _ := proxyFlagSet()
	for key, m := range iniFlags {
		if fs.Lookup(m.flag) == nil {
			t.Errorf("%s maps onto --%s, which belay proxy does not have", key, m.flag)
		}
	}

	dir := t.TempDir()
	t.Chdir(dir)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("users.ini", "[users]\nbatch = weight=1 max_user_connections=4\nweb = weight=3 min_connections=2 pool_mode=transaction\n")
	ini := write("pgbouncer.ini", `[databases]
app = host=10.0.0.5,10.0.0.6 port=5433
* = host=10.0.0.5,10.0.0.6 port=5433 dbname=*

[pgbouncer]
listen_addr = 127.0.0.1, ::1
listen_port = 7432
auth_type = plain
default_pool_size = 30
max_db_connections = 0
server_lifetime = 0
query_wait_timeout = 2.5
client_login_timeout = 0
so_reuseport = 1
logfile = /var/log/pgbouncer.log
unix_socket_mode = 0777
frobnicate = 3
log_connections = 1
defualt_pool_size = 3
pool_mode = session
admin_users = admin, ops
%include users.ini

[belay]
metrics_listen = 127.0.0.1:9127
adaptive_limit = 0
adaptive_limit_min = 3
`)
	fs, o := proxyFlagSet()
	if err := fs.Parse([]string{"--pool-size", "7"}); err != nil {
		t.Fatal(err)
	}
	warnings, err := applyIni(fs, ini)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"listen", *o.listen, "127.0.0.1:7432,[::1]:7432"},
		{"server (a host list)", *o.server, "10.0.0.5:5433,10.0.0.6:5433"},
		{"auth-type", *o.authType, "password"},
		{"pool-size (the command line wins)", *o.poolSize, 7},
		{"max-db-connections (PgBouncer's 0 is no limit)", *o.maxDB, -1},
		{"server-lifetime (PgBouncer's 0 uses a server once)", *o.lifetime, time.Nanosecond},
		{"query-wait-timeout", *o.queryWait, 2500 * time.Millisecond},
		{"client-login-timeout (0 is never)", *o.loginTimeout > 24*time.Hour, true},
		{"reuse-port", *o.reusePort, true},
		{"metrics-listen", *o.metricsAddr, "127.0.0.1:9127"},
		{"adaptive-limit (on by default)", *o.adaptive, false},
		{"adaptive-limit-min", *o.adaptiveMin, 3},
		{"logfile", *o.logFile, "/var/log/pgbouncer.log"},
		{"pool-mode", *o.poolMode, "session"},
		{"admin-users", strings.Join(splitList(*o.adminUsers), "|"), "admin|ops"},
		{"user-weight", o.userLimits.m, map[string]fairness.Limits{"batch": {Weight: 1, Max: 4}, "web": {Weight: 3, Min: 2}}},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	all := strings.Join(warnings, "\n")
	for _, want := range []string{
		"pgbouncer.ini:16: unix_socket_mode: PgBouncer setting not supported by belay; ignored (the socket is 0777)",
		"pgbouncer.ini:17: unknown setting frobnicate ignored\n", // no suggestion: nothing is close
		"pgbouncer.ini:18: log_connections: PgBouncer setting not supported by belay; ignored\n",
		"pgbouncer.ini:19: unknown setting defualt_pool_size ignored (did you mean default_pool_size?)",
		"users.ini:3: user web: a pool_mode per user is not applied by belay yet"} {
		if !strings.Contains(all+"\n", want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

func equal(a, b any) bool {
	if am, ok := a.(map[string]fairness.Limits); ok {
		bm := b.(map[string]fairness.Limits)
		if len(am) != len(bm) {
			return false
		}
		for k, v := range am {
			if bm[k] != v {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestIniErrors: an invalid value stops belay at start, naming the file,
// the line and the setting.
func TestIniErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"[databases]\na = host=h\n[pgbouncer]\ndefault_pool_size = many\n", `p.ini:4: default_pool_size: "many" is not an integer`},
		{"[databases]\na = host=h\n[pgbouncer]\nquery_wait_timeout = soon\n", "p.ini:4: query_wait_timeout:"},
		{"[databases]\na = host=h\n[pgbouncer]\nauth_type = any\n", "p.ini:4: auth_type: auth_type any is not supported"},
		{"[databases]\na = host=h port=1\nb = host=h port=2\n", "p.ini:3: database b is on h:2, another on h:1"},
		{"[databases]\na = host=h dbname=other\n", "belay does not rename databases yet"},
		{"[databases]\na = host=h1,h2,h3 port=1,2\n", "p.ini:2: database a: 3 hosts and 2 ports"},
		{"[pgbouncer]\nlisten_port = 1\n", "no [databases] section"},
		{"[databases]\na = host=h\n[pgbouncer]\nlisten_port = x\n", "p.ini:4: listen_port"},
		{"[databases]\na = host=h\n[users]\nu = weight=0\n", "the weight must be at least 1"},
		{"[databases]\na = host=h\n[pgbouncer]\npool_mode = statement\n", "p.ini:4: pool_mode: pool_mode statement is not supported"},
		{"[databases]\na = host=@pg port=5432\n", "p.ini:2: database a: host @pg: Unix sockets in the abstract namespace are not supported"},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "p.ini")
		if err := os.WriteFile(p, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		fs, _ := proxyFlagSet()
		_, err := applyIni(fs, p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// TestServerAddresses: a Unix socket directory is a server as PgBouncer's
// [databases] and libpq take it (host=/dir, with port= or 5432), and
// --server takes it alone (/run/postgresql) or with its port (/dir:port),
// in host lists too; both end as poolcore's "/dir:port".
func TestServerAddresses(t *testing.T) {
	for _, c := range []struct{ db, want string }{
		{"host=/run/postgresql", "/run/postgresql:5432"},
		{"host=/run/postgresql port=5433", "/run/postgresql:5433"},
		{"", "/tmp:5432"},
		{"host=/var/run/postgresql,10.0.0.6 port=5433", "/var/run/postgresql:5433,10.0.0.6:5433"},
		{"host=/a,/b port=1,2", "/a:1,/b:2"},
	} {
		p := filepath.Join(t.TempDir(), "p.ini")
		if err := os.WriteFile(p, []byte("[databases]\napp = "+c.db+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fs, o := proxyFlagSet()
		if _, err := applyIni(fs, p); err != nil {
			t.Errorf("%q: %v", c.db, err)
			continue
		}
		if got := serverAddr(*o.server); got != c.want {
			t.Errorf("[databases] app = %s: server %q, want %q", c.db, got, c.want)
		}
	}
	for flag, want := range map[string]string{
		"/run/postgresql":                "/run/postgresql:5432",
		"/run/postgresql:5433":           "/run/postgresql:5433",
		"127.0.0.1:5432":                 "127.0.0.1:5432",
		"db.local":                       "db.local:5432",
		"[::1]:5432":                     "[::1]:5432",
		"/tmp/a, 10.0.0.6:5433,/tmp/b:7": "/tmp/a:5432,10.0.0.6:5433,/tmp/b:7",
		"::1":                            "::1", // ambiguous: left for poolcore.Options.Check to refuse
	} {
		if got := serverAddr(flag); got != want {
			t.Errorf("--server %s: %q, want %q", flag, got, want)
		}
	}
}
