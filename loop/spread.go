package loop

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/router"
	"github.com/belaydb/belay/shard"
	"github.com/belaydb/belay/twopc"
	"github.com/panjf2000/gnet/v2"
)

// A read of every shard whose rows need no merge (planner's Concat: no
// aggregate, GROUP BY, DISTINCT, ORDER BY, LIMIT), alone in its unit, is
// a gather (merged as planner.PlanGather says, where they need it): the
// same legs run it on every shard's primary and the client gets the first
// shard's RowDescription,
// every shard's rows in shard order and one tag counting them all, once
// every shard answered (at most max_buffered_bytes of results held:
// 54000 past it); a shard's error is the client's.
//
// One statement on every shard, atomically (issue J): DDL, and writes to a
// reference table, whose copies must not differ. A unit that is one such
// statement in a simple Query, outside a transaction, runs on each shard's
// primary in a transaction of its own, prepared there (PREPARE
// TRANSACTION), and committed on all once twopc's coordinator has the
// decision recorded (Config.RecordDecision: etcd); a shard that fails
// rolls everything back and the client gets its error. The client sees
// one statement: its tag (shard 0's; every copy of a reference table
// answers alike) or its error, and nothing of the next unit runs before
// every shard committed (its next read sees the change anywhere).
//
// A statement PostgreSQL cannot run in a transaction block (CREATE INDEX
// CONCURRENTLY, VACUUM, ...) fails with 25001; servers without
// max_prepared_transactions fail to prepare (55000): both are refused,
// nothing applied. A gateway that dies between the phases leaves prepared
// transactions to the leading orchestrator's resolver (ha's
// orch_resolve.go, twopc.Resolve): it carries out the recorded decision,
// or records Abort for one left undecided past its grace.
//
// In a transaction the same statements run on its parts, unprepared
// (txspread.go); a COPY FROM STDIN is a spread whose legs take the
// client's rows (copysplit.go).
//
// The COMMIT of a transaction with parts on several shards (xshard.go)
// is a spread too, whose legs already hold their servers in the
// transaction (commit): each runs PREPARE TRANSACTION alone, then the
// same coordinator decides.
//
// Who owns what: a spread and its legs belong to the session's loop;
// every server of a leg is that loop's (pools are per loop); the
// decision's write runs on a goroutine of its own and comes back through
// the loop's Execute.

// spread is one statement under way on every shard.
type spread struct {
	s    *session
	sql  string
	tx   twopc.TxID
	co   *twopc.Coordinator
	legs []*spreadLeg
	busy int // legs with a step under way
	// unfinished: a second-phase action failed (its part is the
	// resolver's, which needs the decision's record).
	unfinished bool
	// answered: the client has its answer (or left); the legs finish.
	answered bool
	// sharded: it changes a sharded table's rows (tag counts them all).
	sharded bool
	// gather: a read of every shard, its rows concatenated (no commit), or
	// with merge, merged (planner.PlanGather's SQL ran on the shards).
	gather   bool
	merge    *shard.Merge
	ext      *extGather                // of the extended protocol (gatherext.go)
	extParts map[int]planner.SplitPart // its INSERT's parts by shard
	// commit: the COMMIT of a transaction with parts on several shards
	// (xshard.go): its legs hold servers in the transaction; the first
	// phase is the PREPARE TRANSACTION alone.
	commit bool
	// keep: a COMMIT in the extended protocol's, the leg whose server
	// goes back to the client once every part committed (commitBack).
	keep *spreadLeg
	// copy: a COPY FROM STDIN's (copysplit.go).
	copy *copyIn
	// plain: run as it is on each shard's primary, in no transaction
	// (spreadOn's plain); the client gets the first error, or the tag.
	plain bool
	// returning: a write with RETURNING, whose rows each leg keeps (raw)
	// and the client gets gathered (returned); rowShards, a split
	// INSERT's, puts them back in the order of its VALUES. fault is an
	// error of belay's own about them (too many, rows skipped).
	returning bool
	rowShards []int
	fault     error
	// serial: its legs run one after the other, in shard order (a
	// write's: start); the next starts once one's first phase ended;
	// halted, once one failed, the rest do not run.
	serial, halted bool
	// inTx: it runs inside the client's transaction (txspread.go), on
	// its parts; begin opens the transaction on a shard it had none on;
	// cur is the shard of the part the client held (-1: none).
	inTx  bool
	begin string
	cur   int
}

// spreadLeg is the statement's part on one shard: a poolcore client of
// its own, holding one server of the shard's primary.
type spreadLeg struct {
	sp    *spread
	shard int
	sql   string // its own statement ("": the spread's)
	pool  *poolcore.Pool
	sc    *poolcore.Server
	tags  []string
	lost  error   // the server was lost, or never had
	step  legStep // what the leg waits for
	// A gather's: the shard's result, and its error.
	raw poolcore.RawResult
	err *poolcore.PgError
	// A transaction's part set aside (xshard.go): its shard's cluster, the
	// node its server is on, and whether that node is a replica (a READ
	// ONLY transaction's part).
	c       *cluster
	node    string
	replica bool
	// fresh: the transaction has no part on its shard yet: its server
	// begins it first (txspread.go).
	fresh bool
	// fault: belay's own error about its RETURNING rows (returning.go).
	fault error
	// notRun: a new part of the client's transaction that a serial spread
	// did not begin (an earlier leg failed): no part of it.
	notRun bool
}

type legStep uint8

const (
	stepNone    legStep = iota
	stepPrepare         // a server, then the prepare (first phase)
	stepSecond          // a second-phase action
)

// errSpread: the unit is one statement to run on every shard (spread);
// errGather: one read of every shard.
var (
	errSpread = errors.New("a statement for every shard")
	errGather = errors.New("a read of every shard")
)

// spreadOn: the unit runs as a spread (or, gather, a gather) on some
// shards only: those its key filters leave (an IN list of keys of several
// shards), or each with a statement of its own (parts: an INSERT's rows
// split by their shards, planner.SplitInsert).
type spreadOn struct {
	gather bool
	shards []int          // nil: every shard
	parts  map[int]string // a shard's own statement (none: the unit's)
	// ext: a read in the extended protocol (gatherext.go), of extSQL; or
	// with extParts, an INSERT in it split by its rows' shards.
	ext      *extGather
	extSQL   []byte
	extParts map[int]planner.SplitPart
	// copy: a COPY FROM STDIN, its rows split between the shards
	// (copysplit.go).
	copy *copyIn
	// plain: maintenance PostgreSQL runs only outside a transaction
	// (planner's NoTxBlock: VACUUM, CREATE INDEX CONCURRENTLY, ...), run
	// as it is on each shard.
	plain bool
	// rowShards: a split INSERT's rows' shards, in the client's order
	// (the order its RETURNING rows are given back in).
	rowShards []int
}

func (*spreadOn) Error() string { return "a statement for some shards" }

// spreadOnSome is err (errSpread or errGather) for the shards of t only,
// when they are not all of set's.
func spreadOnSome(set *shardSet, t router.ShardTarget, err error) error {
	if len(t.Shards) == 0 || len(t.Shards) >= len(set.clusters) {
		return err
	}
	return &spreadOn{gather: errors.Is(err, errGather), shards: t.Shards}
}

// splittable says whether the unit starting with data is an INSERT whose
// rows (placed on t.RowShards) spread runs split between their shards: a
// simple Query of that one statement (in a transaction, or in the extended
// protocol outside one); the error is planner.SplitInsert's refusal.
func (s *session) splittable(data []byte, t router.ShardTarget) (*spreadOn, error) {
	if s.p.cfg.RecordDecision == nil || s.t.pinned {
		return nil, nil
	}
	q := unitQuery(data)
	if q == nil {
		return s.splittableExt(data, t)
	}
	if len(s.plan(q).Stmts) != 1 {
		return nil, nil
	}
	split, err := planner.SplitInsert(string(q), t.RowShards)
	if err != nil {
		return nil, err
	}
	parts := make(map[int]string, len(split))
	for k, p := range split {
		parts[k] = p.SQL
	}
	return &spreadOn{shards: t.Shards, parts: parts, rowShards: t.RowShards}, nil
}

// boundLimits is g's merge with its LIMIT and OFFSET given by the
// parameters ext binds.
func boundLimits(g *planner.Gather, ext *extGather) (*shard.Merge, error) {
	if ext == nil {
		return nil, errScatter // a simple Query has no parameters
	}
	m := g.Merge // a copy: the plan is every client's
	for _, p := range []struct {
		n      int
		to     *int64
		offset bool
	}{{g.LimitParam, &m.Limit, false}, {g.OffsetParam, &m.Offset, true}} {
		if p.n == 0 {
			continue
		}
		v, format, null, ok := ext.bind.Param(p.n - 1)
		if !ok {
			return nil, &shard.Error{Code: sqlstate.ProtocolViolation, Message: fmt.Sprintf("bind message supplies fewer parameters than LIMIT/OFFSET $%d needs", p.n)}
		}
		var err error
		if *p.to, err = planner.ParamLimit(v, format == 1, null, p.offset); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// spreadable says whether the unit starting with data is one statement
// that spread runs: a simple Query of one DDL statement or write to a
// reference table (in a transaction, txspread.go). A reference table's write
// that reads a sharded table is refused (each copy would differ).
func (s *session) spreadable(set *shardSet, data []byte) (bool, error) {
	if s.p.cfg.RecordDecision == nil || s.t.pinned {
		return false, nil
	}
	q := unitQuery(data)
	if q == nil {
		return false, nil
	}
	return s.spreadableSQL(set, q, true)
}

// spreadableSQL says whether q is one statement spread runs on every
// shard (spreadable's rule, whatever the protocol); a write with
// RETURNING only if returning (its rows are gathered in the simple
// protocol only).
func (s *session) spreadableSQL(set *shardSet, q []byte, returning bool) (bool, error) {
	plan := s.plan(q)
	if len(plan.Stmts) != 1 || len(set.clusters) < 2 {
		return false, nil
	}
	st := &plan.Stmts[0]
	switch {
	case st.Copy != 0:
		return false, nil
	case st.Returning && !returning:
		return false, nil
	case st.Materializes && readsSharded(set, st):
		return false, errMaterializeSharded
	case plan.Class == planner.ClassUtility:
		return true, nil // DDL
	case plan.Class != planner.ClassWrite || st.Target == "":
		return false, nil
	}
	// UPDATE or DELETE of every shard's rows, a reference table's write.
	if t, ok := router.LookupTable(set.schema, st.Target); ok && t.Kind == shard.Reference && readsSharded(set, st) {
		return false, errReferenceFromSharded
	}
	return true, nil
}

// readsSharded says whether st names a sharded table.
func readsSharded(set *shardSet, st *planner.Stmt) bool {
	for _, r := range st.Relations {
		if t, ok := router.LookupTable(set.schema, r); ok && t.Kind == shard.Sharded {
			return true
		}
	}
	return false
}

// errMaterializeSharded: a new table of a query over a sharded table,
// which is no table of the schema (each shard would store its own rows).
var errMaterializeSharded = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "CREATE TABLE AS, CREATE MATERIALIZED VIEW or SELECT INTO over a sharded table (create the table and add it to the sharding schema first)"}

// errReferenceFromSharded: a reference table's write computed from a
// sharded table's rows.
var errReferenceFromSharded = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "a write to a reference table that reads a sharded table (each shard's copy would be computed from its own rows)"}

// startSpread runs the Query at the start of data on the shards of set
// that on names, each with its own statement if it has one. The unit stays
// in the client's input until the answer. On the loop.
func (s *session) startSpread(set *shardSet, data []byte, on *spreadOn) error {
	q := unitQuery(data)
	if on.ext != nil {
		q = on.extSQL
	}
	gather := on.gather
	sp := &spread{s: s, sql: string(q), gather: gather, ext: on.ext, extParts: on.extParts, copy: on.copy, plain: on.plain,
		rowShards: on.rowShards}
	sp.returning = !gather && s.plan(q).Stmts[0].Returning
	if gather && !s.plan(q).Stmts[0].Concat {
		g, err := s.p.gathers.plan(q)
		if err != nil {
			return err
		}
		sp.sql, sp.merge = g.SQL, &g.Merge
		if g.LimitParam != 0 || g.OffsetParam != 0 {
			if sp.merge, err = boundLimits(g, on.ext); err != nil {
				return err
			}
		}
	}
	if st := s.plan(q).Stmts[0]; st.Target != "" {
		if t, ok := router.LookupTable(set.schema, st.Target); ok && t.Kind == shard.Sharded {
			sp.sharded = true
		}
	}
	if sp.inTx = s.inTx(); sp.inTx {
		if err := s.txLegs(set, sp, on); err != nil { // txspread.go
			return err
		}
	} else if err := s.spreadLegs(set, sp, on); err != nil {
		return err
	}
	if sp.copy != nil {
		sp.copy.sp, sp.copy.legs = sp, make([]copyLeg, len(sp.legs))
	}
	s.spread = sp
	sp.busy = len(sp.legs)
	for _, l := range sp.legs {
		l.step = stepPrepare
		l.raw.Max = s.p.cfg.MaxBufferedBytes
	}
	// A write takes its row locks shard after shard, in shard order: two
	// writes of the same rows of a reference table (or of several shards'
	// rows) would otherwise each lock them first on another shard and wait
	// for each other for ever (no shard sees the cycle). A read, a COPY
	// and maintenance run on every shard at once.
	sp.serial = !sp.gather && sp.copy == nil && !sp.plain
	for _, l := range sp.legs {
		l.start()
		if sp.serial {
			break // the next once this one ran (advance)
		}
	}
	return nil
}

// start runs the leg's first phase: on its server, a transaction's part's,
// or one of its pool's.
func (l *spreadLeg) start() {
	sp := l.sp
	switch {
	case sp.inTx && l.sc != nil:
		l.open() // the transaction's part on its shard
	case sp.inTx && !l.fresh:
		l.prepared(nil) // a part lost with its server (l.lost)
	default:
		if sc := l.pool.Acquire(sp.s.loop, l, sp.s.sig); sc != nil {
			l.ServerReady(sc)
		}
	}
}

// advance starts a serial spread's leg after l, once l's first phase
// ended: if l failed, the legs after it do not run (errNotRun) and fail
// in turn.
func (sp *spread) advance(l *spreadLeg, failed bool) {
	if !sp.serial {
		return
	}
	sp.halted = sp.halted || failed
	i := slices.Index(sp.legs, l)
	if i < 0 || i+1 >= len(sp.legs) {
		return
	}
	next := sp.legs[i+1]
	if !sp.halted {
		next.start()
		return
	}
	switch {
	case sp.co != nil:
		next.lost = errNotRun // its transaction of its own fails
	case next.fresh:
		next.fresh, next.notRun = false, true // never begun: no part there (finishInTx)
	} // a part of the client's transaction stays as it was
	next.prepared(nil)
}

// errNotRun: a leg of a serial spread that did not run, an earlier leg
// having failed.
var errNotRun = errors.New("not run: the statement failed on an earlier shard")

// spreadLegs makes the legs of a spread outside a transaction: one for
// each shard of on, on its primary, in a transaction of its own that the
// coordinator commits (its id drawn here).
func (s *session) spreadLegs(set *shardSet, sp *spread, on *spreadOn) error {
	if _, err := rand.Read(sp.tx[:]); err != nil {
		return err
	}
	var shards []int
	for k, c := range set.clusters {
		if on.shards != nil && !slices.Contains(on.shards, k) {
			continue
		}
		shards = append(shards, k)
		v := c.view.Load()
		if v == nil || v.primary < 0 {
			return errNoPrimary
		}
		pool, err := s.p.pools.Pool(poolcore.Key{Node: v.nodes[v.primary].name, Database: s.key.Database, User: s.key.User})
		if err != nil {
			return err
		}
		sp.legs = append(sp.legs, &spreadLeg{sp: sp, shard: k, pool: pool, sql: on.parts[k]})
	}
	for _, l := range sp.legs {
		setCredentials(l.pool, s.cl.cred)
		l.pool.Join(s.loop)
	}
	if !sp.gather && !sp.plain {
		sp.co = twopc.NewCoordinator(shards)
		sp.co.Start()
	}
	return nil
}

// ServerReady: the leg's server; the session's settings first, then the
// statement, prepared.
func (l *spreadLeg) ServerReady(sc *poolcore.Server) {
	l.sc = sc
	sp := l.sp
	if sig := sp.s.sig; sc.AppliedSig != sig {
		sc.Exec(applySQL(sc.AppliedSig, sig), func(_ *poolcore.Server, perr *poolcore.PgError) {
			if perr != nil {
				l.prepared(perr)
				return
			}
			sc.AppliedSig = sig
			l.open()
		})
		return
	}
	l.open()
}

// open runs the leg's statement on its server; in a transaction
// (txspread.go), a server new to it begins it first.
func (l *spreadLeg) open() {
	if !l.sp.inTx || !l.fresh {
		l.run()
		return
	}
	l.fresh = false
	l.sc.Exec(l.sp.begin, func(_ *poolcore.Server, perr *poolcore.PgError) {
		if perr != nil {
			l.prepared(perr)
			return
		}
		l.run()
	})
}

// run sends the leg's statement: outside a transaction in one of its own,
// prepared (the first phase); in the client's, as it is.
func (l *spreadLeg) run() {
	sp, sc := l.sp, l.sc
	then := func(_ *poolcore.Server, perr *poolcore.PgError) { l.prepared(perr) }
	switch {
	case sp.copy != nil:
		sp.copy.begin(l)
		return
	case sp.extParts != nil:
		gid := ""
		if sp.co != nil {
			gid = twopc.GID(sp.tx, l.shard)
		}
		msgs, rfqs := sp.ext.splitMsgs(sp.extParts[l.shard], gid, sp.returning)
		if sp.returning {
			sc.ExecMsgs(msgs, rfqs, nil, &l.raw, then) // its rows, and the tags with them
		} else {
			sc.ExecMsgs(msgs, rfqs, &l.tags, nil, then)
		}
		return
	case sp.ext != nil:
		sc.ExecMsgs(sp.ext.extMsgs(sp.sql, sp.merge != nil), 1, nil, &l.raw, then)
		return
	case sp.gather:
		sc.ExecRaw(sp.sql, &l.raw, then)
		return
	}
	sql := sp.sql
	if l.sql != "" {
		sql = l.sql // its shard's part
	}
	if sp.co != nil {
		sql = "BEGIN;\n" + sql + "\n;\nPREPARE TRANSACTION '" + twopc.GID(sp.tx, l.shard) + "'"
	} // else in the client's transaction, or in none (plain)
	if sp.returning {
		sc.ExecRaw(sql, &l.raw, then) // its rows, and the tags with them
		return
	}
	sc.ExecTags(sql, &l.tags, then)
}

// ServerFailed: no server for the leg.
func (l *spreadLeg) ServerFailed(err error) {
	l.lost = err
	l.prepared(nil)
}

// ServerTraffic: the leg's server has bytes while no step of the leg's
// runs (a NOTICE of its own): nothing to read; or a COPY's.
func (l *spreadLeg) ServerTraffic(sc *poolcore.Server, c gnet.Conn) gnet.Action {
	if l.sp != nil && l.sp.copy != nil {
		return l.sp.copy.traffic(l, sc, c)
	}
	_, _ = c.Discard(-1)
	return gnet.None
}

// ServerLost: the leg's server closed or broke, its step with it.
func (l *spreadLeg) ServerLost(sc *poolcore.Server, err error) {
	if l.sc != sc {
		return
	}
	l.sc, l.lost = nil, err
	switch l.step {
	case stepPrepare:
		if l.sp.copy != nil {
			l.sp.copy.lost(l)
		}
		l.prepared(nil)
	case stepSecond:
		l.secondDone(nil)
	}
}

// prepared ends the first phase of the leg (a gather's only one): perr
// is the server's error, or l.lost says there is no server.
func (l *spreadLeg) prepared(perr *poolcore.PgError) {
	if l.step != stepPrepare {
		return
	}
	if perr == nil && l.lost == nil && l.sp.returning && l.fault == nil {
		if l.fault = l.checkReturned(); l.fault != nil && l.sp.co != nil {
			// Its part is prepared (PREPARE TRANSACTION ran with the
			// statement): rolled back first, then it fails, and so the
			// statement everywhere.
			l.sc.Exec("ROLLBACK PREPARED '"+twopc.GID(l.sp.tx, l.shard)+"'", func(*poolcore.Server, *poolcore.PgError) { l.prepared(nil) })
			return
		}
	}
	l.step = stepNone
	l.sp.busy--
	sp := l.sp
	err := l.failure(perr)
	if err == nil && l.fault != nil {
		err = l.fault // its rows (returning.go): rolled back above, if prepared
	}
	if sp.co == nil { // nothing to commit: a gather, a plain spread, the client's transaction's
		if perr != nil {
			l.err = perr
		}
		if l.fault != nil && sp.fault == nil {
			sp.fault = l.fault
		}
		sp.advance(l, err != nil)
		sp.finish()
		return
	}
	sp.run(sp.co.Prepared(l.shard, err))
	sp.advance(l, err != nil)
}

// secondDone ends the leg's second-phase action.
func (l *spreadLeg) secondDone(perr *poolcore.PgError) {
	if l.step != stepSecond {
		return
	}
	l.step = stepNone
	l.sp.busy--
	if l.failure(perr) != nil {
		l.sp.unfinished = true
	}
	l.sp.run(l.sp.co.Finished(l.shard, l.failure(perr)))
}

// failure is the error of the leg's last step.
func (l *spreadLeg) failure(perr *poolcore.PgError) error {
	switch {
	case l.lost != nil:
		return l.lost
	case perr != nil:
		return perr
	}
	return nil
}

// run carries out the coordinator's actions, then answers the client once
// everything settled.
func (sp *spread) run(acts []twopc.Action) {
	for _, a := range acts {
		if a.Op == twopc.OpRecordCommit {
			sp.record()
		} else {
			sp.second(a)
		}
	}
	sp.finish()
}

// record writes the decision off the loop and comes back with it.
func (sp *spread) record() {
	sp.busy++
	s := sp.s
	shards := make([]int, len(sp.legs))
	for i, l := range sp.legs {
		shards[i] = l.shard
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := s.p.cfg.RecordDecision(ctx, sp.tx, twopc.Commit, shards)
		cancel()
		_ = s.loop.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			sp.busy--
			sp.run(sp.co.Recorded(d, err))
			return nil
		}))
	}()
}

// second runs a second-phase action on its leg.
func (sp *spread) second(a twopc.Action) {
	l := sp.legs[slices.IndexFunc(sp.legs, func(l *spreadLeg) bool { return l.shard == a.Shard })]
	var sql string
	switch a.Op {
	case twopc.OpCommitPrepared:
		sql = "COMMIT PREPARED '" + twopc.GID(sp.tx, l.shard) + "'"
	case twopc.OpRollbackPrepared:
		sql = "ROLLBACK PREPARED '" + twopc.GID(sp.tx, l.shard) + "'"
	default:
		sql = "ROLLBACK"
	}
	if l.sc == nil {
		// Lost: its open transaction went with it; a prepared part is
		// the resolver's.
		sp.unfinished = true
		sp.co.Finished(l.shard, l.lost)
		return
	}
	l.step = stepSecond
	sp.busy++
	l.sc.Exec(sql, func(_ *poolcore.Server, perr *poolcore.PgError) { l.secondDone(perr) })
}

// finish answers the client and gives the servers back once nothing is
// under way and the coordinator is done.
func (sp *spread) finish() {
	if sp.busy > 0 || sp.co != nil && !sp.co.Done() || sp.answered || sp.copy != nil && !sp.copy.ended {
		return
	}
	sp.answered = true
	s := sp.s
	s.spread = nil
	if sp.inTx {
		sp.finishInTx() // txspread.go
		return
	}
	sp.forget()
	back := false
	if sp.commit {
		o, _ := sp.co.Outcome()
		back = sp.keep != nil && sp.keep.sc != nil && o == twopc.Committed && s.state != sClosing && s.c != nil
	}
	for _, l := range sp.legs {
		if l.sc != nil && !(back && l == sp.keep) {
			l.release()
		}
		if !sp.commit {
			l.pool.Leave(s.loop) // a transaction's legs are of pools the client joined (route.go)
		}
	}
	if s.state == sClosing || s.c == nil {
		return
	}
	var ok bool
	switch {
	case back:
		s.committedAcross(sp)
		if set := s.p.sharding.set.Load(); set != nil {
			s.commitBack(set, sp.keep)
			return
		}
		ok = false
	case sp.commit:
		e, tag := sp.answer()
		if ok = s.answerUnit(s.c, e, tag, 'I'); ok {
			s.t.status = codec.TxIdle // as the client was told
			s.committedAcross(sp)
		}
	case sp.gather:
		e, merged := sp.gathered()
		ok = sp.answerClient(e, "", merged, codec.TxIdle)
	default:
		e, tag := sp.answer()
		ok = sp.answerClient(e, tag, nil, codec.TxIdle)
	}
	if !ok {
		s.kill(fatalf(sqlstate.InternalError, "belay lost the statement it ran on every shard"))
		return
	}
	s.resumeWork()
}

// release gives the leg's server back to its pool (which resets one left
// in a transaction).
func (l *spreadLeg) release() {
	if l.sc.TxStatus != codec.TxIdle {
		l.sc.Dirty = true
	}
	l.pool.Release(l.sc)
	l.sc = nil
}

// gathered is a gather's answer: its error, or its merged rows (nil: its
// rows are every shard's, one after the other).
func (sp *spread) gathered() (*codec.ErrorResponse, []byte) {
	e := sp.gatherError()
	var merged []byte
	if e == nil && sp.merge != nil {
		merged, e = sp.merged()
	}
	return e, merged
}

// answerClient sends the client the spread's answer to its unit, then
// ReadyForQuery status: the error e; or a write's tag; or a gather's rows
// (merged, else every shard's in turn). A COPY's Query was answered by
// CopyInResponse already: only its end is sent.
func (sp *spread) answerClient(e *codec.ErrorResponse, tag string, merged []byte, status byte) bool {
	s := sp.s
	if sp.ext != nil && sp.ext.named != nil && e == nil {
		s.adopt(*sp.ext.named) // its Parse answered: the name is the client's
	}
	switch {
	case sp.copy != nil && !sp.copy.query:
		s.reply(answerMsgs(e, tag), status)
		return true
	case sp.returning && e == nil:
		return s.replyUnit(s.c, sp.returned, status)
	case e != nil || !sp.gather && sp.ext == nil:
		return s.answerUnit(s.c, e, tag, status)
	case !sp.gather:
		return s.replyUnit(s.c, func(b []byte) []byte { return sp.ext.answer(b, tag) }, status)
	case merged != nil:
		return s.replyUnit(s.c, func(b []byte) []byte { return append(sp.prefix(b), merged...) }, status)
	}
	return s.replyUnit(s.c, func(b []byte) []byte { return sp.rows(sp.prefix(b)) }, status)
}

// forget deletes the decision's record once every shard carried out a
// commit (Config.ForgetDecision), off the loop; a part left to the
// resolver keeps it.
func (sp *spread) forget() {
	f := sp.s.p.cfg.ForgetDecision
	if sp.co == nil || f == nil || sp.unfinished {
		return
	}
	if o, _ := sp.co.Outcome(); o != twopc.Committed {
		return
	}
	tx := sp.tx
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f(ctx, tx) // a record left behind costs only its space
	}()
}

// answer is what the client is told: the statement's tag, or the error.
func (sp *spread) answer() (*codec.ErrorResponse, string) {
	if sp.co == nil {
		// Nothing was to commit (in the client's transaction, or a plain
		// spread): each leg's own outcome.
		switch {
		case sp.copy != nil && sp.copy.err != nil:
			return sp.copy.err, ""
		case sp.fault != nil:
			return faultResponse(sp.fault), ""
		case sp.legError() != nil:
			e := sp.legError()
			if sp.plain {
				e.Detail = strings.TrimSpace(e.Detail + " It ran on each shard on its own, in no transaction: it may have run on the others.")
			}
			return e, ""
		}
		return nil, sp.tag()
	}
	o, err := sp.co.Outcome()
	switch {
	case o == twopc.Committed:
		return nil, sp.tag()
	case o == twopc.Aborted && sp.copy != nil && sp.copy.err != nil:
		return sp.copy.err, ""
	}
	switch o {
	case twopc.Unknown:
		what := "the statement"
		if sp.commit {
			what = "the transaction"
		}
		return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TransactionResolutionUnknown,
			Message: what + " was prepared on every shard but its commit could not be recorded: whether it is applied is not known",
			Detail:  "A resolver will commit or roll it back on every shard alike."}, ""
	}
	var pe *poolcore.PgError
	if errors.As(err, &pe) && pe.Code == string(sqlstate.ActiveSQLTransaction) {
		// CREATE INDEX CONCURRENTLY, VACUUM, ...: nothing ran anywhere.
		return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.FeatureNotSupported,
			Message: "a statement for every shard runs in a transaction on each, and this one cannot: " + pe.Message,
			Hint:    "Run it on each shard's primary directly."}, ""
	}
	if errors.As(err, &pe) {
		return pgErrorResponse(pe), ""
	}
	var se *shard.Error
	if errors.As(err, &se) {
		return shardError(se), "" // belay's own (a write's RETURNING rows)
	}
	if errors.Is(err, twopc.ErrAbortedByResolver) {
		return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TRSerializationFailure, Message: "the statement was rolled back on every shard: " + err.Error()}, ""
	}
	if sp.commit {
		// Work lost with a server: nothing of the transaction committed.
		return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.TRSerializationFailure, Message: "the transaction was rolled back on every shard: its part on a shard was lost with its server",
			Detail: err.Error()}, ""
	}
	return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ConnectionFailure, Message: "the statement was rolled back on every shard: a shard could not run it",
		Detail: err.Error()}, ""
}

// tag is the statement's CommandComplete tag: shard 0's (every shard ran
// the same DDL; every copy of a reference table changed alike), with the
// rows counted over every shard when the statement changed a sharded
// table's rows (UPDATE 7 on one shard and UPDATE 5 on another: UPDATE 12).
func (sp *spread) tag() string {
	if sp.commit {
		return "COMMIT"
	}
	at := 1 // after the BEGIN of the leg's own transaction
	if sp.co == nil {
		at = 0 // it has none
	}
	tags := make([]string, len(sp.legs))
	for i, l := range sp.legs {
		if len(l.tags) <= at {
			if i == 0 {
				return "OK"
			}
			return tags[0]
		}
		tags[i] = l.tags[at]
	}
	if !sp.sharded {
		return tags[0]
	}
	return sumTag(tags)
}

// sumTag is the first of tags (INSERT 0 7, UPDATE 5, COPY 3) with the
// count at its end summed over all of them; the first as it is when one
// has no count.
func sumTag(tags []string) string {
	tag := tags[0]
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return tag
	}
	var n int64
	for _, t := range tags {
		c, err := strconv.ParseInt(t[strings.LastIndexByte(t, ' ')+1:], 10, 64)
		if err != nil {
			return tag
		}
		n += c
	}
	return tag[:i+1] + strconv.FormatInt(n, 10)
}

// gatherError is a gather's error: a shard's (the first by shard), a
// shard lost, or a result past the bound; nil if every shard answered.
func (sp *spread) gatherError() *codec.ErrorResponse {
	for _, l := range sp.legs {
		switch {
		case l.err != nil:
			return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.Code(l.err.Code), Message: l.err.Message, Detail: l.err.Detail, Hint: l.err.Hint}
		case l.lost != nil:
			return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ConnectionFailure, Message: "a shard could not answer: " + l.lost.Error()}
		case l.raw.Over:
			return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ProgramLimitExceeded,
				Message: "a read of every shard returned more than belay holds to merge (max_buffered_bytes): read it by key, or in parts"}
		}
	}
	return nil
}

// prefix appends what an extended gather's answer starts with.
func (sp *spread) prefix(b []byte) []byte {
	if sp.ext != nil {
		return sp.ext.prefix(b)
	}
	return b
}

// described says whether the client's unit asks the rows' description (a
// simple Query's always does).
func (sp *spread) described() bool { return sp.ext == nil || sp.ext.describe }

// rows appends a gather's answer: the first shard's RowDescription, every
// shard's rows in shard order, and one CommandComplete counting them all.
func (sp *spread) rows(b []byte) []byte {
	var n int64
	tag := ""
	for i, l := range sp.legs {
		for typ, m := range heldMessages(l.raw.Msgs) {
			switch typ {
			case codec.MsgRowDescription:
				if i == 0 && sp.described() {
					b = append(b, m...)
				}
			case codec.MsgDataRow:
				b = append(b, m...)
				n++
			case codec.MsgCommandComplete:
				if t, err := codec.CommandTag(m[5:]); err == nil && tag == "" {
					tag = string(t)
				}
			}
		}
	}
	if i := strings.LastIndexByte(tag, ' '); i >= 0 {
		tag = tag[:i+1] + strconv.FormatInt(n, 10)
	}
	return codec.AppendFrame(b, codec.MsgCommandComplete, append([]byte(tag), 0))
}

// heldMessages yields each whole message (header included) of a leg's
// held result, with its type.
func heldMessages(b []byte) iter.Seq2[byte, []byte] {
	return func(yield func(byte, []byte) bool) {
		for len(b) >= 5 {
			typ, n, err := codec.PeekHeader(b, codec.MaxProtocolMessage)
			if err != nil || len(b) < 5+n || !yield(typ, b[:5+n]) {
				return
			}
			b = b[5+n:]
		}
	}
}

// gatherable says whether the unit starting with data is a read spread
// gathers: a simple Query of one SELECT (in a transaction too), whose rows
// over the shards are their rows one after the other (planner's Concat)
// or merge (planner.PlanGather; its refusal is the error).
func (s *session) gatherable(set *shardSet, data []byte) (bool, error) {
	if s.t.pinned || len(set.clusters) < 2 {
		return false, nil
	}
	q := unitQuery(data)
	if q == nil {
		return false, nil
	}
	plan := s.plan(q)
	if len(plan.Stmts) != 1 || plan.Class != planner.ClassRead || plan.Stmts[0].Copy != 0 {
		return false, nil
	}
	if shardedAside(set, &plan.Stmts[0]) {
		return false, errShardedAside
	}
	if plan.Stmts[0].Concat {
		return true, nil
	}
	_, err := s.p.gathers.plan(q)
	return err == nil, err
}

// errShardedAside: a read of every shard whose answer is not the union
// of what each shard answers of its own rows.
var errShardedAside = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "a read of several shards with a sharded table in a subquery, a CTE, or on the nullable side of an outer join (each shard would answer with all of the other tables' rows)"}

// shardedAside says whether st reads a sharded table other than as one of
// its row sources (planner's RowSources): in a subquery, a CTE, or as the
// optional rows of an outer join. Then its answer is not the shards'
// answers merged: each shard would repeat the other tables' rows, or a
// subquery would see only its shard's rows.
func shardedAside(set *shardSet, st *planner.Stmt) bool {
	sources := map[string]int{}
	for _, r := range st.RowSources {
		if t, ok := router.LookupTable(set.schema, r); ok {
			sources[t.Name.String()]++
		}
	}
	for _, r := range st.Relations {
		if t, ok := router.LookupTable(set.schema, r); ok && t.Kind == shard.Sharded {
			if sources[t.Name.String()] == 0 {
				return true
			}
			sources[t.Name.String()]--
		}
	}
	return false
}

// gatherPlans are planner.PlanGather's plans by SQL text, for every loop
// (a mutex: gathers are rare next to keyed statements, and each runs a
// statement on every shard). Bounded: emptied when full.
type gatherPlans struct {
	mu sync.Mutex
	m  map[string]gatherPlan
}

type gatherPlan struct {
	g   *planner.Gather
	err error
}

const maxGatherPlans = 4096

func (c *gatherPlans) plan(sql []byte) (*planner.Gather, error) {
	c.mu.Lock()
	p, ok := c.m[string(sql)]
	c.mu.Unlock()
	if ok {
		return p.g, p.err
	}
	p.g, p.err = planner.PlanGather(string(sql))
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxGatherPlans {
		c.m = make(map[string]gatherPlan)
	}
	c.m[string(sql)] = p
	c.mu.Unlock()
	return p.g, p.err
}

// merged is a merging gather's answer: the RowDescription of the client's
// columns, the merged rows, SELECT n.
func (sp *spread) merged() ([]byte, *codec.ErrorResponse) {
	var fields []codec.Field
	var types []uint32
	var rows [][][]byte
	for i, l := range sp.legs {
		for typ, m := range heldMessages(l.raw.Msgs) {
			var err error
			switch {
			case typ == codec.MsgRowDescription && i == 0:
				if fields, err = codec.ParseRowDescription(m[5:], nil); err != nil {
					return nil, &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ProtocolViolation, Message: "a shard's RowDescription does not read"}
				}
				for _, f := range fields {
					types = append(types, f.TypeOID)
				}
			case typ == codec.MsgDataRow:
				row, err := codec.ParseDataRow(m[5:], nil)
				if err != nil {
					return nil, &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.ProtocolViolation, Message: "a shard's DataRow does not read"}
				}
				rows = append(rows, row)
			}
		}
	}
	out, err := sp.merge.Rows(types, rows)
	if err != nil {
		var se *shard.Error
		if errors.As(err, &se) {
			return nil, &codec.ErrorResponse{Severity: "ERROR", Code: se.Code, Message: se.Message}
		}
		return nil, &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.InternalError, Message: err.Error()}
	}
	cols := sp.merge.Columns(types)
	desc := make([]codec.Field, len(cols))
	for i, c := range cols {
		if c.Count >= 0 {
			desc[i] = codec.Field{Name: []byte(c.Name), TypeOID: shard.OIDNumeric, TypeSize: -1, TypeModifier: -1}
		} else {
			desc[i] = fields[c.Col]
		}
		if sp.ext != nil {
			desc[i].Format = sp.ext.format(i)
		}
	}
	if g := sp.ext; g != nil && len(g.formats) > 1 && len(g.formats) != len(cols) {
		return nil, &codec.ErrorResponse{Severity: "ERROR", Code: errExtFormats.Code, Message: errExtFormats.Message}
	}
	var b []byte
	if sp.described() {
		b = codec.AppendRowDescription(b, desc)
	}
	for _, r := range out {
		if sp.ext != nil {
			if err := sp.ext.encode(desc, r); err != nil {
				var se *shard.Error
				if errors.As(err, &se) {
					return nil, &codec.ErrorResponse{Severity: "ERROR", Code: se.Code, Message: se.Message}
				}
				return nil, &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.InternalError, Message: err.Error()}
			}
		}
		b = codec.AppendDataRow(b, r)
	}
	return codec.AppendFrame(b, codec.MsgCommandComplete, []byte("SELECT "+strconv.Itoa(len(out))+"\x00")), nil
}
