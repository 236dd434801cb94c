package router

import (
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
)

func TestDecide(t *testing.T) {
	pri := Node{Primary: true, Usable: true}
	rep := func(out int, replay ha.LSN, lagBytes uint64, lag time.Duration) Node {
		return Node{Usable: true, Outstanding: out, ReplayLSN: replay, LagBytes: lagBytes, Lag: lag}
	}
	down := Node{Usable: false}
	pol := Policy{MaxLagBytes: 1 << 20, MaxLag: time.Second}
	cases := []struct {
		name  string
		w     Work
		s     Session
		nodes []Node
		want  int
		why   Reason
	}{
		{"a write goes to the primary", Work{}, Session{}, []Node{pri, rep(0, 0, 0, 0)}, 0, ReasonWrite},
		{"a read goes to a replica", Work{ReadOnly: true}, Session{}, []Node{pri, rep(0, 0, 0, 0)}, 1, ReasonRead},
		{"least work in flight", Work{ReadOnly: true}, Session{}, []Node{rep(3, 0, 0, 0), pri, rep(1, 0, 0, 0), rep(2, 0, 0, 0)}, 2, ReasonRead},
		{"equal replicas in turn (1)", Work{ReadOnly: true, Turn: 0}, Session{}, []Node{pri, rep(1, 0, 0, 0), rep(1, 0, 0, 0)}, 1, ReasonRead},
		{"equal replicas in turn (2)", Work{ReadOnly: true, Turn: 2}, Session{}, []Node{pri, rep(1, 0, 0, 0), rep(1, 0, 0, 0)}, 2, ReasonRead},
		{"equal replicas in turn (3)", Work{ReadOnly: true, Turn: 3}, Session{}, []Node{pri, rep(1, 0, 0, 0), rep(1, 0, 0, 0)}, 1, ReasonRead},
		{"the turn never beats less work", Work{ReadOnly: true, Turn: 2}, Session{}, []Node{pri, rep(0, 0, 0, 0), rep(1, 0, 0, 0)}, 1, ReasonRead},
		{"a replica that does not answer is skipped", Work{ReadOnly: true}, Session{}, []Node{pri, down, rep(5, 0, 0, 0)}, 2, ReasonRead},
		{"no replica: the primary", Work{ReadOnly: true}, Session{}, []Node{pri, down}, 0, ReasonNoReplica},
		{"lagging by bytes", Work{ReadOnly: true}, Session{}, []Node{pri, rep(0, 0, 2<<20, 0)}, 0, ReasonLagging},
		{"lagging by time", Work{ReadOnly: true}, Session{}, []Node{pri, rep(0, 0, 0, 2*time.Second)}, 0, ReasonLagging},
		{"one lags, the other serves", Work{ReadOnly: true}, Session{}, []Node{pri, rep(0, 0, 0, 5*time.Second), rep(9, 0, 0, 0)}, 2, ReasonRead},
		{"read-your-writes: only a replica past the commit", Work{ReadOnly: true}, Session{MinLSN: 100},
			[]Node{pri, rep(0, 99, 0, 0), rep(7, 100, 0, 0)}, 2, ReasonRead},
		{"read-your-writes: none replayed yet", Work{ReadOnly: true}, Session{MinLSN: 100},
			[]Node{pri, rep(0, 99, 0, 0)}, 0, ReasonNotReplayed},
		{"the session forces the primary", Work{ReadOnly: true}, Session{Route: Primary}, []Node{pri, rep(0, 0, 0, 0)}, 0, ReasonForced},
		{"the statement forces a replica for a write", Work{Hint: Replica}, Session{}, []Node{pri, rep(0, 0, 0, 0)}, 1, ReasonForced},
		{"the statement's hint wins over the session's", Work{ReadOnly: true, Hint: Replica}, Session{Route: Primary},
			[]Node{pri, rep(0, 0, 0, 0)}, 1, ReasonForced},
		{"a forced replica with none usable: the primary", Work{Hint: Replica}, Session{}, []Node{pri, down}, 0, ReasonNoReplica},
		{"no primary for a write", Work{}, Session{}, []Node{rep(0, 0, 0, 0)}, -1, ReasonNoNode},
		{"the primary does not answer: a read takes a lagging replica", Work{ReadOnly: true}, Session{},
			[]Node{{Primary: true}, rep(0, 0, 0, time.Hour)}, 1, ReasonLagging},
		{"the primary does not answer: read-your-writes still waits for it", Work{ReadOnly: true}, Session{MinLSN: 5},
			[]Node{{Primary: true}, rep(0, 1, 0, 0)}, 0, ReasonNotReplayed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := Decide(c.w, c.s, c.nodes, pol)
			if got != c.want || why != c.why {
				t.Fatalf("Decide = %d (%v), want %d (%v)", got, why, c.want, c.why)
			}
		})
	}
}

func TestHint(t *testing.T) {
	cases := map[string]Route{
		"SELECT 1":                                     Auto,
		"/* belay.route=replica */ SELECT 1":           Replica,
		"  /*belay.route=primary*/SELECT 1":            Primary,
		"-- belay.route=replica\nSELECT 1":             Replica,
		"/* app=x, belay.route=Primary */ SELECT 1":    Primary,
		"SELECT 1 /* belay.route=replica */":           Auto, // only a leading comment
		"/* belay.route=nowhere */ SELECT 1":           Auto,
		"/* unterminated belay.route=replica":          Auto,
		"/* other */ /* belay.route=replica */ SELECT": Auto,
	}
	for sql, want := range cases {
		if got := Hint([]byte(sql)); got != want {
			t.Errorf("Hint(%q) = %v, want %v", sql, got, want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	nodes := []Node{{Primary: true, Usable: true}, {Usable: true, Outstanding: 3}, {Usable: true, Outstanding: 1}}
	b.ReportAllocs()
	for b.Loop() {
		Decide(Work{ReadOnly: true}, Session{MinLSN: 0}, nodes, Policy{MaxLagBytes: 1 << 20})
	}
}
