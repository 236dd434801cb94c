package ha

import (
	"fmt"
	"testing"
	"time"
)

// TestHold runs scripts of events against a Hold: each step is an event at
// a time (ms from t0) and what it must return, and the state after it.
func TestHold(t *testing.T) {
	type step struct {
		at    int    // ms
		ev    string // lost T, pub T, pubnone T, rec T checkedAtMs, tick, admit
		term  uint64
		chk   int    // rec: when the health check ran (ms)
		want  string // lost/pub/rec/tick: "true"/"false"; admit: decision
		state HoldState
	}
	t0 := time.Unix(1000, 0)
	cases := []struct {
		name  string
		bound time.Duration
		steps []step
	}{
		{"idle sends", 0, []step{
			{at: 0, ev: "admit", want: "send", state: HoldIdle},
			{at: 1, ev: "pub", term: 1, want: "false", state: HoldIdle},
		}},
		{"a new term ends the hold", time.Second, []step{
			{at: 0, ev: "pub", term: 3, want: "false", state: HoldIdle},
			{at: 10, ev: "lost", term: 3, want: "true", state: HoldHolding},
			{at: 11, ev: "lost", term: 3, want: "false", state: HoldHolding},
			{at: 20, ev: "admit", want: "wait", state: HoldHolding},
			{at: 500, ev: "pub", term: 3, want: "false", state: HoldHolding}, // same term: not a new primary
			{at: 600, ev: "pub", term: 4, want: "true", state: HoldIdle},
			{at: 601, ev: "admit", want: "send", state: HoldIdle},
		}},
		{"the bound passes", time.Second, []step{
			{at: 0, ev: "lost", term: 1, want: "true", state: HoldHolding},
			{at: 999, ev: "tick", want: "false", state: HoldHolding},
			{at: 999, ev: "admit", want: "wait", state: HoldHolding},
			{at: 1000, ev: "tick", want: "true", state: HoldExpired},
			{at: 1001, ev: "admit", want: "fail", state: HoldExpired},
			{at: 1500, ev: "lost", term: 1, want: "false", state: HoldExpired},
			{at: 2000, ev: "pub", term: 2, want: "true", state: HoldIdle},
			{at: 2001, ev: "admit", want: "send", state: HoldIdle},
		}},
		{"admit expires without a tick", time.Second, []step{
			{at: 0, ev: "lost", term: 1, want: "true", state: HoldHolding},
			{at: 1200, ev: "admit", want: "fail", state: HoldExpired},
		}},
		{"a late loss of an old term is ignored", time.Second, []step{
			{at: 0, ev: "pub", term: 5, want: "false", state: HoldIdle},
			{at: 1, ev: "lost", term: 4, want: "false", state: HoldIdle},
			{at: 2, ev: "admit", want: "send", state: HoldIdle},
		}},
		{"an older topology is ignored", time.Second, []step{
			{at: 0, ev: "lost", term: 5, want: "true", state: HoldHolding},
			{at: 1, ev: "pub", term: 6, want: "true", state: HoldIdle},
			{at: 2, ev: "pub", term: 4, want: "false", state: HoldIdle},
		}},
		{"the lost primary answers again", time.Second, []step{
			{at: 0, ev: "pub", term: 2, want: "false", state: HoldIdle},
			{at: 100, ev: "lost", term: 2, want: "true", state: HoldHolding},
			{at: 200, ev: "rec", term: 2, chk: 50, want: "false", state: HoldHolding}, // a check from before the loss
			{at: 300, ev: "rec", term: 1, chk: 250, want: "false", state: HoldHolding},
			{at: 300, ev: "rec", term: 2, chk: 250, want: "true", state: HoldIdle},
			{at: 301, ev: "rec", term: 2, chk: 300, want: "false", state: HoldIdle},
		}},
		{"an expired hold recovers", time.Second, []step{
			{at: 0, ev: "lost", term: 2, want: "true", state: HoldHolding},
			{at: 1000, ev: "tick", want: "true", state: HoldExpired},
			{at: 3000, ev: "rec", term: 2, chk: 2900, want: "true", state: HoldIdle},
		}},
		{"no primary in the topology", time.Second, []step{
			{at: 0, ev: "pubnone", term: 7, want: "false", state: HoldHolding},
			{at: 1, ev: "admit", want: "wait", state: HoldHolding},
			{at: 2, ev: "rec", term: 7, chk: 2, want: "false", state: HoldHolding},
			{at: 3, ev: "pub", term: 7, want: "true", state: HoldIdle},
		}},
		{"a negative bound never holds", -1, []step{
			{at: 0, ev: "lost", term: 1, want: "true", state: HoldExpired},
			{at: 1, ev: "admit", want: "fail", state: HoldExpired},
			{at: 2, ev: "pub", term: 2, want: "true", state: HoldIdle},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := NewHold(c.bound)
			gen := h.Gen()
			for i, s := range c.steps {
				now := t0.Add(time.Duration(s.at) * time.Millisecond)
				var got string
				switch s.ev {
				case "lost":
					got = fmt.Sprint(h.Lost(now, s.term))
				case "pub":
					got = fmt.Sprint(h.Published(now, s.term, true))
				case "pubnone":
					got = fmt.Sprint(h.Published(now, s.term, false))
				case "rec":
					got = fmt.Sprint(h.Recovered(now, s.term, t0.Add(time.Duration(s.chk)*time.Millisecond)))
				case "tick":
					got = fmt.Sprint(h.Tick(now))
				case "admit":
					d, g, dl := h.Admit(now)
					got = d.String()
					if _, _, since := h.State(); d == Wait && !dl.Equal(since.Add(h.Bound())) {
						t.Fatalf("step %d: deadline %v, want the loss plus the bound", i, dl)
					}
					if g != h.Gen() {
						t.Fatalf("step %d: Admit's generation %d, Gen %d", i, g, h.Gen())
					}
				default:
					t.Fatalf("bad event %q", s.ev)
				}
				if got != s.want {
					t.Fatalf("step %d (%s at %d ms): got %s, want %s", i, s.ev, s.at, got, s.want)
				}
				st, _, _ := h.State()
				if st != s.state {
					t.Fatalf("step %d (%s at %d ms): state %v, want %v", i, s.ev, s.at, st, s.state)
				}
				// Whatever wakes held work changes Gen, and nothing else does.
				ng := h.Gen()
				wakes := got == "true" && (s.ev == "pub" || s.ev == "rec" || s.ev == "tick") ||
					s.ev == "lost" && got == "true" && st == HoldExpired ||
					s.ev == "admit" && st == HoldExpired && i > 0 && c.steps[i-1].state == HoldHolding
				if (ng != gen) != wakes {
					t.Fatalf("step %d (%s): generation %d -> %d, wakes %v", i, s.ev, gen, ng, wakes)
				}
				gen = ng
			}
		})
	}
}
