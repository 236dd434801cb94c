package shard

import (
	"bytes"
	"cmp"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Merge says how the rows every shard returned for a scatter-gather
// SELECT become the rows one PostgreSQL holding all of them would have
// returned. The planner (planner.PlanGather) rewrites the client's SELECT
// into the statement each shard runs, whose columns are the client's and
// after them hidden ones (GROUP BY, HAVING and ORDER BY expressions the
// client did not select; avg split into sum and count), and fills in a
// Merge; Rows applies it, in this order, as PostgreSQL does: group and
// aggregate, HAVING, the select list, DISTINCT, ORDER BY, OFFSET, LIMIT.
type Merge struct {
	// Aggs, per shard column, how the column merges within a group (0: a
	// GROUP BY column, or a value the group determines: the group's first);
	// nil when the statement does not aggregate: rows pass as they are.
	Aggs []Agg
	// Keys are the shard columns of the GROUP BY; none with Aggs: one group
	// of every shard's row (each shard answers one row).
	Keys []int
	// Having is the HAVING clause, a conjunction, on the merged groups.
	Having []Cond
	// Out are the client's columns, then Hidden ORDER BY keys the client
	// did not select (sorted on, then dropped). With Star the select list
	// was *: the client's columns are the shards' but for Hidden ones
	// after them, and Out is unused; a SortKey's negative Out -j is the
	// j-th hidden column.
	Out    []Out
	Star   bool
	Hidden int
	// Distinct: SELECT DISTINCT, on the client's columns.
	Distinct bool
	// Order is the ORDER BY; rows that tie keep the shards' order.
	Order []SortKey
	// Offset and Limit (-1: none) cut the sorted rows.
	Offset, Limit int64
}

// Out is a column of the client's result: a shard column, or with
// Count >= 0 the avg of a group whose sum is column Col and count column
// Count (a numeric, named Name).
type Out struct {
	Col   int
	Count int
	Name  string
}

// Cond is one comparison of a HAVING clause: column Col (an aggregate, or
// with Count >= 0 an avg, as in Out) Op the numeric constant Value.
type Cond struct {
	Col   int
	Count int
	Op    string // =, <>, <, <=, >, >=
	Value string
}

// SortKey is one ORDER BY key: the client's column Out, descending or not,
// NULLs first or last (PostgreSQL's default: first when descending), and
// text compared byte by byte (COLLATE "C").
type SortKey struct {
	Out        int
	Desc       bool
	NullsFirst bool
	Bytewise   bool
}

// AggNone is a column that does not aggregate (Merge.Aggs).
const AggNone Agg = 0

// More type OIDs a merge reads.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidText        = 25
	oidOID         = 26
	oidJSONB       = 3802
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidUUID        = 2950
)

// OIDNumeric is the type of an avg column (Out with Count >= 0).
const OIDNumeric = oidNumeric

// Rows merges rows (every shard's, in shard order; columns in text
// format, nil for NULL) typed types (the shards' RowDescription) into the
// client's rows. The error is an *Error: 0A000 for what it cannot merge as
// PostgreSQL would (the message names it), or the error PostgreSQL would
// have raised (an integer sum out of range).
func (m *Merge) Rows(types []uint32, rows [][][]byte) ([][][]byte, error) {
	if m.Aggs == nil && m.Having != nil {
		return nil, unmergeable("HAVING without aggregates")
	}
	for _, r := range rows {
		if len(r) != len(types) {
			return nil, unmergeable("a shard's row has %d columns, its description %d", len(r), len(types))
		}
	}
	var err error
	if m.Aggs != nil {
		if rows, err = m.group(types, rows); err != nil {
			return nil, err
		}
	}
	outs, order := m.Out, m.Order
	if m.Star {
		visible := len(types) - m.Hidden
		if visible < 0 {
			return nil, unmergeable("fewer columns than the hidden ones")
		}
		outs = make([]Out, len(types))
		for i := range outs {
			outs[i] = Out{Col: i, Count: -1}
		}
		order = slices.Clone(order)
		for i, k := range order {
			if k.Out < 0 {
				order[i].Out = visible - k.Out - 1
			}
		}
	}
	for _, k := range order {
		if k.Out < 0 || k.Out >= len(outs) {
			return nil, unmergeable("ORDER BY column %d of %d", k.Out+1, len(outs))
		}
	}
	if err := m.check(outs, len(types)); err != nil {
		return nil, err
	}
	out := make([][][]byte, 0, len(rows))
	for _, r := range rows {
		keep := true
		for _, c := range m.Having {
			v, err := value(types, r, c.Col, c.Count)
			if err != nil {
				return nil, err
			}
			if keep, err = c.holds(v); err != nil {
				return nil, err
			}
			if !keep {
				break
			}
		}
		if !keep {
			continue
		}
		o := make([][]byte, len(outs))
		for i, c := range outs {
			if o[i], err = value(types, r, c.Col, c.Count); err != nil {
				return nil, err
			}
		}
		out = append(out, o)
	}
	outTypes := outTypes(outs, types)
	if m.Distinct {
		if out, err = distinct(outTypes, out); err != nil {
			return nil, err
		}
	}
	if len(order) > 0 {
		if out, err = sortRows(order, outTypes, out); err != nil {
			return nil, err
		}
	}
	if m.Offset > 0 {
		out = out[min(m.Offset, int64(len(out))):]
	}
	if m.Limit >= 0 && m.Limit < int64(len(out)) {
		out = out[:m.Limit]
	}
	if m.Hidden > 0 {
		for i, r := range out {
			out[i] = r[:len(r)-m.Hidden]
		}
	}
	return out, nil
}

// check says whether every shard column the merge reads is one of the n
// the shards described (a plan that does not fit its answer).
func (m *Merge) check(outs []Out, n int) error {
	cols := slices.Clone(m.Keys)
	for _, c := range m.Having {
		cols = append(cols, c.Col, c.Count)
	}
	for _, o := range outs {
		cols = append(cols, o.Col, o.Count)
	}
	for _, c := range cols {
		if c >= n {
			return unmergeable("column %d of the shards' %d", c+1, n)
		}
	}
	return nil
}

// Columns are the client's columns, from the shards' (their index in
// types) or, for -1, an avg (a numeric named Out.Name).
func (m *Merge) Columns(types []uint32) []Out {
	if m.Star {
		outs := make([]Out, max(len(types)-m.Hidden, 0))
		for i := range outs {
			outs[i] = Out{Col: i, Count: -1}
		}
		return outs
	}
	return m.Out[:len(m.Out)-m.Hidden]
}

// outTypes are the types of columns outs.
func outTypes(outs []Out, types []uint32) []uint32 {
	t := make([]uint32, len(outs))
	for i, c := range outs {
		switch {
		case c.Count >= 0:
			t[i] = oidNumeric
		case c.Col < len(types):
			t[i] = types[c.Col]
		}
	}
	return t
}

// value is column col of row r, or with count >= 0 the avg of sum col
// over count count.
func value(types []uint32, r [][]byte, col, count int) ([]byte, error) {
	if count < 0 {
		return r[col], nil
	}
	return average(types[col], r[col], r[count])
}

// group merges the rows of each group into one.
func (m *Merge) group(types []uint32, rows [][][]byte) ([][][]byte, error) {
	if len(m.Aggs) != len(types) {
		return nil, unmergeable("%d aggregates for %d columns", len(m.Aggs), len(types))
	}
	var groups [][][][]byte // each group's rows
	index := map[string]int{}
	var key []byte
	for _, r := range rows {
		key = key[:0]
		for _, k := range m.Keys {
			v, err := equalityForm(types[k], r[k])
			if err != nil {
				return nil, err
			}
			if v == nil {
				key = append(key, 0) // NULLs group together
				continue
			}
			key = strconv.AppendInt(append(key, 1), int64(len(v)), 10)
			key = append(append(key, ':'), v...)
		}
		g, ok := index[string(key)]
		if !ok {
			g = len(groups)
			index[string(key)] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], r)
	}
	if len(m.Keys) == 0 && len(groups) == 0 {
		groups = append(groups, nil) // no shard answered a row: aggregates of nothing
	}
	out := make([][][]byte, 0, len(groups))
	col := make([][]byte, 0, 8)
	for _, g := range groups {
		merged := make([][]byte, len(types))
		for i, a := range m.Aggs {
			if a == AggNone {
				if len(g) > 0 {
					merged[i] = g[0][i]
				}
				continue
			}
			col = col[:0]
			for _, r := range g {
				col = append(col, r[i])
			}
			v, err := mergeColumn(a, types[i], col)
			if err != nil {
				return nil, err
			}
			if v == nil && a == AggCount {
				v = []byte("0")
			}
			merged[i] = v
		}
		out = append(out, merged)
	}
	return out, nil
}

// equalityForm is a value's form in which two values PostgreSQL finds
// equal are the same bytes, for the types whose equality belay knows.
func equalityForm(typ uint32, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case oidNumeric:
		return []byte(normalNumeric(string(v))), nil
	case oidFloat4, oidFloat8:
		if string(v) == "-0" {
			return []byte("0"), nil
		}
		return v, nil
	case oidBpchar:
		return bytes.TrimRight(v, " "), nil
	case oidInt2, oidInt4, oidInt8, oidOID, oidBool, oidBytea, oidChar, oidName, oidText, oidVarchar, oidUUID,
		oidDate, oidTime, oidTimestamp, oidTimestamptz, oidJSONB:
		return v, nil
	}
	return nil, unmergeable("grouping or DISTINCT on a column of type %d (belay knows the equality of built-in scalar types only)", typ)
}

// normalNumeric is a numeric's text without the trailing zeros of its
// fraction (1.50 and 1.5 are equal numerics).
func normalNumeric(s string) string {
	if strings.IndexByte(s, '.') < 0 {
		return s
	}
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// distinct keeps the first of each set of equal rows.
func distinct(types []uint32, rows [][][]byte) ([][][]byte, error) {
	seen := map[string]bool{}
	out := rows[:0]
	var key []byte
	for _, r := range rows {
		key = key[:0]
		for i, v := range r {
			v, err := equalityForm(types[i], v)
			if err != nil {
				return nil, err
			}
			if v == nil {
				key = append(key, 0)
				continue
			}
			key = strconv.AppendInt(append(key, 1), int64(len(v)), 10)
			key = append(append(key, ':'), v...)
		}
		if !seen[string(key)] {
			seen[string(key)] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// sortRows orders rows by order, stably.
func sortRows(order []SortKey, types []uint32, rows [][][]byte) ([][][]byte, error) {
	cmps := make([]func(a, b []byte) (int, bool), len(order))
	for i, k := range order {
		c, err := comparator(types[k.Out], k.Bytewise)
		if err != nil {
			return nil, err
		}
		cmps[i] = c
	}
	var bad []byte
	slices.SortStableFunc(rows, func(a, b [][]byte) int {
		for i, k := range order {
			x, y := a[k.Out], b[k.Out]
			var c int
			switch {
			case x == nil && y == nil:
				continue
			case x == nil || y == nil:
				if (x == nil) == k.NullsFirst {
					return -1
				}
				return 1
			default:
				var ok bool
				if c, ok = cmps[i](x, y); !ok {
					bad = x
					return 0
				}
			}
			if k.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	if bad != nil {
		return nil, unmergeable("a value %q belay cannot order as PostgreSQL does", bad)
	}
	return rows, nil
}

// isoDate is a date or timestamp in the ISO style with a four-digit year
// of the common era: their texts order as their values do (a fraction's
// digits too: 00:00:00 < 00:00:00.25 < 00:00:00.5).
var isoDate = regexp.MustCompile(`^\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d(\.\d+)?)?$`)

// comparator orders two non-NULL values of type typ as PostgreSQL's
// default operator class does.
func comparator(typ uint32, bytewise bool) (func(a, b []byte) (int, bool), error) {
	switch typ {
	case oidInt2, oidInt4, oidInt8, oidOID:
		return func(a, b []byte) (int, bool) {
			x, e1 := strconv.ParseInt(string(a), 10, 64)
			y, e2 := strconv.ParseInt(string(b), 10, 64)
			return cmp.Compare(x, y), e1 == nil && e2 == nil
		}, nil
	case oidNumeric:
		return func(a, b []byte) (int, bool) { return numericCompare(string(a), string(b)) }, nil
	case oidFloat4, oidFloat8:
		return func(a, b []byte) (int, bool) {
			x, e1 := strconv.ParseFloat(string(a), 64)
			y, e2 := strconv.ParseFloat(string(b), 64)
			return floatCompare(x, y), e1 == nil && e2 == nil
		}, nil
	case oidBool, oidUUID, oidBytea, oidName, oidChar:
		// f < t; a uuid's and a bytea's hex digits order as their bytes; name
		// and "char" compare as C.
		return func(a, b []byte) (int, bool) { return bytes.Compare(a, b), true }, nil
	case oidDate, oidTimestamp:
		return func(a, b []byte) (int, bool) {
			x, y := infinityRank(a), infinityRank(b)
			if x != 0 || y != 0 {
				return cmp.Compare(x, y), true
			}
			return bytes.Compare(a, b), isoDate.Match(a) && isoDate.Match(b)
		}, nil
	case oidTimestamptz:
		return func(a, b []byte) (int, bool) {
			x, y := infinityRank(a), infinityRank(b)
			if x != 0 || y != 0 {
				return cmp.Compare(x, y), true
			}
			s, ok1 := instant(a)
			t, ok2 := instant(b)
			return s.Compare(t), ok1 && ok2
		}, nil
	case oidText, oidVarchar, oidBpchar:
		if !bytewise {
			return nil, unmergeable(`ORDER BY a text column (belay cannot reproduce the database's collation: write COLLATE "C" to order by bytes)`)
		}
		trim := typ == oidBpchar
		return func(a, b []byte) (int, bool) {
			if trim {
				a, b = bytes.TrimRight(a, " "), bytes.TrimRight(b, " ")
			}
			return bytes.Compare(a, b), true
		}, nil
	}
	return nil, unmergeable("ORDER BY a column of type %d (belay orders numbers, booleans, uuids, dates, timestamps and, with COLLATE \"C\", text)", typ)
}

// infinityRank is -1 for -infinity, 1 for infinity, 0 for a finite value.
func infinityRank(v []byte) int {
	switch string(v) {
	case "-infinity":
		return -1
	case "infinity":
		return 1
	}
	return 0
}

// instant reads a timestamptz in the ISO style.
func instant(v []byte) (time.Time, bool) {
	s := string(v)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// holds says whether the HAVING comparison holds for v (a NULL: no).
func (c Cond) holds(v []byte) (bool, error) {
	if v == nil {
		return false, nil
	}
	x, ok1 := new(big.Rat).SetString(string(v))
	y, ok2 := new(big.Rat).SetString(c.Value)
	if !ok1 || !ok2 {
		return false, unmergeable("HAVING compares %q with %q", v, c.Value)
	}
	r := x.Cmp(y)
	switch c.Op {
	case "=":
		return r == 0, nil
	case "<>", "!=":
		return r != 0, nil
	case "<":
		return r < 0, nil
	case "<=":
		return r <= 0, nil
	case ">":
		return r > 0, nil
	case ">=":
		return r >= 0, nil
	}
	return false, unmergeable("HAVING with operator %s", c.Op)
}

// average is avg's result from a group's sum (of type typ) and count, as
// PostgreSQL's numeric division computes it: the sum over the count,
// rounded half away from zero to select_div_scale's number of digits.
func average(typ uint32, sum, count []byte) ([]byte, error) {
	if sum == nil || count == nil || string(count) == "0" {
		return nil, nil
	}
	switch typ {
	case oidInt8, oidNumeric:
	default:
		return nil, unmergeable("avg of a column whose sum is of type %d (belay averages integers and numerics)", typ)
	}
	n, s1, ok := numericParts(string(sum))
	c, ok2 := new(big.Int).SetString(string(count), 10)
	if !ok || !ok2 || c.Sign() <= 0 {
		return nil, unmergeable("avg of %q over %q", sum, count)
	}
	w1, f1 := numericWeight(n, s1)
	w2, f2 := numericWeight(c, 0)
	q := w1 - w2
	if f1 <= f2 {
		q--
	}
	rscale := max(16-q*4, s1, 0)
	rscale = min(rscale, 1000)
	// n / 10^s1 / c rounded to rscale digits: n * 10^(rscale-s1) / c.
	num := new(big.Int).Set(n)
	den := new(big.Int).Set(c)
	if rscale >= s1 {
		num.Mul(num, pow10(rscale-s1))
	} else {
		den.Mul(den, pow10(s1-rscale))
	}
	neg := num.Sign() < 0
	num.Abs(num)
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if rem.Lsh(rem, 1).Cmp(den) >= 0 {
		quo.Add(quo, big.NewInt(1))
	}
	digits := quo.String()
	if rscale > 0 {
		for len(digits) <= rscale {
			digits = "0" + digits
		}
		digits = digits[:len(digits)-rscale] + "." + digits[len(digits)-rscale:]
	}
	if neg && strings.Trim(digits, "0.") != "" {
		digits = "-" + digits
	}
	return []byte(digits), nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// numericWeight is the weight of the first non-zero base-10000 digit of
// the numeric n·10^-scale, and that digit (0, 0 for zero), as PostgreSQL's
// NumericVar holds them.
func numericWeight(n *big.Int, scale int) (int, int) {
	if n.Sign() == 0 {
		return 0, 0
	}
	d := new(big.Int).Abs(n).String()
	// Align the digits on base-10000 groups around the decimal point: pad
	// the fraction to a multiple of 4 digits and the integer part too.
	pad := (4 - scale%4) % 4
	d += strings.Repeat("0", pad)
	fracGroups := (scale + pad) / 4
	if r := len(d) % 4; r != 0 {
		d = strings.Repeat("0", 4-r) + d
	}
	groups := len(d) / 4
	for i := 0; i < groups; i++ {
		g, _ := strconv.Atoi(d[i*4 : i*4+4])
		if g != 0 {
			return groups - fracGroups - 1 - i, g
		}
	}
	return 0, 0
}
