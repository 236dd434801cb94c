package ha

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// OrchOptions configure an Orchestrator.
type OrchOptions struct {
	Store  *Store
	Client *clientv3.Client // Store's client: the election's
	// ID names this orchestrator in the election (the host and pid).
	ID string
	// Dial opens a superuser's connection to a node (probes and actions).
	Dial func(ctx context.Context, addr string) (*pgx.Conn, error)
	// Interval between measurements of the cluster (200 ms); Timeout of one
	// node's probe, dial included (400 ms).
	Interval, Timeout time.Duration
	// DeadAfter is how long a primary must be unreachable, with no standby
	// streaming from it, before a failover (600 ms).
	DeadAfter time.Duration
	// SyncQuorum is the synchronous replication quorum, ANY SyncQuorum
	// (1).
	SyncQuorum int
	// RequirePoolers: the nodes are served only through the poolers
	// beside them (belay gateway and belay pooler): a primary whose pooler
	// it saw registered and then lapse is moved, by a switchover, to a
	// standby that has one (PoolerLoss).
	RequirePoolers bool
	// SwitchoverDrain is how long a planned switchover lets the
	// transactions running on the old primary finish (2 s);
	// SwitchoverCatchUp how long the target may take to replay its WAL
	// (5 s).
	SwitchoverDrain, SwitchoverCatchUp time.Duration
	// LeaseTTL is the election lease's, in seconds (2): a leader that dies
	// is replaced within it.
	LeaseTTL int
	// Replication is the primary_conninfo keys (user, password,
	// sslmode, ...) a standby is pointed at a new primary with when the
	// orchestrator never saw that standby's own (a leader that took over
	// after its predecessor detached it): host, port and application_name
	// (the node's name) are added. "user=postgres" when empty.
	Replication string
	// DialDB opens a superuser's connection to database db of a node: the
	// resolver of two-phase commits finishes a prepared transaction in the
	// database it was prepared in (orch_resolve.go). Without it, only
	// those of Dial's database are finished.
	DialDB func(ctx context.Context, addr, db string) (*pgx.Conn, error)
	// ResolveGrace is how long after its prepare a transaction of belay's
	// with no decision recorded is left to its coordinator before the
	// resolver aborts it (15 s).
	ResolveGrace time.Duration
	// ForgetAfter is how long a decision's record is kept once no shard
	// holds its transaction prepared (10 min): the coordinator deletes
	// the records of the commits it finished; the resolver deletes the
	// others (orch_resolve.go).
	ForgetAfter time.Duration
	// Rejoin, if not nil, makes node, an old primary, a standby of primary
	// (stopped, rewound with pg_rewind, started as a standby). It needs the
	// node's data directory: belay up gives one; without it a stale primary
	// is logged for an operator.
	Rejoin func(ctx context.Context, node, primary Node) error
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time

	// afterAction, in tests, is called after each action carried out (a
	// leader that dies in the middle of a failover).
	afterAction func(Action)
}

// Orchestrator is the I/O shell around Decider: it campaigns in an etcd
// election; while it leads it measures every shard each Interval, steps
// the shard's Decider and carries out the actions it returns. Several may
// run: one leads, the others wait to take over.
//
// Every effect is fenced: Publish is a compare-and-swap on the shard's term
// that also requires this orchestrator's election key to be the one it won
// with, so a leader that lost its lease (paused, cut off) publishes
// nothing; the other actions are idempotent and each is decided again from
// a fresh measurement, so a new leader finishes a failover the old one
// began (the Decider keeps nothing the measurement does not show).
//
// Concurrency: Run's goroutine owns everything below; each probe runs on a
// goroutine of its own, with one node's connection, and Run waits for them;
// a background dial of an unreachable node (redial) hands its connection
// over through its channel in late.
type Orchestrator struct {
	o        OrchOptions
	conns    map[string]*pgx.Conn // by node name
	conninfo map[string]string    // a standby's last primary_conninfo that named a primary
	deciders map[string]*Decider  // by shard
	last     map[string]Analysis  // by shard, for the log
	reported map[string]bool      // stale primaries already logged
	// down: the nodes unreachable at their last measure; late, the
	// background dials of such nodes still to be taken (measure).
	down map[string]bool
	late map[string]chan *pgx.Conn
	// poolers follows the poolers' registrations (RequirePoolers);
	// poolerAsked, by shard, when a switchover was last asked for.
	poolers     PoolerLoss
	poolerAsked map[string]time.Time
	// resolvedAt: the resolver's last round (orch_resolve.go).
	resolvedAt time.Time
}

// NewOrchestrator returns an Orchestrator (Run starts it).
func NewOrchestrator(o OrchOptions) *Orchestrator {
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 400 * time.Millisecond
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 600 * time.Millisecond
	}
	if o.SyncQuorum <= 0 {
		o.SyncQuorum = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Replication == "" {
		o.Replication = "user=postgres"
	}
	return &Orchestrator{o: o, conns: map[string]*pgx.Conn{}, conninfo: map[string]string{},
		down: map[string]bool{}, late: map[string]chan *pgx.Conn{}, poolerAsked: map[string]time.Time{}}
}

// ElectionPrefix is the etcd prefix of cluster's orchestrators' election.
func ElectionPrefix(cluster string) string { return Prefix(cluster) + "orch/" }

// Run campaigns and, while it leads, orchestrates, until ctx ends.
func (r *Orchestrator) Run(ctx context.Context) error {
	defer r.closeConns()
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(r.o.Client, concurrency.WithTTL(r.o.LeaseTTL), concurrency.WithContext(ctx))
		if err != nil {
			r.o.Logger.Warn("orchestrator: no etcd session", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		e := concurrency.NewElection(sess, ElectionPrefix(r.o.Store.Cluster()))
		if err := e.Campaign(ctx, r.o.ID); err != nil {
			_ = sess.Close()
			if ctx.Err() == nil {
				r.o.Logger.Warn("orchestrator: campaign", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		r.o.Logger.Info("orchestrator leading", "id", r.o.ID, "cluster", r.o.Store.Cluster())
		r.lead(ctx, sess, e)
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = e.Resign(rctx)
		cancel()
		_ = sess.Close()
		if ctx.Err() == nil {
			r.o.Logger.Warn("orchestrator: lost the lead", "id", r.o.ID)
		}
	}
	return nil
}

// lead orchestrates until the session ends or ctx does.
func (r *Orchestrator) lead(ctx context.Context, sess *concurrency.Session, e *concurrency.Election) {
	// A new leader decides from what it sees, not from what another
	// decided: fresh deciders.
	r.deciders, r.last, r.reported = map[string]*Decider{}, map[string]Analysis{}, map[string]bool{}
	leader := clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sess.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		top, err := r.o.Store.Load(lctx)
		var reqs map[string]SwitchoverRecord
		var revs map[string]int64
		if err == nil {
			reqs, revs, err = r.o.Store.switchoverRequests(lctx)
		}
		cancel()
		if err != nil {
			r.o.Logger.Warn("orchestrator: reading the topology", "err", err)
			continue
		}
		r.forget(top)
		r.resolve(ctx, top)
		if r.o.RequirePoolers {
			r.poolerLoss(ctx, top, reqs)
		}
		for _, sh := range top.Shards {
			if req, ok := reqs[sh.Name]; ok && !req.Finished() {
				r.switchover(ctx, sh, req, revs[sh.Name], leader)
				continue
			}
			r.step(ctx, sh, leader)
		}
	}
}

// poolerLoss asks for a switchover of each shard whose primary lost its
// pooler (PoolerLoss), unless one is under way; once every
// poolerRetry at most while the loss lasts (an aborted switchover is
// tried again). The next round carries it out.
func (r *Orchestrator) poolerLoss(ctx context.Context, top *Topology, reqs map[string]SwitchoverRecord) {
	now := r.o.Now()
	for _, l := range r.poolers.Step(top) {
		if req, ok := reqs[l.Shard]; ok && !req.Finished() || now.Sub(r.poolerAsked[l.Shard]) < poolerRetry {
			continue
		}
		r.poolerAsked[l.Shard] = now
		if l.To == "" {
			r.o.Logger.Error("the primary's pooler is gone and no standby has one: nothing to move to", "shard", l.Shard, "primary", l.Primary)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, rec, err := r.o.Store.RequestSwitchover(rctx, l.Shard, l.To)
		cancel()
		if err != nil {
			r.o.Logger.Warn("orchestrator: asking for a switchover away from a primary without its pooler", "shard", l.Shard, "err", err)
			continue
		}
		r.o.Logger.Warn("the primary's pooler is gone: switching over", "shard", l.Shard, "primary", l.Primary, "to", l.To, "request", rec.ID)
	}
}

// poolerRetry spaces the switchovers asked for one shard's lost pooler.
const poolerRetry = 5 * time.Second

// step measures shard sh, steps its decider and carries out its actions.
func (r *Orchestrator) step(ctx context.Context, sh Shard, leader clientv3.Cmp) {
	d := r.deciders[sh.Name]
	if d == nil {
		d = &Decider{DeadAfter: r.o.DeadAfter, SyncQuorum: r.o.SyncQuorum}
		r.deciders[sh.Name] = d
	}
	view := r.measure(ctx, sh)
	a, acts := d.Step(r.o.Now(), view)
	if prev, ok := r.last[sh.Name]; !ok || prev != a {
		r.o.Logger.Info("shard condition", "shard", sh.Name, "term", sh.Term, "primary", sh.Primary, "condition", a.String())
		r.last[sh.Name] = a
	}
	for _, act := range acts {
		if err := r.carry(ctx, sh, act, leader); err != nil {
			r.o.Logger.Warn("orchestrator: action failed", "shard", sh.Name, "action", act.String(), "err", err)
			return // the next measurement decides again
		}
		if _, quiet := act.(Rejoin); !quiet {
			r.o.Logger.Info("orchestrator: done", "shard", sh.Name, "action", act.String())
		}
		if r.o.afterAction != nil {
			r.o.afterAction(act)
		}
	}
}

// measure probes every node of sh at once. A node that was unreachable at
// the last measure is dialled in the background (redial): the measure
// waits for that dial only downWait, so that a node cut off by a
// partition, whose dial hangs until the timeout, does not add the timeout
// to every step of a failover.
func (r *Orchestrator) measure(ctx context.Context, sh Shard) ShardView {
	v := ShardView{Shard: sh.Name, Term: sh.Term, Primary: sh.Primary, Nodes: make([]NodeView, len(sh.Nodes))}
	type result struct {
		conn     *pgx.Conn
		conninfo string
		dialed   bool // it took the result of its background dial
	}
	res := make([]result, len(sh.Nodes))
	var wg sync.WaitGroup
	for i, n := range sh.Nodes {
		conn := r.conns[n.Name]
		var late chan *pgx.Conn
		if conn == nil && r.down[n.Name] {
			late = r.redial(ctx, n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nv := NodeView{Name: n.Name, Addr: n.Addr}
			if late != nil {
				t := time.NewTimer(downWait)
				select {
				case conn = <-late:
					res[i].dialed = true
				case <-t.C:
				}
				t.Stop()
				if conn == nil {
					v.Nodes[i] = nv // still dialling, or the dial failed
					return
				}
			}
			pctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
			defer cancel()
			if conn == nil {
				c, err := r.o.Dial(pctx, n.Addr)
				if err != nil {
					v.Nodes[i] = nv
					return
				}
				conn = c
			}
			got, ci, err := probe(pctx, conn)
			if err != nil {
				_ = conn.Close(context.Background())
				v.Nodes[i] = nv
				return
			}
			got.Name, got.Addr = n.Name, n.Addr
			v.Nodes[i], res[i].conn, res[i].conninfo = got, conn, ci
		}()
	}
	wg.Wait()
	for i, n := range sh.Nodes {
		r.conns[n.Name] = res[i].conn
		if res[i].dialed {
			delete(r.late, n.Name)
		}
		r.down[n.Name] = !v.Nodes[i].Reachable
		if ci := res[i].conninfo; conninfoAddr(ci) != "" {
			r.conninfo[n.Name] = ci
		}
	}
	return v
}

// downWait is how long a measure waits for the dial of a node that was
// unreachable at the last one: long enough for a node that is back (a
// refused or accepted connection is quick), short beside a dial that hangs.
const downWait = 20 * time.Millisecond

// redial is the background dial of node n, started if none is under way;
// its result (a connection, or nil) is taken by the measure that finds it
// done.
func (r *Orchestrator) redial(ctx context.Context, n Node) chan *pgx.Conn {
	if ch := r.late[n.Name]; ch != nil {
		return ch
	}
	ch := make(chan *pgx.Conn, 1)
	r.late[n.Name] = ch
	go func() {
		dctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
		c, err := r.o.Dial(dctx, n.Addr)
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	return ch
}

// dropLate gives up node name's background dial: its connection, if it
// makes one, is closed.
func (r *Orchestrator) dropLate(name string) {
	if ch := r.late[name]; ch != nil {
		delete(r.late, name)
		go func() {
			if c := <-ch; c != nil {
				_ = c.Close(context.Background())
			}
		}()
	}
}

// carry carries out one action on shard sh.
func (r *Orchestrator) carry(ctx context.Context, sh Shard, act Action, leader clientv3.Cmp) error {
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	node := func(name string) (Node, *pgx.Conn, error) {
		i := slices.IndexFunc(sh.Nodes, func(n Node) bool { return n.Name == name })
		if i < 0 {
			return Node{}, nil, fmt.Errorf("no node %s", name)
		}
		c := r.conns[name]
		if c == nil {
			return sh.Nodes[i], nil, fmt.Errorf("%s: no connection", name)
		}
		return sh.Nodes[i], c, nil
	}
	switch a := act.(type) {
	case Detach:
		for _, name := range a.Nodes {
			_, c, err := node(name)
			if err != nil {
				return err
			}
			if err := alterSystem(actx, c, map[string]string{"primary_conninfo": ""}); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	case SetSync:
		_, c, err := node(a.Node)
		if err != nil {
			return err
		}
		return alterSystem(actx, c, map[string]string{
			"synchronous_standby_names": syncStandbyNames(a.Quorum, a.Standbys),
			"synchronous_commit":        "on",
		})
	case Promote:
		_, c, err := node(a.Node)
		if err != nil {
			return err
		}
		return promote(actx, c)
	case HoldPrimary:
		rec, err := r.o.Store.SetPrimary(actx, a.Shard, a.Term, "", leader)
		if err != nil {
			return err
		}
		r.o.Logger.Info("the primary's work is held", "shard", a.Shard, "term", rec.Term)
	case Fence:
		_, c, err := node(a.Node)
		if err != nil {
			return err
		}
		return fence(actx, c)
	case Checkpoint:
		_, c, err := node(a.Node)
		if err != nil {
			return err
		}
		if _, err = c.Exec(actx, "CHECKPOINT"); err != nil {
			return err
		}
		_, err = c.Exec(actx, "SELECT pg_catalog.pg_switch_wal()")
		return err
	case Follow:
		to, pc, err := node(a.To)
		if err != nil {
			return err
		}
		for _, name := range a.Nodes {
			_, c, err := node(name)
			if err != nil {
				return err
			}
			if err := r.follow(actx, name, c, to, pc); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	case Rejoin:
		n, _, _ := node(a.Node)
		p, _, _ := node(a.To)
		if r.o.Rejoin == nil {
			if !r.reported[a.Node] {
				r.reported[a.Node] = true
				r.o.Logger.Error("an old primary is running beside the new one: rewind it and make it a standby (pg_rewind)",
					"node", a.Node, "primary", a.To)
			}
			return nil
		}
		if err := r.o.Rejoin(actx, n, p); err != nil {
			return err
		}
		if c := r.conns[a.Node]; c != nil {
			_ = c.Close(context.Background())
			r.conns[a.Node] = nil
		}
		r.o.Logger.Info("orchestrator: rejoined", "node", a.Node, "primary", a.To)
	case Publish:
		rec, err := r.o.Store.SetPrimary(actx, a.Shard, a.Term, a.Primary, leader)
		if err != nil {
			return err
		}
		r.o.Logger.Info("new primary published", "shard", a.Shard, "primary", a.Primary, "term", rec.Term)
	default:
		return fmt.Errorf("unknown action %T", act)
	}
	return nil
}

// follow points the standby name (over c) at the primary to (over pc): its
// replication slot made on to first if it uses one.
func (r *Orchestrator) follow(ctx context.Context, name string, c *pgx.Conn, to Node, pc *pgx.Conn) error {
	var slot string
	if err := c.QueryRow(ctx, "SELECT pg_catalog.current_setting('primary_slot_name')").Scan(&slot); err != nil {
		return err
	}
	if slot != "" {
		if _, err := pc.Exec(ctx, `SELECT pg_catalog.pg_create_physical_replication_slot($1)
			WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)`, slot); err != nil {
			return fmt.Errorf("its slot on %s: %w", to.Name, err)
		}
	}
	had := r.conninfo[name]
	if had == "" {
		// Detached before this orchestrator saw it follow anything: the
		// keys of another standby's, else the configured ones.
		had = r.o.Replication
		for other, ci := range r.conninfo {
			if other != name {
				m := parseConninfo(ci)
				delete(m, "application_name")
				had = formatConninfo(m)
				break
			}
		}
	}
	ci, err := followConninfo(had, to.Addr, name)
	if err != nil {
		return err
	}
	return alterSystem(ctx, c, map[string]string{"primary_conninfo": ci})
}

// forget closes the connections of nodes no longer in top.
func (r *Orchestrator) forget(top *Topology) {
	for name, c := range r.conns {
		if top.Node(name) == nil {
			if c != nil {
				_ = c.Close(context.Background())
			}
			delete(r.conns, name)
			delete(r.conninfo, name)
			delete(r.down, name)
			r.dropLate(name)
		}
	}
}

func (r *Orchestrator) closeConns() {
	for name, c := range r.conns {
		if c != nil {
			_ = c.Close(context.Background())
		}
		delete(r.conns, name)
	}
	for name := range r.late {
		r.dropLate(name)
	}
	clear(r.down)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Leader is the ID of cluster's leading orchestrator ("" when none leads).
func Leader(ctx context.Context, cli *clientv3.Client, cluster string) (string, error) {
	resp, err := cli.Get(ctx, ElectionPrefix(cluster), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return strings.TrimSpace(string(resp.Kvs[0].Value)), nil
}
