package shard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestMergeMatchesPostgres: aggregates of rows split over 1 to 5 parts
// (one part empty), merged, equal what PostgreSQL computes over all of
// them, to the byte: counts, integer sums (int4's bigint, int8's
// numeric), numeric sums of mixed scales, min and max of integers,
// numerics and floats (NaN and infinities among them), NULLs everywhere.
func TestMergeMatchesPostgres(t *testing.T) {
	pg := pgtest.Shared(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.ConnString("postgres", pg.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DROP TABLE IF EXISTS merge_t; CREATE TABLE merge_t (g int, i4 int4, i8 int8, n numeric, f float8)`); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("INSERT INTO merge_t VALUES ")
	nul := func(s string) string {
		if r.IntN(6) == 0 {
			return "NULL"
		}
		return s
	}
	floats := []string{"'NaN'", "'Infinity'", "'-Infinity'", "0.1", "-2.5e300", "1e-300"}
	for i := range 2000 {
		if i > 0 {
			b.WriteString(",")
		}
		f := fmt.Sprintf("%g", r.NormFloat64()*1e6)
		if r.IntN(50) == 0 {
			f = floats[r.IntN(len(floats))]
		}
		g := r.IntN(4)
		fmt.Fprintf(&b, "(%d, %s, %s, %s, %s)", g,
			nul(fmt.Sprint(r.Int32N(2_000_000_000)-1_000_000_000)),
			nul(fmt.Sprint(r.Int64N(1<<62)-(1<<61))),
			// Each group's numerics have a scale of their own, so that the
			// parts' sums differ in scale.
			nul(fmt.Sprintf("%d.%0*d", r.IntN(1e6)-5e5, g+1, r.IntN(10))),
			nul(f))
	}
	if _, err := c.Exec(ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT count(*), count(i4), sum(i4), sum(i8), sum(n), min(i4), max(i4), min(i8), max(i8), min(n), max(n), min(f), max(f) FROM merge_t`
	aggs := []Agg{AggCount, AggCount, AggSum, AggSum, AggSum, AggMin, AggMax, AggMin, AggMax, AggMin, AggMax, AggMin, AggMax}
	row := func(where string) ([][]byte, []uint32) {
		t.Helper()
		rows, err := c.Query(ctx, q+where, pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var types []uint32
		for _, fd := range rows.FieldDescriptions() {
			types = append(types, fd.DataTypeOID)
		}
		if !rows.Next() {
			t.Fatal("no row")
		}
		var out [][]byte
		for _, v := range rows.RawValues() {
			if v == nil {
				out = append(out, nil)
			} else {
				out = append(out, append([]byte{}, v...))
			}
		}
		return out, types
	}
	want, types := row("")
	for parts := 1; parts <= 5; parts++ {
		var got [][][]byte
		for p := range parts {
			// Part p holds the groups g with g % parts == p (parts 5: part 4 empty).
			w, _ := row(fmt.Sprintf(" WHERE g %% %d = %d", parts, p))
			got = append(got, w)
		}
		merged, err := mergeAggregates(aggs, types, got)
		if err != nil {
			t.Fatalf("%d parts: %v", parts, err)
		}
		for i := range want {
			if string(merged[i]) != string(want[i]) || (merged[i] == nil) != (want[i] == nil) {
				t.Errorf("%d parts, column %d (%v of type %d): merged %q, PostgreSQL %q", parts, i+1, aggs[i], types[i], merged[i], want[i])
			}
		}
	}
	// Refused: a float sum, min of text.
	var se *Error
	if _, err := mergeAggregates([]Agg{AggSum}, []uint32{oidFloat8}, [][][]byte{{[]byte("1")}, {[]byte("2")}}); !errors.As(err, &se) || se.Code != "0A000" {
		t.Errorf("a float sum: %v", err)
	}
	if _, err := mergeAggregates([]Agg{AggMin}, []uint32{25}, [][][]byte{{[]byte("a")}, {[]byte("b")}}); !errors.As(err, &se) || se.Code != "0A000" {
		t.Errorf("min of text: %v", err)
	}
	// sum(int4)'s result is a bigint (the RowDescription's type is int8).
	if v, err := mergeAggregates([]Agg{AggSum}, []uint32{oidInt8}, [][][]byte{{[]byte("2147483647")}, {[]byte("1")}}); err != nil || string(v[0]) != "2147483648" {
		t.Errorf("sum(int4) over two shards: %q, %v", v, err)
	}
	if _, err := mergeAggregates([]Agg{AggSum}, []uint32{oidInt8}, [][][]byte{{[]byte("9223372036854775807")}, {[]byte("1")}}); !errors.As(err, &se) || se.Code != "22003" {
		t.Errorf("a bigint sum past its range: %v", err)
	}
}

// mergeAggregates merges one row of aggregates from each part, as a Merge
// without GROUP BY does.
func mergeAggregates(aggs []Agg, types []uint32, rows [][][]byte) ([][]byte, error) {
	m := Merge{Aggs: aggs, Limit: -1}
	for i := range aggs {
		m.Out = append(m.Out, Out{Col: i, Count: -1})
	}
	out, err := m.Rows(types, rows)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}
