// Command belay is the horizontal-scaling layer for PostgreSQL (see
// README.md): `belay up` starts a local cluster, `belay proxy` the proxy,
// `belay bench` the side-by-side benchmark.
//
// This package turns flags into configuration and wires the packages
// together; nothing else. It owns the process's signals (SIGINT and SIGTERM
// stop it cleanly).
//
// default.pgo beside this file is the CPU profile `go build` optimizes the
// binary with (profile-guided optimization): the merged raw profiles of
// flamegraphs/, which `make flamegraphs pgo` regenerates.
package main
