package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/belaydb/belay/admin"
	"github.com/belaydb/belay/internal/config"
	"github.com/belaydb/belay/loop"
)

// settings is the configuration of a belay proxy started with a file. It
// serves the admin console's SHOW CONFIG, SET and RELOAD (and SIGHUP):
// a reload reads the command line and the file again, exactly as at start,
// and hands the result to the running proxy, which keeps its old
// configuration if the new one is invalid; a SET changes one key of the
// configuration as last read, without reading the file. Safe for
// concurrent use.
type settings struct {
	args []string // belay proxy's arguments: flags, then the file

	mu    sync.Mutex
	sets  [][2]string  // SET key=value since the last reload, in order
	file  *config.File // the file as last read (at start, by a reload)
	fs    *flag.FlagSet
	p     *loop.Proxy
	peers map[int]string
	log   *slog.Logger
}

// reloadable are the keys a reload or SET applies to the running proxy;
// changing the others needs a restart (SHOW CONFIG's "changeable").
var reloadable = map[string]bool{
	"default_pool_size": true, "max_client_conn": true, "max_db_connections": true, "max_user_connections": true,
	"adaptive_limit": true, "adaptive_limit_min": true,
	"server_lifetime": true, "server_idle_timeout": true, "server_connect_timeout": true, "query_wait_timeout": true,
	"client_login_timeout": true, "idle_transaction_timeout": true, "auth_file": true, "admin_users": true,
	"stats_users": true, "stats_period": true, "server_reset_query": true, "server_check_query": true,
	"server_check_delay": true, "min_pool_size": true, "reserve_pool_size": true, "reserve_pool_timeout": true,
	"client_idle_timeout": true, "ignore_startup_parameters": true, "query_timeout": true,
}

// build parses the arguments and, with reread (at start, on a reload), reads
// the file again, then applies the SETs since the last reload.
func (st *settings) build(reread bool) (*flag.FlagSet, *proxyOptions, []string, error) {
	fs, o := proxyFlagSet()
	if err := fs.Parse(st.args); err != nil {
		return nil, nil, nil, err
	}
	f := st.file
	if reread || f == nil {
		var err error
		if f, err = config.Load(fs.Arg(0)); err != nil {
			return nil, nil, nil, err
		}
	}
	warnings, err := applyFile(fs, f)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, kv := range st.sets {
		if err := setKey(fs, kv[0], kv[1]); err != nil {
			return nil, nil, nil, err
		}
	}
	st.fs, st.file = fs, f
	return fs, o, warnings, nil
}

// databases are the names the file's [databases] lists.
func (st *settings) databases() []string { return configuredDatabases(st.file) }

// setKey sets the flag of a PgBouncer key from a PgBouncer value.
func setKey(fs *flag.FlagSet, key, value string) error {
	m, ok := iniFlags[key]
	if !ok {
		return errors.New(notApplied(key))
	}
	v, err := m.convert(value)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if err := fs.Set(m.flag, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// started records the running proxy, for reloads.
func (st *settings) started(p *loop.Proxy, peers map[int]string, log *slog.Logger) {
	st.mu.Lock()
	st.p, st.peers, st.log = p, peers, log
	st.mu.Unlock()
}

// Reload reads the file again; SETs made since the last reload are dropped,
// as in PgBouncer. It logs what the file has that belay does not apply.
func (st *settings) Reload() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	saved := st.sets
	st.sets = nil
	warnings, err := st.applyLocked(true)
	if err != nil {
		st.sets = saved
		st.log.Error("reload failed; the running configuration stays", "err", err)
		return err
	}
	for _, w := range warnings {
		st.log.Warn(w)
	}
	st.log.Info("configuration reloaded", "file", st.fs.Arg(0))
	return nil
}

// Set changes one setting until the next reload.
func (st *settings) Set(key, value string) error {
	key = strings.ToLower(key)
	if _, ok := iniFlags[key]; !ok {
		return errors.New(notApplied(key))
	}
	if !reloadable[key] {
		return fmt.Errorf("%s cannot be changed while belay runs: it needs a restart", key)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sets = append(st.sets, [2]string{key, value})
	if _, err := st.applyLocked(false); err != nil {
		st.sets = st.sets[:len(st.sets)-1]
		return err
	}
	st.log.Info("console SET", "key", key, "value", value)
	return nil
}

// applyLocked builds the configuration (reading the file again with
// reread) and hands it to the proxy; it returns the file's warnings.
func (st *settings) applyLocked(reread bool) ([]string, error) {
	oldFS, oldFile := st.fs, st.file
	_, o, warnings, err := st.build(reread)
	if err == nil {
		cfg := o.config(st.peers, st.log)
		cfg.Settings = st
		cfg.Databases = st.databases()
		err = st.p.Reconfigure(cfg)
	}
	if err != nil {
		st.fs, st.file = oldFS, oldFile
		return nil, err
	}
	return warnings, nil
}

// Config lists every key belay reads, with PgBouncer's value formats.
func (st *settings) Config() []admin.ConfigItem {
	st.mu.Lock()
	fs := st.fs
	st.mu.Unlock()
	var out []admin.ConfigItem
	for key, m := range iniFlags {
		fl := fs.Lookup(m.flag)
		if fl == nil {
			continue
		}
		out = append(out, admin.ConfigItem{Key: key, Value: pgbValue(fl.Value.String()), Default: pgbValue(fl.DefValue),
			Changeable: reloadable[key]})
	}
	if fl := fs.Lookup("listen"); fl != nil {
		out = append(out, admin.ConfigItem{Key: "listen_addr", Value: fl.Value.String(), Default: fl.DefValue})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// pgbValue shows a flag value as PgBouncer shows its settings: durations in
// seconds, booleans as 1/0.
func pgbValue(v string) string {
	switch v {
	case "true":
		return "1"
	case "false":
		return "0"
	}
	if d, err := time.ParseDuration(v); err == nil && strings.ContainsAny(v, "hms") {
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	}
	return v
}
