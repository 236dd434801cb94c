// Package fairness decides who gets the next server connection when a
// Postgres node's budget of connections is shared between users.
//
// An Allocator knows, per user, how many servers it holds (open or being
// opened) and its demand: clients in a transaction plus clients waiting. From
// the demands it computes weighted max-min fair shares of the budget: every
// user gets what it asks for up to an equal (weighted) cut, and what a small
// user leaves is shared by the bigger ones. Limits set a weight, a guaranteed
// minimum and a maximum per user.
//
// The Allocator does not hand out servers; it answers the owner's questions at
// the moments that cost a login anyway, or when a server is free:
//
//   - Grow: a user's clients wait and none of its servers is free; may it open
//     one more? Yes while the budget has room (work-conserving).
//   - Take: a server of a user is free (just released, or idle); should its
//     slot go to another user? Only when the owner holds more than its share
//     and another user with waiting clients holds less than its own. The
//     owner then closes the server and opens one for the receiver: a login.
//   - Closed: a server closed; Next says who gets the freed slot.
//
// Among several users short of their share, slots go round-robin, weighted
// by deficit (a user of weight 3 gets three slots for every one a user of
// weight 1 gets); within a user, the owner serves its waiters first come,
// first served.
//
// # Keeping moves rare
//
// Each move between users costs a login (a few milliseconds of Postgres's
// time), so the shares must not follow every flicker of demand. A user's
// demand is the peak of what it reported over the last Window (two buckets:
// a peak lives between one and two windows); it rises at once and decays
// only after a quiet window, but it never exceeds the clients connected, so
// the servers of a user whose clients left are free at once. Shares are integers, and the odd slot of a tie
// stays with the user that already holds it. A slot moves only from a user
// above its share to one below: at most the difference of the two ever moves,
// and under steady load nothing moves at all.
//
// # The adaptive limit
//
// A fixed budget is a guess: too small leaves the node's CPUs idle, too
// large lets Postgres run more queries than it has CPUs for, and then each
// query waits inside Postgres, where no fairness reaches it. A Limiter
// finds the budget as the node serves, after TCP Vegas and Netflix's
// concurrency-limits (Vegas, Gradient2) and Envoy's adaptive concurrency
// filter. Its owner samples the node every tick; every window (half a
// second and 40 queries at least) the Limiter reads, by Little's law:
//
//   - Throughput X (queries ended per second) and Running, the queries
//     executing on average (the sum of their times over the window's
//     span; each query's time clamped to MaxQuerySample, so that a
//     one-minute query counts in the windows it ran through, not as a
//     queue of a hundred in the one it ended in);
//   - the baseline B, the mean service time of a window that ran at most
//     Min queries at once because no more were asked for (the least of
//     them while fresh), or of a probe: when the node is loaded and the
//     baseline is older than ProbeEvery (or missing; or CheckEvery for
//     the first probe's, six windows if startProbe made it, taken at the
//     start among cold servers, which can read it several times too
//     high: nothing else shows a baseline too high, it only hides the
//     queue), the limit drops to
//     Min for one window to measure it (and then goes straight to its
//     target when the window before the probe, read with the new
//     baseline, had a queue above the band: a start at the ceiling does
//     not go back up only to be cut again). A probe's baseline is the
//     least mean time of its 100 ms ticks (of 20 queries or more): a
//     tick of the node busy with something else is no baseline, and one
//     too low is what the checks correct, while one too high hides the
//     queue. No probe is made while the load still rises (a window with
//     a quarter more throughput than the one before, or the first), nor
//     is a window begun while the node is idle, with one exception: a
//     start at the ceiling in front of a loaded node (nothing measured
//     yet, every server held, clients waiting) probes at once,
//     mid-window, and then climbs from Min by slow start, doubling the
//     limit at each window in which it binds and the queue stays under
//     the band, until one queues more (startProbe). The limit starts at
//     LimiterConfig.Start, a prior (poolcore gives twice the cores plus
//     one for a node on its own machine), or else at the ceiling;
//   - Capacity = X*B, the queries the node would run at once with none of
//     them waiting, and Queue = Running - Capacity, those waiting inside
//     Postgres.
//
// The limit keeps Queue within a band of [max(1, 3/4 Capacity),
// max(that+1.5, 3/2 Capacity)]: a small queue keeps every CPU busy
// between the queries' round trips, a longer one only adds latency. So a
// CPU-bound node settles near twice its capacity, the classic pool size
// of twice the cores. (A band of [max(1, Capacity/2), max(that+1.5,
// Capacity)] settled at 4 in the noisy neighbour on 2 cores, where fixed
// budgets of 5 to 8 gave more throughput.) Above the band it shrinks
// toward Capacity plus the band's middle, by at most a quarter a step and
// after two windows in a row (above twice the band's top: at once, by at
// most half); below it, while clients wait for servers and the limit is
// used, it grows by one (by a quarter when the queue is under half the
// band's bottom) after two windows in a row.
//
// The baseline goes stale when the work changes, and the limiter checks
// it three ways. A growth that brings no more throughput while the queue
// stays under the band means the work got lighter, and a cut that costs
// throughput (by half the cut or more) that the queries got slower
// without using more of the node: a probe follows either. And every
// CheckEvery (15 s) while clients wait on a queue the limit keeps, a check
// halves the limit for one window: a real queue drains and the time per
// query falls; if it stays within a fifth, the queries wait on something
// other than each other (locks, I/O, a sleep), their time is the new
// baseline, and the limit grows; if it rises by more than a fifth, the
// node changed during the window (its machine busy with other work) and
// the check tells nothing. A limit whose half is the floor (Min)
// is checked with a probe instead, so a limit settled low on CPU-bound
// work still learns within CheckEvery that the work turned into waiting.
// Probes and checks are counted apart from
// the changes of the limit's course (Probes, Changes).
//
// A window in which a quarter of the servers held or more logged in, a
// login for every 100 queries or more (a start, or a failover onto the
// node: work arriving at once on servers whose first queries fill their
// caches), or the window after it, decides nothing. After every change the pools have half a
// window to close or log in servers before the next window starts. So the
// limit settles (under a steady load it does not move), follows a node
// that slows within a few windows (a CPU quota cut, a storm of heavy
// queries: the queue grows at once), and never leaves [Min, Max].
//
// The limit bounds queries running; the budget the Allocator shares is
// the limit plus the servers held that run nothing on average (clients
// idle in a transaction, between the queries of one, pinned), in whole
// servers with hysteresis. So a client idle in a transaction never takes
// a running query's place, and a node whose servers are all held idle
// still serves others (a window in which clients waited and nothing ran
// counts them all).
//
// # Concurrency
//
// An Allocator is a pure state machine: no goroutines, no I/O, no clock of
// its own (every method that needs the time takes now). So is a Limiter.
// Neither is safe for concurrent use; their owner (poolcore's node) guards
// both with a mutex that is taken only on these slow paths and at its
// tick, never when a client finds an idle server of its own.
//
// fairness imports nothing but the standard library.
package fairness
