package loop

import (
	"errors"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
)

// Fencing. A pooler (cmd/belay's belay pooler) whose node a newer term no
// longer names as its shard's primary, while the node still runs as one,
// stops acting for it: every client is closed, every server connection
// with it, and logins are refused until the node is a standby again (the
// decision is ha.MustFence's). Gateways take the closed connections as
// the node's loss, as they take a primary's death (failover.go).

// Fence makes the proxy refuse all work but its console's, for why: the
// clients are closed with 57P01, their servers with them, and logins are
// refused with 57P03 until Unfence. Idempotent. Any goroutine.
func (p *Proxy) Fence(why string) {
	e := fatalf(sqlstate.CannotConnectNow, "belay refuses work for this node: %s", why)
	if old := p.fenced.Swap(&e); old != nil {
		return
	}
	p.log.Warn("fenced: refusing all work for the node", "why", why)
	n := p.killClients(func(s *session) bool { return s.con == nil })
	p.pools.CloseServers("")
	p.log.Info("fenced", "clients_closed", n)
}

// Unfence undoes Fence. Any goroutine.
func (p *Proxy) Unfence() {
	if p.fenced.Swap(nil) != nil {
		p.log.Info("unfenced: serving the node again")
	}
}

// fencedLogin is the error a login gets while the proxy is fenced, or nil.
func (p *Proxy) fencedLogin() *codec.ErrorResponse { return p.fenced.Load() }

// Ready says why the proxy should get no new clients (nil: it should): it
// is shutting down, it is fenced, or it serves a cluster whose topology it
// has not read yet. For a load balancer's readiness check (belay's
// /ready). Any goroutine.
func (p *Proxy) Ready() error {
	if p.level.Load() != levelNone {
		return errors.New("shutting down")
	}
	if e := p.fenced.Load(); e != nil {
		return errors.New(e.Message)
	}
	if p.cluster != nil && p.cluster.view.Load() == nil {
		return errors.New("no topology yet")
	}
	return nil
}
