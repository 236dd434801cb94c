package buildvcs

import "runtime/debug"

// Info is what a build recorded of its checkout: Revision is "" when it
// recorded nothing (go test, -buildvcs=false, a build outside a checkout).
type Info struct {
	Revision string // the commit, in full
	Time     string // the commit's time, RFC 3339
	Modified bool   // the tree had changes the commit lacks
}

// Of reads bi's settings.
func Of(bi *debug.BuildInfo) Info {
	var in Info
	if bi == nil {
		return in
	}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			in.Revision = kv.Value
		case "vcs.time":
			in.Time = kv.Value
		case "vcs.modified":
			in.Modified = kv.Value == "true"
		}
	}
	return in
}

// Short is the revision's first 12 characters ("" when none).
func (in Info) Short() string { return in.Revision[:min(len(in.Revision), 12)] }
