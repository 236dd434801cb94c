package ha

import (
	"slices"
	"testing"
)

// TestParseSyncNames reads back what syncStandbyNames writes, Postgres's
// own spellings of the ANY form, and refuses the others.
func TestParseSyncNames(t *testing.T) {
	for _, c := range []struct {
		in    string
		k     int
		names []string
		ok    bool
	}{
		{syncStandbyNames(2, []string{"pg0", `we"ird`, "Pg2"}), 2, []string{"pg0", `we"ird`, "Pg2"}, true},
		{"ANY 1 (pg1, pg2)", 1, []string{"pg1", "pg2"}, true},
		{"any 1(PG1,pg2)", 1, []string{"pg1", "pg2"}, true}, // unquoted names fold
		{"", 0, nil, true},
		{"  ", 0, nil, true},
		{"FIRST 1 (pg1, pg2)", 0, nil, false},
		{"pg1, pg2", 0, nil, false},
		{"ANY 1 (*)", 0, nil, false},
		{"ANY x (pg1)", 0, nil, false},
		{"ANY 1 (pg1", 0, nil, false},
		{"ANY 1 (pg1,)", 0, nil, false},
		{FenceStandby, 0, nil, false},
	} {
		k, names, ok := parseSyncNames(c.in)
		if ok != c.ok || k != c.k || !slices.Equal(names, c.names) {
			t.Errorf("parseSyncNames(%q) = %d, %q, %v; want %d, %q, %v", c.in, k, names, ok, c.k, c.names, c.ok)
		}
	}
}
