package loop

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
	"github.com/panjf2000/gnet/v2"
)

// Serving a hash-sharded cluster (issue J). When the topology carries a
// sharding schema (ha.Topology.Sharding), each of its shards is a cluster
// of its own, as cluster.go serves one: its nodes' view, term, failover
// hold and held clients; all share the first one's health checker and the
// pool manager. At the start of each unit of work the client holds no
// server for, the session asks router.Shards where its first statement
// runs (the key values from the statement's literals and its Bind's
// parameters) and moves to that shard's cluster (its own clusterState
// there: read-your-writes positions are per primary); then the cluster's
// own routing picks the node. What belay does not do yet is refused, never
// run on the wrong shard:
//
//   - a statement that must run on several shards, unless spread.go runs
//     it (alone in its unit: DDL, a reference table's write, an UPDATE or
//     DELETE without a key, an INSERT whose rows are on several shards, a
//     read gathered or merged, a COPY FROM STDIN; in a transaction,
//     txspread.go, as a simple Query): ERROR 0A000 at the start of a unit;
//   - a statement of a transaction that belongs to another shard than the
//     transaction's, where xshard.go cannot take the transaction there:
//     FATAL 0A000, the connection closed and the transaction rolled back
//     (never committed in part);
//   - what router.Shards refuses (0A000), as an ERROR.
//
// A transaction belongs to the shard of its first statement after BEGIN
// (and reaches other shards as xshard.go says):
// a BEGIN (or START TRANSACTION) sent alone in a simple Query is answered
// by belay at once and sent to the server the next unit lands on, before
// that unit (deferBegin, beginDeferred). A BEGIN sent otherwise (with
// more in its Query, or through the extended protocol) starts the
// transaction on the client's current shard.
//
// A statement that reads nothing sharded, a Parse whose shard depends on
// parameters not bound yet, and session and transaction control run on the
// client's current shard.
//
// Who owns what: Proxy.sharding.set is swapped on the ticker goroutine (apply,
// under mu) and read by the loops through the atomic pointer; the clusters
// are as cluster.go says.

// shards is the proxy's clusters of a sharded topology.
type shards struct {
	set   atomic.Pointer[shardSet] // nil: not sharded
	mu    sync.Mutex               // guards extra (apply)
	extra map[string]*cluster      // the clusters made for shards other than the first's
}

// shardSet is a sharding schema and the cluster of each of its shards.
// Immutable.
type shardSet struct {
	schema   *shard.Schema
	clusters []*cluster // index k: the topology's shard ha.ShardName(k)
}

// applySharding follows the topology's sharding schema: the cluster of
// each shard, made on first sight, applied. From the ticker goroutine (and
// Start, TopologyChanged), after the first cluster's apply.
func (p *Proxy) applySharding() {
	if p.cluster == nil {
		return
	}
	t := p.cluster.src.Current()
	if t == nil {
		return
	}
	sh := &p.sharding
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if t.Sharding == nil {
		sh.set.Store(nil)
		return
	}
	cur := sh.set.Load()
	if cur == nil || !cur.schema.Equal(t.Sharding) {
		first := ""
		if s := p.cluster.served(t); s != nil {
			first = s.Name
		}
		set := &shardSet{schema: t.Sharding, clusters: make([]*cluster, t.Sharding.Shards())}
		for k := range set.clusters {
			name := ha.ShardName(k)
			c := sh.extra[name]
			switch {
			case name == first:
				c = p.cluster
			case c == nil:
				c = makeCluster(p, p.cfg, len(p.plans), name, p.cluster.checker)
				c.sibling = true
				if sh.extra == nil {
					sh.extra = map[string]*cluster{}
				}
				sh.extra[name] = c
			}
			set.clusters[k] = c
		}
		sh.set.Store(set)
		cur = set
	}
	for _, c := range cur.clusters {
		if c != p.cluster {
			c.apply()
		}
	}
}

// shardClusters are the clusters of the shards other than the first's.
// Any goroutine.
func (p *Proxy) shardClusters() []*cluster {
	sh := &p.sharding
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return slices.Collect(maps.Values(sh.extra))
}

// errScatter: a unit of work that would run on several shards.
var errScatter = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "a statement for several shards runs only alone in a simple Query outside a transaction"}

// unitShard is the shard the client's next unit of work, starting with
// data, runs on: -1 to stay where the client is. The error is a
// *shard.Error to answer the unit with. On the loop.
func (s *session) unitShard(set *shardSet, data []byte) (int, error) {
	t, plan, err := s.shardOf(set, data, nil)
	switch {
	case errors.Is(err, router.ErrUnbound):
		return -1, nil // a Parse alone: any shard describes it
	case err != nil:
		return -1, err
	case plan == nil || t.Spread == router.AnyShard:
		return -1, nil
	case t.Spread == router.OneShard:
		return t.Shards[0], nil
	}
	if plan.Class == planner.ClassSession || plan.Class == planner.ClassTxControl || !executes(data) {
		return -1, nil // follows the client wherever it goes; or prepares and describes only, as any shard can
	}
	return -1, s.spreadUnit(set, data, t)
}

// spreadUnit is how spread.go runs the unit starting with data, whose
// statement runs on several shards (t): a *spreadOn, errSpread or
// errGather; or its refusal, errScatter when no spread runs it.
func (s *session) spreadUnit(set *shardSet, data []byte, t router.ShardTarget) error {
	if t.Copy != nil {
		return s.copyable(set, data, t) // its rows split between the shards (copysplit.go)
	}
	if q := unitQuery(data); q != nil && !s.inTx() && !s.t.pinned {
		if plan := s.plan(q); len(plan.Stmts) == 1 && plan.Stmts[0].NoTxBlock {
			on := &spreadOn{plain: true} // VACUUM and the like: as it is on each shard (spread.go)
			if len(t.Shards) < len(set.clusters) {
				on.shards = t.Shards
			}
			return on
		}
	}
	if t.RowShards == nil {
		if ok, err := s.spreadable(set, data); err != nil {
			return err
		} else if ok {
			return spreadOnSome(set, t, errSpread) // the same statement on its shards (spread.go)
		}
		if on, err := s.spreadableExt(set, data, t); err != nil {
			return err
		} else if on != nil {
			return on // the same in the extended protocol (gatherext.go)
		}
	} else if split, err := s.splittable(data, t); err != nil {
		return err
	} else if split != nil {
		return split // an INSERT's rows, each on its shard (spread.go)
	}
	if ok, err := s.gatherable(set, data); err != nil {
		return err // a read of several shards belay cannot merge
	} else if ok {
		return spreadOnSome(set, t, errGather) // a read of its shards, their rows gathered (spread.go)
	}
	if g, sql, err := s.gatherableExt(set, data); err != nil {
		return err
	} else if g != nil {
		on := &spreadOn{gather: true, ext: g, extSQL: sql}
		if len(t.Shards) < len(set.clusters) {
			on.shards = t.Shards
		}
		return on // the same in the extended protocol (gatherext.go)
	}
	return errScatter
}

// asSpreadOn is the spread an error of spreadUnit asks for, if it asks
// for one.
func asSpreadOn(err error) (*spreadOn, bool) {
	var on *spreadOn
	switch {
	case errors.As(err, &on):
		return on, true
	case errors.Is(err, errSpread), errors.Is(err, errGather):
		return &spreadOn{gather: errors.Is(err, errGather)}, true
	}
	return nil, false
}

// parsedStmt is a statement a Parse ahead in the client's data prepares.
type parsedStmt struct {
	sql  []byte
	plan *planner.Plan
}

// shardOf asks the router where the statement of the first message of data
// runs (nil plan: a message that names none). parsed are the statements
// that Parses before data (not yet forwarded) prepare, by name: a Bind of
// one of them is of that text, not of what the client had under its name.
func (s *session) shardOf(set *shardSet, data []byte, parsed map[string]parsedStmt) (router.ShardTarget, *planner.Plan, error) {
	typ, bodyLen, err := codec.PeekHeader(data, codec.MaxProtocolMessage)
	if err != nil || len(data) < 5+bodyLen {
		return router.ShardTarget{}, nil, nil
	}
	body := data[5 : 5+bodyLen]
	var kp keyParams
	switch typ {
	case codec.MsgQuery:
		q, err := codec.QueryText(body)
		if err != nil {
			return router.ShardTarget{}, nil, nil
		}
		kp.sql, kp.plan = q, s.plan(q)
	case codec.MsgParse:
		m, err := codec.ParseParse(body)
		if err != nil {
			return router.ShardTarget{}, nil, nil
		}
		kp.sql, kp.plan = m.Query, s.plan(m.Query)
		kp.bind = bindOf(data[5+bodyLen:], m.Name)
	case codec.MsgBind:
		m, err := codec.ParseBind(body)
		if err != nil {
			return router.ShardTarget{}, nil, nil
		}
		kp.bind = &m
		if p, ok := parsed[string(m.Statement)]; ok {
			kp.sql, kp.plan = p.sql, p.plan
		} else if s.ps == nil {
			return router.ShardTarget{}, nil, nil
		} else if len(m.Statement) == 0 {
			kp.sql, kp.plan = s.ps.unnamedSQL, s.ps.unnamedPlan
		} else if st := s.ps.named[string(m.Statement)]; st != nil {
			kp.sql, kp.plan = st.sql, st.plan
		}
	}
	if kp.plan == nil {
		return router.ShardTarget{}, nil, nil
	}
	t, err := router.Shards(set.schema, kp.plan, &kp)
	return t, kp.plan, err
}

// bindOf is the first Bind in data (whole messages up to the first Sync)
// of the statement named name, or nil.
func bindOf(data []byte, name []byte) *codec.Bind {
	for off := 0; off < len(data); {
		typ, bodyLen, err := codec.PeekHeader(data[off:], codec.MaxProtocolMessage)
		if err != nil || len(data)-off < 5+bodyLen {
			return nil
		}
		body := data[off+5 : off+5+bodyLen]
		off += 5 + bodyLen
		switch typ {
		case codec.MsgBind:
			if m, err := codec.ParseBind(body); err == nil && string(m.Statement) == string(name) {
				return &m
			}
		case codec.MsgSync, codec.MsgQuery, codec.MsgParse:
			return nil
		}
	}
	return nil
}

// keyParams gives router.Shards a statement's key values: the literals of
// its text that a normalized plan names as $k, and its Bind's parameters.
type keyParams struct {
	sql   []byte
	plan  *planner.Plan
	bind  *codec.Bind
	spans []planner.Span
	base  int
	read  bool // spans and base are read
}

func (k *keyParams) Key(n int, t shard.KeyType) (shard.Value, bool, error) {
	if k.plan.Normalized(k.sql) {
		if !k.read {
			k.spans, k.base = planner.Literals(k.sql, nil)
			k.read = true
		}
		if i := n - k.base - 1; n > k.base && i < len(k.spans) {
			sp := k.spans[i]
			raw := k.sql[sp.Loc:sp.End()]
			lit, ok := planner.LiteralValue(raw)
			if !ok {
				return shard.Value{}, false, &shard.Error{Code: sqlstate.FeatureNotSupported, Message: "a sharding key belay cannot read"}
			}
			number := raw[0] == '-' || raw[0] == '+' || raw[0] == '.' || raw[0] >= '0' && raw[0] <= '9'
			if _, err := strconv.ParseInt(lit, 10, 64); err != nil && number && t == shard.KeyInteger {
				return shard.Value{}, false, router.ErrConverted // a numeric: PostgreSQL compares it with the key
			}
			v, err := shard.ParseValue(t, lit)
			return v, true, err
		}
	}
	if k.bind == nil {
		return shard.Value{}, false, nil
	}
	b, format, null, ok := k.bind.Param(n - 1)
	switch {
	case !ok:
		return shard.Value{}, false, nil // the server will say what is missing
	case null:
		return shard.Null(), true, nil
	case format == 1:
		v, err := shard.DecodeBinary(t, b)
		return v, true, err
	}
	v, err := shard.ParseValue(t, string(b))
	return v, true, err
}

// moveToShard makes the client's state on cluster c its current one (made
// on the first move there), with the session's route and consistency and
// its deferred BEGIN. The client holds no server. On the loop.
func (s *session) moveToShard(c *cluster) {
	cs := s.cl
	if cs.c == c {
		return
	}
	if cs.others == nil {
		cs.others = &[]*clusterState{cs}
	}
	for _, st := range *cs.others {
		if st.c == c {
			st.route, st.eventual, st.begin, cs.begin = cs.route, cs.eventual, cs.begin, nil
			s.cl = st
			return
		}
	}
	st := &clusterState{cred: cs.cred, c: c, others: cs.others, route: cs.route, eventual: cs.eventual, begin: cs.begin}
	cs.begin = nil
	*cs.others = append(*cs.others, st)
	s.cl = st
}

// states are the client's states on every shard it used (just cs outside
// a sharded cluster).
func (cs *clusterState) states() []*clusterState {
	if cs.others == nil {
		return []*clusterState{cs}
	}
	return *cs.others
}

// shardName is the name of the shard c serves.
func (c *cluster) shardName() string {
	if c.shard != "" {
		return c.shard
	}
	if t := c.src.Current(); t != nil {
		if s := c.served(t); s != nil {
			return s.Name
		}
	}
	return ""
}

// deferBegin answers a unit that is a lone BEGIN in a simple Query in the
// server's stead (BEGIN, ReadyForQuery 'T') and keeps it, to be sent where
// the transaction's first statement goes (beginDeferred). It returns false
// when the unit is anything else. On the loop (routeCluster).
func (s *session) deferBegin(c gnet.Conn, data []byte) bool {
	if s.p.sharding.set.Load() == nil || s.cl.begin != nil {
		return false
	}
	q := unitQuery(data)
	if q == nil {
		return false
	}
	plan := s.plan(q)
	stmt := bytes.TrimRight(q, "; \t\r\n") // "BEGIN;", as psql and pgbench send it, is a BEGIN too
	if len(plan.Stmts) != 1 || plan.Class != planner.ClassTxControl || txKind(stmt) != txOther {
		return false
	}
	f := bytes.Fields(bytes.ToLower(stripComments(stmt)))
	if len(f) == 0 || string(f[0]) != "begin" && string(f[0]) != "start" {
		return false // SAVEPOINT, RELEASE: outside a transaction they only warn or fail
	}
	begin := bytes.Clone(q)
	tag := "BEGIN"
	if string(f[0]) == "start" {
		tag = "START TRANSACTION"
	}
	if !s.answerUnit(c, nil, tag, 'T') {
		return false
	}
	s.cl.begin = begin
	return true
}

// beginDeferred sends the BEGIN deferBegin kept to the server the client
// now holds, before what the client sent since; it returns false when
// there is none. On the loop (clientData).
func (s *session) beginDeferred() bool {
	cs := s.cl
	if cs == nil || cs.begin == nil {
		return false
	}
	q := string(cs.begin)
	cs.begin = nil
	s.txBegin = beginText([]byte(q))
	// The unit opens a transaction: its writes' WAL position is asked
	// after its COMMIT, not pipelined after it (askLSN), as for a BEGIN
	// sent with the unit.
	cs.unitTx = true
	s.server.Exec(q, func(sc *poolcore.Server, perr *poolcore.PgError) {
		if s.state == sClosing || s.server != sc {
			s.giveBack(sc)
			return
		}
		if perr != nil {
			// Postgres refused a BEGIN belay had answered: the client must
			// not go on as if its transaction had begun.
			e := fatalFromServer(perr)
			e.Detail = "belay had answered the BEGIN before sending it, to send it to the shard of the transaction's first statement."
			s.kill(e)
			return
		}
		s.resumeWork()
	})
	return true
}
