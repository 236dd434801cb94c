package datadriven

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "write the actual output of datadriven tests into their files")

// Block is one command of a test file.
type Block struct {
	Pos   string   // file:line of the command
	Cmd   string   // the first word of the command line
	Args  []string // the other words
	Input string   // the lines between the command and ----
	want  string
}

// RunFile runs every block of the file at path through f and checks its
// output.
func RunFile(t *testing.T, path string, f func(t *testing.T, b *Block) string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, comments, err := parse(path, string(data))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for i, b := range blocks {
		out.WriteString(comments[i])
		got := f(t, b)
		if got != "" && !strings.HasSuffix(got, "\n") {
			got += "\n"
		}
		if !*rewrite && got != b.want {
			t.Errorf("%s: %s %s\n--- got\n%s--- want\n%s", b.Pos, b.Cmd, strings.Join(b.Args, " "), got, b.want)
		}
		out.WriteString(strings.TrimSpace(b.Cmd + " " + strings.Join(b.Args, " ")))
		out.WriteString("\n")
		out.WriteString(b.Input)
		out.WriteString("----\n")
		out.WriteString(got)
		if i < len(blocks)-1 {
			out.WriteString("\n")
		}
	}
	out.WriteString(comments[len(blocks)])
	if *rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// parse splits a test file into blocks; comments[i] are the comment lines
// before block i (and comments[len(blocks)] those at the end).
func parse(path, data string) (blocks []*Block, comments []string, err error) {
	lines := strings.Split(data, "\n")
	var cmt strings.Builder
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			continue
		case strings.HasPrefix(l, "#"):
			cmt.WriteString(l + "\n")
			continue
		}
		words := strings.Fields(l)
		b := &Block{Pos: fmt.Sprintf("%s:%d", path, i+1), Cmd: words[0], Args: words[1:]}
		var in, want strings.Builder
		i++
		for ; i < len(lines) && lines[i] != "----"; i++ {
			in.WriteString(lines[i] + "\n")
		}
		if i == len(lines) {
			return nil, nil, fmt.Errorf("%s: no ---- after the command", b.Pos)
		}
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			want.WriteString(lines[i] + "\n")
		}
		b.Input, b.want = in.String(), want.String()
		blocks = append(blocks, b)
		comments = append(comments, cmt.String())
		cmt.Reset()
	}
	comments = append(comments, cmt.String())
	return blocks, comments, nil
}

// Arg returns the value of the argument key=value of b, or def.
func (b *Block) Arg(key, def string) string {
	for _, a := range b.Args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v
		}
	}
	return def
}
