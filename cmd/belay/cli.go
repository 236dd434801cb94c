package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/belaydb/belay/internal/buildvcs"
	"github.com/belaydb/belay/loop"
)

// errUsage is a command-line error the flag package has already printed,
// with the command's usage: main exits 2 without printing it again.
type errUsage struct{ error }

// newFlagSet is a subcommand's flag set whose -h prints synopsis (the
// command line's shape), about (what the command does) and every flag in
// the double-dash form the README uses.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { printUsage(fs.Output(), fs, synopsis, about) }
	return fs
}

// parseFlags parses a subcommand's arguments. -h returns flag.ErrHelp
// (main exits 0), a bad flag an errUsage (main exits 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errUsage{err}
}

// printUsage writes a command's help, flags sorted by name as
// flag.PrintDefaults sorts them, each as `--name VALUE` and its meaning.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis, about string) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, about)
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if value != "" {
			line += " " + value
		}
		fmt.Fprintf(w, "%s\n        %s", line, strings.ReplaceAll(usage, "\n", "\n        "))
		switch f.DefValue {
		case "", "0", "0s", "false":
		default:
			if g, ok := f.Value.(flag.Getter); ok && isString(g.Get()) {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w)
	})
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// version is what `belay version` prints: belay's version, the commit it
// was built from (when the build recorded one) and the Go release.
func version() string {
	s := loop.Version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return s
	}
	if vcs := buildvcs.Of(bi); vcs.Revision != "" {
		s += ", commit " + vcs.Short()
		if vcs.Time != "" {
			s += " of " + vcs.Time
		}
		if vcs.Modified {
			s += " with local changes"
		}
	}
	return s + ", " + bi.GoVersion
}
