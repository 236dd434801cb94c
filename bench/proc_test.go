package bench

import (
	"golang.org/x/sys/unix"
	"path/filepath"
	"testing"
)

// TestPlacement starts a process as the harness starts a proxy, with each
// Placement, and checks which session it runs in: a session of its own
// (it leads it) or the harness's.
func TestPlacement(t *testing.T) {
	ours, err := unix.Getsid(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pl := range []Placement{PlaceOwnSession, PlaceShared} {
		p, err := startProcess("sleep", "/bin/sleep", []string{"30"}, nil, filepath.Join(t.TempDir(), "log"), nil, pl)
		if err != nil {
			t.Fatal(err)
		}
		sid, err := unix.Getsid(p.pid)
		pgid, _ := unix.Getpgid(p.pid)
		_ = p.Stop()
		if err != nil {
			t.Fatal(err)
		}
		want := ours
		if pl == PlaceOwnSession {
			want = p.pid
		}
		if sid != want || pgid != p.pid {
			t.Errorf("%s: session %d, process group %d; want session %d (ours %d) and group %d", pl, sid, pgid, want, ours, p.pid)
		}
	}
	if d := PlaceOwnSession.describe(); d == "" || d == PlaceShared.describe() {
		t.Errorf("placements described as %q and %q", d, PlaceShared.describe())
	}
}
