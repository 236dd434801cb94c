package loop

import (
	"context"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/poolcore"
)

// ShutdownMode says how Shutdown ends the proxy. PgBouncer's words: SIGINT
// and SHUTDOWN WAIT_FOR_SERVERS, SIGTERM and SHUTDOWN WAIT_FOR_CLIENTS.
type ShutdownMode int

const (
	// ShutdownImmediate closes everything now (Stop).
	ShutdownImmediate ShutdownMode = iota
	// ShutdownWaitForServers stops accepting and closes each client as
	// soon as it is idle outside a transaction (its server released, or a
	// pinned client between transactions), with FATAL 57P01 admin_shutdown;
	// the proxy stops when none are left.
	ShutdownWaitForServers
	// ShutdownWaitForClients stops accepting and keeps serving every
	// connected client until it disconnects; the proxy stops when none are
	// left.
	ShutdownWaitForClients
)

// String is PgBouncer's name of the mode.
func (m ShutdownMode) String() string {
	switch m {
	case ShutdownWaitForServers:
		return "WAIT_FOR_SERVERS"
	case ShutdownWaitForClients:
		return "WAIT_FOR_CLIENTS"
	}
	return "IMMEDIATE"
}

// Shutdown levels, from the weakest: a later Shutdown may only raise it.
const (
	levelNone int32 = iota
	levelClients
	levelServers
	levelImmediate
)

func (m ShutdownMode) level() int32 {
	switch m {
	case ShutdownWaitForClients:
		return levelClients
	case ShutdownWaitForServers:
		return levelServers
	}
	return levelImmediate
}

// Shutdown starts a shutdown in the given mode and returns at once; Done is
// closed when the proxy has stopped. A stronger mode upgrades a weaker one
// under way (WaitForClients → WaitForServers → Immediate); a weaker one is
// ignored. Safe for concurrent use.
func (p *Proxy) Shutdown(mode ShutdownMode) {
	lvl := mode.level()
	for {
		old := p.level.Load()
		if lvl <= old {
			return
		}
		if p.level.CompareAndSwap(old, lvl) {
			if old == levelNone {
				go p.drain()
			}
			p.kick()
			return
		}
	}
}

// Done is closed when the proxy has stopped, by Stop or at the end of a
// Shutdown.
func (p *Proxy) Done() <-chan struct{} { return p.stopped }

// kick wakes drain.
func (p *Proxy) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// drain runs on its own goroutine from the first Shutdown: it closes the
// listeners, then waits until no client is left (or the level becomes
// Immediate) and stops. Idle clients under WaitForServers are closed on their
// loops (sweepShutdown and the release in ServerTraffic); a session that
// closes kicks drain when it was the last.
func (p *Proxy) drain() {
	p.StopAccepting()
	p.log.Info("shutting down: not accepting clients", "clients", p.conns.Load())
	for {
		if p.level.Load() == levelImmediate || p.conns.Load() == 0 {
			_ = p.Stop(context.Background())
			return
		}
		<-p.wake
	}
}

// adminShutdown is Postgres's FATAL for a backend ended by a shutdown (and
// by pg_terminate_backend: the console's KILL sends it too).
var adminShutdown = fatalf(sqlstate.AdminShutdown, "terminating connection due to administrator command")

// sweepShutdown closes loop l's idle clients under WaitForServers. On l,
// from sweep (every 100 ms): it catches the clients that were idle when the
// shutdown began, those idle after a release that did not go through
// ServerTraffic, and those that logged in after it began and sent nothing.
func (p *Proxy) sweepShutdown(l *poolcore.Loop) {
	if p.level.Load() != levelServers {
		return
	}
	for s := range p.sessions[l.Index()] {
		s.closeIfDrained()
	}
}

// closeIfDrained closes the client with 57P01 if a WaitForServers shutdown is
// under way and the client is between transactions with nothing pending. On
// the session's loop, outside the client's own callbacks.
func (s *session) closeIfDrained() {
	if s.p.level.Load() == levelServers && s.quiescent() {
		s.kill(adminShutdown)
	}
}

// quiescent says the client is logged in, outside a transaction, owes and is
// owed nothing, and holds no server (or holds it only because it is pinned):
// closing it now loses no work.
func (s *session) quiescent() bool {
	if s.con != nil { // an admin console client between commands
		return !s.done && !s.con.busy && s.c != nil && s.in.Buffered(s.c) == 0
	}
	if s.done || s.state != sReady || s.c == nil || s.waiting || !s.t.idle() || !s.r.empty() ||
		s.cliRemain > 0 || s.srvRemain > 0 || s.srvDrop > 0 || s.resetting {
		return false
	}
	if s.server != nil && (!s.t.pinned || s.checkState || len(s.fns) > 0 || s.server.Busy()) {
		return false
	}
	return s.in.Buffered(s.c) == 0
}
