package loop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// A model of how Postgres answers the extended and simple protocols
// (postgres.c: PostgresMain, ignore_till_sync), for checking the replies
// queue against every ordering of messages, errors and reads.

// modelMsg is one message a client sends.
type modelMsg struct {
	kind   replyKind // rSynthParse and rSynthClose: messages belay answers itself (never sent)
	fail   bool      // Postgres answers it with an error (Sync: its implicit COMMIT fails)
	rows   int       // DataRows of an Execute or a Query, before its end or its error
	nodata bool      // a Describe answered with NoData
	read   bool      // after it, the client reads what the server sent so far (a Flush)
}

// modelPostgres is a backend: it answers each message it receives.
type modelPostgres struct{ ignoreTillSync bool }

// answer is what the backend sends for m ("" when it skips it).
func (pg *modelPostgres) answer(m modelMsg) string {
	if pg.ignoreTillSync && m.kind != rSync {
		return "" // skipped, a Query or FunctionCall too
	}
	var b strings.Builder
	switch m.kind {
	case rSync:
		pg.ignoreTillSync = false
		if m.fail {
			b.WriteByte('E')
		}
		b.WriteByte('Z')
		return b.String()
	case rQuery:
		if !m.fail || m.rows > 0 {
			b.WriteByte('T')
		}
		b.WriteString(strings.Repeat("D", m.rows))
		if m.fail {
			b.WriteByte('E')
		} else {
			b.WriteByte('C')
		}
		b.WriteByte('Z')
		return b.String() // an error in a Query starts no skipping
	case rExecute:
		b.WriteString(strings.Repeat("D", m.rows))
	}
	if m.fail {
		pg.ignoreTillSync = true
		b.WriteByte('E')
		return b.String()
	}
	switch m.kind {
	case rParse, rSynthParse:
		b.WriteByte('1')
	case rBind:
		b.WriteByte('2')
	case rClose, rSynthClose:
		b.WriteByte('3')
	case rDescStmt, rDescPortal:
		if m.kind == rDescStmt {
			b.WriteByte('t')
		}
		if m.nodata {
			b.WriteByte('n')
		} else {
			b.WriteByte('T')
		}
	case rExecute:
		b.WriteByte('C')
	}
	return b.String()
}

// synthetic says belay answers m itself and sends the server nothing.
func (m modelMsg) synthetic() bool { return m.kind == rSynthParse || m.kind == rSynthClose }

// undoable says a failed or skipped m must be undone (what it set up on
// the session); a Query's undo only says that nothing will answer it.
func (m modelMsg) undoable() bool { return m.kind != rSync && m.kind != rQuery }

// decodeModel turns fuzz bytes into messages, two bytes each.
func decodeModel(script []byte) []modelMsg {
	kinds := []replyKind{rParse, rBind, rClose, rDescStmt, rDescPortal, rExecute, rSync, rQuery, rSynthParse, rSynthClose, rSync, rExecute}
	var msgs []modelMsg
	for i := 0; i+1 < len(script); i += 2 {
		a, b := script[i], script[i+1]
		m := modelMsg{kind: kinds[int(a&0x0f)%len(kinds)], fail: a&0x10 != 0, nodata: a&0x20 != 0,
			read: a&0x40 != 0, rows: int(b % 4)}
		if m.synthetic() {
			m.fail = false // belay answers only what cannot fail
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// runRepliesModel sends msgs directly to a modelled Postgres and through the
// replies queue to another, which never sees the messages belay answers
// itself, and compares what the client gets; it checks that what was queued
// and then failed or was skipped, and only that, was undone, and that what
// push refused is what Postgres skips.
func runRepliesModel(t *testing.T, msgs []modelMsg) {
	t.Helper()
	var direct strings.Builder
	var pgDirect modelPostgres
	outcome := make([]bool, len(msgs)) // answered without an error, directly
	for i, m := range msgs {
		a := pgDirect.answer(m)
		direct.WriteString(a)
		outcome[i] = a != "" && !strings.HasSuffix(a, "E")
	}

	u := &modelUndo{}
	r := replies{undo: u}
	var pgServer modelPostgres
	var through strings.Builder
	var wire []byte // what the server sent and belay did not read yet
	queued := make([]bool, len(msgs))
	read := func() {
		for {
			for typ := r.synth(); typ != 0; typ = r.synth() {
				through.WriteByte(typ)
			}
			if len(wire) == 0 {
				return
			}
			typ := wire[0]
			wire = wire[1:]
			fwd, _, err := r.answer(typ)
			if err != nil {
				t.Fatalf("%v\nmessages %s\ndirect  %q\nthrough %q", err, describeModel(msgs), direct.String(), through.String())
			}
			if fwd {
				through.WriteByte(typ)
			}
		}
	}
	for i, m := range msgs {
		queued[i] = r.push(reply{kind: m.kind, cname: strconv.Itoa(i)})
		if !m.synthetic() {
			wire = append(wire, pgServer.answer(m)...)
		}
		if m.read {
			read()
		}
	}
	read()
	if through.String() != direct.String() {
		t.Fatalf("the client got %q through belay, %q directly\nmessages %s", through.String(), direct.String(), describeModel(msgs))
	}
	if !r.empty() {
		t.Fatalf("%d answers still owed\nmessages %s", len(r.q)-r.h, describeModel(msgs))
	}
	for i, m := range msgs {
		n := u.count[strconv.Itoa(i)]
		switch {
		case !queued[i] && (outcome[i] || n != 0), // refused by push: skipped directly too, nothing to undo
			queued[i] && (m.undoable() || m.kind == rQuery) && !outcome[i] && n != 1,
			outcome[i] && n != 0:
			t.Fatalf("message %d (%s) queued %v, undone %d times\nmessages %s", i, describeModel(msgs[i:i+1]), queued[i], n, describeModel(msgs))
		}
	}
}

type modelUndo struct{ count map[string]int }

func (u *modelUndo) undo(e *reply) {
	if u.count == nil {
		u.count = map[string]int{}
	}
	u.count[e.cname]++
}

func describeModel(msgs []modelMsg) string {
	names := map[replyKind]string{rParse: "P", rBind: "B", rClose: "C", rDescStmt: "Ds", rDescPortal: "Dp",
		rExecute: "E", rSync: "S", rQuery: "Q", rSynthParse: "P*", rSynthClose: "C*"}
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(names[m.kind])
		if m.fail {
			b.WriteString("!")
		}
		if m.rows > 0 {
			fmt.Fprintf(&b, "%d", m.rows)
		}
		if m.read {
			b.WriteString("/H")
		}
		b.WriteByte(' ')
	}
	return b.String()
}

// TestRepliesModel runs the orderings drivers produce: pipelines with Flush
// between statements and errors at each position, Syncs late or early.
func TestRepliesModel(t *testing.T) {
	P, B, E, S, H := modelMsg{kind: rParse}, modelMsg{kind: rBind}, modelMsg{kind: rExecute, rows: 1}, modelMsg{kind: rSync}, true
	fail := func(m modelMsg) modelMsg { m.fail = true; return m }
	flush := func(m modelMsg) modelMsg { m.read = H; return m }
	cases := [][]modelMsg{
		{P, B, fail(E), S, P, B, E, S},
		{P, B, flush(fail(E)), P, B, flush(E), S, P, B, flush(E), S},
		{flush(fail(P)), {kind: rQuery, rows: 2}, flush(B), {kind: rSynthParse}, {kind: rSynthClose, read: H}, S, flush(E), S},
		{flush(P), flush(fail(B)), flush(E), {kind: rDescStmt, read: H}, S},
		{{kind: rQuery, fail: true, rows: 1}, P, flush(B), S},
		{P, {kind: rSync, fail: true}, flush(B), S},
	}
	// An error at each position of a pipeline read after every message.
	base := []modelMsg{P, {kind: rDescStmt}, B, {kind: rDescPortal}, E, {kind: rClose}, {kind: rSynthParse}, B, E, S, P, B, E, S}
	for i := range base {
		if base[i].synthetic() || base[i].kind == rSync {
			continue
		}
		for _, reads := range []bool{false, true} {
			c := append([]modelMsg(nil), base...)
			c[i].fail = true
			for j := range c {
				c[j].read = reads
			}
			cases = append(cases, c)
		}
	}
	for _, c := range cases {
		t.Run(describeModel(c), func(t *testing.T) { runRepliesModel(t, c) })
	}
}

// FuzzRepliesModel runs random message sequences (two bytes a message: its
// kind, whether it fails, whether the client reads after it; its rows) and
// requires what the client gets through the replies queue to be what it gets
// from Postgres directly.
func FuzzRepliesModel(f *testing.F) {
	f.Add([]byte{0x00, 0, 0x01, 0, 0x15, 1, 0x06, 0, 0x40, 0, 0x06, 0})
	f.Add([]byte{0x50, 0, 0x41, 0, 0x45, 2, 0x47, 1, 0x08, 0, 0x49, 0, 0x06, 0})
	f.Add([]byte{0x57, 1, 0x40, 0, 0x16, 0, 0x41, 0, 0x06, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 400 {
			return
		}
		runRepliesModel(t, decodeModel(script))
	})
}
