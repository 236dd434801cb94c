package admin

// PgBouncer's columns, as PgBouncer 1.18.0 sends them. They were recorded
// from its console (pgx, simple protocol, printing each FieldDescription's
// name and type OID), and TestColumnsMatchPgBouncer checks them against a
// live PgBouncer when one is installed. belay's own columns come after
// them (the Extra lists), so that tools reading columns by position or by
// name both work.
var (
	connColumns = []Column{
		text("type"), text("user"), text("database"), text("state"), text("addr"), int4("port"),
		text("local_addr"), int4("local_port"), text("connect_time"), text("request_time"),
		int4("wait"), int4("wait_us"), int4("close_needed"), text("ptr"), text("link"),
		int4("remote_pid"), text("tls"), text("application_name"),
	}
	statsColumns = []Column{
		text("database"),
		numeric("total_xact_count"), numeric("total_query_count"), numeric("total_received"), numeric("total_sent"),
		numeric("total_xact_time"), numeric("total_query_time"), numeric("total_wait_time"),
		numeric("avg_xact_count"), numeric("avg_query_count"), numeric("avg_recv"), numeric("avg_sent"),
		numeric("avg_xact_time"), numeric("avg_query_time"), numeric("avg_wait_time"),
	}
	statsPartColumns = []Column{
		text("database"), numeric("xact_count"), numeric("query_count"), numeric("bytes_received"),
		numeric("bytes_sent"), numeric("xact_time"), numeric("query_time"), numeric("wait_time"),
	}

	// PgBouncerColumns are PgBouncer's column lists by SHOW subject.
	PgBouncerColumns = map[string][]Column{
		"POOLS": {
			text("database"), text("user"), int4("cl_active"), int4("cl_waiting"),
			int4("cl_active_cancel_req"), int4("cl_waiting_cancel_req"), int4("sv_active"),
			int4("sv_active_cancel"), int4("sv_being_canceled"), int4("sv_idle"), int4("sv_used"),
			int4("sv_tested"), int4("sv_login"), int4("maxwait"), int4("maxwait_us"), text("pool_mode"),
		},
		"STATS":          statsColumns,
		"STATS_TOTALS":   statsPartColumns,
		"STATS_AVERAGES": statsPartColumns,
		"TOTALS":         {text("name"), numeric("value")},
		"SERVERS":        connColumns,
		"CLIENTS":        connColumns,
		"DATABASES": {
			text("name"), text("host"), int4("port"), text("database"), text("force_user"),
			int4("pool_size"), int4("min_pool_size"), int4("reserve_pool"), text("pool_mode"),
			int4("max_connections"), int4("current_connections"), int4("paused"), int4("disabled"),
		},
		"USERS":     {text("name"), text("pool_mode")},
		"LISTS":     {text("list"), int4("items")},
		"MEM":       {text("name"), int4("size"), int4("used"), int4("free"), int4("memtotal")},
		"VERSION":   {text("version")},
		"CONFIG":    {text("key"), text("value"), text("default"), text("changeable")},
		"DNS_HOSTS": {text("hostname"), int8c("ttl"), text("addrs")},
		"DNS_ZONES": {text("zonename"), int8c("serial"), int4("count")},
		// SHOW STATE came with PgBouncer 1.21; 1.18 has no such command.
		"STATE": {text("key"), text("value")},
	}

	// Extra are belay's columns after PgBouncer's, by SHOW subject.
	Extra = map[string][]Column{
		"POOLS": {
			int4("cl_pinned"), int4("sv_open"), int4("fair_share"), int4("demand"), int4("weight"), int4("node_limit"),
		},
		"SERVERS": {int4("pinned"), int4("prepared_statements"), int4("loop")},
		"CLIENTS": {int4("pinned"), int4("prepared_statements"), int4("loop")},
		"USERS":   {int4("weight"), int4("min_connections"), int4("max_connections")},
	}

	// belayColumns are the SHOW subjects PgBouncer lacks.
	belayColumns = map[string][]Column{
		"FAIRNESS": {
			text("database"), text("user"), int4("weight"), int4("min_connections"), int4("max_connections"),
			int4("demand"), int4("fair_share"), int4("held"), int4("waiting"), int4("budget"), int4("budget_open"), text("node"),
			int4("limit"), int4("max_db_connections"), text("limit_reason"),
		},
		"NODES": {
			text("shard"), text("node"), text("host"), int4("port"), text("role"), text("state"),
			int8c("lag_bytes"), int8c("lag_ms"), int8c("term"), int4("servers_open"), int8c("reads"), int8c("writes"),
			int4("in_flight"), text("lsn"), text("last_error"), int4("limit"), text("limit_reason"),
		},
		"SHARDS": {
			text("shard"), text("primary"), int8c("term"), int4("nodes"), text("names"),
		},
		"SHARDED_TABLES": {
			text("table"), text("kind"), text("key"), text("key_type"), int4("shards"),
		},
		"PREPARED_STATEMENTS": {
			text("ptr"), text("user"), text("database"), int4("statements"), int4("max_statements"),
		},
	}
)

// Columns is the full column list of SHOW subject: PgBouncer's, then
// belay's extras. ok is false for an unknown subject.
func Columns(subject string) (cols []Column, ok bool) {
	if c, ok := belayColumns[subject]; ok {
		return c, true
	}
	c, ok := PgBouncerColumns[subject]
	if !ok {
		return nil, false
	}
	return append(append([]Column(nil), c...), Extra[subject]...), true
}
