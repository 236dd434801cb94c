package ha

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The orchestrator's I/O on the nodes: measuring one (probeSQL into a
// NodeView) and carrying out the decider's actions on it. Every function
// here blocks on a node; only the orchestrator's goroutine calls them.

// probeSQL measures a node in one round trip: whether it is a standby, its
// timeline (a primary's from its current WAL file, which a promotion
// changes at once; a standby's from the WAL it receives, else its last
// checkpoint), whether its WAL receiver streams (and heard from its
// upstream lately: see streamingSQL), its primary_conninfo, the
// WAL it received (a standby restarted without a primary has received
// nothing since: its replay position stands for what it has) or, on a
// primary, flushed, the WAL it replayed, its open client transactions
// other than this connection's, and its synchronous_standby_names (whether
// it is fenced, and whom a primary waits for).
const probeSQL = `SELECT pg_catalog.pg_is_in_recovery(),
	CASE WHEN pg_catalog.pg_is_in_recovery()
		THEN coalesce((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver), (pg_catalog.pg_control_checkpoint()).timeline_id)::int8
		ELSE ` + primaryTimelineSQL + ` END,
	coalesce((SELECT ` + streamingSQL + ` FROM pg_catalog.pg_stat_wal_receiver), false),
	pg_catalog.current_setting('primary_conninfo'),
	coalesce(CASE WHEN pg_catalog.pg_is_in_recovery()
		THEN greatest(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())
		ELSE pg_catalog.pg_current_wal_flush_lsn() END::text, ''),
	coalesce(pg_catalog.pg_last_wal_replay_lsn()::text, ''),
	(SELECT count(*) FROM pg_catalog.pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() AND xact_start IS NOT NULL),
	pg_catalog.current_setting('synchronous_standby_names')`

// primaryTimelineSQL is a primary's timeline: its current WAL file's,
// which a promotion changes at once (pg_walfile_name fails in recovery).
const primaryTimelineSQL = `('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int8`

// AskRunning asks the node over conn whether it is in recovery and, if it
// is not, its timeline (MustFence's inputs).
func AskRunning(ctx context.Context, conn *pgx.Conn) (inRecovery bool, tli uint32, err error) {
	var t int64
	err = conn.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery(),
		CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 ELSE `+primaryTimelineSQL+` END`).Scan(&inRecovery, &t)
	return inRecovery, uint32(t), err
}

// streamingSQL says, of pg_stat_wal_receiver's row, that a standby streams
// from a live upstream. A WAL receiver whose upstream froze or was cut off
// by a partition still says 'streaming' until wal_receiver_timeout passes
// (60 s by default) with nothing received; but it pings a silent upstream
// once half of that passed, and a live one answers at once. So a receiver
// that received nothing for half the timeout and half a second more has
// lost its upstream, which the failover's DeadPrimary rule must know long
// before the receiver gives up (pgcluster, and so belay up, set the
// timeout to 2 s: a frozen primary is seen in 1.5 s).
const streamingSQL = `status = 'streaming' AND (pg_catalog.current_setting('wal_receiver_timeout')::interval = '0'
		OR last_msg_receipt_time > pg_catalog.clock_timestamp()
			- pg_catalog.current_setting('wal_receiver_timeout')::interval / 2 - interval '500 ms')`

// probe measures the node at addr over conn into a NodeView (Name and Addr
// are the caller's). conninfo is its primary_conninfo.
func probe(ctx context.Context, conn *pgx.Conn) (v NodeView, conninfo string, err error) {
	var tli, busy int64
	var recv, replay string
	if err := conn.QueryRow(ctx, probeSQL).Scan(&v.InRecovery, &tli, &v.Streaming, &conninfo, &recv, &replay, &busy, &v.SyncNames); err != nil {
		return NodeView{}, "", err
	}
	v.Reachable, v.Timeline, v.Busy, v.Fenced = true, uint32(tli), int(busy), v.SyncNames == FenceStandby
	if recv != "" {
		v.Received, _ = ParseLSN(recv)
	}
	if replay != "" {
		v.Replayed, _ = ParseLSN(replay)
	}
	if v.InRecovery {
		v.Upstream = conninfoAddr(conninfo)
	}
	return v, conninfo, nil
}

// parseConninfo reads a libpq key=value connection string (single quotes and
// backslash escapes as libpq reads them). A URI is not read: belay writes
// primary_conninfo itself in key=value form.
func parseConninfo(s string) map[string]string {
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i >= len(s) {
			return out
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return out
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
			i++ // the closing quote
		} else {
			for i < len(s) && s[i] != ' ' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out[key] = val.String()
	}
}

// formatConninfo writes m as a conninfo string, keys sorted, every value
// quoted.
func formatConninfo(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := strings.ReplaceAll(strings.ReplaceAll(m[k], `\`, `\\`), `'`, `\'`)
		fmt.Fprintf(&b, "%s='%s'", k, v)
	}
	return b.String()
}

// conninfoAddr is the host:port a primary_conninfo connects to ("" for
// none), in the form of a node's Addr.
func conninfoAddr(conninfo string) string {
	m := parseConninfo(conninfo)
	host := m["host"]
	if host == "" {
		host = m["hostaddr"]
	}
	if host == "" {
		return ""
	}
	port := m["port"]
	if port == "" {
		port = "5432"
	}
	if strings.HasPrefix(host, "/") {
		return host + ":" + port
	}
	return net.JoinHostPort(host, port)
}

// followConninfo is the primary_conninfo that makes a standby follow the
// node at addr: the standby's own settings (user, application_name, ...)
// kept from what it had, host and port replaced.
func followConninfo(had, addr, application string) (string, error) {
	m := parseConninfo(had)
	host, port, err := splitAddr(addr)
	if err != nil {
		return "", err
	}
	delete(m, "hostaddr")
	m["host"], m["port"] = host, port
	if m["application_name"] == "" {
		m["application_name"] = application
	}
	return formatConninfo(m), nil
}

// splitAddr splits a node's Addr: host:port, or /socket/dir:port.
func splitAddr(addr string) (host, port string, err error) {
	if strings.HasPrefix(addr, "/") {
		i := strings.LastIndexByte(addr, ':')
		if i < 0 {
			return "", "", fmt.Errorf("ha: address %q has no port", addr)
		}
		return addr[:i], addr[i+1:], nil
	}
	return net.SplitHostPort(addr)
}

// alterSystem sets (or, for "", resets) settings on a node and reloads its
// configuration.
func alterSystem(ctx context.Context, conn *pgx.Conn, settings map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		sql := "ALTER SYSTEM RESET " + pgx.Identifier{k}.Sanitize()
		if v := settings[k]; v != "" {
			sql = "ALTER SYSTEM SET " + pgx.Identifier{k}.Sanitize() + " = '" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_reload_conf()")
	return err
}

// parseSyncNames reads synchronous_standby_names in the form
// syncStandbyNames writes, ANY k (names), names quoted or not; "" (no
// synchronous replication) is ANY 0 of none. Another form (FIRST, a bare
// list, '*') is not ok.
func parseSyncNames(s string) (quorum int, names []string, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil, true
	}
	if len(s) < 4 || !strings.EqualFold(s[:4], "ANY ") {
		return 0, nil, false
	}
	s = strings.TrimSpace(s[4:])
	open, end := strings.IndexByte(s, '('), len(s)-1
	if open < 0 || end < open || s[end] != ')' {
		return 0, nil, false
	}
	quorum, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil || quorum < 0 {
		return 0, nil, false
	}
	for _, n := range strings.Split(s[open+1:end], ",") {
		n = strings.TrimSpace(n)
		if len(n) >= 2 && n[0] == '"' && n[len(n)-1] == '"' {
			n = strings.ReplaceAll(n[1:len(n)-1], `""`, `"`)
		} else {
			n = strings.ToLower(n) // Postgres folds an unquoted name
		}
		if n == "" || n == "*" {
			return 0, nil, false
		}
		names = append(names, n)
	}
	return quorum, names, true
}

// syncStandbyNames is synchronous_standby_names for ANY quorum of names.
func syncStandbyNames(quorum int, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	return fmt.Sprintf("ANY %d (%s)", quorum, strings.Join(q, ", "))
}

// promote promotes the standby over c and waits until it is a primary
// (pg_promote's own wait polls every 100 ms; this one every 5 ms). A node
// already promoted is not an error.
func promote(ctx context.Context, c *pgx.Conn) error {
	var standby bool
	if err := c.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&standby); err != nil || !standby {
		return err
	}
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_catalog.pg_promote(false)").Scan(&ok); err != nil {
		return err
	}
	for {
		if err := c.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&standby); err != nil || !standby {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pg_promote: not promoted: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// fence makes the primary over c acknowledge no commit (its synchronous
// standby FenceStandby never comes), ends every client backend on it but
// c's, and waits until those that were in a transaction are gone: a
// backend that has not processed the reload yet, or whose session set
// synchronous_commit to local, could otherwise still commit. One that was
// not in a transaction is not waited for (its exit costs Postgres tens of
// milliseconds when a pool's worth go at once): once signalled it cannot
// begin a write that commits, since the executor checks for the signal
// before a row is written (it dies with FATAL 57P01); and one that began a
// transaction before the signal shows a transaction start, and is waited
// for.
func fence(ctx context.Context, c *pgx.Conn) error {
	if err := alterSystem(ctx, c, map[string]string{"synchronous_standby_names": FenceStandby, "synchronous_commit": "on"}); err != nil {
		return err
	}
	var pids []int32
	// (OFFSET 0 keeps the terminations out of the subquery's filter, which
	// must come first: this backend is not to be ended.)
	if err := c.QueryRow(ctx, `SELECT coalesce(array_agg(pid), '{}') FROM (SELECT pid FROM pg_catalog.pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid() OFFSET 0) a
		WHERE pg_catalog.pg_terminate_backend(pid)`).Scan(&pids); err != nil {
		return err
	}
	for len(pids) > 0 {
		var left int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1) AND xact_start IS NOT NULL", pids).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fencing: %d backends still alive: %w", left, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
