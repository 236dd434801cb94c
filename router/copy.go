package router

import (
	"slices"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/shard"
)

// CopySplit is how a COPY ... FROM STDIN into a table of the sharding
// schema runs: on every shard, each getting its rows (a sharded table's
// split by key; a reference table's, all of them).
type CopySplit struct {
	Table shard.Table
	// Options are how the rows and fields are cut (a sharded table's),
	// with ForceNotNull and ForceNull for its key.
	Options shard.CopyOptions
	// Columns are the COPY's column list; nil when it names none: the
	// table's columns, which the caller looks up (Target takes them).
	Columns []string
}

// Target is what the splitter needs of a sharded table's COPY whose
// columns are columns (CopySplit.Columns, or the table's own when the
// COPY names none): a COPY without the key among them is refused, as
// each row's shard would be unknown (its key a default, a sequence's
// next value, computed on the shard).
func (c *CopySplit) Target(columns []string) (shard.CopyTarget, error) {
	k := slices.Index(columns, c.Table.Key)
	if k < 0 {
		return shard.CopyTarget{}, refuse("COPY into sharded table %s without its key column %s: each row's shard would not be known (name the key among the COPY's columns)",
			c.Table.Name.Name, c.Table.Key)
	}
	return shard.CopyTarget{Table: c.Table.Name.Name, Columns: columns, Key: k, KeyType: c.Table.KeyType}, nil
}

// copySplit reads a COPY FROM of table t: refused from a server file or
// program (which shard's file?), and with an ENCODING other than the
// server's (the splitter reads keys as UTF-8). The options that say where
// a row's fields end are read as Postgres 15's ProcessCopyOptions reads
// them, with its errors; the others are left for the shards' Postgres.
func copySplit(in *planner.CopyIn, t shard.Table) (*CopySplit, error) {
	if !in.Stdin {
		return nil, refuse("COPY of table %s from a file or program on the server, in a sharded database: send the rows from the client (COPY FROM STDIN, psql's \\copy)", t.Name.Name)
	}
	cs := &CopySplit{Table: t, Columns: in.Columns}
	o := &cs.Options
	seen := map[string]bool{}
	for _, opt := range in.Options {
		var str **string
		switch opt.Name {
		case "format", "delimiter", "null", "quote", "escape", "header", "force_not_null", "force_null", "encoding":
			if seen[opt.Name] {
				return nil, &shard.Error{Code: sqlstate.SyntaxError, Message: "conflicting or redundant options", Err: shard.ErrCopyOptions}
			}
			seen[opt.Name] = true
		}
		switch opt.Name {
		case "format":
			v, err := optString(opt)
			if err != nil {
				return nil, err
			}
			if o.Format, err = shard.ParseCopyFormat(v); err != nil {
				return nil, err
			}
		case "delimiter":
			str = &o.Delimiter
		case "null":
			str = &o.Null
		case "quote":
			str = &o.Quote
		case "escape":
			str = &o.Escape
		case "header":
			h, err := copyHeader(opt)
			if err != nil {
				return nil, err
			}
			o.Header = h
		case "force_not_null", "force_null":
			if opt.Value != nil || opt.Star {
				return nil, &shard.Error{Code: sqlstate.SyntaxError, Message: `argument to option "` + opt.Name + `" must be a list of column names`, Err: shard.ErrCopyOptions}
			}
			if slices.Contains(opt.List, t.Key) {
				if opt.Name == "force_null" {
					o.ForceNull = true
				} else {
					o.ForceNotNull = true
				}
			}
		case "encoding":
			v, err := optString(opt)
			if err != nil {
				return nil, err
			}
			if !utf8Name(v) {
				return nil, refuse("COPY of table %s with ENCODING %s in a sharded database: belay reads the rows' keys as the server's encoding, UTF8 (convert the data first)", t.Name.Name, v)
			}
		}
		if str != nil {
			v, err := optString(opt)
			if err != nil {
				return nil, err
			}
			*str = &v
		}
	}
	return cs, nil
}

// optString is defGetString: the option's value, which it must have.
func optString(opt planner.CopyOption) (string, error) {
	if opt.Value == nil {
		return "", &shard.Error{Code: sqlstate.SyntaxError, Message: opt.Name + " requires a parameter", Err: shard.ErrCopyOptions}
	}
	return *opt.Value, nil
}

// copyHeader is defGetCopyHeaderChoice: no value is true, an integer 0
// or 1, else a Boolean's spelling or "match".
func copyHeader(opt planner.CopyOption) (shard.CopyHeader, error) {
	switch {
	case opt.Value == nil && opt.List == nil && !opt.Star:
		return shard.CopyHeaderTrue, nil
	case opt.Integer && (*opt.Value == "0" || *opt.Value == "1"):
		return shard.ParseCopyHeader(*opt.Value)
	case opt.Value != nil && !opt.Integer:
		return shard.ParseCopyHeader(*opt.Value)
	}
	return shard.ParseCopyHeader("not a choice") // Postgres's 42601
}

// utf8Name says whether name is an encoding name Postgres reads as UTF8
// (pg_char_to_encoding: case and punctuation ignored; UNICODE is its alias).
func utf8Name(name string) bool {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String() == "utf8" || b.String() == "unicode"
}
