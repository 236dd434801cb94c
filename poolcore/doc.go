// Package poolcore owns belay's connections to PostgreSQL: their login, the
// per-(database, user) pools they live in, the state applied to them (startup
// parameters, a reset before reuse), their health and their lifetime.
//
// # Where things run
//
// A server connection lives on the gnet event loop of the client it serves,
// so that a frame read from one socket is written to the other on the same
// goroutine, without a copy or a lock. A Pool is therefore split in two:
//
//   - the shared part (*Pool): the budget of open connections and, per loop,
//     a few atomic counters (idle servers, demand, servers held) that other
//     loops read to decide where a free slot should go;
//   - the per-loop part (loopPool, inside Pool.perLoop[i]): the idle stack and
//     the FIFO of waiting clients, touched only by loop i, with no lock.
//
// A client that finds an idle server of its pool on its own loop takes it with
// no lock and no allocation. When the budget is used up and another loop has
// idle servers or is starved, the slot moves: a server is closed on one loop
// and a new one logged in on the other (see balance.go for the rule, which
// keeps this rare).
//
// Login never runs on a loop: a goroutine dials and authenticates with pgconn
// (trust, md5, SCRAM-SHA-256), hijacks the socket and enrolls it on the target
// loop (gnet ≥ 2.8 EventLoop.Enroll); OnOpen then hands it to a waiter.
//
// Methods documented "on the loop" must run on the server's event loop;
// Manager and Pool lookups are safe for concurrent use.
//
// poolcore never imports loop or planner.
package poolcore
