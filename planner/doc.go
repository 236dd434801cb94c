// Package planner turns SQL text into what the proxy must know about it.
//
// Today it holds the first stage of the pipeline described in DESIGN.md, the
// scanner: a lexical pass (no parse, no allocation) that finds statements with
// session effects a transaction-pooling proxy must respect — SET, PREPARE,
// LISTEN, temporary tables, WITH HOLD cursors, session advisory locks,
// set_config, DISCARD, LOAD. The proxy pins a client that runs one of them to
// its server until it leaves. It errs on the side of pinning: a false positive
// costs multiplexing for one client, a false negative would leak one client's
// state to another. Issue C replaces pinning with state that follows the client
// and adds the pg_query_go parse and the plan cache behind this scanner.
//
// Pure: no I/O, no goroutines, safe for concurrent use. It never imports loop,
// poolcore or ha.
package planner
