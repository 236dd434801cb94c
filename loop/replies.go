package loop

import "fmt"

// replyKind is what the server answers to one message it was sent.
type replyKind uint8

const (
	rParse      replyKind = iota // ParseComplete
	rBind                        // BindComplete
	rClose                       // CloseComplete
	rDescStmt                    // ParameterDescription, then RowDescription or NoData
	rDescPortal                  // RowDescription or NoData
	rExecute                     // rows, then CommandComplete, EmptyQueryResponse or PortalSuspended
	rSync                        // ReadyForQuery
	rQuery                       // anything through ReadyForQuery (a Query or a FunctionCall)
	rSynthParse                  // nothing from the server: belay answers ParseComplete itself
	rSynthClose                  // nothing from the server: belay answers CloseComplete itself
)

// reply is one answer the client (or belay) is owed by the server, in the
// order the messages were sent.
type reply struct {
	kind replyKind
	own  bool // a message belay slipped in: its answer is not the client's (an error still is, unless quiet)
	// quiet: belay's own messages before a client's Query, ending in a Sync
	// of belay's own; an error there is not shown (the client's statement
	// then fails on its own).
	quiet bool
	gotT  bool // rDescStmt: the ParameterDescription came
	lsn   bool // own rQuery: its DataRow is the primary's WAL position (askLSN)
	// unsure: own rClose of a statement whose state on the server was
	// unknown (poolcore.Statements.Forget): skipped, it stays unknown.
	unsure bool

	// What to undo when the message fails or is skipped by an earlier error
	// (Postgres skips everything up to the Sync):
	sname   string      // rParse: the server-side statement that is then not prepared; own rClose: that is still prepared (unsure: may be)
	cname   string      // rParse, rSynthParse: the client's statement that then does not exist; rSynthClose: that still does
	unnamed bool        // rParse of the unnamed statement
	stmt    *clientStmt // rParse, rSynthParse: the client's statement entry cname must still be; rSynthClose: the one it closed; rBind, rDescStmt: the shared statement used (noteStale)

	// rQuery: the client's SQL statements whose effects take hold once
	// Postgres reports them complete (CommandComplete number i+1); rExecute:
	// the effect of the statement its portal runs.
	conf   []confirm
	unexec func() // rExecute: undoes what the client's PREPARE did when it went out
	done   int    // CommandCompletes seen
	// fix is how an error in the answer is shown to the client: its own
	// names for the server-side ones, positions in its own text (errfix.go).
	fix *errFix
}

// confirm is an effect of statement number idx of a Query, applied when it
// completes.
type confirm struct {
	idx int
	do  func()
}

// replies is the queue of answers the server owes, which lets belay drop the
// answers to its own messages, answer in the client's stead where it sent
// nothing, and undo what a failed message would have created. Postgres's
// rule it follows (postgres.c, ignore_till_sync): after an error in an
// extended-protocol message, the server skips every message up to the next
// Sync, a Query or a FunctionCall included, and answers none of them; the
// Sync gets ReadyForQuery. A client that sends Flush rather than Sync
// (pipelines) can see the error before it sent the Sync, and go on sending:
// what it sends then is skipped too (skipping).
//
// Pure: no I/O. Not safe for concurrent use (it lives on a loop).
type replies struct {
	q []reply
	h int
	// skipping: an extended-protocol message failed and its Sync is not
	// queued yet: the server skips whatever comes before that Sync.
	skipping bool
	// undo takes back what e's message set up when it failed or was
	// skipped (the session; an interface, so that setting it allocates
	// nothing).
	undo undoer
}

// undoer takes back what e's message set up; for a Query or FunctionCall
// queued before the failure (rQuery), that the server will not answer it.
type undoer interface{ undo(e *reply) }

// push queues the answer owed to a message sent to the server. It returns
// false when the server will skip the message (skipping): nothing is owed,
// and the caller sets nothing up for it.
func (r *replies) push(e reply) bool {
	if r.skipping {
		if e.kind != rSync {
			return false
		}
		r.skipping = false
	}
	if r.h > 0 && r.h == len(r.q) {
		r.reset()
	}
	r.q = append(r.q, e)
	return true
}

func (r *replies) empty() bool { return r.h == len(r.q) }

func (r *replies) head() *reply {
	if r.empty() {
		return nil
	}
	return &r.q[r.h]
}

func (r *replies) pop() {
	r.q[r.h] = reply{}
	r.h++
}

// lsnDue says whether the head is belay's question for the primary's WAL
// position (whose DataRow belay reads).
func (r *replies) lsnDue() bool {
	e := r.head()
	return e != nil && e.lsn
}

// synthDue says whether the head is an answer belay gives itself.
func (r *replies) synthDue() bool {
	e := r.head()
	return e != nil && (e.kind == rSynthParse || e.kind == rSynthClose)
}

// synth pops a synthetic answer at the head: what belay must send the client
// now (0 when the head is the server's to answer).
func (r *replies) synth() byte {
	if !r.synthDue() {
		return 0
	}
	typ := byte('1') // ParseComplete
	if r.head().kind == rSynthClose {
		typ = '3' // CloseComplete
	}
	r.pop()
	return typ
}

// answer takes the next message of type typ from the server. forward says
// whether the client gets it; fix, for an error, is how to rewrite it (nil
// mostly). An error reply means the server stopped the
// batch: everything up to the next Sync is skipped and undone.
func (r *replies) answer(typ byte) (forward bool, fix *errFix, err error) {
	switch typ {
	case 'N', 'A', 'S': // notice, notification, parameter status: any time
		return true, nil, nil
	}
	e := r.head()
	if e == nil {
		if typ == 'E' { // a FATAL from the server on its own (shutdown)
			return true, nil, nil
		}
		return false, nil, fmt.Errorf("server sent %q with nothing outstanding", typ)
	}
	own := e.own
	switch e.kind {
	case rQuery:
		switch typ {
		case 'C':
			e.done++
			for _, c := range e.conf {
				if c.idx == e.done-1 {
					c.do()
				}
			}
		case 'E':
			e.conf = nil // what did not complete never takes hold
			return !own, e.fix, nil
		case 'Z':
			r.pop()
		}
		return !own, nil, nil
	case rSync:
		switch typ {
		case 'Z':
			r.pop()
			return !own, nil, nil
		case 'E': // a COMMIT of the implicit transaction failed
			return !own, nil, nil
		}
	default:
		if typ == 'E' {
			fix, quiet := e.fix, own && e.quiet
			r.failAll()
			return !quiet, fix, nil
		}
		if r.ends(e, typ) {
			if typ == 'C' && e.kind == rExecute {
				for _, c := range e.conf { // a SQL PREPARE or DEALLOCATE run through a portal
					c.do()
				}
			}
			r.pop()
			return !own, nil, nil
		}
		if r.part(e, typ) {
			return !own, nil, nil
		}
	}
	return false, nil, fmt.Errorf("server sent %q while %d was due", typ, e.kind)
}

// ends says whether typ completes e's answer.
func (r *replies) ends(e *reply, typ byte) bool {
	switch e.kind {
	case rParse:
		return typ == '1'
	case rBind:
		return typ == '2'
	case rClose:
		return typ == '3'
	case rDescStmt:
		if typ == 't' && !e.gotT {
			e.gotT = true
			return false
		}
		return e.gotT && (typ == 'T' || typ == 'n')
	case rDescPortal:
		return typ == 'T' || typ == 'n'
	case rExecute:
		return typ == 'C' || typ == 'I' || typ == 's'
	}
	return false
}

// part says whether typ belongs inside e's answer.
func (r *replies) part(e *reply, typ byte) bool {
	switch e.kind {
	case rDescStmt:
		return typ == 't' && e.gotT // ends recorded it
	case rExecute:
		switch typ {
		case 'D', 'G', 'H', 'W', 'd', 'c':
			return true
		}
	}
	return false
}

// failAll undoes the failed head and every entry up to the next Sync, which
// the server skips, latest first (a Close and a Parse of one name come
// back in the right order); with no Sync queued yet, what comes next is
// skipped too.
func (r *replies) failAll() {
	end := r.h
	for end < len(r.q) && r.q[end].kind != rSync {
		end++
	}
	if r.undo != nil {
		for i := end - 1; i >= r.h; i-- {
			r.undo.undo(&r.q[i])
		}
	}
	for r.h < end {
		r.pop()
	}
	if r.empty() {
		r.skipping = true
	}
}

// abandon undoes every answer still owed, latest first, and forgets them:
// the server died before it answered any, and what their messages set up
// never happened (a unit of work about to be sent again elsewhere).
func (r *replies) abandon() {
	if r.undo != nil {
		for i := len(r.q) - 1; i >= r.h; i-- {
			r.undo.undo(&r.q[i])
		}
	}
	r.reset()
}

// reset forgets everything outstanding (the server is gone or was drained),
// and the memory of a long pipeline.
func (r *replies) reset() {
	r.skipping = false
	if cap(r.q) > 32 {
		r.q = nil
	} else {
		clear(r.q)
		r.q = r.q[:0]
	}
	r.h = 0
}

// ownSyncs counts the Syncs of belay's own still unanswered.
func (r *replies) ownSyncs() int {
	n := 0
	for i := r.h; i < len(r.q); i++ {
		// belay's own Syncs, and its own Queries (askLSN's WAL position,
		// pipelined behind a write): each ends in a ReadyForQuery the
		// drain must wait for.
		if r.q[i].own && (r.q[i].kind == rSync || r.q[i].kind == rQuery) {
			n++
		}
	}
	return n
}
