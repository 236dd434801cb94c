package loop

import (
	"strings"
	"testing"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/planner"
)

// TestSplicePositions maps every position of a rewritten text back: a
// character of the client's text maps to itself, one inside a replaced
// name to the start of the client's name.
func TestSplicePositions(t *testing.T) {
	src := []byte("EXECUTE é(1); SELECT 'ü' || x FROM pg_prepared_statements; EXECUTE q")
	at := func(sub string) planner.Span {
		i := strings.Index(string(src), sub)
		return planner.Span{Loc: int32(i), Len: int32(len(sub))}
	}
	reps := []replacement{
		{at("q"), "s12", "q"}, // out of order: splice sorts
		{at("é"), "b0123456789", "é"},
		{at("pg_prepared_statements"), "(SELECT 1) v", ""},
	}
	out, fix := splice(src, reps)
	want := "EXECUTE b0123456789(1); SELECT 'ü' || x FROM (SELECT 1) v; EXECUTE s12"
	if string(out) != want {
		t.Fatalf("spliced %q, want %q", out, want)
	}
	if strings.Join(fix.names, ",") != "b0123456789,é,s12,q" {
		t.Fatalf("names %q", fix.names)
	}
	runes := func(s string) []rune { return []rune(s) }
	sent, orig := runes(string(out)), runes(string(src))
	for p := int32(1); p <= int32(len(sent)); p++ {
		q := fix.clientPosition(p)
		if q < 1 || q > int32(len(orig)) {
			t.Fatalf("position %d maps to %d, outside the client's text", p, q)
		}
		// Outside replacements the character is the same.
		if c := sent[p-1]; c == 'x' || c == ';' || c == 'ü' {
			if orig[q-1] != c {
				t.Errorf("position %d (%q) maps to %d (%q)", p, c, q, orig[q-1])
			}
		}
	}
	if got := fix.clientPosition(int32(strings.Index(want, "b01")) + 3); got != 9 {
		t.Errorf("inside a replaced name: %d, want 9 (the start of é)", got)
	}
	if out, fix := splice(src, []replacement{{planner.Span{}, "x", "y"}}); out != nil || fix != nil {
		t.Fatal("an empty span changed the text")
	}
}

func TestFixError(t *testing.T) {
	body := codec.AppendErrorResponse(nil, codec.ErrorResponse{Code: "42703", Message: `prepared statement "s12" is odd`,
		Detail: "d", Hint: "h"})[5:]
	fix := &errFix{names: []string{"s12", "q"}}
	out := fixError(nil, body, fix)
	f, err := codec.ParseErrorFields(out[5:])
	if err != nil || string(f.Message) != `prepared statement "q" is odd` || string(f.Detail) != "d" || string(f.Hint) != "h" {
		t.Fatalf("got %+v, %v", f, err)
	}
}
