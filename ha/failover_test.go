package ha

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/datadriven"
)

// TestFailoverScripts runs testdata/failover.txt: "decider dead-after=D
// quorum=K" starts a decider; "step t=D" gives it a view of the shard at
// time D, written as
//
//	shard S term T primary P
//	NAME up|down standby|primary tl=N [upstream=NAME] [streaming] [recv=N]
//	     [replay=N] [busy=N] [fenced] [sync=[K:]NODE,...]
//
// (a primary of "-" is none: a switchover's hold; recv is a primary's
// flushed WAL, a standby's received and replayed, unless replay says)
// (a node's address is its name) and prints the analysis and the actions.
// Run with -rewrite to regenerate the expected output.
func TestFailoverScripts(t *testing.T) {
	var d *Decider
	datadriven.RunFile(t, "testdata/failover.txt", func(t *testing.T, b *datadriven.Block) string {
		switch b.Cmd {
		case "decider":
			dead, err := time.ParseDuration(b.Arg("dead-after", "1s"))
			if err != nil {
				t.Fatalf("%s: %v", b.Pos, err)
			}
			q, _ := strconv.Atoi(b.Arg("quorum", "1"))
			d = &Decider{DeadAfter: dead, SyncQuorum: q}
			return ""
		case "step":
			at, err := time.ParseDuration(b.Arg("t", "0s"))
			if err != nil {
				t.Fatalf("%s: %v", b.Pos, err)
			}
			a, acts := d.Step(time.Unix(0, 0).Add(at), parseView(t, b))
			var out strings.Builder
			out.WriteString(a.String() + "\n")
			for _, x := range acts {
				out.WriteString(x.String() + "\n")
			}
			return out.String()
		}
		t.Fatalf("%s: unknown command %q", b.Pos, b.Cmd)
		return ""
	})
}

func parseView(t *testing.T, b *datadriven.Block) ShardView {
	t.Helper()
	var v ShardView
	for _, l := range strings.Split(strings.TrimSpace(b.Input), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "shard" {
			if len(f) != 6 || f[2] != "term" || f[4] != "primary" {
				t.Fatalf("%s: bad shard line %q", b.Pos, l)
			}
			term, _ := strconv.ParseUint(f[3], 10, 64)
			v.Shard, v.Term, v.Primary = f[1], term, f[5]
			if v.Primary == "-" {
				v.Primary = "" // a switchover's hold
			}
			continue
		}
		if len(f) < 3 {
			t.Fatalf("%s: bad node line %q", b.Pos, l)
		}
		n := NodeView{Name: f[0], Addr: f[0], Reachable: f[1] == "up", InRecovery: f[2] == "standby"}
		for _, kv := range f[3:] {
			k, val, _ := strings.Cut(kv, "=")
			switch k {
			case "tl":
				tl, _ := strconv.Atoi(val)
				n.Timeline = uint32(tl)
			case "upstream":
				n.Upstream = val
			case "streaming":
				n.Streaming = true
			case "recv":
				r, _ := strconv.ParseUint(val, 10, 64)
				n.Received, n.Replayed = LSN(r), LSN(r)
			case "replay":
				r, _ := strconv.ParseUint(val, 10, 64)
				n.Replayed = LSN(r)
			case "busy":
				n.Busy, _ = strconv.Atoi(val)
			case "fenced":
				n.Fenced, n.SyncNames = true, FenceStandby
			case "sync": // sync=[K:]a,b: ANY K (a, b), K 1 by default
				k, names, found := strings.Cut(val, ":")
				if !found {
					k, names = "1", val
				}
				q, _ := strconv.Atoi(k)
				n.SyncNames = syncStandbyNames(q, strings.Split(names, ","))
			default:
				t.Fatalf("%s: unknown node field %q", b.Pos, kv)
			}
		}
		v.Nodes = append(v.Nodes, n)
	}
	return v
}

// TestFailoverOracle checks the decider against a deliberately simple model
// on random shards: it promotes only when the primary is gone, no standby
// streams from it, enough standbys answer for the synchronous quorum, and
// every standby was detached; and then exactly the standby that received
// the most WAL.
func TestFailoverOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		n := 1 + rng.IntN(4) // standbys
		q := 1 + rng.IntN(n)
		v := ShardView{Shard: "0", Term: 1, Primary: "p"}
		v.Nodes = append(v.Nodes, NodeView{Name: "p", Addr: "p", Reachable: rng.IntN(3) == 0, Timeline: 1})
		for j := 0; j < n; j++ {
			s := NodeView{Name: fmt.Sprint("s", j), Addr: fmt.Sprint("s", j), Reachable: rng.IntN(5) != 0, InRecovery: true,
				Timeline: 1, Received: LSN(rng.IntN(4))}
			switch rng.IntN(3) {
			case 0:
				s.Upstream, s.Streaming = "p", true
			case 1:
				s.Upstream = "p"
			}
			v.Nodes = append(v.Nodes, s)
		}
		d := &Decider{DeadAfter: time.Second, SyncQuorum: q}
		var promoted []string
		for _, at := range []time.Duration{0, time.Second} {
			_, acts := d.Step(time.Unix(0, 0).Add(at), v)
			for _, a := range acts {
				if p, ok := a.(Promote); ok {
					promoted = append(promoted, p.Node)
				}
			}
		}
		// The model.
		want := ""
		reachable, streaming, attached := 0, false, false
		best := -1
		for j, s := range v.Nodes[1:] {
			if !s.Reachable {
				continue
			}
			reachable++
			streaming = streaming || s.Streaming
			attached = attached || s.Upstream != ""
			if best < 0 || s.Received > v.Nodes[1+best].Received {
				best = j
			}
		}
		if !v.Nodes[0].Reachable && !streaming && !attached && reachable >= n-q+1 && best >= 0 {
			want = v.Nodes[1+best].Name
		}
		got := strings.Join(promoted, ",")
		if got != want {
			t.Fatalf("view %+v (ANY %d): promoted %q, the model %q", v, q, got, want)
		}
	}
}
