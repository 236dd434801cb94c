package ha

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/datadriven"
)

// TestSwitchoverScripts runs testdata/switchover.txt: "switchover [to=N]
// [quorum=K] [drain=D] [catchup=D]" with a view of the shard (written as in
// TestFailoverScripts) begins one and prints its old primary and target,
// or why it is refused; "step t=D" with a view steps it and prints its
// phase and actions; "hold-refused" reports its hold was not published.
// Run with -rewrite to regenerate the expected output.
func TestSwitchoverScripts(t *testing.T) {
	var sw *Switchover
	at := func(b *datadriven.Block) time.Time {
		d, err := time.ParseDuration(b.Arg("t", "0s"))
		if err != nil {
			t.Fatalf("%s: %v", b.Pos, err)
		}
		return time.Unix(0, 0).Add(d)
	}
	dur := func(b *datadriven.Block, key string) time.Duration {
		d, err := time.ParseDuration(b.Arg(key, "0s"))
		if err != nil {
			t.Fatalf("%s: %v", b.Pos, err)
		}
		return d
	}
	datadriven.RunFile(t, "testdata/switchover.txt", func(t *testing.T, b *datadriven.Block) string {
		switch b.Cmd {
		case "switchover":
			q, _ := strconv.Atoi(b.Arg("quorum", "1"))
			var err error
			sw, err = NewSwitchover(parseView(t, b), b.Arg("to", ""), q)
			if err != nil {
				return "refused: " + err.Error() + "\n"
			}
			sw.Drain, sw.CatchUp, sw.Promote, sw.SyncQuorum = dur(b, "drain"), dur(b, "catchup"), dur(b, "promote"), q
			return sw.From() + " -> " + sw.To() + "\n"
		case "step":
			acts := sw.Step(at(b), parseView(t, b))
			var out strings.Builder
			out.WriteString(sw.Phase().String())
			if err := sw.Err(); err != nil {
				out.WriteString(": " + err.Error())
			}
			out.WriteString("\n")
			for _, x := range acts {
				out.WriteString(x.String() + "\n")
			}
			return out.String()
		case "hold-refused":
			sw.HoldRefused(errors.New("ha: stale term"))
			return sw.Phase().String() + "\n"
		}
		t.Fatalf("%s: unknown command %q", b.Pos, b.Cmd)
		return ""
	})
}
