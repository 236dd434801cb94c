package ha

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Health is what a proxy last measured of a node. Immutable: a check
// replaces it whole.
type Health struct {
	At         time.Time // when it was measured
	Up         bool      // the last check answered (and nothing failed since: Suspect)
	InRecovery bool      // a standby (pg_is_in_recovery)
	// LSN is a primary's WAL position (pg_current_wal_lsn) or a standby's
	// replay position (pg_last_wal_replay_lsn).
	LSN LSN
	// Received is a standby's last WAL position received and flushed
	// (pg_last_wal_receive_lsn).
	Received LSN
	Lag      Lag    // a standby's lag behind its shard's primary
	Err      string // why the last check failed
	// Timeline is a primary's current timeline (its WAL file's), or the
	// timeline a standby's WAL receiver last received (0: not known, as
	// for a standby with no receiver running).
	Timeline uint32
}

// NodeHealth is one node's health as its checker publishes it. Safe for
// concurrent use: the checker's goroutine stores, anyone loads (one atomic
// load: the event loops read it on their data path).
type NodeHealth struct {
	h atomic.Pointer[Health]
}

// Current is the last health measured (nil before the first check).
func (n *NodeHealth) Current() *Health { return n.h.Load() }

// Publish makes h the node's health (the checker's, after each check).
func (n *NodeHealth) Publish(h *Health) { n.h.Store(h) }

// Suspect marks the node down at once, until its next check answers: the
// data path saw a login or a connection to it fail.
func (n *NodeHealth) Suspect(why string) {
	if h := n.h.Load(); h == nil || h.Up {
		d := Health{At: time.Now(), Err: why}
		if h != nil {
			d.InRecovery, d.LSN, d.Received, d.Lag, d.Timeline = h.InRecovery, h.LSN, h.Received, h.Lag, h.Timeline
		}
		n.h.Store(&d)
	}
}

// CheckerOptions configure a Checker.
type CheckerOptions struct {
	Interval time.Duration // between checks of a node (200 ms)
	Timeout  time.Duration // of a check, dial included (500 ms)
	// Dial opens the connection a node is checked over (the caller knows
	// the user and the credentials).
	Dial   func(ctx context.Context, addr string) (*pgx.Conn, error)
	Logger *slog.Logger
}

// Checker checks the nodes of a topology: one goroutine per node asks it,
// every Interval over a connection of its own, whether it is a standby and
// its WAL position, and publishes the answer (NodeHealth). A replica's lag
// is measured against its shard's primary's positions as the primary's own
// checks saw them. A check that fails or takes longer than Timeout marks
// the node down; with the defaults a node that stops answering is down
// within 0.7 s.
//
// Safe for concurrent use: mu guards the fields below; each node's
// goroutine owns its connection.
type Checker struct {
	opts CheckerOptions

	mu     sync.Mutex
	nodes  map[string]*checked
	shards map[string]*shardPositions
}

type checked struct {
	node   Node
	health NodeHealth
	stop   context.CancelFunc
	done   chan struct{}
}

// shardPositions are where a shard's primary was when.
type shardPositions struct {
	mu  sync.Mutex // guards p
	p   positions
	pri string // the primary's node name
}

// NewChecker returns a Checker with no node yet (Update gives it some).
func NewChecker(o CheckerOptions) *Checker {
	if o.Interval <= 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Checker{opts: o, nodes: map[string]*checked{}, shards: map[string]*shardPositions{}}
}

// Update makes the Checker check t's nodes: it starts checking new ones,
// starts again those whose address or role changed, and stops checking
// those gone.
func (c *Checker) Update(t *Topology) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range t.Shards {
		sp := c.shards[s.Name]
		if sp == nil {
			sp = &shardPositions{p: positions{keep: time.Minute}}
			c.shards[s.Name] = sp
		}
		sp.mu.Lock()
		if sp.pri != s.Primary {
			sp.pri, sp.p = s.Primary, positions{keep: time.Minute}
		}
		sp.mu.Unlock()
		for _, n := range s.Nodes {
			seen[n.Name] = true
			old := c.nodes[n.Name]
			if old != nil && old.node == n {
				continue
			}
			if old != nil {
				old.stop()
			}
			ctx, stop := context.WithCancel(context.Background())
			ch := &checked{node: n, stop: stop, done: make(chan struct{})}
			if old != nil && old.node.Addr == n.Addr {
				ch.health.h.Store(old.health.Current()) // same server: what is known of it holds
			}
			c.nodes[n.Name] = ch
			go c.run(ctx, ch, sp)
		}
	}
	for name, ch := range c.nodes {
		if !seen[name] {
			ch.stop()
			delete(c.nodes, name)
		}
	}
	for name := range c.shards {
		if t.Shard(name) == nil {
			delete(c.shards, name)
		}
	}
}

// Health is the node's published health (nil for a node the Checker does
// not check). The pointer stays valid, and current, while the node keeps
// its address and role.
func (c *Checker) Health(name string) *NodeHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.nodes[name]; ch != nil {
		return &ch.health
	}
	return nil
}

// Stop stops every check and waits for their goroutines.
func (c *Checker) Stop() {
	c.mu.Lock()
	var done []chan struct{}
	for name, ch := range c.nodes {
		ch.stop()
		done = append(done, ch.done)
		delete(c.nodes, name)
	}
	c.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

// checkSQL asks a node everything a check wants in one round trip.
const checkSQL = `SELECT pg_catalog.pg_is_in_recovery(),
	(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END)::text,
	coalesce(pg_catalog.pg_last_wal_receive_lsn()::text, ''),
	(CASE WHEN pg_catalog.pg_is_in_recovery() THEN coalesce((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver), 0)::int8
	 ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END)`

// run checks ch's node until ctx ends.
func (c *Checker) run(ctx context.Context, ch *checked, sp *shardPositions) {
	defer close(ch.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(c.opts.Interval)
	defer tick.Stop()
	for {
		h := c.check(ctx, ch.node, &conn)
		if ctx.Err() != nil {
			return
		}
		if h.Up && !h.InRecovery {
			sp.mu.Lock()
			if sp.pri == ch.node.Name {
				sp.p.add(h.At, h.LSN)
			}
			sp.mu.Unlock()
		} else if h.Up {
			sp.mu.Lock()
			h.Lag = sp.p.lag(h.LSN, h.At)
			sp.mu.Unlock()
		}
		if prev := ch.health.Current(); prev != nil && prev.Up != h.Up {
			c.opts.Logger.Info("node health changed", "node", ch.node.Name, "up", h.Up, "err", h.Err)
		}
		ch.health.Publish(h)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check asks the node once, over *conn (dialled or dialled again as needed).
func (c *Checker) check(ctx context.Context, n Node, conn **pgx.Conn) *Health {
	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	h := &Health{}
	fail := func(err error) *Health {
		h.At, h.Up, h.Err = time.Now(), false, err.Error()
		if *conn != nil {
			_ = (*conn).Close(context.Background())
			*conn = nil
		}
		return h
	}
	if *conn == nil {
		cn, err := c.opts.Dial(cctx, n.Addr)
		if err != nil {
			return fail(err)
		}
		*conn = cn
	}
	var lsn, recv string
	var tli int64
	if err := (*conn).QueryRow(cctx, checkSQL).Scan(&h.InRecovery, &lsn, &recv, &tli); err != nil {
		return fail(err)
	}
	h.Timeline = uint32(tli)
	h.At, h.Up = time.Now(), true
	h.LSN, _ = ParseLSN(lsn)
	h.Received, _ = ParseLSN(recv)
	return h
}
