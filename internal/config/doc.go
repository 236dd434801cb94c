// Package config reads PgBouncer's configuration file format
// (pgbouncer.ini) for `belay proxy FILE.ini`: sections in brackets, key =
// value lines, comments (lines starting with ';' or '#'), %include of other
// files, the libpq-style connection strings of [databases], and the typed
// values of [pgbouncer] (numbers, booleans, times in seconds).
//
// It only reads: turning the settings into the proxy's configuration, and
// applying them again on a reload, is the caller's (cmd/belay). Errors carry
// the file and line they come from; a key the caller does not know is
// returned as a warning, never silently dropped.
//
// Pure apart from reading the files it is given; no goroutines. config
// imports nothing of belay's.
package config
