package planner

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// CopyIn is what a COPY table FROM says of its rows, for splitting them
// between shards (issue J): where they come from, the columns they fill,
// and its options as written (the router reads those that say where a
// row's fields end; the shards' Postgres checks them all).
type CopyIn struct {
	// Stdin: FROM STDIN, the rows come from the client (not a file or a
	// program on the server).
	Stdin bool
	// Columns are the column list, as Postgres folds the names; nil when
	// the COPY names none (every column of the table, in its order).
	Columns []string
	// Where: the COPY has a WHERE clause (each shard filters its rows).
	Where   bool
	Options []CopyOption
}

// CopyOption is one option of a COPY, in either syntax (WITH (FORMAT
// csv, HEADER) or the old WITH CSV HEADER): its name lower-cased
// (format, delimiter, null, header, quote, escape, force_not_null,
// force_null, force_quote, encoding, freeze, ...), and its value.
type CopyOption struct {
	Name string
	// Value is the value as Postgres reads it with defGetString: a
	// string, a number's digits, true or false; nil for an option given
	// without one (HEADER alone in the new syntax) or with a list.
	Value *string
	// Integer: the value was written as an integer (HEADER 1).
	Integer bool
	// List are the names of a column list (FORCE_NOT_NULL (a, b)); Star
	// says * was given instead (FORCE_QUOTE *).
	List []string
	Star bool
}

// copyIn reads a COPY FROM statement.
func copyIn(c *pg.CopyStmt) *CopyIn {
	in := &CopyIn{Stdin: c.Filename == "" && !c.IsProgram, Where: c.WhereClause != nil}
	for _, a := range c.Attlist {
		if s := a.GetString_(); s != nil {
			in.Columns = append(in.Columns, s.Sval)
		}
	}
	for _, o := range c.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		opt := CopyOption{Name: d.Defname}
		switch a := d.Arg.GetNode().(type) {
		case *pg.Node_String_:
			opt.Value = &a.String_.Sval
		case *pg.Node_Integer:
			v := strconv.Itoa(int(a.Integer.Ival))
			opt.Value, opt.Integer = &v, true
		case *pg.Node_Float:
			opt.Value = &a.Float.Fval
		case *pg.Node_Boolean:
			v := strconv.FormatBool(a.Boolean.Boolval)
			opt.Value = &v
		case *pg.Node_AStar:
			opt.Star = true
		case *pg.Node_List:
			for _, it := range a.List.Items {
				if s := it.GetString_(); s != nil {
					opt.List = append(opt.List, s.Sval)
				}
			}
		}
		in.Options = append(in.Options, opt)
	}
	return in
}

// size estimates the bytes in holds (Cache's accounting).
func (in *CopyIn) size() int {
	n := 48 + len(in.Options)*72
	for _, c := range in.Columns {
		n += 16 + len(c)
	}
	for _, o := range in.Options {
		n += len(o.Name) + len(o.List)*16
		if o.Value != nil {
			n += len(*o.Value)
		}
		for _, c := range o.List {
			n += len(c)
		}
	}
	return n
}
