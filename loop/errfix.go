package loop

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/planner"
)

// What a client is shown of an error about a text belay changed before
// sending it: a prepared statement's name replaced by its server-side name
// (stmts.go). Postgres's message names the server-side statement and its
// position (the 'P' field, 1-based, in characters) counts in the text
// belay sent; the client gets its own names and positions in its own text,
// so that psql's "LINE 1: ... ^" points where it should.
//
// Characters are counted as UTF-8 (utf8.RuneCount, which counts a byte that
// is not UTF-8 as one character: right for UTF8 and the single-byte
// encodings). With a multi-byte client_encoding other than UTF8 (SJIS, EUC,
// GBK, BIG5), a position after a replaced non-ASCII name may be off.

// errFix is how belay rewrites an error about something it changed.
type errFix struct {
	names []string   // pairs: a server-side name, the client's name for it
	edits []textEdit // where the text sent differs from the client's, in order
}

// textEdit is a name belay replaced in a client's text: at is where it
// starts in the text sent, sent and orig the lengths of the replacement and
// of the client's name, all in characters.
type textEdit struct{ at, sent, orig int32 }

// nameFix is the errFix of a statement known to the server as sname and to
// the client as cname.
func nameFix(sname, cname string) *errFix { return &errFix{names: []string{sname, cname}} }

// clientPosition maps p, a 1-based character position in the text sent, to
// the client's text; a position inside a replaced name maps to its start.
func (f *errFix) clientPosition(p int32) int32 {
	at := p - 1
	shift := int32(0) // client's characters less sent ones, before at
	for _, e := range f.edits {
		if at < e.at {
			break
		}
		if at < e.at+e.sent {
			return e.at + shift + 1
		}
		shift += e.orig - e.sent
	}
	return at + shift + 1
}

// fixError appends the ErrorResponse whose body is body with fix applied:
// its message with the client's names, its position in the client's text.
// Every other field is kept as Postgres sent it.
func fixError(dst, body []byte, fix *errFix) []byte {
	return codec.AppendEditedFields(dst, codec.MsgErrorResponse, body, func(field byte, v []byte) []byte {
		switch field {
		case 'M':
			if len(fix.names) == 0 {
				return v
			}
			msg := string(v)
			for i := 0; i+1 < len(fix.names); i += 2 {
				msg = strings.ReplaceAll(msg, `"`+fix.names[i]+`"`, `"`+fix.names[i+1]+`"`)
			}
			return []byte(msg)
		case 'P':
			if len(fix.edits) == 0 {
				return v
			}
			p, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil || p < 1 {
				return v
			}
			return strconv.AppendInt(nil, int64(fix.clientPosition(int32(p))), 10)
		}
		return v
	})
}

// replacement is a span of a client's text and what belay sends instead:
// a statement's server-side name for the client's name cname, or a
// subquery for the view pg_prepared_statements (cname "").
type replacement struct {
	span  planner.Span
	with  string
	cname string
}

// splice returns the text belay sends for the client's text src, with reps
// (in any order; empty spans, where the planner did not find a name, are
// left out) applied, and the errFix that maps errors about it back; nil,
// nil when nothing changed. It copies nothing until a name is replaced.
func splice(src []byte, reps []replacement) ([]byte, *errFix) {
	reps = slices.DeleteFunc(reps, func(r replacement) bool { return r.span.Len == 0 })
	if len(reps) == 0 {
		return nil, nil
	}
	slices.SortFunc(reps, func(a, b replacement) int { return int(a.span.Loc - b.span.Loc) })
	fix := &errFix{}
	var out []byte
	last, chars := 0, int32(0) // src[:last] is in out, which holds chars characters
	for _, r := range reps {
		before := src[last:r.span.Loc]
		out = append(out, before...)
		chars += int32(utf8.RuneCount(before))
		sent := int32(utf8.RuneCountInString(r.with))
		fix.edits = append(fix.edits, textEdit{at: chars, sent: sent, orig: int32(utf8.RuneCount(src[r.span.Loc:r.span.End()]))})
		if r.cname != "" {
			fix.names = append(fix.names, r.with, r.cname)
		}
		out = append(out, r.with...)
		chars += sent
		last = int(r.span.End())
	}
	return append(out, src[last:]...), fix
}
