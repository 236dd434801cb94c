package loop

import (
	"slices"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/poolcore"
	"github.com/belaydb/belay/shard"
)

// A statement for several shards inside a transaction (issue J): DDL, a
// write without a key or to a reference table, an INSERT whose rows are
// on several shards, a read of several shards (gathered or merged) and a
// COPY FROM STDIN (copysplit.go), each alone in its unit of work (a simple
// Query, or one execution in the extended protocol with its parameters,
// as outside a transaction), run as a spread whose legs are the
// transaction's parts (xshard.go): on each shard
// the part set aside there, or a server of its primary that begins the
// transaction first (its BEGIN as the client sent it). Nothing is
// prepared: each leg runs the statement as it is, in the transaction,
// and the parts stay set aside afterwards, for the client's COMMIT (two-
// phase commit over every part) or ROLLBACK. The client gets the answer
// of the statement (tags counted over the shards, rows gathered) and
// ReadyForQuery in a transaction; the part it holds next is the one it
// held before (a BEGIN deferred: the first shard's).
//
// A shard's error fails the transaction as in PostgreSQL: the client gets
// the first one (by shard) and holds that shard's part, whose server
// answers anything but ROLLBACK with 25P02. An error that no server
// raised (a result past max_buffered_bytes, a COPY row the splitter
// refuses before any shard failed) cannot leave the transaction failed
// on a server: the client gets it as FATAL, its transaction rolled back
// everywhere. A part lost with its server ends the client with FATAL
// 40001, as when xshard.go finds one lost. Not in a transaction: a
// pinned session's (refused, FATAL 0A000, as before).
//
// Who owns what: the spread and the parts are the session's loop's.

// inTx says whether the client is in a transaction: a BEGIN belay
// deferred, a server it holds in one, or parts set aside.
func (s *session) inTx() bool {
	return s.cl != nil && s.cl.begin != nil || s.parts != nil ||
		s.server != nil && s.server.TxStatus != codec.TxIdle
}

// errScatterTx: a statement for several shards in a transaction, where
// txspread.go cannot run it.
var errScatterTx = &shard.Error{Code: sqlstate.FeatureNotSupported,
	Message: "a statement for several shards in a transaction runs only alone in its unit of work, in a session not pinned to its server, with etcd to commit the transaction"}

// txLegs makes sp's legs in the client's transaction: on each shard of on,
// the transaction's part there, or a new leg on its primary (fresh: it
// begins the transaction). The server the client holds is set aside first.
// Nothing changes when a shard has no primary (errNoPrimary).
func (s *session) txLegs(set *shardSet, sp *spread, on *spreadOn) error {
	if s.p.cfg.RecordDecision == nil || s.t.pinned {
		return errScatterTx
	}
	type fresh struct {
		k    int
		pool *poolcore.Pool
		node string
	}
	var news []fresh
	for k := range set.clusters {
		if on.shards != nil && !slices.Contains(on.shards, k) || s.partOn(k) != nil {
			continue
		}
		pool, node, err := s.primaryPool(set, k)
		if err != nil {
			return err
		}
		news = append(news, fresh{k, pool, node})
	}
	if s.parts == nil {
		begin := "BEGIN"
		switch {
		case s.cl.begin != nil:
			begin = string(s.cl.begin)
		case s.txBegin != "":
			begin = s.txBegin
		}
		s.parts = &txParts{begin: begin}
	}
	if s.cl.begin != nil {
		s.txBegin = beginText(s.cl.begin)
		s.cl.begin = nil
		s.cl.unitTx = true
	}
	sp.begin, sp.cur = s.parts.begin, -1
	if s.server != nil {
		sp.cur = slices.Index(set.clusters, s.cl.c)
		s.setAside(set)
	}
	for k := range set.clusters {
		if on.shards != nil && !slices.Contains(on.shards, k) {
			continue
		}
		l := s.partOn(k)
		if l != nil {
			s.parts.legs = slices.DeleteFunc(s.parts.legs, func(p *spreadLeg) bool { return p == l })
		} else {
			f := news[slices.IndexFunc(news, func(f fresh) bool { return f.k == k })]
			l = &spreadLeg{shard: k, pool: f.pool, c: set.clusters[k], node: f.node, fresh: true}
		}
		l.sp, l.sql = sp, on.parts[k]
		sp.legs = append(sp.legs, l)
	}
	return nil
}

// partOn is the part of the client's transaction set aside on shard k, if
// any.
func (s *session) partOn(k int) *spreadLeg {
	if s.parts == nil {
		return nil
	}
	if i := slices.IndexFunc(s.parts.legs, func(l *spreadLeg) bool { return l.shard == k }); i >= 0 {
		return s.parts.legs[i]
	}
	return nil
}

// primaryPool is the client's pool on shard k's primary, and that node's
// name, from its state on that shard (the pools it joined there).
func (s *session) primaryPool(set *shardSet, k int) (*poolcore.Pool, string, error) {
	cur := s.cl.c
	s.moveToShard(set.clusters[k])
	defer s.moveToShard(cur)
	v := s.cl.c.view.Load()
	if v == nil || v.primary < 0 {
		return nil, "", errNoPrimary
	}
	p, err := s.nodePool(v, v.primary)
	return p, v.nodes[v.primary].name, err
}

// finishInTx ends a spread in the client's transaction: its legs become
// the transaction's parts again, the client holds the one it held (or
// the failed one), and gets the statement's answer. On the loop, from
// finish.
func (sp *spread) finishInTx() {
	s := sp.s
	set := s.p.sharding.set.Load()
	if s.state == sClosing || s.c == nil || set == nil {
		for _, l := range sp.legs {
			if l.sc != nil {
				l.release()
			}
		}
		if s.state != sClosing {
			s.kill(fatalf(sqlstate.InternalError, "the cluster is no longer sharded"))
		}
		return
	}
	var e *codec.ErrorResponse
	var tag string
	var merged []byte
	if sp.gather {
		e, merged = sp.gathered()
	} else {
		e, tag = sp.answer()
	}
	// The part the client holds next.
	sp.legs = slices.DeleteFunc(sp.legs, func(l *spreadLeg) bool { return l.notRun }) // no part begun there
	var held *spreadLeg
	for _, l := range sp.legs {
		switch {
		case l.sc == nil:
			s.partsBack(sp)
			e := fatalf(sqlstate.TRSerializationFailure, "the transaction's work on shard %s was lost with its server", ha.ShardName(l.shard))
			e.Detail = "belay ends the connection: its transaction is rolled back on every shard, nothing of it is committed."
			s.kill(e)
			return
		case e != nil && held == nil && l.sc.TxStatus == codec.TxFailed:
			held = l
		}
	}
	if e != nil && held == nil {
		s.partsBack(sp)
		fe := *e
		fe.Severity = "FATAL"
		fe.Detail = "belay ends the connection: the statement failed in belay, not on a shard, so the transaction cannot stay open as failed; it is rolled back on every shard, nothing of it is committed."
		s.kill(fe)
		return
	}
	if held == nil {
		held = sp.legs[0]
		if i := slices.IndexFunc(sp.legs, func(l *spreadLeg) bool { return l.shard == sp.cur }); i >= 0 {
			held = sp.legs[i]
		}
	}
	status := codec.TxActive
	if e != nil {
		status = codec.TxFailed
	}
	ok := sp.answerClient(e, tag, merged, status) // before partsBack: a gather's rows are its legs'
	s.partsBack(sp)
	s.parts.legs = slices.DeleteFunc(s.parts.legs, func(l *spreadLeg) bool { return l == held })
	s.takeBack(set, held)
	s.t.status = status
	if !ok {
		s.kill(fatalf(sqlstate.InternalError, "belay lost the statement it ran on several shards"))
		return
	}
	s.resumeWork()
}

// partsBack sets sp's legs aside again as the transaction's parts.
func (s *session) partsBack(sp *spread) {
	for _, l := range sp.legs {
		l.sp, l.step, l.sql, l.tags, l.raw, l.err, l.fault = nil, stepNone, "", nil, poolcore.RawResult{}, nil, nil
		s.parts.legs = append(s.parts.legs, l)
	}
}

// legError is the first error of a write's legs (by shard), as the
// client gets it.
func (sp *spread) legError() *codec.ErrorResponse {
	for _, l := range sp.legs {
		if l.err != nil {
			return pgErrorResponse(l.err)
		}
	}
	return nil
}
