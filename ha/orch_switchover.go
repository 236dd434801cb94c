package ha

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// switchoverInterval is how often a switchover measures its shard: each
// step waits for the last one's effect, so this is most of its pause.
const switchoverInterval = 10 * time.Millisecond

// switchover carries out the switchover request req of shard sh (at etcd
// revision rev) to the end: the Switchover machine stepped every
// switchoverInterval, its actions carried out, its outcome written into
// the request. It blocks the leader's loop (the other shards' checks wait)
// for at most the machine's bounds. On the leader's goroutine.
func (r *Orchestrator) switchover(ctx context.Context, sh Shard, req SwitchoverRecord, rev int64, leader clientv3.Cmp) {
	log := r.o.Logger.With("shard", sh.Name, "request", req.ID)
	finish := func(rec SwitchoverRecord) {
		if _, err := r.o.Store.updateSwitchover(ctx, sh.Name, rev, rec, leader); err != nil {
			log.Warn("switchover: writing its outcome", "err", err)
		}
	}
	if req.State == SwitchRunning {
		// Its leader lost the lead in the middle: the topology it left
		// (no primary, or a promoted target) is the Decider's to finish.
		req.State, req.Reason = SwitchAborted, "interrupted: the orchestrator running it lost the lead; the failover decider publishes the newest primary"
		finish(req)
		return
	}
	sw, err := NewSwitchover(r.measure(ctx, sh), req.To, r.o.SyncQuorum)
	if err != nil {
		req.State, req.Reason = SwitchAborted, err.Error()
		log.Warn("switchover refused", "err", err)
		finish(req)
		return
	}
	sw.Drain, sw.CatchUp = r.o.SwitchoverDrain, r.o.SwitchoverCatchUp
	req.State, req.From, req.To = SwitchRunning, sw.From(), sw.To()
	if rev, err = r.o.Store.updateSwitchover(ctx, sh.Name, rev, req, leader); err != nil {
		log.Warn("switchover: taking the request", "err", err)
		return
	}
	log.Info("switchover", "from", sw.From(), "to", sw.To())
	delete(r.deciders, sh.Name) // its failover state predates the switchover
	var heldAt time.Time
	for !sw.Finished() && ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		top, err := r.o.Store.Load(lctx)
		cancel()
		if err == nil && top.Shard(sh.Name) != nil {
			sh = *top.Shard(sh.Name)
		}
		now := r.o.Now()
		phase := sw.Phase()
		for _, act := range sw.Step(now, r.measure(ctx, sh)) {
			if err := r.carry(ctx, sh, act, leader); err != nil {
				if errors.Is(err, ErrNotLeader) {
					log.Warn("switchover: no longer leading", "err", err)
					return
				}
				if _, hold := act.(HoldPrimary); hold && errors.Is(err, ErrStaleTerm) {
					sw.HoldRefused(err)
				}
				log.Warn("switchover: action failed", "action", act.String(), "err", err)
				break // the next step asks again
			}
			if _, hold := act.(HoldPrimary); hold {
				heldAt = r.o.Now()
			}
			log.Info("switchover: done", "action", act.String())
		}
		// A step that moved the switchover on is followed by the next at
		// once (its actions are done: the next measurement shows them);
		// one that waits for the nodes, after switchoverInterval.
		if p := sw.Phase(); p != phase {
			log.Info("switchover phase", "phase", p.String())
		} else if !sw.Finished() {
			sleep(ctx, switchoverInterval)
		}
	}
	if ctx.Err() != nil {
		return
	}
	if !heldAt.IsZero() {
		req.HeldMs = r.o.Now().Sub(heldAt).Milliseconds()
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if top, err := r.o.Store.Load(lctx); err == nil && top.Shard(sh.Name) != nil {
		req.Term = top.Shard(sh.Name).Term
	}
	cancel()
	if sw.Phase() == SwitchDone {
		req.State = SwitchSucceeded
		log.Info("switchover done", "from", sw.From(), "to", sw.To(), "term", req.Term, "held", time.Duration(req.HeldMs)*time.Millisecond)
	} else {
		req.State, req.Reason = SwitchAborted, fmt.Sprint(sw.Err())
		log.Warn("switchover failed", "from", sw.From(), "to", sw.To(), "err", sw.Err())
	}
	finish(req)
}
