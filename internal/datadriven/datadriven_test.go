package datadriven

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.txt")
	file := "# a comment\nupper x=1\nab\ncd\n----\nAB\nCD\n\nargs a b=c\n----\na b=c c\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	RunFile(t, path, func(t *testing.T, b *Block) string {
		seen = append(seen, b.Cmd)
		switch b.Cmd {
		case "upper":
			return strings.ToUpper(b.Input)
		case "args":
			return strings.Join(b.Args, " ") + " " + b.Arg("b", "?")
		}
		return "?"
	})
	if strings.Join(seen, ",") != "upper,args" {
		t.Fatalf("blocks %v", seen)
	}
	if _, _, err := parse("x", "cmd\nno separator\n"); err == nil {
		t.Fatal("a block without ---- parsed")
	}
}
