package flamegraphs

import (
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Stack is one call stack, root first, with the value (CPU nanoseconds, or
// samples) spent in it.
type Stack struct {
	Frames []string
	Value  int64
}

// FromProfile folds a pprof CPU profile into stacks (inlined calls expanded),
// merging identical stacks. It uses the "cpu" sample type when there is one
// (nanoseconds), else the last one.
func FromProfile(p *profile.Profile) ([]Stack, string) {
	idx := len(p.SampleType) - 1
	unit := ""
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx >= 0 {
		unit = p.SampleType[idx].Unit
	}
	merged := map[string]*Stack{}
	var order []string
	for _, s := range p.Sample {
		if idx < 0 || idx >= len(s.Value) || s.Value[idx] == 0 {
			continue
		}
		var frames []string
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			if len(loc.Line) == 0 {
				frames = append(frames, fmt.Sprintf("0x%x", loc.Address))
				continue
			}
			for j := len(loc.Line) - 1; j >= 0; j-- {
				name := "?"
				if f := loc.Line[j].Function; f != nil {
					name = f.Name
				}
				frames = append(frames, name)
			}
		}
		key := strings.Join(frames, ";")
		if st, ok := merged[key]; ok {
			st.Value += s.Value[idx]
			continue
		}
		merged[key] = &Stack{Frames: frames, Value: s.Value[idx]}
		order = append(order, key)
	}
	sort.Strings(order)
	out := make([]Stack, 0, len(order))
	for _, k := range order {
		out = append(out, *merged[k])
	}
	return out, unit
}

// WriteFolded writes stacks in Brendan Gregg's folded format:
// "root;caller;callee value" per line.
func WriteFolded(w io.Writer, stacks []Stack) error {
	for _, s := range stacks {
		if _, err := fmt.Fprintf(w, "%s %d\n", strings.Join(s.Frames, ";"), s.Value); err != nil {
			return err
		}
	}
	return nil
}

// node is a frame of the merged call tree.
type node struct {
	name     string
	value    int64
	children map[string]*node
}

func (n *node) child(name string) *node {
	if n.children == nil {
		n.children = map[string]*node{}
	}
	c := n.children[name]
	if c == nil {
		c = &node{name: name}
		n.children[name] = c
	}
	return c
}

func (n *node) sorted() []*node {
	out := make([]*node, 0, len(n.children))
	for _, c := range n.children {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func buildTree(stacks []Stack) (*node, int) {
	root := &node{name: "all"}
	depth := 0
	for _, s := range stacks {
		root.value += s.Value
		n := root
		for _, f := range s.Frames {
			n = n.child(f)
			n.value += s.Value
		}
		depth = max(depth, len(s.Frames))
	}
	return root, depth
}

// SVGOptions style WriteSVG's output.
type SVGOptions struct {
	Title    string
	Subtitle string
	Width    int    // pixels; default 1200
	Unit     string // of Stack.Value: "nanoseconds" shows as time
}

const (
	frameH   = 16
	fontSize = 11
	charW    = 6.6 // approximate width of a character at fontSize in a sans-serif font
	pad      = 10
	header   = 64
)

// WriteSVG renders stacks as a flame graph: the root at the bottom, callees
// above their callers, a frame's width its share of the total, siblings in
// alphabetical order. Each frame has a tooltip with its full name and value.
func WriteSVG(w io.Writer, stacks []Stack, o SVGOptions) error {
	if o.Width <= 0 {
		o.Width = 1200
	}
	root, depth := buildTree(stacks)
	height := header + (depth+1)*frameH + 2*pad
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">
<style>text { font-family: Verdana, sans-serif; font-size: %dpx; fill: #000; } .t { font-size: 16px; } .s { font-size: 12px; fill: #444; }</style>
<rect x="0" y="0" width="%d" height="%d" fill="#fdfdf6"/>
`, o.Width, height, o.Width, height, fontSize, o.Width, height)
	fmt.Fprintf(&b, `<text class="t" x="%d" y="22" text-anchor="middle">%s</text>
`, o.Width/2, html.EscapeString(o.Title))
	if o.Subtitle != "" {
		fmt.Fprintf(&b, `<text class="s" x="%d" y="40" text-anchor="middle">%s</text>
`, o.Width/2, html.EscapeString(o.Subtitle))
	}
	// Legend.
	lx := pad
	for _, c := range []category{catBelay, catGnet, catSyscall, catRuntime, catOther} {
		fmt.Fprintf(&b, `<rect x="%d" y="48" width="10" height="10" fill="%s"/><text x="%d" y="57">%s</text>
`, lx, c.color(""), lx+14, html.EscapeString(c.String()))
		lx += 14 + int(float64(len(c.String()))*charW) + 16
	}
	if root.value > 0 {
		scale := float64(o.Width-2*pad) / float64(root.value)
		drawNode(&b, root, 0, float64(pad), scale, height-pad, root.value, o.Unit)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawNode(b *strings.Builder, n *node, d int, x, scale float64, bottom int, total int64, unit string) {
	wpx := float64(n.value) * scale
	if wpx < 0.3 {
		return
	}
	y := bottom - (d+1)*frameH
	cat := classify(n.name)
	fill := cat.color(n.name)
	if d == 0 {
		fill = "rgb(200,200,200)"
	}
	pct := 100 * float64(n.value) / float64(total)
	fmt.Fprintf(b, `<g><title>%s (%s, %.2f%%)</title><rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"/>`,
		html.EscapeString(n.name), valueText(n.value, unit), pct, x, y, wpx, frameH-1, fill)
	if maxChars := int((wpx - 6) / charW); maxChars >= 3 {
		label := Short(n.name)
		if len(label) > maxChars {
			label = label[:maxChars-2] + ".."
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`, x+3, y+frameH-4, html.EscapeString(label))
	}
	b.WriteString("</g>\n")
	cx := x
	for _, c := range n.sorted() {
		drawNode(b, c, d+1, cx, scale, bottom, total, unit)
		cx += float64(c.value) * scale
	}
}

func valueText(v int64, unit string) string {
	if unit == "nanoseconds" {
		switch {
		case v >= 1e9:
			return fmt.Sprintf("%.2f s", float64(v)/1e9)
		case v >= 1e6:
			return fmt.Sprintf("%.1f ms", float64(v)/1e6)
		}
		return fmt.Sprintf("%.0f µs", float64(v)/1e3)
	}
	return fmt.Sprintf("%d %s", v, unit)
}

// Short shortens a Go function name for display: module paths of belay,
// gnet and pgx are cut to their last element.
func Short(name string) string {
	for _, p := range []struct{ long, short string }{
		{"github.com/belaydb/belay/", ""},
		{"github.com/panjf2000/gnet/v2/", "gnet/"},
		{"github.com/panjf2000/gnet/v2.", "gnet."},
		{"github.com/jackc/pgx/v5/", "pgx/"},
		{"golang.org/x/sys/unix.", "unix."},
	} {
		if strings.HasPrefix(name, p.long) {
			return p.short + name[len(p.long):]
		}
	}
	return name
}

// category is what a function is, for colors and the summary.
type category int

const (
	catBelay category = iota
	catGnet
	catSyscall
	catRuntime
	catOther
)

func (c category) String() string {
	switch c {
	case catBelay:
		return "belay"
	case catGnet:
		return "gnet"
	case catSyscall:
		return "system calls"
	case catRuntime:
		return "Go runtime"
	}
	return "other (std, pgx, ...)"
}

func (c category) color(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := int(h.Sum32() % 40)
	switch c {
	case catBelay:
		return fmt.Sprintf("rgb(%d,%d,%d)", 235, 140+v, 40)
	case catGnet:
		return fmt.Sprintf("rgb(%d,%d,%d)", 190+v, 200, 60)
	case catSyscall:
		return fmt.Sprintf("rgb(%d,%d,%d)", 80+v, 150+v, 230)
	case catRuntime:
		return fmt.Sprintf("rgb(%d,%d,%d)", 230, 90+v, 80+v)
	}
	return fmt.Sprintf("rgb(%d,%d,%d)", 100+v, 200, 190)
}

// IsSyscall reports whether a function is a system call wrapper.
func IsSyscall(name string) bool {
	for _, p := range []string{"syscall.", "internal/runtime/syscall", "runtime/internal/syscall", "golang.org/x/sys/unix."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func classify(name string) category {
	switch {
	case IsSyscall(name):
		return catSyscall
	case strings.HasPrefix(name, "github.com/belaydb/belay/"):
		return catBelay
	case strings.HasPrefix(name, "github.com/panjf2000/"):
		return catGnet
	case strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "internal/runtime/") || strings.HasPrefix(name, "runtime/"):
		return catRuntime
	}
	return catOther
}
