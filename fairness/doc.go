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
// # Concurrency
//
// An Allocator is a pure state machine: no goroutines, no I/O, no clock of
// its own (every method that needs the time takes now). It is not safe for
// concurrent use; its owner (poolcore's node) guards it with a mutex that is
// taken only on these slow paths, never when a client finds an idle server
// of its own.
//
// fairness imports nothing but the standard library.
package fairness
