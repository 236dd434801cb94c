package loop

import (
	"fmt"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/shard"
)

// A write for several shards with RETURNING (issue J), in a simple Query:
// an UPDATE or DELETE of every shard's rows, a write to a reference table,
// or an INSERT whose VALUES rows are split between the shards. Each leg
// runs it as any spread's (prepared, or in the client's transaction),
// keeping its result (at most max_buffered_bytes; 54000 past it, nothing
// committed); the client gets the first shard's RowDescription, every
// shard's rows and one tag counting them all. A split INSERT's rows come
// back in the order of its VALUES, as PostgreSQL returns them: each
// shard's rows are its part's rows in order, and rowShards says whose
// each row is. A part that returned another number of rows than it had
// (a trigger or ON CONFLICT DO NOTHING skipped some) leaves that order
// unknown: the statement is refused (0A000), nothing committed. A
// reference table's rows are the first shard's (every copy's are alike).
// In the extended protocol (one execution with its parameters) the rows
// come in the formats the client asked, described if it asked.

// checkReturned checks what the leg kept of its RETURNING rows, once its
// statement ran: all of them (54000 past the bound), and for a split
// INSERT one per row of its part.
func (l *spreadLeg) checkReturned() error {
	if l.raw.Over {
		return &shard.Error{Code: sqlstate.ProgramLimitExceeded,
			Message: "the RETURNING rows of a write for several shards are more than belay holds (max_buffered_bytes): nothing was written"}
	}
	if l.sp.rowShards == nil {
		return nil
	}
	want, got := 0, 0
	for _, k := range l.sp.rowShards {
		if k == l.shard {
			want++
		}
	}
	for typ := range heldMessages(l.raw.Msgs) {
		if typ == codec.MsgDataRow {
			got++
		}
	}
	if got != want {
		return &shard.Error{Code: sqlstate.FeatureNotSupported,
			Message: fmt.Sprintf("an INSERT over several shards with RETURNING returned %d rows for the %d rows of a shard (a trigger or ON CONFLICT DO NOTHING skipped some), so the order of its rows is not known: nothing was written", got, want)}
	}
	return nil
}

// returned appends the answer of a write with RETURNING: the first
// shard's RowDescription, the rows (a split INSERT's in its VALUES'
// order; a reference table's, the first shard's), one tag counting them.
func (sp *spread) returned(b []byte) []byte {
	var desc []byte
	rows := make([][][]byte, len(sp.legs))
	tags := make([]string, 0, len(sp.legs))
	for i, l := range sp.legs {
		if i > 0 && !sp.sharded {
			break // a reference table's: every copy answered alike
		}
		for typ, m := range heldMessages(l.raw.Msgs) {
			switch typ {
			case codec.MsgRowDescription:
				if desc == nil {
					desc = m
				}
			case codec.MsgDataRow:
				rows[i] = append(rows[i], m)
			case codec.MsgCommandComplete:
				if t, err := codec.CommandTag(m[5:]); err == nil && writeTag(string(t)) {
					tags = append(tags, string(t))
				}
			}
		}
	}
	b = sp.prefix(b)
	if sp.described() {
		b = append(b, desc...)
	}
	if sp.rowShards != nil {
		next := make([]int, len(sp.legs))
		for _, k := range sp.rowShards {
			for i, l := range sp.legs {
				if l.shard == k && next[i] < len(rows[i]) {
					b = append(b, rows[i][next[i]]...)
					next[i]++
					break
				}
			}
		}
	} else {
		for _, r := range rows {
			for _, m := range r {
				b = append(b, m...)
			}
		}
	}
	tag := "OK"
	if len(tags) > 0 {
		tag = sumTag(tags)
	}
	return codec.AppendFrame(b, codec.MsgCommandComplete, append([]byte(tag), 0))
}

// writeTag says whether tag is a write's (not BEGIN or PREPARE TRANSACTION
// around it).
func writeTag(tag string) bool {
	for _, p := range []string{"INSERT ", "UPDATE ", "DELETE ", "MERGE "} {
		if len(tag) > len(p) && tag[:len(p)] == p {
			return true
		}
	}
	return false
}

// faultResponse is the client's error for an error of belay's own.
func faultResponse(err error) *codec.ErrorResponse {
	if se, ok := err.(*shard.Error); ok {
		return shardError(se)
	}
	return &codec.ErrorResponse{Severity: "ERROR", Code: sqlstate.InternalError, Message: err.Error()}
}
