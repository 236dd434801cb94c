package config

// PgBouncerKeys are the [pgbouncer] settings PgBouncer's documentation of
// pgbouncer.ini lists (1.18 to 1.24): a key here that the caller does not
// apply is a real PgBouncer setting the caller lacks, not a typo.
var PgBouncerKeys = map[string]bool{
	// generic
	"logfile": true, "pidfile": true, "listen_addr": true, "listen_port": true, "unix_socket_dir": true,
	"unix_socket_mode": true, "unix_socket_group": true, "user": true, "pool_mode": true, "max_client_conn": true,
	"default_pool_size": true, "min_pool_size": true, "reserve_pool_size": true, "reserve_pool_timeout": true,
	"max_db_connections": true, "max_db_client_connections": true, "max_user_connections": true,
	"max_user_client_connections": true, "server_round_robin": true, "track_extra_parameters": true,
	"ignore_startup_parameters": true, "peer_id": true, "disable_pqexec": true, "application_name_add_host": true,
	"conffile": true, "service_name": true, "job_name": true, "stats_period": true, "max_prepared_statements": true,
	"scram_iterations": true,
	// authentication
	"auth_type": true, "auth_hba_file": true, "auth_ident_file": true, "auth_file": true, "auth_user": true,
	"auth_query": true, "auth_dbname": true, "auth_ldap_options": true,
	// logging
	"syslog": true, "syslog_ident": true, "syslog_facility": true, "log_connections": true, "log_disconnections": true,
	"log_pooler_errors": true, "log_stats": true, "verbose": true,
	// console access
	"admin_users": true, "stats_users": true,
	// sanity checks, timeouts
	"server_reset_query": true, "server_reset_query_always": true, "server_check_delay": true, "server_check_query": true,
	"server_fast_close": true, "server_lifetime": true, "server_idle_timeout": true, "server_connect_timeout": true,
	"server_login_retry": true, "client_login_timeout": true, "autodb_idle_timeout": true, "pool_idle_timeout": true,
	"dns_max_ttl": true, "dns_nxdomain_ttl": true, "dns_zone_check_period": true, "resolv_conf": true,
	"query_wait_notify": true, "login_notify_message": true, "suspend_timeout": true,
	// TLS
	"client_tls_sslmode": true, "client_tls_key_file": true, "client_tls_cert_file": true, "client_tls_ca_file": true,
	"client_tls_protocols": true, "client_tls_ciphers": true, "client_tls13_ciphers": true, "client_tls_ecdhcurve": true,
	"client_tls_dheparams": true, "server_tls_sslmode": true, "server_tls_ca_file": true, "server_tls_key_file": true,
	"server_tls_cert_file": true, "server_tls_protocols": true, "server_tls_ciphers": true, "server_tls13_ciphers": true,
	// dangerous timeouts
	"query_timeout": true, "query_wait_timeout": true, "cancel_wait_timeout": true, "client_idle_timeout": true,
	"idle_transaction_timeout": true, "transaction_timeout": true,
	// low-level network settings
	"pkt_buf": true, "max_packet_size": true, "listen_backlog": true, "sbuf_loopcnt": true, "so_reuseport": true,
	"tcp_defer_accept": true, "tcp_socket_buffer": true, "tcp_keepalive": true, "tcp_keepcnt": true,
	"tcp_keepidle": true, "tcp_keepintvl": true, "tcp_user_timeout": true,
}

// Nearest is the key of known closest to key in edit distance, if it is
// close enough to be a typo of it (at most 2 edits, and fewer than a third
// of key's length); "" otherwise. Of equally close keys, the first in known
// wins: pass them sorted for a stable answer.
func Nearest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD && 3*d < len(key) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
