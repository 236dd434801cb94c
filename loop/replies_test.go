package loop

import (
	"strings"
	"testing"
)

// TestReplies runs message exchanges through the reply queue: each case
// queues what was sent and feeds what the server answered; the transcript
// is what the client got ('+' synthetic, letters forwarded, '-' dropped)
// and which entries were undone.
func TestReplies(t *testing.T) {
	type sent struct {
		kind replyKind
		own  bool
		name string
	}
	cases := []struct {
		name   string
		sent   []sent
		server string
		want   string
		undone string
	}{
		{"pgbench prepared", []sent{{kind: rBind}, {kind: rExecute}, {kind: rSync}}, "2DCZ", "2DCZ", ""},
		{"parse already on the server", []sent{{kind: rSynthParse}, {kind: rDescStmt}, {kind: rSync}}, "tTZ", "+1tTZ", ""},
		{"injected close and parse", []sent{{kind: rClose, own: true}, {kind: rParse, own: true, name: "b1"}, {kind: rBind}, {kind: rExecute}, {kind: rSync}},
			"312DDCZ", "--2DDCZ", ""},
		{"injected parse fails: the client sees the error, the batch is undone",
			[]sent{{kind: rParse, own: true, name: "b1"}, {kind: rBind}, {kind: rExecute}, {kind: rSynthParse, name: "c2"}, {kind: rSync}},
			"EZ", "EZ", "c2,b1"}, // undone latest first
		{"describe statement then no data", []sent{{kind: rParse, name: "x"}, {kind: rDescStmt}, {kind: rSync}}, "1tnZ", "1tnZ", ""},
		{"copy in execute", []sent{{kind: rBind}, {kind: rExecute}, {kind: rSync}}, "2GCZ", "2GCZ", ""},
		{"query with notices and a notification", []sent{{kind: rQuery}}, "NTDDCAZ", "NTDDCAZ", ""},
		{"commit of the implicit transaction fails at Sync", []sent{{kind: rBind}, {kind: rExecute}, {kind: rSync}}, "2CEZ", "2CEZ", ""},
		{"suspended portal", []sent{{kind: rBind}, {kind: rExecute}, {kind: rExecute}, {kind: rSync}}, "2DsDCZ", "2DsDCZ", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := &undoLog{}
			r := replies{undo: u}
			for _, s := range c.sent {
				e := reply{kind: s.kind, own: s.own}
				if s.kind == rSynthParse {
					e.cname = s.name
				} else {
					e.sname = s.name
				}
				r.push(e)
			}
			var got strings.Builder
			for _, typ := range []byte(c.server) {
				for syn := r.synth(); syn != 0; syn = r.synth() {
					got.WriteString("+" + string(syn))
				}
				fwd, _, err := r.answer(typ)
				if err != nil {
					t.Fatal(err)
				}
				if fwd {
					got.WriteByte(typ)
				} else {
					got.WriteByte('-')
				}
			}
			if got.String() != c.want || strings.Join(u.names, ",") != c.undone {
				t.Fatalf("client got %q, undone %q; want %q, %q", got.String(), strings.Join(u.names, ","), c.want, c.undone)
			}
			if !r.empty() {
				t.Fatalf("%d entries left", len(r.q)-r.h)
			}
		})
	}
}

// undoLog records the names undone.
type undoLog struct{ names []string }

func (u *undoLog) undo(e *reply) {
	if n := e.sname + e.cname; n != "" {
		u.names = append(u.names, n)
	}
}

func TestRepliesDesync(t *testing.T) {
	var r replies
	if _, _, err := r.answer('D'); err == nil {
		t.Fatal("a DataRow with nothing outstanding was accepted")
	}
	r.push(reply{kind: rBind})
	if _, _, err := r.answer('Z'); err == nil {
		t.Fatal("ReadyForQuery for a Bind was accepted")
	}
}

func BenchmarkRepliesPgbench(b *testing.B) {
	var r replies
	b.ReportAllocs()
	for b.Loop() {
		r.push(reply{kind: rBind})
		r.push(reply{kind: rExecute})
		r.push(reply{kind: rSync})
		for _, typ := range []byte("2DCZ") {
			_ = r.synth()
			if _, _, err := r.answer(typ); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// FuzzReplies drives the queue with what clients send (even bytes: a kind
// to push) and what servers answer (odd bytes: a message type): whatever
// the order, it never panics, never answers for more than was sent, and a
// Sync's ReadyForQuery always ends the skipping an error started.
func FuzzReplies(f *testing.F) {
	f.Add([]byte{0, 'P', 2, 'B', 10, 'S', 1, '1', 1, '2', 1, 'Z'})
	f.Add([]byte{16, 0, 4, 1, 'E', 1, 'Z'})
	f.Add([]byte{14, 1, 'T', 1, 'D', 1, 'E', 1, 'C', 1, 'Z'})
	kinds := []replyKind{rParse, rBind, rClose, rDescStmt, rDescPortal, rExecute, rSync, rQuery, rSynthParse, rSynthClose}
	f.Fuzz(func(t *testing.T, script []byte) {
		u := &undoLog{}
		r := replies{undo: u}
		for i := 0; i+1 < len(script); i += 2 {
			if script[i]%2 == 0 {
				r.push(reply{kind: kinds[int(script[i+1])%len(kinds)], own: script[i]&4 != 0, quiet: script[i]&8 != 0})
				continue
			}
			for r.synth() != 0 {
			}
			before := len(r.q) - r.h
			_, _, err := r.answer(script[i+1])
			if r.h > len(r.q) || (err == nil && len(r.q)-r.h > before) {
				t.Fatalf("queue broken: h %d len %d (was %d outstanding)", r.h, len(r.q), before)
			}
		}
	})
}

// TestOwnRepliesOwed: what a client's close must drain counts belay's own
// pipelined Query (askLSN's WAL position) as well as its own Syncs: each
// ends in a ReadyForQuery that must not reach the server's next client.
func TestOwnRepliesOwed(t *testing.T) {
	var r replies
	r.push(reply{kind: rQuery})
	r.push(reply{kind: rQuery, own: true, lsn: true})
	r.push(reply{kind: rSync, own: true, quiet: true})
	if n := r.ownSyncs(); n != 2 {
		t.Fatalf("own replies owed: %d, want 2 (the position's Query and the Sync)", n)
	}
}
