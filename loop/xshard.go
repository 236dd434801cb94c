package loop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
	"github.com/belaydb/belay/twopc"
	"github.com/panjf2000/gnet/v2"
)

// Transactions across shards (issue J). A transaction belongs to the shard
// of its first statement (shards.go). When a later unit of work of the
// transaction (a simple Query, or extended messages through their Sync)
// belongs to another shard, the client's server is set aside, still in the
// transaction (a spreadLeg owns it meanwhile: poolcore's Server.Hand), and
// the unit goes to that shard's primary: a server there already set aside
// for this transaction, or a new one, where the transaction's BEGIN (the
// one belay deferred, else a plain BEGIN) runs first. The client's COMMIT,
// alone in its unit (a simple Query, or one execution in the extended
// protocol), then commits every part with two-phase commit (spread.go's
// coordinator: PREPARE TRANSACTION on each, the decision recorded in etcd,
// COMMIT PREPARED; an extended COMMIT is then answered by the server it
// held, commitBack); its ROLLBACK rolls every part back. A transaction
// that stayed on one shard commits as it always did. A unit whose BEGIN
// comes with its first statement (JDBC) goes to that statement's shard.
// A statement for several shards (DDL, a write of every shard's rows, a
// read gathered, a COPY) runs on every part at once (txspread.go).
//
// The switch happens only between units, with the server owing the client
// nothing: what the client pipelined for another shard waits until the
// server answered what came before (heldBack). Refused, with FATAL 0A000
// and every part rolled back (never committed in part):
//   - a unit whose messages belong to two shards (a pgx Batch of keys on
//     different shards, in one Sync);
//   - transaction control other than a COMMIT or ROLLBACK alone in its
//     unit once the transaction has parts on several shards: a COMMIT with
//     other statements, SAVEPOINT and ROLLBACK TO (which would undo one
//     shard's part only), PREPARE TRANSACTION, COMMIT AND CHAIN;
//   - a pinned session (LISTEN, temporary tables, ...), which keeps its
//     server;
//   - a cluster without etcd to record decisions (Config.RecordDecision).
//
// A part whose server is lost while set aside is lost work: the client
// gets FATAL 40001 when the transaction next needs it, or 40001 for its
// COMMIT (nothing committed). A transaction's settings (SET LOCAL, a SET
// inside it) are the shard's where they ran; its snapshot is each shard's
// own (there is no snapshot across shards).
//
// Who owns what: the parts set aside and the commit belong to the
// session's loop.

// txParts are the parts of the client's transaction set aside on shards
// other than the one of the server it holds.
type txParts struct {
	legs  []*spreadLeg
	begin string // what begins the transaction on a shard it reaches next
}

// crossing decides what of the client's input may go to the server it
// holds, in a sharded cluster: all of it (limit 0), the whole units before
// limit (the rest belongs elsewhere and waits for the server's answer), or
// nothing now (next routeStop, with act; routeAgain: the client's server
// changed, look again). On the loop, before forward.
func (s *session) crossing(c gnet.Conn) (limit int, act gnet.Action, next routeNext) {
	set := s.p.sharding.set.Load()
	if set == nil {
		return 0, gnet.None, routeGo
	}
	data := s.in.Bytes(c)
	if s.parts != nil && s.cliRemain == 0 {
		if act, next, done := s.endAcross(c, data); done {
			return 0, act, next
		}
	}
	limit, move, e, on := s.heldShard(set, data)
	switch {
	case e != nil:
		return 0, s.fatal(*e), routeStop
	case limit < 0:
		return 0, s.boundWaiting(c), routeStop // the rest of a unit for several shards first
	case on != nil:
		return s.spreadHere(c, set, data, on)
	case move < 0:
		if limit > 0 {
			s.heldBack = true
		}
		return limit, gnet.None, routeGo
	case s.t.busy() || !s.r.empty():
		// The server answers what came before first (ServerTraffic
		// resumes the client's input once it is idle).
		s.heldBack = true
		return 0, s.boundWaiting(c), routeStop
	}
	sc := s.server
	switch sc.TxStatus {
	case codec.TxIdle: // no transaction open on the server yet
		if !s.t.pinned {
			// The unit goes to its shard (its first message, a BEGIN in
			// the extended protocol as JDBC sends it, did not say which).
			s.release(sc)
			s.moveToShard(set.clusters[move])
			return 0, gnet.None, routeAgain
		}
		e := fatalf(sqlstate.FeatureNotSupported, "a session pinned to its server (LISTEN, temporary tables, session locks, ...) ran a statement of another shard than its server's")
		return 0, s.fatal(e), routeStop
	case codec.TxFailed:
		// The server refuses anything but the transaction's end (25P02),
		// as it would anywhere: this unit goes there alone.
		if end := firstUnitEnd(data); end > 0 && end < len(data) {
			s.heldBack = true
			return end, gnet.None, routeGo
		}
		return 0, gnet.None, routeGo
	}
	if why := s.cannotCross(); why != "" {
		e := fatalf(sqlstate.FeatureNotSupported, "a transaction on shard %s ran a statement of shard %s: %s",
			s.cl.c.shardName(), ha.ShardName(move), why)
		e.Detail = "belay ends the connection: its transaction is rolled back, nothing of it is committed."
		return 0, s.fatal(e), routeStop
	}
	if e := s.crossTo(set, move); e != nil {
		return 0, s.fatal(*e), routeStop
	}
	return 0, gnet.None, routeAgain
}

// spreadHere runs the unit at the start of data, a statement for several
// shards, in the client's transaction (txspread.go), once the server it
// holds owes it nothing: a failed transaction's server answers it (25P02);
// a server in none goes back, and the unit is routed as any other.
func (s *session) spreadHere(c gnet.Conn, set *shardSet, data []byte, on *spreadOn) (int, gnet.Action, routeNext) {
	sc := s.server
	switch {
	case s.t.busy() || !s.r.empty():
		s.heldBack = true
		return 0, s.boundWaiting(c), routeStop
	case sc.TxStatus == codec.TxFailed:
		if end := firstUnitEnd(data); end > 0 && end < len(data) {
			s.heldBack = true
			return end, gnet.None, routeGo
		}
		return 0, gnet.None, routeGo
	case sc.TxStatus == codec.TxIdle && !s.t.pinned:
		s.release(sc)
		return 0, gnet.None, routeAgain
	}
	if why := s.cannotCross(); why != "" {
		e := fatalf(sqlstate.FeatureNotSupported, "a transaction on shard %s ran a statement for several shards: %s", s.cl.c.shardName(), why)
		e.Detail = "belay ends the connection: its transaction is rolled back, nothing of it is committed."
		return 0, s.fatal(e), routeStop
	}
	if err := s.startSpread(set, data, on); err != nil {
		e := fatalf(sqlstate.FeatureNotSupported, "%v", err)
		var se *shard.Error
		if errors.As(err, &se) {
			e = fatalf(se.Code, "%s", se.Message)
		}
		e.Detail = "belay ends the connection: its transaction is rolled back, nothing of it is committed."
		return 0, s.fatal(e), routeStop
	}
	return 0, s.boundWaiting(c), routeStop
}

// cannotCross says why the client's transaction cannot reach another
// shard ("" if it can).
func (s *session) cannotCross() string {
	switch {
	case s.p.cfg.RecordDecision == nil:
		return "transactions across shards need etcd to record their commits"
	case s.t.pinned:
		return "a session pinned to its server (LISTEN, temporary tables, session locks, ...) keeps to one shard"
	}
	return ""
}

// crossTo sets the client's server aside as its transaction's part on its
// shard and makes shard k's part current: the one set aside there, or a
// new one (the client holds no server then; the unit is routed to k's
// primary, after the transaction's BEGIN). On the loop; the server is idle
// in the transaction.
func (s *session) crossTo(set *shardSet, k int) *codec.ErrorResponse {
	if s.parts == nil {
		begin := "BEGIN"
		if s.txBegin != "" {
			begin = s.txBegin
		}
		s.parts = &txParts{begin: begin}
	}
	s.setAside(set)
	i := slices.IndexFunc(s.parts.legs, func(l *spreadLeg) bool { return l.shard == k })
	if i < 0 {
		s.moveToShard(set.clusters[k])
		s.cl.begin = []byte(s.parts.begin) // and the unit goes to the primary unless READ ONLY (routeWork)
		return nil
	}
	l := s.parts.legs[i]
	s.parts.legs = slices.Delete(s.parts.legs, i, i+1)
	if l.sc == nil {
		s.moveToShard(set.clusters[k])
		e := fatalf(sqlstate.TRSerializationFailure, "the transaction's work on shard %s was lost with its server", ha.ShardName(k))
		e.Detail = "belay ends the connection: its transaction is rolled back on every shard, nothing of it is committed."
		return &e
	}
	s.takeBack(set, l)
	return nil
}

// takeBack makes the server leg l set aside the client's own again, on
// its shard. On the loop.
func (s *session) takeBack(set *shardSet, l *spreadLeg) {
	s.moveToShard(set.clusters[l.shard])
	l.sc.Hand(s)
	s.server, s.pool, s.stats = l.sc, l.pool, l.pool.LoopStats(s.loop)
	l.sc = nil
	if cs := s.cl; cs.node != nil {
		cs.busy = true
		cs.node.inflight.Add(1)
	}
}

// commitBack follows a COMMIT across shards sent in the extended protocol
// once every part committed: the server of the part the client held
// becomes its own again, in a new, empty transaction (BEGIN), and the
// client's COMMIT goes to it as sent (its Parse, named or not, its Bind,
// as the session maps them), which commits nothing more and answers as
// PostgreSQL answers. On the loop.
func (s *session) commitBack(set *shardSet, l *spreadLeg) {
	s.takeBack(set, l)
	s.server.Exec("BEGIN", func(sc *poolcore.Server, perr *poolcore.PgError) {
		if s.state == sClosing || s.server != sc {
			s.giveBack(sc)
			return
		}
		if perr != nil {
			s.kill(fatalFromServer(perr))
			return
		}
		s.resumeWork()
	})
}

// setAside makes the client's server a part of its transaction held by a
// leg of its own; the client holds none after.
func (s *session) setAside(set *shardSet) {
	sc := s.server
	l := &spreadLeg{shard: slices.Index(set.clusters, s.cl.c), pool: s.pool, sc: sc, c: s.cl.c}
	if n := s.cl.node; n != nil {
		l.node, l.replica = n.name, !n.primary
	}
	sc.Hand(l)
	s.server = nil
	s.unitDone()
	s.parts.legs = append(s.parts.legs, l)
}

// dropParts rolls back the parts of the client's transaction set aside
// (their servers go back to their pools, which roll them back): the
// transaction ended, failed or lost its current part. On the loop.
func (s *session) dropParts() {
	if s.parts == nil {
		return
	}
	for _, l := range s.parts.legs {
		if l.sc != nil {
			l.pool.Release(l.sc)
			l.sc = nil
		}
	}
	s.parts = nil
}

// abandonParts gives up the parts of the client's transaction set aside
// on a node of cluster c that is no longer its primary (abandonOld): the
// work there is lost (errAbandoned), as the client will be told when its
// transaction next needs it. On the loop.
func (s *session) abandonParts(c *cluster, primary string) {
	if s.parts == nil {
		return
	}
	for _, l := range s.parts.legs {
		if sc := l.sc; sc != nil && l.c == c && !l.replica && l.node != primary {
			l.sc, l.lost = nil, errAbandoned
			sc.Close()
		}
	}
}

// endAcross handles transaction control at the start of data while the
// client's transaction has parts set aside: a COMMIT alone in its unit
// (a simple Query, or one execution in the extended protocol) commits
// every part (two-phase commit), a ROLLBACK alone rolls every part back;
// any other end of the transaction, or a savepoint, is refused. done is
// false when the unit is none of these.
func (s *session) endAcross(c gnet.Conn, data []byte) (act gnet.Action, next routeNext, done bool) {
	if q, extended := s.unitStatement(data); q != nil {
		switch {
		case isTxEnd(q, false):
			s.dropParts() // and the ROLLBACK goes to the server held
			return gnet.None, routeGo, false
		case isTxEnd(q, true):
			if s.t.busy() || !s.r.empty() {
				s.heldBack = true
				return s.boundWaiting(c), routeStop, true
			}
			if s.server.TxStatus != codec.TxActive {
				s.dropParts() // a failed transaction: Postgres answers ROLLBACK
				return gnet.None, routeGo, false
			}
			return s.commitAcross(c, extended)
		}
	}
	if !executes(data) {
		return gnet.None, routeGo, false // it prepares or describes only
	}
	for typ, m := range unitMessages(data) {
		var q []byte
		switch typ {
		case codec.MsgQuery:
			q, _ = codec.QueryText(m[5:])
		case codec.MsgParse:
			if p, err := codec.ParseParse(m[5:]); err == nil {
				q = p.Query
			}
		}
		if q != nil && endsOrSaves(s.plan(q)) {
			e := fatalf(sqlstate.FeatureNotSupported, "a transaction with work on several shards ends only with COMMIT or ROLLBACK alone in its unit of work, and has no savepoints")
			e.Detail = "belay ends the connection: its transaction is rolled back on every shard, nothing of it is committed."
			return s.fatal(e), routeStop, true
		}
	}
	return gnet.None, routeGo, false
}

// unitStatement is the text of the one statement the unit starting with
// data executes, whole: a simple Query's, or in the extended protocol
// ([Parse] Bind [Describe] Execute Sync) the Parse's or that of the
// statement it binds, prepared before (extended true); nil otherwise.
func (s *session) unitStatement(data []byte) (q []byte, extended bool) {
	if q := unitQuery(data); q != nil {
		return q, false
	}
	var parsed *codec.Parse
	var bound []byte
	bind, execs, synced := false, 0, false
	for typ, m := range unitMessages(data) {
		switch typ {
		case codec.MsgParse:
			p, err := codec.ParseParse(m[5:])
			if err != nil || parsed != nil {
				return nil, false
			}
			parsed = &p
		case codec.MsgBind:
			b, err := codec.ParseBind(m[5:])
			if err != nil || bind {
				return nil, false
			}
			bind, bound = true, b.Statement
		case codec.MsgExecute:
			execs++
		case codec.MsgSync:
			synced = true
		case codec.MsgDescribe:
		default:
			return nil, false
		}
	}
	switch {
	case !bind || execs != 1 || !synced:
		return nil, false
	case parsed != nil && string(parsed.Name) == string(bound):
		return parsed.Query, true
	case parsed != nil:
		return nil, false
	}
	if p, ok := s.preparedParse(bound); ok {
		return p.Query, true
	}
	return nil, false
}

// endsOrSaves says whether plan has a statement of transaction control.
func endsOrSaves(plan *planner.Plan) bool {
	return slices.ContainsFunc(plan.Stmts, func(st planner.Stmt) bool { return st.Class == planner.ClassTxControl })
}

// commitAcross commits the client's transaction on every shard it has a
// part on: the server held is set aside too, and a spread drives the two
// phases over the parts on primaries; its answer is the COMMIT's
// (spread.finish), or, for a COMMIT in the extended protocol (extended),
// the server's own to that COMMIT, sent once every part committed
// (commitBack). A part on a replica (a READ ONLY transaction's) has
// nothing to commit: it ends with its server's release.
func (s *session) commitAcross(c gnet.Conn, extended bool) (gnet.Action, routeNext, bool) {
	set := s.p.sharding.set.Load()
	s.setAside(set)
	parts := s.parts
	s.parts = nil
	sp := &spread{s: s, commit: true}
	if extended {
		sp.keep = parts.legs[len(parts.legs)-1] // the part the client held
	}
	for _, l := range parts.legs {
		if l.replica && l.sc != nil {
			if l != sp.keep {
				l.pool.Release(l.sc)
				l.sc = nil
			}
			continue
		}
		sp.legs = append(sp.legs, l)
	}
	_, err := rand.Read(sp.tx[:])
	if err != nil || len(sp.legs) == 0 {
		for _, l := range parts.legs {
			if l.sc != nil && (err != nil || l != sp.keep) {
				l.pool.Release(l.sc)
				l.sc = nil
			}
		}
		switch {
		case err != nil:
			return s.fatal(fatalf(sqlstate.InternalError, "belay could not start the commit: %v", err)), routeStop, true
		case sp.keep != nil && sp.keep.sc != nil:
			s.commitBack(set, sp.keep)
			return s.boundWaiting(c), routeStop, true
		}
		s.t.status = codec.TxIdle
		if !s.answerUnit(c, nil, "COMMIT", codec.TxIdle) {
			return s.fatal(fatalf(sqlstate.InternalError, "belay lost the COMMIT it answered")), routeStop, true
		}
		return gnet.None, routeAgain, true
	}
	shards := make([]int, len(sp.legs))
	for i, l := range sp.legs {
		shards[i] = l.shard
		l.sp = sp
		l.step = stepPrepare
	}
	sp.co = twopc.NewCoordinator(shards)
	sp.co.Start()
	s.spread = sp
	sp.busy = len(sp.legs)
	for _, l := range sp.legs {
		if l.sc == nil {
			if l.lost == nil {
				l.lost = errPartLost
			}
			l.prepared(nil)
			continue
		}
		l.sc.ExecTags("PREPARE TRANSACTION '"+twopc.GID(sp.tx, l.shard)+"'", &l.tags,
			func(_ *poolcore.Server, perr *poolcore.PgError) { l.prepared(perr) })
	}
	return s.boundWaiting(c), routeStop, true
}

// errPartLost: a part of a transaction whose server was lost while set
// aside.
var errPartLost = errors.New("the transaction's part on a shard was lost with its server")

// heldShard checks the whole messages of data, which go to the server the
// client holds, against the shard of that server, unit by unit. It
// returns how much of data may go now (limit; 0: all of it) when a later
// unit belongs elsewhere; move, the shard that the unit at the start of
// data belongs to when that is not the server's (-1: it is); spread, when
// that unit is a statement for several shards txspread.go runs (limit -1:
// such a unit is not all in yet, nothing goes); or the FATAL
// error that ends a client whose unit would run where its rows are not (a
// unit for two shards, a statement for several), its transaction rolled
// back with its server. On the loop, before forward.
func (s *session) heldShard(set *shardSet, data []byte) (limit, move int, fatal *codec.ErrorResponse, spread *spreadOn) {
	start := min(s.cliRemain, len(data)) // the rest of a CopyData streaming in
	unit, here := start, false           // where the unit starts; a message of it runs on the server's shard
	var parsed map[string]parsedStmt
	for off := start; off < len(data); {
		typ, bodyLen, err := codec.PeekHeader(data[off:], codec.MaxProtocolMessage)
		if err != nil || len(data)-off < 5+bodyLen {
			break
		}
		if typ == codec.MsgParse {
			// A Parse prepares; its Bind says where it runs.
			if m, err := codec.ParseParse(data[off+5 : off+5+bodyLen]); err == nil {
				if parsed == nil {
					parsed = map[string]parsedStmt{}
				}
				parsed[string(m.Name)] = parsedStmt{m.Query, s.plan(m.Query)}
			}
		}
		if typ == codec.MsgQuery || typ == codec.MsgBind {
			t, plan, err := s.shardOf(set, data[off:], parsed)
			if unit > start && s.parts != nil && plan != nil && endsOrSaves(plan) {
				return unit, -1, nil, nil // the end of a transaction across shards waits for what came before (endAcross)
			}
			other := -1
			var refused *shard.Error
			switch {
			case errors.Is(err, router.ErrUnbound):
			case errors.As(err, &refused) && refused.Code == sqlstate.FeatureNotSupported:
				e := fatalf(sqlstate.FeatureNotSupported, "%s", refused.Message)
				fatal = &e
			case err != nil || plan == nil || t.Spread == router.AnyShard:
				// A bad key value: the server says so, as it would anywhere.
			case t.Spread == router.OneShard && set.clusters[t.Shards[0]] != s.cl.c:
				other = t.Shards[0]
			case t.Spread == router.OneShard:
				here = true
			case t.Spread == router.ShardSet && plan.Class != planner.ClassSession && plan.Class != planner.ClassTxControl:
				// A statement for several shards: in the transaction
				// (txspread.go), when it is alone in its unit, once the
				// unit is all in.
				if firstUnitEnd(data[unit:]) < 0 {
					if unit > start {
						return unit, -1, nil, nil
					}
					return -1, -1, nil, nil
				}
				err := s.spreadUnit(set, data[unit:], t)
				if on, ok := asSpreadOn(err); ok {
					if unit > start {
						return unit, -1, nil, nil
					}
					return 0, -1, nil, on
				}
				e := fatalf(sqlstate.FeatureNotSupported, "%s", errScatterTx.Message)
				if errors.As(err, &refused) && !errors.Is(err, errScatter) {
					e = fatalf(refused.Code, "%s", refused.Message)
				}
				fatal = &e
			}
			switch {
			case (other >= 0 || fatal != nil) && unit > start:
				return unit, -1, nil, nil // the units before it go first; it is looked at anew then
			case other >= 0 && here:
				e := fatalf(sqlstate.FeatureNotSupported, "statements of shards %s and %s in one unit of work (a pipeline without a Sync between them)",
					s.cl.c.shardName(), ha.ShardName(other))
				fatal = &e
			case other >= 0:
				return 0, other, nil, nil
			}
			if fatal != nil {
				fatal.Detail = "belay ends the connection: its transaction is rolled back, nothing of it is committed."
				return 0, -1, fatal, nil
			}
		}
		off += 5 + bodyLen
		if typ == codec.MsgQuery || typ == codec.MsgSync || typ == codec.MsgFunctionCall {
			unit, here = off, false
		}
	}
	return 0, -1, nil, nil
}

// unitMessages yields the whole messages of the first unit of work of data
// (through its Query, Sync or FunctionCall, or as far as data goes).
func unitMessages(data []byte) func(yield func(byte, []byte) bool) {
	return func(yield func(byte, []byte) bool) {
		for typ, m := range heldMessages(data) {
			if !yield(typ, m) || typ == codec.MsgQuery || typ == codec.MsgSync || typ == codec.MsgFunctionCall {
				return
			}
		}
	}
}

// firstUnitEnd is where the first unit of work of data ends (after its
// Query, Sync or FunctionCall), or -1 while it is not all in.
func firstUnitEnd(data []byte) int {
	off := 0
	for typ, m := range heldMessages(data) {
		off += len(m)
		if typ == codec.MsgQuery || typ == codec.MsgSync || typ == codec.MsgFunctionCall {
			return off
		}
	}
	return -1
}

// beginText is the BEGIN a deferred one sent (shards.go), trimmed.
func beginText(q []byte) string { return string(bytes.TrimRight(q, "; \t\r\n")) }

// committedAcross follows a COMMIT across shards: the client's next reads
// on those shards go to their primaries until a write of its own is asked
// its position (route.go's blind writes): the COMMIT PREPARED's WAL
// position is not asked.
func (s *session) committedAcross(sp *spread) {
	set := s.p.sharding.set.Load()
	if set == nil {
		return
	}
	for _, st := range s.cl.states() {
		for _, l := range sp.legs {
			if l.shard >= 0 && l.shard < len(set.clusters) && set.clusters[l.shard] == st.c {
				st.blindWrite = true
			}
		}
	}
}
