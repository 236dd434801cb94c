package flamegraphs

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// sampleProfile is a small CPU profile: main → loop.onTraffic → unix.Write →
// Syscall6 (30 ms), main → loop.onTraffic (inlined codec.parse) (10 ms),
// main → runtime.mallocgc (5 ms), gnet's loop → unix.EpollWait → Syscall6 (15 ms).
func sampleProfile() *profile.Profile {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	fMain := fn(1, "main.main")
	fTraffic := fn(2, "github.com/belaydb/belay/loop.(*session).onTraffic")
	fParse := fn(3, "github.com/belaydb/belay/codec.parse")
	fWrite := fn(4, "golang.org/x/sys/unix.Write")
	fSys := fn(5, "internal/runtime/syscall.Syscall6")
	fMalloc := fn(6, "runtime.mallocgc")
	fPoll := fn(7, "github.com/panjf2000/gnet/v2/internal/netpoll.(*Poller).Polling")
	fEpoll := fn(8, "golang.org/x/sys/unix.EpollWait")
	loc := func(id uint64, fs ...*profile.Function) *profile.Location {
		l := &profile.Location{ID: id}
		for _, f := range fs { // innermost first, as pprof stores inlined frames
			l.Line = append(l.Line, profile.Line{Function: f})
		}
		return l
	}
	lMain, lTraffic, lParseInl := loc(1, fMain), loc(2, fTraffic), loc(3, fParse, fTraffic)
	lWrite, lSys, lMalloc, lPoll, lEpoll := loc(4, fWrite), loc(5, fSys), loc(6, fMalloc), loc(7, fPoll), loc(8, fEpoll)
	ms := int64(1e6)
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lSys, lWrite, lTraffic, lMain}, Value: []int64{3, 30 * ms}},
			{Location: []*profile.Location{lParseInl, lMain}, Value: []int64{1, 10 * ms}},
			{Location: []*profile.Location{lMalloc, lMain}, Value: []int64{1, 5 * ms}},
			{Location: []*profile.Location{lSys, lEpoll, lPoll}, Value: []int64{1, 15 * ms}},
			{Location: []*profile.Location{lSys, lWrite, lTraffic, lMain}, Value: []int64{0, 0}}, // empty: dropped
		},
		Function: []*profile.Function{fMain, fTraffic, fParse, fWrite, fSys, fMalloc, fPoll, fEpoll},
		Location: []*profile.Location{lMain, lTraffic, lParseInl, lWrite, lSys, lMalloc, lPoll, lEpoll},
	}
}

func TestFromProfileAndFolded(t *testing.T) {
	stacks, unit := FromProfile(sampleProfile())
	if unit != "nanoseconds" {
		t.Fatalf("unit %q", unit)
	}
	var b bytes.Buffer
	if err := WriteFolded(&b, stacks); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"github.com/panjf2000/gnet/v2/internal/netpoll.(*Poller).Polling;golang.org/x/sys/unix.EpollWait;internal/runtime/syscall.Syscall6 15000000",
		"main.main;github.com/belaydb/belay/loop.(*session).onTraffic;github.com/belaydb/belay/codec.parse 10000000",
		"main.main;github.com/belaydb/belay/loop.(*session).onTraffic;golang.org/x/sys/unix.Write;internal/runtime/syscall.Syscall6 30000000",
		"main.main;runtime.mallocgc 5000000",
	}, "\n") + "\n"
	if b.String() != want {
		t.Fatalf("folded:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestSummarize(t *testing.T) {
	stacks, _ := FromProfile(sampleProfile())
	s := Summarize(stacks, 10)
	if s.Total != 60e6 {
		t.Fatalf("total %d", s.Total)
	}
	got := map[string]float64{}
	for _, c := range s.Categories {
		got[c.Name] = c.Frac
	}
	if got["system calls"] != 0.75 || got["belay"] != 10.0/60 || got["Go runtime: GC and allocation"] != 5.0/60 {
		t.Fatalf("categories %+v", s.Categories)
	}
	if len(s.Syscalls) != 2 || s.Syscalls[0].Name != "golang.org/x/sys/unix.Write" || s.Syscalls[1].Name != "golang.org/x/sys/unix.EpollWait" {
		t.Fatalf("syscalls %+v", s.Syscalls)
	}
	if s.TopFlat[0].Name != "internal/runtime/syscall.Syscall6" || s.TopFlat[0].Frac != 0.75 {
		t.Fatalf("top flat %+v", s.TopFlat)
	}
	// onTraffic's cumulative share: its own stacks (30+10 ms) = 2/3.
	if s.TopCumBelay[0].Name != "github.com/belaydb/belay/loop.(*session).onTraffic" || s.TopCumBelay[0].Frac != 40.0/60 {
		t.Fatalf("top cum %+v", s.TopCumBelay)
	}
}

func TestWriteSVG(t *testing.T) {
	stacks, unit := FromProfile(sampleProfile())
	var b bytes.Buffer
	if err := WriteSVG(&b, stacks, SVGOptions{Title: "t <&>", Subtitle: "s", Unit: unit}); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML with one frame (<g>) per tree node: all, main, onTraffic,
	// parse, Write, Syscall6, mallocgc, Polling, EpollWait, Syscall6.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	groups := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			groups++
		}
	}
	if groups != 10 {
		t.Fatalf("%d frames, want 10", groups)
	}
	for _, want := range []string{"t &lt;&amp;&gt;", "github.com/belaydb/belay/loop.(*session).onTraffic (40.0 ms, 66.67%)", ">loop.(*session).onTraffic<"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestShort(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/belaydb/belay/loop.(*session).onTraffic": "loop.(*session).onTraffic",
		"github.com/panjf2000/gnet/v2.(*conn).Write":         "gnet.(*conn).Write",
		"golang.org/x/sys/unix.Write":                        "unix.Write",
		"runtime.mallocgc":                                   "runtime.mallocgc",
	} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
}
