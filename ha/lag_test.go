package ha

import (
	"testing"
	"time"
)

func TestLag(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := positions{keep: 10 * time.Second}
	p.add(t0, 100)
	p.add(t0.Add(time.Second), 100) // no change: still 100 since t0
	p.add(t0.Add(2*time.Second), 300)
	p.add(t0.Add(3*time.Second), 500)
	now := t0.Add(4 * time.Second)
	cases := []struct {
		replay LSN
		want   Lag
	}{
		{500, Lag{}},
		{600, Lag{}},
		{300, Lag{Bytes: 200, Time: time.Second}},     // missing what came at 3 s
		{299, Lag{Bytes: 201, Time: 2 * time.Second}}, // missing what came at 2 s
		{50, Lag{Bytes: 450, Time: 4 * time.Second}},
	}
	for _, c := range cases {
		if got := p.lag(c.replay, now); got != c.want {
			t.Errorf("lag(%d) = %+v, want %+v", c.replay, got, c.want)
		}
	}
	// Samples older than keep go, but for the last one before the window,
	// which tells when the primary went past what the window begins with.
	p.add(t0.Add(30*time.Second), 900)
	if len(p.lsn) != 2 || p.lsn[0] != 500 || p.lsn[1] != 900 {
		t.Fatalf("kept %v", p.lsn)
	}
	if got := (&positions{}).lag(5, now); got != (Lag{}) {
		t.Fatalf("no samples: %+v", got)
	}
}
