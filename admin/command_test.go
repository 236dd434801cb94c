package admin

import (
	"errors"
	"testing"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/poolcore"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Command
	}{
		{"SHOW POOLS", Command{Verb: VerbShow, Arg: "POOLS"}},
		{"show pools;", Command{Verb: VerbShow, Arg: "POOLS"}},
		{"  Show Stats_Totals ; ;", Command{Verb: VerbShow, Arg: "STATS_TOTALS"}},
		{"PAUSE", Command{Verb: VerbPause}},
		{"pause app", Command{Verb: VerbPause, Arg: "app"}},
		{`PAUSE "My DB"`, Command{Verb: VerbPause, Arg: "My DB"}},
		{`KILL "a""b"`, Command{Verb: VerbKill, Arg: `a"b`}},
		{"RELOAD", Command{Verb: VerbReload}},
		{"shutdown wait_for_clients", Command{Verb: VerbShutdown, Arg: "WAIT_FOR_CLIENTS"}},
		{"SHUTDOWN WAIT_FOR_SERVERS;", Command{Verb: VerbShutdown, Arg: "WAIT_FOR_SERVERS"}},
		{"SHUTDOWN", Command{Verb: VerbShutdown}},
		{"SET default_pool_size = 30", Command{Verb: VerbSet, Arg: "default_pool_size", Value: "30"}},
		{"set Default_Pool_Size=30", Command{Verb: VerbSet, Arg: "default_pool_size", Value: "30"}},
		{"SET server_reset_query = 'DISCARD ALL'", Command{Verb: VerbSet, Arg: "server_reset_query", Value: "DISCARD ALL"}},
		{"SET x = 'it''s'", Command{Verb: VerbSet, Arg: "x", Value: "it's"}},
		{"SET x TO 5", Command{Verb: VerbSet, Arg: "x", Value: "5"}},
		{"RECONNECT", Command{Verb: VerbReconnect}},
		{"KILL_CLIENT 0x1f", Command{Verb: VerbKillClient, Arg: "0x1f"}},
	} {
		got, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		got.Text = ""
		if got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, in := range []string{
		"", ";", "SELECT 1", "SHOW", "SHOW POOLS STATS", "RELOAD now", "KILL", "DISABLE",
		"SHUTDOWN NOW", `PAUSE "unterminated`, `PAUSE ""`, "SET", "SET x", "SET x =", "SET x = 'a", "SET x = a b",
		"SET x = 'a'b'",
	} {
		_, err := Parse(in)
		var e *Error
		if !errors.As(err, &e) || e.Code != sqlstate.ProtocolViolation {
			t.Errorf("Parse(%q) = %v, want 08P01", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"SHOW POOLS", `KILL "a""b"`, "SET x = 'y'", "SHUTDOWN WAIT_FOR_CLIENTS;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := Parse(s)
		if err == nil && cmd.Verb == 0 {
			t.Fatalf("Parse(%q): no verb and no error", s)
		}
	})
}

func TestAverager(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAverager(10 * time.Second)
	tot := func(x, q uint64, xt, qt, wt time.Duration, rx, tx uint64) map[string]poolcore.Totals {
		return map[string]poolcore.Totals{"app": {Xacts: x, Queries: q, XactTime: xt, QueryTime: qt, WaitTime: wt, Received: rx, Sent: tx}}
	}
	if a.Observe(t0, tot(0, 0, 0, 0, 0, 0, 0)) {
		t.Fatal("the first observation ended a period")
	}
	if a.Observe(t0.Add(5*time.Second), tot(50, 100, time.Second, time.Second, 0, 500, 1000)) {
		t.Fatal("a period ended after half of it")
	}
	if (a.Average("app") != poolcore.Totals{}) {
		t.Fatal("averages before a whole period")
	}
	if !a.Observe(t0.Add(10*time.Second), tot(100, 400, 2*time.Second, 4*time.Second, 5*time.Second, 1000, 2000)) {
		t.Fatal("no period ended after 10s")
	}
	want := poolcore.Totals{Xacts: 10, Queries: 40, Received: 100, Sent: 200,
		XactTime: 20 * time.Millisecond, QueryTime: 10 * time.Millisecond, WaitTime: 500 * time.Millisecond}
	if got := a.Average("app"); got != want {
		t.Fatalf("averages %+v, want %+v", got, want)
	}
	// A pool made again counts from zero, not backwards.
	a.Observe(t0.Add(20*time.Second), tot(10, 10, 0, 0, 0, 0, 0))
	if got := a.Average("app"); got.Xacts != 1 {
		t.Fatalf("after a reset: %+v", got)
	}
}
