package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Pos is where a line came from.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Entry is one key = value line of a section.
type Entry struct {
	Key, Value string
	Pos        Pos
}

// File is a parsed configuration: its sections in the order met, each with
// its entries in order. Section and key names are lower-cased as PgBouncer
// treats them, except in [databases] and [users], whose keys are names.
type File struct {
	Sections []Section
}

// Section is one [name] of a File; a section met twice (in an %include,
// say) is one Section with the entries of both.
type Section struct {
	Name    string
	Entries []Entry
}

// Section returns the entries of the section name, or nil.
func (f *File) Section(name string) []Entry {
	for _, s := range f.Sections {
		if s.Name == name {
			return s.Entries
		}
	}
	return nil
}

// maxIncludeDepth bounds %include nesting (a file that includes itself).
const maxIncludeDepth = 10

// Load reads the file at path and the files it %includes. As PgBouncer, a
// relative %include is taken from the working directory.
func Load(path string) (*File, error) {
	f := &File{}
	if err := f.load(path, 0); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) load(path string, depth int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return f.parse(path, data, func(inc string, pos Pos) error {
		if depth >= maxIncludeDepth {
			return fmt.Errorf("%s: %%include nested more than %d deep", pos, maxIncludeDepth)
		}
		if err := f.load(filepath.Clean(inc), depth+1); err != nil {
			return fmt.Errorf("%s: %%include: %w", pos, err)
		}
		return nil
	})
}

// Parse parses one file's text; an %include in it is an error (use Load).
func Parse(name string, data []byte) (*File, error) {
	f := &File{}
	err := f.parse(name, data, func(_ string, pos Pos) error {
		return fmt.Errorf("%s: %%include is only followed by Load", pos)
	})
	return f, err
}

// parse adds the lines of data to f; include is called for %include lines.
func (f *File) parse(name string, data []byte, include func(string, Pos) error) error {
	section := ""
	for i, raw := range bytes.Split(data, []byte("\n")) {
		pos := Pos{File: name, Line: i + 1}
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		switch {
		case line == "" || line[0] == ';' || line[0] == '#':
			continue
		case strings.HasPrefix(line, "%include"):
			inc := strings.TrimSpace(strings.TrimPrefix(line, "%include"))
			if inc == "" {
				return fmt.Errorf("%s: %%include without a file name", pos)
			}
			if err := include(inc, pos); err != nil {
				return err
			}
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" {
				return fmt.Errorf("%s: a section header is [name]: %q", pos, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			if section == "" {
				return fmt.Errorf("%s: empty section name", pos)
			}
			continue
		}
		if section == "" {
			return fmt.Errorf("%s: %q comes before any [section]", pos, line)
		}
		key, value, err := splitEntry(line)
		if err != nil {
			return fmt.Errorf("%s: %w", pos, err)
		}
		if section != "databases" && section != "users" {
			key = strings.ToLower(key)
		}
		f.add(section, Entry{Key: key, Value: value, Pos: pos})
	}
	return nil
}

func (f *File) add(section string, e Entry) {
	for i := range f.Sections {
		if f.Sections[i].Name == section {
			f.Sections[i].Entries = append(f.Sections[i].Entries, e)
			return
		}
	}
	f.Sections = append(f.Sections, Section{Name: section, Entries: []Entry{e}})
}

// splitEntry splits key = value. A key may be double-quoted (a database
// name with other characters than [0-9A-Za-z_.-]), "" standing for a quote.
func splitEntry(line string) (key, value string, err error) {
	rest := line
	if strings.HasPrefix(line, `"`) {
		word, n, ok := Unquote(line)
		if !ok {
			return "", "", fmt.Errorf("unterminated quoted name: %q", line)
		}
		key, rest = word, strings.TrimSpace(line[n:])
		if key == "" {
			return "", "", fmt.Errorf("empty key: %q", line)
		}
		if !strings.HasPrefix(rest, "=") {
			return "", "", fmt.Errorf("want \"name\" = value: %q", line)
		}
		return key, strings.TrimSpace(rest[1:]), nil
	}
	k, v, ok := strings.Cut(rest, "=")
	if !ok {
		return "", "", fmt.Errorf("want key = value: %q", line)
	}
	key = strings.TrimSpace(k)
	if key == "" {
		return "", "", fmt.Errorf("empty key: %q", line)
	}
	return key, strings.TrimSpace(v), nil
}
