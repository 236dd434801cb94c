package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/jackc/pgx/v5"
)

// Options describe the cluster Start brings up.
type Options struct {
	// Dir holds one directory per node (Dir/pg0, Dir/pg1, ...); created if
	// missing. Required.
	Dir string
	// Prefix begins every node's name ("": "pg"): the nodes are Prefix0
	// (the primary Start makes), Prefix1, ... A node's name is also its
	// replication slot's and its application_name, so Prefix is lower-case
	// letters, digits and underscores, starting with a letter; the clusters
	// of several shards sharing one Dir and one etcd need prefixes of their
	// own (belay up --shards: s0pg, s1pg, ...).
	Prefix string
	// Replicas is the number of streaming replicas besides the primary.
	Replicas int
	// BinDir holds initdb, postgres and pg_basebackup; "" means
	// pginstance.FindBinDir.
	BinDir string
	// Settings are more postgresql.conf settings for every node (tests set
	// fsync=off here). Those pgcluster keeps per role in
	// postgresql.auto.conf may not be set here: see managedSettings.
	Settings map[string]string
	// Cgroup, if not nil, names the cgroup directory each node starts in
	// (pginstance.Options.Cgroup), by the node's name (pg0, pg1, ...); ""
	// for none. The cgroups are the caller's: it makes and removes them.
	Cgroup func(node string) string
	// Primary names the node that is the primary ("": pg0, the one Start
	// makes with initdb). After a failover another node is; a cluster
	// started again must start that one as its primary.
	Primary string
	// Place, if not nil, says where each node lives on the network, by
	// its name (pg0, pg1, ...), when Start first meets it: the address it
	// listens on and is reached at (by the other nodes and by belay), the
	// network namespace its postmaster runs in, and the pg_hba.conf lines
	// that let the others in (pgtest.NewNetCluster puts each node in a
	// network namespace of its own with internal/netns). nil: every node
	// on 127.0.0.1, in this process's namespace.
	Place func(node string) (Placement, error)
	// Logf, if not nil, is told what Start does (initdb, pg_basebackup, a
	// port that changed, a replica made again).
	Logf func(format string, args ...any)
}

// Placement is where a node lives on the network (Options.Place).
type Placement struct {
	// Host is the address the node listens on and is reached at ("":
	// 127.0.0.1).
	Host string
	// NetNS is the path of the network namespace its postmaster runs in
	// (pginstance.Options.NetNS); "": this process's.
	NetNS string
	// HBA are pg_hba.conf lines before the defaults (which trust only
	// 127.0.0.1 and the Unix socket): those that let the other nodes
	// (replication, pg_rewind) and belay in.
	HBA []string
}

// Cluster is a primary and its replicas started by Start.
type Cluster struct {
	Dir   string
	nodes []*Node // nodes[0] is the primary Start makes
	opts  Options
	su    string // the superuser pgcluster connects as
	// ourSlot matches the names of the slots pgcluster makes: its nodes'
	// names, Prefix and a number.
	ourSlot *regexp.Regexp

	pmu sync.Mutex // guards pri
	pri int        // the index of the primary in nodes (SetPrimary moves it)
}

// Node is one PostgreSQL server of the cluster.
type Node struct {
	Name string // pg0, pg1, ...
	Dir  string // Cluster.Dir/Name

	c     *Cluster
	place Placement  // set by Start before any use, never changed
	mu    sync.Mutex // guards the fields below; held while the server starts or stops
	// inst is the running server, nil while it is stopped.
	inst *pginstance.Instance
	port int // the port it listens on, or last listened on
}

// managedSettings are set per role through ALTER SYSTEM; Options.Settings
// (on the command line, where they would override ALTER SYSTEM) must leave
// them alone.
var managedSettings = []string{"synchronous_standby_names", "synchronous_commit", "primary_conninfo", "primary_slot_name"}

// replicationSettings are those of every node of a cluster with replicas.
var replicationSettings = map[string]string{
	"wal_level":             "replica",
	"max_wal_senders":       "16",
	"max_replication_slots": "16",
	"wal_log_hints":         "on",
	"hot_standby":           "on",
	"hot_standby_feedback":  "on",
	// pg_rewind (Rejoin) reads the old primary's WAL back to the last
	// checkpoint before the fork; the old primary's own checkpoints after
	// it (its shutdown's, before the rewind) remove what no slot holds, and
	// its standbys' slots hold only what came after they stopped, at the
	// fork. The last 256 MB stay.
	"wal_keep_size": "256MB",
	// A standby pings a silent primary after 1 s and gives the stream up
	// after 2 s (60 s by default): the orchestrator fails over a primary
	// only once no standby streams from it (ha's DeadPrimary), so this
	// bounds how long a frozen or cut-off primary takes to be declared
	// dead (see ha's streamingSQL).
	"wal_receiver_timeout": "2s",
}

const maxReplicas = 9 // names stay one digit; slots and senders stay under 16

// startTimeout bounds the start of one node (initdb or pg_basebackup
// included) when ctx has no deadline.
const startTimeout = 5 * time.Minute

// Start starts the cluster described by o: the primary, then each replica
// (made with pg_basebackup if it has no data yet), then the synchronous
// replication settings on the primary. It returns once every node accepts
// connections; WaitStreaming waits for the replicas to stream. On failure
// nothing is left running.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("pgcluster: Options.Dir is required")
	}
	if o.Prefix == "" {
		o.Prefix = "pg"
	}
	if !validPrefix.MatchString(o.Prefix) {
		return nil, fmt.Errorf("pgcluster: node name prefix %q: lower-case letters, digits and underscores, starting with a letter", o.Prefix)
	}
	if o.Replicas < 0 || o.Replicas > maxReplicas {
		return nil, fmt.Errorf("pgcluster: %d replicas: from 0 to %d", o.Replicas, maxReplicas)
	}
	for _, k := range managedSettings {
		if _, ok := o.Settings[k]; ok {
			return nil, fmt.Errorf("pgcluster: %s is set per role by pgcluster, not in Options.Settings", k)
		}
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if o.BinDir == "" {
		if o.BinDir, err = pginstance.FindBinDir(); err != nil {
			return nil, err
		}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	c := &Cluster{Dir: dir, opts: o, su: "postgres",
		ourSlot: regexp.MustCompile("^" + regexp.QuoteMeta(o.Prefix) + "[0-9]+$")}
	for i := 0; i <= o.Replicas; i++ {
		name := o.Prefix + strconv.Itoa(i)
		n := &Node{Name: name, Dir: filepath.Join(dir, name), c: c, port: readPort(filepath.Join(dir, name))}
		if o.Place != nil {
			if n.place, err = o.Place(name); err != nil {
				return nil, fmt.Errorf("pgcluster: placing %s: %w", name, err)
			}
		}
		c.nodes = append(c.nodes, n)
	}
	if o.Primary != "" {
		if err := c.SetPrimary(o.Primary); err != nil {
			return nil, err
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout*time.Duration(1+o.Replicas))
		defer cancel()
	}
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context) error {
	p := c.Primary()
	if err := p.Start(ctx); err != nil {
		return err
	}
	slots, err := c.keepSlots(ctx)
	if err != nil {
		return err
	}
	for _, r := range c.Replicas() {
		if _, err := os.Stat(filepath.Join(r.Dir, "data", "PG_VERSION")); err == nil && !slots[r.Name] {
			c.opts.Logf("%s: the primary keeps no slot for it (a new primary, or it was left out): making it again", r.Name)
			if err := os.RemoveAll(filepath.Join(r.Dir, "data")); err != nil {
				return fmt.Errorf("pgcluster: %w", err)
			}
		}
		if err := c.createSlot(ctx, r.Name); err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			return err
		}
	}
	return c.setSynchronous(ctx)
}

// Primary is the primary: pg0, until SetPrimary says another is.
func (c *Cluster) Primary() *Node {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.nodes[c.pri]
}

// SetPrimary records that the node named name is the primary now (a
// failover promoted it): replicas started or rejoined from now on follow
// it.
func (c *Cluster) SetPrimary(name string) error {
	i := slices.IndexFunc(c.nodes, func(n *Node) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("pgcluster: no node %s", name)
	}
	c.pmu.Lock()
	c.pri = i
	c.pmu.Unlock()
	return nil
}

// IsPrimary says whether n is the cluster's primary.
func (n *Node) IsPrimary() bool { return n.c.Primary() == n }

// Replicas are pg1..pgN.
func (c *Cluster) Replicas() []*Node {
	p := c.Primary()
	return slices.DeleteFunc(slices.Clone(c.nodes), func(n *Node) bool { return n == p })
}

// Nodes are every node, the primary first.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node is the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Superuser is the role pgcluster connects as (initdb's bootstrap superuser).
func (c *Cluster) Superuser() string { return c.su }

// SyncStandbyNames is the primary's synchronous_standby_names: "ANY 1 (pg1,
// ..., pgN)", or "" without replicas.
func (c *Cluster) SyncStandbyNames() string {
	if len(c.nodes) == 1 {
		return ""
	}
	names := make([]string, 0, len(c.nodes)-1)
	for _, r := range c.Replicas() {
		names = append(names, r.Name)
	}
	return "ANY 1 (" + strings.Join(names, ", ") + ")"
}

// Stop stops every running node: the primary first (a fast shutdown sends
// its last WAL to the replicas still streaming), then the replicas.
func (c *Cluster) Stop() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}

// WaitStreaming waits until the primary's pg_stat_replication shows every
// replica, by its application_name, in state streaming, and counted for
// synchronous replication (sync_state quorum) while the primary has
// synchronous_standby_names: a WAL sender takes a new setting when it
// reloads its configuration, a moment after the primary does.
func (c *Cluster) WaitStreaming(ctx context.Context) error {
	want := map[string]bool{}
	for _, r := range c.Replicas() {
		want[r.Name] = true
	}
	if len(want) == 0 {
		return nil
	}
	var last map[string]string
	var lastErr error
	for {
		last, lastErr = c.replicationStates(ctx)
		if lastErr == nil {
			ok := true
			for name := range want {
				ok = ok && (last[name] == "streaming" || last[name] == "streaming quorum")
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: replicas not all streaming: pg_stat_replication on the primary shows %v (%v): %w", last, lastErr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicationStates is application_name → state, followed by sync_state
// if the primary has synchronous_standby_names, from the primary's
// pg_stat_replication.
func (c *Cluster) replicationStates(ctx context.Context) (map[string]string, error) {
	conn, err := c.Primary().connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT application_name, state || CASE WHEN current_setting('synchronous_standby_names') = ''
		THEN '' ELSE ' ' || sync_state END FROM pg_stat_replication`)
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	var name, state string
	_, err = pgx.ForEachRow(rows, []any{&name, &state}, func() error {
		states[name] = state
		return nil
	})
	return states, err
}

// validPrefix matches the node name prefixes Options.Prefix may be: a
// node's name is a replication slot's name too.
var validPrefix = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// keepSlots drops the primary's physical slots of nodes beyond
// Options.Replicas (unless in use) and returns those that remain.
func (c *Cluster) keepSlots(ctx context.Context) (map[string]bool, error) {
	conn, err := c.Primary().connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'")
	if err != nil {
		return nil, err
	}
	slots := map[string]bool{}
	var name string
	var active bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &active}, func() error {
		slots[name] = active
		return nil
	}); err != nil {
		return nil, err
	}
	for name, active := range maps.Clone(slots) {
		if !c.ourSlot.MatchString(name) || c.Node(name) != nil {
			continue
		}
		if active {
			c.opts.Logf("slot %s is not one of this cluster's replicas but is in use: left alone", name)
			continue
		}
		c.opts.Logf("dropping the replication slot of %s, which is not started: the primary keeps no WAL for it", name)
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", name); err != nil {
			return nil, fmt.Errorf("pgcluster: dropping slot %s: %w", name, err)
		}
		delete(slots, name)
	}
	present := map[string]bool{}
	for name := range slots {
		present[name] = true
	}
	return present, nil
}

// createSlot makes the primary's physical slot for replica name, if missing.
func (c *Cluster) createSlot(ctx context.Context, name string) error {
	conn, err := c.Primary().connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1)
		WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, name)
	if err != nil {
		return fmt.Errorf("pgcluster: creating the replication slot of %s: %w", name, err)
	}
	return nil
}

// setSynchronous sets the primary's synchronous replication: ANY 1 of the
// replicas, synchronous_commit on; or neither without replicas.
func (c *Cluster) setSynchronous(ctx context.Context) error {
	want := map[string]string{"synchronous_standby_names": c.SyncStandbyNames(), "synchronous_commit": "on"}
	if len(c.nodes) == 1 {
		want = map[string]string{"synchronous_standby_names": "", "synchronous_commit": ""}
	}
	return c.Primary().alterSystem(ctx, want)
}

// alterSystem makes settings (value "" means RESET) this node's in
// postgresql.auto.conf, and reloads its configuration if that changed
// anything.
func (n *Node) alterSystem(ctx context.Context, settings map[string]string) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	changed := false
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		v := settings[k]
		var cur string
		// What postgresql.auto.conf says ("" when it says nothing).
		err := conn.QueryRow(ctx, `SELECT coalesce((SELECT setting FROM pg_file_settings
			WHERE name = $1 AND sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1), '')`, k).Scan(&cur)
		if err != nil {
			return fmt.Errorf("pgcluster: %s: reading %s: %w", n.Name, k, err)
		}
		if cur == v {
			continue
		}
		sql := "ALTER SYSTEM RESET " + pgx.Identifier{k}.Sanitize()
		if v != "" {
			sql = "ALTER SYSTEM SET " + pgx.Identifier{k}.Sanitize() + " = " + quoteLiteral(v)
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("pgcluster: %s: %s: %w", n.Name, sql, err)
		}
		changed = true
	}
	if changed {
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			return fmt.Errorf("pgcluster: %s: reloading its configuration: %w", n.Name, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Addr is the node's TCP address, "HOST:PORT" (HOST is 127.0.0.1 unless
// Options.Place said otherwise).
func (n *Node) Addr() string { return net.JoinHostPort(n.Host(), strconv.Itoa(n.Port())) }

// Host is the address the node listens on and is reached at.
func (n *Node) Host() string {
	if n.place.Host != "" {
		return n.place.Host
	}
	return "127.0.0.1"
}

// Placement is where the node lives on the network (Options.Place).
func (n *Node) Placement() Placement { return n.place }

// Port is the node's TCP port on Host (the one it last listened on while
// it is stopped).
func (n *Node) Port() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.port
}

// Instance is the running server, or nil while the node is stopped.
func (n *Node) Instance() *pginstance.Instance {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inst
}

// ConnString is a libpq connection string to db on this node as user, over TCP.
func (n *Node) ConnString(db, user string) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable", n.Host(), n.Port(), db, user)
}

func (n *Node) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, n.ConnString("postgres", n.c.su)+" connect_timeout=10")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: connecting to %s: %w", n.Name, err)
	}
	return conn, nil
}

// primaryConninfo is what a replica connects to the primary with.
func (c *Cluster) primaryConninfo(replica string) string {
	p := c.Primary()
	return fmt.Sprintf("host=%s port=%d user=%s application_name=%s sslmode=disable", p.Host(), p.Port(), c.su, replica)
}

// Start starts the node, on the port it had the last time if it is free.
// A replica without data is made first with pg_basebackup from the
// primary, which must be running. A node already running is left alone.
func (n *Node) Start(ctx context.Context) error {
	conninfo := ""
	if !n.IsPrimary() {
		conninfo = n.c.primaryConninfo(n.Name) // before n.mu: it takes the primary's
	}
	n.mu.Lock()
	if n.inst != nil {
		n.mu.Unlock()
		return nil
	}
	err := n.startLocked(ctx, conninfo)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if n.IsPrimary() {
		// Replicas follow the primary's port (which moves only if it was
		// taken meanwhile).
		for _, r := range n.c.Replicas() {
			if r.Instance() != nil {
				if err := r.follow(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return n.follow(ctx)
}

// follow makes sure replica n follows the primary through its slot, by
// its name (ALTER SYSTEM: pg_basebackup -R wrote a primary_conninfo of its
// own, and the primary's port may have moved since).
func (n *Node) follow(ctx context.Context) error {
	return n.alterSystem(ctx, map[string]string{
		"primary_conninfo":  n.c.primaryConninfo(n.Name),
		"primary_slot_name": n.Name,
	})
}

// startLocked starts the node; a replica without data is copied from the
// primary at conninfo.
func (n *Node) startLocked(ctx context.Context, conninfo string) error {
	c := n.c
	settings := map[string]string{}
	if len(c.nodes) > 1 {
		maps.Copy(settings, replicationSettings)
	}
	maps.Copy(settings, c.opts.Settings)
	o := pginstance.Options{Dir: n.Dir, BinDir: c.opts.BinDir, PreferPort: n.port, Settings: settings, Superuser: c.su,
		Host: n.place.Host, NetNS: n.place.NetNS, HBA: n.place.HBA}
	if c.opts.Cgroup != nil {
		o.Cgroup = c.opts.Cgroup(n.Name)
	}
	_, err := os.Stat(filepath.Join(n.Dir, "data", "PG_VERSION"))
	fresh := errors.Is(err, fs.ErrNotExist)
	switch {
	case n.IsPrimary() && len(c.nodes) > 1:
		o.InitdbArgs = []string{"--data-checksums"}
	case !n.IsPrimary():
		o.BaseBackup = []string{"-d", conninfo, "-R", "-X", "stream", "-S", n.Name, "-c", "fast"}
		if strings.EqualFold(settings["fsync"], "off") {
			o.BaseBackup = append(o.BaseBackup, "--no-sync")
		}
	}
	if fresh && n.IsPrimary() {
		c.opts.Logf("%s: initdb in %s", n.Name, n.Dir)
	} else if fresh {
		c.opts.Logf("%s: pg_basebackup from %s into %s", n.Name, c.Primary().Name, n.Dir)
	}
	inst, err := pginstance.Start(ctx, o)
	if err != nil {
		return fmt.Errorf("pgcluster: %s: %w", n.Name, err)
	}
	if inst.Port != n.port {
		if n.port != 0 {
			c.opts.Logf("%s: its port %d is taken: it listens on %d from now on", n.Name, n.port, inst.Port)
		}
		if err := os.WriteFile(filepath.Join(n.Dir, "port"), []byte(strconv.Itoa(inst.Port)+"\n"), 0o644); err != nil {
			_ = inst.Stop()
			return fmt.Errorf("pgcluster: keeping %s's port: %w", n.Name, err)
		}
	}
	n.inst, n.port = inst, inst.Port
	return nil
}

// Stop stops the node (a fast shutdown) if it runs.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inst == nil {
		return nil
	}
	err := n.inst.Stop()
	n.inst = nil
	if err != nil {
		return fmt.Errorf("pgcluster: %s: %w", n.Name, err)
	}
	return nil
}

// Kill kills the node's postmaster with SIGKILL, as a crash would, and
// waits until it and every process it had started are gone (they exit on
// their own once they see their postmaster die). Start brings it back.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	inst := n.inst
	if inst == nil {
		return fmt.Errorf("pgcluster: %s is not running", n.Name)
	}
	if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgcluster: killing %s (pid %d): %w", n.Name, inst.PID, err)
	}
	n.inst = nil
	<-inst.Done()
	// Its children are in its process group: wait for them to notice.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-inst.PID, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = inst.Stop() // sweeps what is left of the group, closes the log
	return nil
}

func readPort(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return 0
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// Rejoin makes n, an old primary (stopped, crashed or still running), a
// replica of the cluster's primary (SetPrimary): it is stopped, rewound
// with pg_rewind to the primary's timeline, given a slot on the primary,
// and started as a standby following it. If pg_rewind fails (the WAL it
// needs is gone: more than wal_keep_size written since the last checkpoint
// before the fork), n is made again with pg_basebackup, and Options.Logf
// is told.
func (n *Node) Rejoin(ctx context.Context) error {
	p := n.c.Primary()
	if p == n {
		return fmt.Errorf("pgcluster: %s is the primary", n.Name)
	}
	if err := n.Stop(); err != nil {
		return err
	}
	// A primary promoted a moment ago has its new timeline in its control
	// file only after a checkpoint; pg_rewind reads it there and would
	// find "no rewind required".
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	conn.Close(context.Background())
	if err != nil {
		return fmt.Errorf("pgcluster: a checkpoint on %s before rejoining %s: %w", p.Name, n.Name, err)
	}
	var extra []string
	if strings.EqualFold(n.c.opts.Settings["fsync"], "off") {
		extra = append(extra, "--no-sync") // as pg_basebackup's copy: nothing is synced on such a node
	}
	// pg_rewind finishes a crashed server's recovery in single-user mode,
	// which reads only the data directory's configuration: the settings
	// the node runs with (-c) that its WAL's redo needs, such as
	// max_prepared_transactions for the prepared transactions of a
	// sharded cluster's two-phase commits, are given to it in a file.
	conf, err := n.rewindConf()
	if err != nil {
		return err
	}
	extra = append(extra, "--config-file="+conf)
	start := time.Now()
	if err := pginstance.Rewind(ctx, n.c.opts.BinDir, n.Dir, n.c.primaryConninfo(n.Name)+" dbname=postgres", extra...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pgcluster: rejoining %s: %w", n.Name, err)
		}
		n.c.opts.Logf("%s: pg_rewind failed; making it again from %s with pg_basebackup: %v", n.Name, p.Name, err)
		if err := os.RemoveAll(filepath.Join(n.Dir, "data")); err != nil {
			return fmt.Errorf("pgcluster: rejoining %s: %w", n.Name, err)
		}
	} else if err := n.useOwnSlot(); err != nil {
		return err
	} else {
		n.c.opts.Logf("%s: rewound to %s's timeline with pg_rewind in %v", n.Name, p.Name, time.Since(start).Round(time.Millisecond))
	}
	if err := n.c.createSlot(ctx, n.Name); err != nil {
		return err
	}
	return n.Start(ctx)
}

// useOwnSlot makes the stopped node n, just rewound, stream through its
// own slot. pg_rewind copies the source's postgresql.auto.conf, where the
// new primary, once a standby, kept its own primary_slot_name: n would ask
// for the primary's old slot, which does not exist, and could not reach a
// consistent state (nor be asked anything, so follow could not fix it).
// The last setting in the file wins: the slot's name is appended.
func (n *Node) useOwnSlot() error {
	f, err := os.OpenFile(filepath.Join(n.Dir, "data", "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: rejoining %s: %w", n.Name, err)
	}
	_, err = fmt.Fprintf(f, "primary_slot_name = %s\n", quoteLiteral(n.Name))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: rejoining %s: %w", n.Name, err)
	}
	return nil
}

// Freeze stops the node's postmaster and every process it forked with
// SIGSTOP, the postmaster first so that it forks no more, as a hung host or
// a partition leaves a server: its connections stay open and silent. thaw
// continues them (SIGCONT); call it before the cluster stops.
func (n *Node) Freeze() (thaw func(), err error) {
	n.mu.Lock()
	inst := n.inst
	n.mu.Unlock()
	if inst == nil {
		return nil, fmt.Errorf("pgcluster: %s is not running", n.Name)
	}
	frozen := []int{inst.PID}
	thaw = func() {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	if err := syscall.Kill(inst.PID, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("pgcluster: freezing %s: %w", n.Name, err)
	}
	// Each child is a process group of its own (Postgres calls setsid).
	for _, pid := range ChildPIDs(inst.PID) {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			frozen = append(frozen, pid)
		}
	}
	return thaw, nil
}

// ChildPIDs are the processes whose parent is pid, from /proc (none when
// /proc cannot be read).
func ChildPIDs(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	parent := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == parent {
			out = append(out, child)
		}
	}
	return out
}

// rewindConf writes the configuration pg_rewind's single-user recovery of
// the node runs with: its data directory's, then Options.Settings.
func (n *Node) rewindConf() (string, error) {
	quote := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	var b strings.Builder
	b.WriteString("include " + quote(filepath.Join(n.Dir, "data", "postgresql.conf")) + "\n")
	for _, k := range slices.Sorted(maps.Keys(n.c.opts.Settings)) {
		b.WriteString(k + " = " + quote(n.c.opts.Settings[k]) + "\n")
	}
	path := filepath.Join(n.Dir, "rewind.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	return path, nil
}
