package loop

import "testing"

// step is one message: 'c' from the client, 's' from the server.
type step struct {
	dir    byte
	typ    byte
	status byte // for 'Z'
	// release is what server() must answer for this step.
	release bool
}

func TestTracker(t *testing.T) {
	cases := []struct {
		name   string
		pinned bool
		steps  []step
		end    tracker
	}{
		{name: "simple query", steps: []step{
			{'c', 'Q', 0, false}, {'s', 'T', 0, false}, {'s', 'D', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "transaction holds the server", steps: []step{
			{'c', 'Q', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'T', false},
			{'c', 'Q', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'T', false},
			{'c', 'Q', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "failed transaction holds until rollback", steps: []step{
			{'c', 'Q', 0, false}, {'s', 'Z', 'T', false},
			{'c', 'Q', 0, false}, {'s', 'E', 0, false}, {'s', 'Z', 'E', false},
			{'c', 'Q', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "extended protocol", steps: []step{
			{'c', 'P', 0, false}, {'c', 'B', 0, false}, {'c', 'D', 0, false}, {'c', 'E', 0, false}, {'c', 'S', 0, false},
			{'s', '1', 0, false}, {'s', '2', 0, false}, {'s', 'T', 0, false}, {'s', 'D', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "pipelined syncs release after the last", steps: []step{
			{'c', 'B', 0, false}, {'c', 'E', 0, false}, {'c', 'S', 0, false},
			{'c', 'B', 0, false}, {'c', 'E', 0, false}, {'c', 'S', 0, false},
			{'s', 'Z', 'I', false}, {'s', 'Z', 'I', true},
		}},
		{name: "batch sent after a sync holds the server", steps: []step{
			{'c', 'B', 0, false}, {'c', 'E', 0, false}, {'c', 'S', 0, false},
			{'c', 'P', 0, false},
			{'s', 'Z', 'I', false},
		}, end: tracker{openBatch: true, status: 'I'}},
		{name: "error in extended protocol skips to sync", steps: []step{
			{'c', 'P', 0, false}, {'c', 'B', 0, false}, {'c', 'E', 0, false}, {'c', 'S', 0, false},
			{'s', 'E', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "copy in", steps: []step{
			{'c', 'Q', 0, false}, {'s', 'G', 0, false},
			{'c', 'd', 0, false}, {'c', 'd', 0, false}, {'c', 'c', 0, false},
			{'s', 'C', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "copy in fails midway", steps: []step{
			{'c', 'Q', 0, false}, {'s', 'G', 0, false}, {'c', 'd', 0, false},
			{'s', 'E', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "function call", steps: []step{
			{'c', 'F', 0, false}, {'s', 'V', 0, false}, {'s', 'Z', 'I', true},
		}},
		{name: "pinned never releases", pinned: true, steps: []step{
			{'c', 'Q', 0, false}, {'s', 'C', 0, false}, {'s', 'Z', 'I', false},
		}, end: tracker{status: 'I', pinned: true}},
		{name: "flush does not end a batch", steps: []step{
			{'c', 'P', 0, false}, {'c', 'D', 0, false}, {'c', 'H', 0, false},
			{'s', '1', 0, false}, {'s', 't', 0, false}, {'s', 'T', 0, false},
		}, end: tracker{openBatch: true, status: 'I'}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTracker()
			tr.pinned = c.pinned
			for i, s := range c.steps {
				if s.dir == 'c' {
					tr.client(s.typ)
					continue
				}
				if got := tr.server(s.typ, s.status); got != s.release {
					t.Fatalf("step %d (%c %c): release = %v, want %v", i, s.dir, s.typ, got, s.release)
				}
			}
			want := c.end
			if want.status == 0 {
				want.status = 'I'
			}
			if tr != want {
				t.Fatalf("end state %+v, want %+v", tr, want)
			}
		})
	}
}
