package buildvcs

import (
	"runtime/debug"
	"testing"
)

func TestOf(t *testing.T) {
	bi := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "ead1b091bd84e5d92b090ec47b5c19f6d9ca61a5"},
		{Key: "vcs.time", Value: "2026-12-07T12:09:33Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	in := Of(bi)
	if in.Revision != "ead1b091bd84e5d92b090ec47b5c19f6d9ca61a5" || in.Time != "2026-12-07T12:09:33Z" || !in.Modified || in.Short() != "ead1b091bd84" {
		t.Errorf("%+v %q", in, in.Short())
	}
	if in := Of(&debug.BuildInfo{}); in != (Info{}) || in.Short() != "" {
		t.Errorf("nothing recorded: %+v", in)
	}
	if in := Of(nil); in != (Info{}) {
		t.Errorf("nil: %+v", in)
	}
	bi.Settings[3].Value = "false"
	if Of(bi).Modified {
		t.Error("vcs.modified=false read as modified")
	}
}
