package ha

import (
	"context"
	"errors"
	"time"

	"github.com/belaydb/belay/twopc"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The resolver of two-phase commits (package twopc), run by the leading
// orchestrator of a sharded cluster: every resolveEvery it lists the
// transactions of belay's each shard's primary holds prepared
// (pg_prepared_xacts, GIDs belay:TX:SHARD) and finishes each as its
// decision in etcd says (Store.Decision); one without a decision,
// prepared longer ago than OrchOptions.ResolveGrace, is aborted by
// writing Abort first (Store.RecordDecision: a coordinator's Commit
// written meanwhile wins, and is carried out instead). A prepared
// transaction is finished in the database it was prepared in (DialDB).
// After a round that listed every shard, the records of transactions no
// shard holds prepared, older than OrchOptions.ForgetAfter, are deleted
// (those a coordinator did not delete itself: it died, or aborted).

// resolveEvery spaces the resolver's rounds.
const resolveEvery = 2 * time.Second

// defaultResolveGrace is OrchOptions.ResolveGrace's default: well past a
// coordinator's bound on its decision's write (5 s).
const defaultResolveGrace = 15 * time.Second

// preparedTx is a transaction of belay's a node holds prepared.
type preparedTx struct {
	gid, db string
	at      time.Time
}

// resolve runs a round of the resolver if one is due and the cluster is
// sharded. On the orchestrator's goroutine.
func (r *Orchestrator) resolve(ctx context.Context, top *Topology) {
	now := r.o.Now()
	if top.Sharding == nil || now.Sub(r.resolvedAt) < resolveEvery {
		return
	}
	r.resolvedAt = now
	grace := r.o.ResolveGrace
	if grace <= 0 {
		grace = defaultResolveGrace
	}
	held, complete := map[twopc.TxID]bool{}, true
	for _, sh := range top.Shards {
		p := sh.PrimaryNode()
		if p == nil {
			complete = false
			continue
		}
		txs, err := r.prepared(ctx, p.Addr)
		if err != nil {
			complete = false
			r.o.Logger.Warn("resolver: listing prepared transactions", "shard", sh.Name, "node", p.Name, "err", err)
			continue
		}
		for _, ptx := range txs {
			if tx, _, ok := twopc.ParseGID(ptx.gid); ok {
				held[tx] = true
			}
			r.settle(ctx, p, ptx, now, grace)
		}
	}
	if complete {
		r.forgetDecisions(ctx, held, now)
	}
}

// defaultForgetAfter is OrchOptions.ForgetAfter's default: far past any
// coordinator's time between its decision and its second phase.
const defaultForgetAfter = 10 * time.Minute

// forgetDecisions deletes the decisions of transactions no shard holds prepared
// (held: those every shard's primary listed this round) that were recorded
// longer ago than ForgetAfter: every part is finished, and none can be
// prepared after its decision. Only after a round that listed every shard.
func (r *Orchestrator) forgetDecisions(ctx context.Context, held map[twopc.TxID]bool, now time.Time) {
	after := r.o.ForgetAfter
	if after <= 0 {
		after = defaultForgetAfter
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ds, err := r.o.Store.Decisions(fctx)
	if err != nil {
		r.o.Logger.Warn("resolver: listing decisions", "err", err)
		return
	}
	for _, d := range ds {
		if held[d.Tx] || now.Sub(d.At) < after {
			continue
		}
		if err := r.o.Store.ForgetDecision(fctx, d.Tx); err != nil {
			r.o.Logger.Warn("resolver: deleting a decision", "tx", d.Tx, "err", err)
			return
		}
	}
}

// prepared lists the transactions of belay's the node at addr holds
// prepared.
func (r *Orchestrator) prepared(ctx context.Context, addr string) ([]preparedTx, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := r.o.Dial(qctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(qctx, "SELECT gid, database, prepared FROM pg_catalog.pg_prepared_xacts WHERE gid LIKE 'belay:%'")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (preparedTx, error) {
		var p preparedTx
		err := row.Scan(&p.gid, &p.db, &p.at)
		return p, err
	})
}

// settle finishes one prepared transaction on node p, if its decision is
// known or due.
func (r *Orchestrator) settle(ctx context.Context, p *Node, ptx preparedTx, now time.Time, grace time.Duration) {
	tx, _, ok := twopc.ParseGID(ptx.gid)
	if !ok {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := r.o.Store.Decision(sctx, tx)
	if err != nil {
		r.o.Logger.Warn("resolver: reading a decision", "gid", ptx.gid, "err", err)
		return
	}
	op := twopc.Resolve(d, ptx.at, now, grace)
	if op == twopc.OpRecordAbort {
		if d, err = r.o.Store.RecordDecision(sctx, tx, twopc.Abort, nil); err != nil {
			r.o.Logger.Warn("resolver: recording an abort", "gid", ptx.gid, "err", err)
			return
		}
		op = twopc.Resolve(d, ptx.at, now, grace)
	}
	var sql string
	switch op {
	case twopc.OpCommitPrepared:
		sql = "COMMIT PREPARED '" + ptx.gid + "'"
	case twopc.OpRollbackPrepared:
		sql = "ROLLBACK PREPARED '" + ptx.gid + "'"
	default:
		return // its coordinator may still decide
	}
	var c *pgx.Conn
	if r.o.DialDB != nil {
		c, err = r.o.DialDB(sctx, p.Addr, ptx.db)
	} else {
		c, err = r.o.Dial(sctx, p.Addr)
	}
	if err != nil {
		r.o.Logger.Warn("resolver: connecting", "node", p.Name, "db", ptx.db, "err", err)
		return
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(sctx, sql); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42704" {
			// Its coordinator finished it since the listing.
			r.o.Logger.Debug("resolver: a prepared transaction was finished meanwhile", "node", p.Name, "gid", ptx.gid)
			return
		}
		r.o.Logger.Warn("resolver: finishing a prepared transaction", "node", p.Name, "gid", ptx.gid, "err", err)
		return
	}
	r.o.Logger.Info("resolver: finished a prepared transaction its coordinator left", "node", p.Name, "gid", ptx.gid, "decision", d)
}
