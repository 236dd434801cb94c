package shard

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/belaydb/belay/codec/sqlstate"
)

// Merging the aggregates of a read of every shard (a scatter-gather):
// what one PostgreSQL holding every shard's rows would have computed, from
// what each shard computed of its own (gather.go applies it per group).

// Agg is how an aggregate column merges.
type Agg uint8

const (
	AggCount Agg = 1 + iota // count(*), count(x): the shards' counts added
	AggSum                  // sum(x): the shards' sums added, NULLs skipped
	AggMin                  // min(x): the least of the shards' minimums
	AggMax                  // max(x): the greatest of the shards' maximums
)

// PostgreSQL's type OIDs the merge reads.
const (
	oidInt2    = 21
	oidInt4    = 23
	oidInt8    = 20
	oidNumeric = 1700
	oidFloat4  = 700
	oidFloat8  = 701
)

func unmergeable(format string, args ...any) error {
	return &Error{Code: sqlstate.FeatureNotSupported, Message: "a read of several shards: " + fmt.Sprintf(format, args...)}
}

// mergeColumn merges one aggregate's values over a group's rows (one per
// shard holding the group), typed typ. What it cannot merge exactly is
// refused with 0A000: a sum of floating-point values (its result depends
// on the order of the additions), min or max of a type it does not
// compare as PostgreSQL does (text, whose order is its collation's), NaN
// or infinite numerics in a sum. An integer sum out of bigint's range is
// PostgreSQL's 22003.
func mergeColumn(a Agg, typ uint32, vals [][]byte) ([]byte, error) {
	switch a {
	case AggCount:
		return addIntegers(vals, oidInt8)
	case AggSum:
		switch typ {
		case oidInt2, oidInt4, oidInt8:
			return addIntegers(vals, typ)
		case oidNumeric:
			return addNumerics(vals)
		}
		return nil, unmergeable("a sum of type %d (its result would depend on the order of the additions, or belay does not add it)", typ)
	case AggMin, AggMax:
		return extreme(a == AggMax, typ, vals)
	}
	return nil, unmergeable("an unknown aggregate")
}

// addIntegers adds integer values of type typ (NULLs skipped; all NULL:
// NULL), within typ's range as PostgreSQL's int8 sum is.
func addIntegers(vals [][]byte, typ uint32) ([]byte, error) {
	var sum big.Int
	seen := false
	for _, v := range vals {
		if v == nil {
			continue
		}
		var n big.Int
		if _, ok := n.SetString(string(v), 10); !ok {
			return nil, unmergeable("an integer %q that does not read", v)
		}
		sum.Add(&sum, &n)
		seen = true
	}
	if !seen {
		return nil, nil
	}
	if !sum.IsInt64() || typ == oidInt4 && (sum.Int64() > math.MaxInt32 || sum.Int64() < math.MinInt32) ||
		typ == oidInt2 && (sum.Int64() > math.MaxInt16 || sum.Int64() < math.MinInt16) {
		name := map[uint32]string{oidInt2: "smallint", oidInt4: "integer"}[typ]
		if name == "" {
			name = "bigint"
		}
		return nil, &Error{Code: sqlstate.NumericValueOutOfRange, Message: name + " out of range", Err: ErrRange}
	}
	return []byte(sum.String()), nil
}

// numericParts reads a numeric's text as an integer and its scale
// (digits after the point).
func numericParts(s string) (*big.Int, int, bool) {
	scale := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		scale = len(s) - i - 1
		s = s[:i] + s[i+1:]
	}
	var n big.Int
	if _, ok := n.SetString(s, 10); !ok {
		return nil, 0, false
	}
	return &n, scale, true
}

// addNumerics adds numeric values as PostgreSQL does: exactly, the result
// with the largest scale of the addends.
func addNumerics(vals [][]byte) ([]byte, error) {
	var sum big.Int
	scale, seen := 0, false
	for _, v := range vals {
		if v == nil {
			continue
		}
		n, sc, ok := numericParts(string(v))
		if !ok {
			return nil, unmergeable("a numeric %q (NaN or infinite) in a sum", v)
		}
		if sc > scale {
			sum.Mul(&sum, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(sc-scale)), nil))
			scale = sc
		} else if sc < scale {
			n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-sc)), nil))
		}
		sum.Add(&sum, n)
		seen = true
	}
	if !seen {
		return nil, nil
	}
	neg := sum.Sign() < 0
	digits := new(big.Int).Abs(&sum).String()
	if scale > 0 {
		for len(digits) <= scale {
			digits = "0" + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		digits = "-" + digits
	}
	return []byte(digits), nil
}

// extreme is the greatest (max) or least of values of type typ, compared
// as PostgreSQL compares them; NULLs skipped.
func extreme(max bool, typ uint32, vals [][]byte) ([]byte, error) {
	cmp, err := comparator(typ, false)
	if err != nil {
		return nil, unmergeable("min or max of type %d (belay compares numbers, dates, timestamps and uuids; text's order is its collation's)", typ)
	}
	var best []byte
	for _, v := range vals {
		if v == nil {
			continue
		}
		if best == nil {
			best = v
			continue
		}
		c, ok := cmp(v, best)
		if !ok {
			return nil, unmergeable("a value %q that does not read", v)
		}
		if max && c > 0 || !max && c < 0 {
			best = v
		}
	}
	return best, nil
}

func compareOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// floatCompare orders floats as PostgreSQL does: NaN above everything,
// equal to itself.
func floatCompare(x, y float64) int {
	switch xn, yn := math.IsNaN(x), math.IsNaN(y); {
	case xn && yn:
		return 0
	case xn:
		return 1
	case yn:
		return -1
	}
	return compareOrdered(x, y)
}

// numericCompare orders numerics as PostgreSQL does: -Infinity, the
// numbers, Infinity, NaN.
func numericCompare(a, b string) (int, bool) {
	rank := func(s string) int {
		switch s {
		case "-Infinity":
			return 0
		case "Infinity":
			return 2
		case "NaN":
			return 3
		}
		return 1
	}
	ra, rb := rank(a), rank(b)
	if ra != 1 || rb != 1 {
		return compareOrdered(int64(ra), int64(rb)), true
	}
	x, ok1 := new(big.Rat).SetString(a)
	y, ok2 := new(big.Rat).SetString(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return x.Cmp(y), true
}
