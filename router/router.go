package router

import (
	"bytes"
	"strings"
	"time"

	"github.com/belaydb/belay/ha"
)

// Route is where a session or a statement asks its work to go.
type Route uint8

const (
	Auto    Route = iota // as the planner says
	Primary              // always the primary
	Replica              // a replica even for what the planner keeps on the primary (a write then fails there)
)

var routeNames = [...]string{"auto", "primary", "replica"}

func (r Route) String() string {
	if int(r) < len(routeNames) {
		return routeNames[r]
	}
	return "Route(?)"
}

// ParseRoute reads "auto", "primary" or "replica" (any case).
func ParseRoute(s string) (Route, bool) {
	for i, n := range routeNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Route(i), true
		}
	}
	return Auto, false
}

// hintKey introduces a statement's own route in a comment at the start of
// its text: /* belay.route=replica */ SELECT ...
const hintKey = "belay.route="

// Hint returns the route a comment at the start of sql asks for (Auto when
// there is none). Only the first comment is read, so that the cost is a
// few bytes' scan.
func Hint(sql []byte) Route {
	i := 0
	for i < len(sql) && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r') {
		i++
	}
	var c []byte
	switch {
	case bytes.HasPrefix(sql[i:], []byte("/*")):
		end := bytes.Index(sql[i+2:], []byte("*/"))
		if end < 0 {
			return Auto
		}
		c = sql[i+2 : i+2+end]
	case bytes.HasPrefix(sql[i:], []byte("--")):
		end := bytes.IndexByte(sql[i:], '\n')
		if end < 0 {
			end = len(sql) - i
		}
		c = sql[i+2 : i+end]
	default:
		return Auto
	}
	k := bytes.Index(c, []byte(hintKey))
	if k < 0 {
		return Auto
	}
	v := c[k+len(hintKey):]
	if e := bytes.IndexAny(v, " \t\r\n,;*"); e >= 0 {
		v = v[:e]
	}
	r, _ := ParseRoute(string(v))
	return r
}

// Work is what the router knows of a unit of work at its start.
type Work struct {
	// ReadOnly: every statement of it could run on a replica (the
	// planner's ReplicaOK), or it begins a READ ONLY transaction.
	ReadOnly bool
	// Hint is the statement's own route (Hint), Auto for none.
	Hint Route
	// Turn breaks ties between replicas with as much work in flight: the
	// scan starts at node Turn (mod the number of nodes), so that a caller
	// counting its decisions spreads equal replicas round robin.
	Turn uint32
}

// Session is what the router knows of the client.
type Session struct {
	Route Route // SET belay.route; Auto for none
	// MinLSN: read-your-writes: a replica must have replayed this far (the
	// primary's position after the client's last write committed); 0 for
	// none (belay.consistency = eventual, or no write yet).
	MinLSN ha.LSN
}

// Node is the router's view of one node.
type Node struct {
	Primary     bool
	Usable      bool          // in service and answering its health checks
	ReplayLSN   ha.LSN        // a replica's position at its last health check
	LagBytes    uint64        // how far its replay is behind the primary
	Lag         time.Duration // how long ago the primary was where its replay is
	Outstanding int           // units of work in flight on it
}

// Policy bounds the lag of a replica that gets reads.
type Policy struct {
	MaxLagBytes uint64        // 0: no bound
	MaxLag      time.Duration // 0: no bound
}

// Reason says why the router chose a node.
type Reason uint8

const (
	ReasonWrite       Reason = iota // the work may write: the primary
	ReasonForced                    // a route the session or statement set
	ReasonRead                      // a read, to the replica with the least work in flight
	ReasonNoReplica                 // a read, but no replica is usable: the primary
	ReasonLagging                   // a read, but every usable replica is past the lag limits
	ReasonNotReplayed               // a read, but no replica has replayed the client's last write yet
	ReasonNoNode                    // nothing is usable
)

var reasonNames = [...]string{"write", "forced", "read", "no replica", "lagging", "not replayed", "no node"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(?)"
}

// Decide picks the node of nodes that w goes to, and why: an index, or -1
// with ReasonNoNode when w can go nowhere (no primary for work that needs
// one, and no usable node at all for a read).
func Decide(w Work, s Session, nodes []Node, p Policy) (int, Reason) {
	route := w.Hint
	if route == Auto {
		route = s.Route
	}
	primary := -1
	for i := range nodes {
		if nodes[i].Primary {
			primary = i
			break
		}
	}
	toPrimary := func(why Reason) (int, Reason) {
		if primary < 0 {
			return -1, ReasonNoNode
		}
		return primary, why
	}
	switch {
	case route == Primary:
		return toPrimary(ReasonForced)
	case route == Auto && !w.ReadOnly:
		return toPrimary(ReasonWrite)
	}
	best, why := -1, ReasonNoReplica
	for k := range nodes {
		i := (int(w.Turn%uint32(len(nodes))) + k) % len(nodes)
		n := &nodes[i]
		if n.Primary || !n.Usable {
			continue
		}
		if (p.MaxLagBytes > 0 && n.LagBytes > p.MaxLagBytes) || (p.MaxLag > 0 && n.Lag > p.MaxLag) {
			if why == ReasonNoReplica {
				why = ReasonLagging
			}
			continue
		}
		if s.MinLSN > 0 && n.ReplayLSN < s.MinLSN {
			why = ReasonNotReplayed
			continue
		}
		if best < 0 || n.Outstanding < nodes[best].Outstanding {
			best = i
		}
	}
	if best >= 0 {
		if route == Replica {
			return best, ReasonForced
		}
		return best, ReasonRead
	}
	if primary >= 0 && !nodes[primary].Usable {
		// The primary does not answer either: a read may still be served
		// by a replica that answers, however far behind.
		for i := range nodes {
			if !nodes[i].Primary && nodes[i].Usable && s.MinLSN == 0 {
				return i, why
			}
		}
	}
	return toPrimary(why)
}
