package main

import (
	"flag"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/internal/config"
)

// iniFlags maps a [pgbouncer] (or [belay]) key to the flag of `belay proxy`
// it sets, and converts PgBouncer's value to the flag's.
var iniFlags = map[string]struct {
	flag    string
	convert func(string) (string, error)
}{
	"unix_socket_dir":           {"unix-socket-dir", same},
	"auth_type":                 {"auth-type", authType},
	"auth_file":                 {"auth-file", same},
	"auth_hba_file":             {"auth-hba-file", same},
	"auth_user":                 {"auth-user", same},
	"auth_query":                {"auth-query", same},
	"auth_dbname":               {"auth-dbname", same},
	"default_pool_size":         {"pool-size", integer},
	"max_client_conn":           {"max-client-conn", integer},
	"max_db_connections":        {"max-db-connections", maxDBConnections},
	"server_lifetime":           {"server-lifetime", serverLifetime},
	"server_idle_timeout":       {"server-idle-timeout", seconds},
	"server_connect_timeout":    {"server-connect-timeout", seconds},
	"query_wait_timeout":        {"query-wait-timeout", seconds},
	"client_login_timeout":      {"client-login-timeout", zeroIsForever},
	"idle_transaction_timeout":  {"idle-transaction-timeout", seconds},
	"so_reuseport":              {"reuse-port", boolean},
	"client_tls_sslmode":        {"tls-mode", same},
	"client_tls_cert_file":      {"tls-cert", same},
	"client_tls_key_file":       {"tls-key", same},
	"client_tls_ca_file":        {"tls-ca", same},
	"server_tls_sslmode":        {"server-tls-mode", same},
	"server_tls_ca_file":        {"server-tls-ca-file", same},
	"server_tls_cert_file":      {"server-tls-cert-file", same},
	"server_tls_key_file":       {"server-tls-key-file", same},
	"max_prepared_statements":   {"max-prepared-statements", integer},
	"admin_users":               {"admin-users", same},
	"stats_users":               {"stats-users", same},
	"stats_period":              {"stats-period", seconds},
	"pool_mode":                 {"pool-mode", poolMode},
	"max_user_connections":      {"max-user-connections", integer},
	"pidfile":                   {"pidfile", same},
	"logfile":                   {"logfile", same},
	"server_reset_query":        {"server-reset-query", same},
	"server_check_query":        {"server-check-query", same},
	"server_check_delay":        {"server-check-delay", seconds},
	"min_pool_size":             {"min-pool-size", integer},
	"reserve_pool_size":         {"reserve-pool-size", integer},
	"reserve_pool_timeout":      {"reserve-pool-timeout", seconds},
	"client_idle_timeout":       {"client-idle-timeout", seconds},
	"ignore_startup_parameters": {"ignore-startup-parameters", same},
	"query_timeout":             {"query-timeout", seconds},
	// belay's own, in [belay]
	"metrics_listen":     {"metrics-listen", same},
	"event_loops":        {"event-loops", integer},
	"plan_cache_bytes":   {"plan-cache-bytes", integer},
	"log_level":          {"log-level", same},
	"log_format":         {"log-format", same},
	"max_buffered_bytes": {"max-buffered-bytes", integer},
	"max_message_size":   {"max-message-size", integer},
	"passfile":           {"passfile", same},
	"adaptive_limit":     {"adaptive-limit", boolean},
	"adaptive_limit_min": {"adaptive-limit-min", integer},
}

// iniNotApplied are PgBouncer settings belay has a reason not to apply:
// reported with that reason.
var iniNotApplied = map[string]string{
	"client_tls_protocols": "Go's TLS defaults apply: TLS 1.2 and 1.3", "server_tls_protocols": "Go's TLS defaults apply: TLS 1.2 and 1.3",
	"client_tls_ciphers": "Go's secure cipher suites apply", "client_tls13_ciphers": "Go's secure cipher suites apply",
	"server_tls_ciphers": "Go's secure cipher suites apply", "server_tls13_ciphers": "Go's secure cipher suites apply",
	"client_tls_ecdhcurve": "Go's TLS defaults apply", "client_tls_dheparams": "Go's TLS defaults apply",
	"unix_socket_mode": "the socket is 0777", "unix_socket_group": "the socket keeps belay's group",
	"user":      "belay does not change its user: start it as the user it should run as",
	"peer_id":   "use --peer-id and --peers",
	"log_stats": "belay logs each database's averages every stats_period",
}

// iniBuiltIn are PgBouncer settings whose job belay does by itself: they
// are accepted without a warning.
var iniBuiltIn = map[string]string{
	// belay tracks every parameter a client sets (SET, startup, RESET) and
	// replays it on whichever server the client gets.
	"track_extra_parameters": "belay tracks every session parameter",
}

// notApplied says why belay ignores key: a PgBouncer setting belay does not
// support (with its reason, if it has one), or an unknown key, most likely a
// typo of a known one.
func notApplied(key string) string {
	if config.PgBouncerKeys[key] {
		msg := key + ": PgBouncer setting not supported by belay; ignored"
		if why := iniNotApplied[key]; why != "" {
			msg += " (" + why + ")"
		}
		return msg
	}
	msg := "unknown setting " + key + " ignored"
	if near := config.Nearest(key, knownKeys()); near != "" {
		msg += " (did you mean " + near + "?)"
	}
	return msg
}

// knownKeys are the keys of [pgbouncer] and [belay], sorted.
func knownKeys() []string {
	var out []string
	for k := range config.PgBouncerKeys {
		out = append(out, k)
	}
	for k := range iniFlags {
		if !config.PgBouncerKeys[k] {
			out = append(out, k) // [belay]'s own
		}
	}
	sort.Strings(out)
	return out
}

// applyIni sets from a pgbouncer.ini every flag of fs the command line did
// not set, and returns warnings for the keys it does not apply. An invalid
// value is an error naming its file and line.
func applyIni(fs *flag.FlagSet, path string) (warnings []string, err error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return applyFile(fs, f)
}

// applyFile is applyIni of a file already read.
func applyFile(fs *flag.FlagSet, f *config.File) (warnings []string, err error) {
	onCommandLine := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { onCommandLine[fl.Name] = true })
	set := func(name, value string, pos config.Pos) error {
		if onCommandLine[name] {
			return nil
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("%s: %w", pos, err)
		}
		return nil
	}
	var listenAddr, listenPort *config.Entry
	for _, s := range f.Sections {
		switch s.Name {
		case "pgbouncer", "belay":
		case "databases", "users":
			continue
		default:
			warnings = append(warnings, fmt.Sprintf("%s: unknown section [%s] ignored", s.Entries[0].Pos, s.Name))
			continue
		}
		for i := range s.Entries {
			e := &s.Entries[i]
			switch m, ok := iniFlags[e.Key]; {
			case e.Key == "listen_addr":
				listenAddr = e
			case e.Key == "listen_port":
				listenPort = e
			case ok:
				v, err := m.convert(e.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", e.Pos, e.Key, err)
				}
				if err := set(m.flag, v, e.Pos); err != nil {
					return nil, err
				}
			case iniBuiltIn[e.Key] != "":
			default:
				warnings = append(warnings, fmt.Sprintf("%s: %s", e.Pos, notApplied(e.Key)))
			}
		}
	}
	if listenAddr != nil || listenPort != nil {
		listen, pos, err := listenFrom(listenAddr, listenPort)
		if err != nil {
			return nil, err
		}
		if err := set("listen", listen, pos); err != nil {
			return nil, err
		}
	}
	server, pos, err := serverFrom(f.Section("databases"))
	if err != nil {
		return nil, err
	}
	if err := set("server", server, pos); err != nil {
		return nil, err
	}
	for _, e := range f.Section("users") {
		w, warning, err := userWeight(e)
		if err != nil {
			return nil, err
		}
		if warning != "" {
			warnings = append(warnings, warning)
		}
		if err := set("user-weight", w, e.Pos); err != nil {
			return nil, err
		}
	}
	return warnings, nil
}

// listenFrom is --listen from listen_addr (a list, * for every address) and
// listen_port (PgBouncer's default 6432).
func listenFrom(addr, port *config.Entry) (string, config.Pos, error) {
	p, pos := "6432", config.Pos{}
	if port != nil {
		if _, err := config.Int(port.Value); err != nil {
			return "", port.Pos, fmt.Errorf("%s: listen_port: %w", port.Pos, err)
		}
		p, pos = port.Value, port.Pos
	}
	hosts := []string{"127.0.0.1"}
	if addr != nil {
		hosts, pos = config.List(addr.Value), addr.Pos
	}
	var out []string
	for _, h := range hosts {
		if h == "*" {
			h = "0.0.0.0"
		}
		out = append(out, net.JoinHostPort(h, p))
	}
	return strings.Join(out, ","), pos, nil
}

// serverFrom is --server from [databases]: belay serves one Postgres node
// per process, so every entry must name the same host and port (a host
// starting with '/' is a Unix socket directory), and a database is not
// renamed or logged into as another user.
func serverFrom(dbs []config.Entry) (string, config.Pos, error) {
	if len(dbs) == 0 {
		return "", config.Pos{}, fmt.Errorf("no [databases] section: belay needs the server's address")
	}
	server := ""
	for _, e := range dbs {
		kv, err := config.ParseConnString(e.Value)
		if err != nil {
			return "", e.Pos, fmt.Errorf("%s: %w", e.Pos, err)
		}
		host, port := kv["host"], kv["port"]
		if host == "" {
			host = "/tmp" // libpq's and PgBouncer's default: a Unix socket
		}
		if port == "" {
			port = "5432"
		}
		for k, v := range kv {
			switch k {
			case "host", "port":
			case "dbname":
				if v != e.Key && e.Key != "*" {
					return "", e.Pos, fmt.Errorf("%s: database %s is dbname=%s: belay does not rename databases yet", e.Pos, e.Key, v)
				}
			default:
				return "", e.Pos, fmt.Errorf("%s: database %s: %s= is not supported by belay yet", e.Pos, e.Key, k)
			}
		}
		addr, err := hostList(host, port)
		if err != nil {
			return "", e.Pos, fmt.Errorf("%s: database %s: %w", e.Pos, e.Key, err)
		}
		if server != "" && addr != server {
			return "", e.Pos, fmt.Errorf("%s: database %s is on %s, another on %s: belay serves one server per process", e.Pos, e.Key, addr, server)
		}
		server = addr
	}
	return server, dbs[0].Pos, nil
}

// serverAddr is --server with a port on every host: a Unix socket directory
// given alone (--server /run/postgresql, as libpq's host=) gets Postgres's
// 5432, as does a host name; "/dir:port" and "host:port" are kept. A host
// list is done host by host. What it cannot read it returns as it is, for
// poolcore.Options.Check to refuse.
func serverAddr(server string) string {
	var out []string
	for _, a := range strings.Split(server, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil && a != "" && !strings.ContainsAny(a, ":[]") {
			if l, err := hostList(a, "5432"); err == nil {
				a = l
			}
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}

// hostList is --server from libpq's host and port, either of which may be a
// comma-separated list (one port for every host, or one port per host), as
// PgBouncer's host lists are: belay takes the hosts in turn. A host starting
// with '/' is a Unix socket directory; one starting with '@' (PgBouncer's
// abstract-namespace socket) is refused.
func hostList(host, port string) (string, error) {
	hosts, ports := strings.Split(host, ","), strings.Split(port, ",")
	if len(ports) != 1 && len(ports) != len(hosts) {
		return "", fmt.Errorf("%d hosts and %d ports: give one port, or one per host", len(hosts), len(ports))
	}
	var addrs []string
	for i, h := range hosts {
		h, p := strings.TrimSpace(h), strings.TrimSpace(ports[min(i, len(ports)-1)])
		if h == "" {
			h = "/tmp"
		}
		if strings.HasPrefix(h, "@") {
			return "", fmt.Errorf("host %s: Unix sockets in the abstract namespace are not supported by belay", h)
		}
		if strings.HasPrefix(h, "/") {
			addrs = append(addrs, h+":"+p)
		} else {
			addrs = append(addrs, net.JoinHostPort(h, p))
		}
	}
	return strings.Join(addrs, ","), nil
}

// userWeight is a [users] line as --user-weight: belay reads weight=,
// min_connections= and max_user_connections= (the most servers of the user).
func userWeight(e config.Entry) (w, warning string, err error) {
	kv, err := config.ParseConnString(e.Value)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", e.Pos, err)
	}
	nums := map[string]int{"weight": 1}
	for k, v := range kv {
		switch k {
		case "weight", "min_connections", "max_user_connections":
			n, err := config.Int(v)
			if err != nil {
				return "", "", fmt.Errorf("%s: user %s: %s: %w", e.Pos, e.Key, k, err)
			}
			nums[k] = n
		case "pool_mode":
			if _, err := poolMode(v); err != nil {
				return "", "", fmt.Errorf("%s: user %s: %w", e.Pos, e.Key, err)
			}
			warning = fmt.Sprintf("%s: user %s: a pool_mode per user is not applied by belay yet: the [pgbouncer] pool_mode applies to every user", e.Pos, e.Key)
		default:
			return "", "", fmt.Errorf("%s: user %s: %s= is not supported by belay", e.Pos, e.Key, k)
		}
	}
	return fmt.Sprintf("%s=%d:%d:%d", e.Key, nums["weight"], nums["min_connections"], nums["max_user_connections"]), warning, nil
}

func same(v string) (string, error) { return v, nil }

func integer(v string) (string, error) {
	n, err := config.Int(v)
	return strconv.Itoa(n), err
}

func boolean(v string) (string, error) {
	b, err := config.Bool(v)
	return strconv.FormatBool(b), err
}

func seconds(v string) (string, error) {
	d, err := config.Seconds(v)
	return d.String(), err
}

// zeroIsForever: PgBouncer's 0 disables a timeout that belay always has.
func zeroIsForever(v string) (string, error) {
	d, err := config.Seconds(v)
	if d == 0 {
		d = 100 * 365 * 24 * time.Hour
	}
	return d.String(), err
}

// serverLifetime: PgBouncer's server_lifetime = 0 uses a server once.
func serverLifetime(v string) (string, error) {
	d, err := config.Seconds(v)
	if d == 0 {
		d = time.Nanosecond // closed at its first release
	}
	return d.String(), err
}

// maxDBConnections: PgBouncer's 0 is no limit (belay's -1); belay's own
// default, read from the server, applies when the key is absent.
func maxDBConnections(v string) (string, error) {
	n, err := config.Int(v)
	if n == 0 {
		n = -1
	}
	return strconv.Itoa(n), err
}

// poolMode accepts PgBouncer's session and transaction modes.
func poolMode(v string) (string, error) {
	switch v {
	case "session", "transaction":
		return v, nil
	case "statement":
		return "", fmt.Errorf("pool_mode statement is not supported by belay: use transaction (session state follows the client) or session")
	}
	return "", fmt.Errorf("pool_mode %q: use session or transaction", v)
}

// configuredDatabases are the names [databases] lists (not "*").
func configuredDatabases(f *config.File) []string {
	var out []string
	for _, e := range f.Section("databases") {
		if e.Key != "*" {
			out = append(out, e.Key)
		}
	}
	return out
}

// authType maps PgBouncer's auth_type words to belay's.
func authType(v string) (string, error) {
	switch v {
	case "plain":
		return "password", nil
	case "any":
		return "", fmt.Errorf("auth_type any is not supported by belay")
	}
	return v, nil
}
