package loop

// tracker follows one client's conversation with the server it holds and says
// when that server may go back to the pool. It is the heart of transaction
// pooling: a server is released only when every reply the client asked for is
// in (no Query, Sync or FunctionCall is still due), no extended-protocol batch
// is open (messages sent after the last Sync), the last ReadyForQuery said
// idle ('I', not in a transaction 'T' or failed transaction 'E'), and the
// client is not pinned.
//
// Pure: no I/O, no clock. Not safe for concurrent use (it lives on a loop).
type tracker struct {
	pending   int  // Query/Sync/FunctionCall forwarded whose ReadyForQuery is due
	openBatch bool // Parse/Bind/Describe/Execute/Close forwarded since the last Sync
	status    byte // of the last ReadyForQuery
	copyIn    bool // the server is in COPY FROM STDIN
	pinned    bool // session state that cannot move: keep the server until the client leaves
}

func newTracker() tracker { return tracker{status: 'I'} }

// client notes a whole frontend message forwarded to the server.
func (t *tracker) client(typ byte) {
	switch typ {
	case 'Q', 'F':
		t.pending++
	case 'S':
		t.pending++
		t.openBatch = false
	case 'P', 'B', 'D', 'E', 'C':
		t.openBatch = true
	}
}

// server notes a backend message (status is the ReadyForQuery byte) and says
// whether the server may be released after it.
func (t *tracker) server(typ, status byte) (release bool) {
	switch typ {
	case 'Z':
		if t.pending > 0 {
			t.pending--
		}
		t.status = status
		t.copyIn = false
		return t.releasable()
	case 'G':
		t.copyIn = true
	case 'C', 'E':
		t.copyIn = false
	}
	return false
}

func (t *tracker) releasable() bool { return t.idle() && !t.pinned }

// idle says the client holds the server but owes it nothing and is outside a
// transaction: the moment to release it, or to ask it about the session.
func (t *tracker) idle() bool { return t.pending == 0 && !t.openBatch && t.status == 'I' }

// busy says the server still owes replies or holds an open batch.
func (t *tracker) busy() bool { return t.pending > 0 || t.openBatch }
