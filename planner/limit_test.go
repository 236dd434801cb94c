package planner

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/belaydb/belay/shard"
)

// TestGatherLimitParams: LIMIT and OFFSET given as parameters are pushed
// down as their sum (each shard's first LIMIT + OFFSET rows) and left to
// the caller to bind into the merge; ParamLimit reads them as PostgreSQL
// does (NULL: none; negative: 2201W, 2201X).
func TestGatherLimitParams(t *testing.T) {
	g, err := PlanGather("SELECT id FROM t WHERE v = $1 ORDER BY id DESC LIMIT $2 OFFSET $3")
	if err != nil {
		t.Fatal(err)
	}
	if g.LimitParam != 2 || g.OffsetParam != 3 || !strings.Contains(g.SQL, "LIMIT $2::bigint + $3::bigint") {
		t.Errorf("LIMIT $2 OFFSET $3: %q, parameters %d and %d", g.SQL, g.LimitParam, g.OffsetParam)
	}
	g, err = PlanGather("SELECT id FROM t ORDER BY id LIMIT $1 OFFSET 4")
	if err != nil || g.LimitParam != 1 || g.OffsetParam != 0 || g.Merge.Offset != 4 || !strings.Contains(g.SQL, "LIMIT $1::bigint + 4") {
		t.Errorf("LIMIT $1 OFFSET 4: %+v, %v", g, err)
	}
	g, err = PlanGather("SELECT id FROM t ORDER BY id OFFSET $1")
	if err != nil || g.OffsetParam != 1 || strings.Contains(g.SQL, "LIMIT") || strings.Contains(g.SQL, "OFFSET") {
		t.Errorf("OFFSET $1 alone: %+v, %v", g, err)
	}
	for _, tc := range []struct {
		v            string
		binary, null bool
		offset       bool
		want         int64
		code         string
	}{
		{"7", false, false, false, 7, ""},
		{"", false, true, false, -1, ""},
		{"", false, true, true, 0, ""},
		{"\x00\x00\x00\x00\x00\x00\x01\x00", true, false, false, 256, ""},
		{"\x00\x00\x00\x05", true, false, true, 5, ""},
		{"-1", false, false, false, 0, "2201W"},
		{"-2", false, false, true, 0, "2201X"},
		{"x", false, false, false, 0, "22P02"},
	} {
		n, err := ParamLimit([]byte(tc.v), tc.binary, tc.null, tc.offset)
		var se *shard.Error
		switch {
		case tc.code == "" && (err != nil || n != tc.want):
			t.Errorf("%q: %d, %v, want %d", tc.v, n, err, tc.want)
		case tc.code != "" && (!errors.As(err, &se) || string(se.Code) != tc.code):
			t.Errorf("%q: %v, want %s", tc.v, err, tc.code)
		}
	}
}

// BenchmarkPlanGather: the merge plan of the sharded bench's scatter, a
// parse and a deparse with pg_query, which the gateway does once per
// distinct text (its cache is keyed by the exact text).
func BenchmarkPlanGather(b *testing.B) {
	b.ReportAllocs()
	for i := range b.N {
		if _, err := PlanGather(fmt.Sprintf("SELECT count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN %d AND %d + 99", i, i)); err != nil {
			b.Fatal(err)
		}
	}
}
