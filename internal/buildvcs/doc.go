// Package buildvcs reads the version control settings a Go build recorded
// in a binary (vcs.revision, vcs.time, vcs.modified): `belay version`
// reads its own, `belay bench` the belay binary's it runs. Pure: no I/O of
// its own.
package buildvcs
