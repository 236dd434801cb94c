package bankcheck

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options describe a run.
type Options struct {
	ConnString string // where the clients connect (belay)
	Clients    int    // concurrent clients (4)
	Accounts   int    // accounts (10), each starting with Initial
	Initial    int64  // 100
	// OpTimeout bounds one transaction (10 s): past it the outcome is
	// ambiguous.
	OpTimeout time.Duration
	// Sharded runs the bank over a sharded cluster (both tables sharded by
	// id): each statement of a transfer is its own round trip (belay runs
	// a transaction's units on their shards one after the other; a
	// pipeline of two shards' keys in one Sync is refused), and the sums
	// are read in the simple protocol (a read of every shard). A sum read
	// while transfers commit may see one shard's part of a transfer
	// before the other's (each shard commits its prepared part on its
	// own; there is no snapshot across shards): such sums are counted in
	// Result.TornSums, not BadSums; the final sum must be the total.
	Sharded bool
}

func (o *Options) defaults() {
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Accounts <= 0 {
		o.Accounts = 10
	}
	if o.Initial <= 0 {
		o.Initial = 100
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 10 * time.Second
	}
}

// Setup makes the tables (dropped first if they exist) over conn.
func Setup(ctx context.Context, conn *pgx.Conn, o Options) error {
	o.defaults()
	_, err := conn.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS bank_accounts, bank_ids;
		CREATE TABLE bank_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
		CREATE TABLE bank_ids (id bigint PRIMARY KEY);
		INSERT INTO bank_accounts SELECT g, %d FROM generate_series(1, %d) g`, o.Initial, o.Accounts))
	return err
}

// Outcome of one operation.
type Outcome uint8

const (
	Acked     Outcome = iota // committed, and the client was told so
	Ambiguous                // the outcome is unknown to the client
	Failed                   // did not commit, and the client was told so
)

// Op is one recorded operation.
type Op struct {
	Start, End time.Time
	ID         int64 // the id its transfer appends (0: a read)
	Outcome    Outcome
	SQLState   string // of the error, if any ("" for a lost connection)
	Err        string
}

// Recorder holds what the clients recorded; its zero value is ready to
// record (RunInto). mu guards the fields.
type Recorder struct {
	mu       sync.Mutex
	ops      []Op
	badSums  []int64 // sums read that were not the total
	tornSums int     // of a sharded run's (Options.Sharded)
}

// Run runs o.Clients clients until ctx ends and returns what they
// recorded.
func Run(ctx context.Context, o Options) *Recorder {
	r := &Recorder{}
	RunInto(ctx, o, r)
	return r
}

// RunInto is Run recording into r, which may be read meanwhile
// (FirstAckAfter, AckedBetween) and is checked afterwards.
func RunInto(ctx context.Context, o Options, r *Recorder) {
	o.defaults()
	var wg sync.WaitGroup
	for c := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(ctx, o, c)
		}()
	}
	wg.Wait()
}

// client runs transfers and reads over one connection, connecting again
// when it is lost.
func (r *Recorder) client(ctx context.Context, o Options, c int) {
	rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	total := int64(o.Accounts) * o.Initial
	for seq := int64(1); ctx.Err() == nil; seq++ {
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, o.OpTimeout)
			var err error
			conn, err = pgx.Connect(cctx, o.ConnString)
			cancel()
			if err != nil {
				conn = nil
				r.record(Op{Start: time.Now(), End: time.Now(), Outcome: Failed, SQLState: sqlState(err), Err: "connect: " + err.Error()})
				time.Sleep(20 * time.Millisecond)
				continue
			}
		}
		op := Op{Start: time.Now()}
		octx, cancel := context.WithTimeout(ctx, o.OpTimeout)
		var err error
		if seq%4 == 0 {
			var sum int64
			if o.Sharded {
				err = conn.QueryRow(octx, "SELECT sum(balance) FROM bank_accounts", pgx.QueryExecModeSimpleProtocol).Scan(&sum)
			} else {
				err = conn.QueryRow(octx, "SELECT sum(balance)::int8 FROM bank_accounts").Scan(&sum)
			}
			if err == nil && sum != total {
				r.mu.Lock()
				if o.Sharded {
					r.tornSums++
				} else {
					r.badSums = append(r.badSums, sum)
				}
				r.mu.Unlock()
			}
			op.Outcome = Acked
			if err != nil {
				op.Outcome = Failed // a read commits nothing: never ambiguous
			}
		} else {
			op.ID = int64(c+1)<<40 | seq
			from, to := 1+rng.IntN(o.Accounts), 1+rng.IntN(o.Accounts)
			amount := 1 + rng.Int64N(5)
			op.Outcome, err = transfer(octx, conn, from, to, amount, op.ID, o.Sharded)
		}
		cancel()
		op.End = time.Now()
		if err != nil {
			op.SQLState, op.Err = sqlState(err), err.Error()
			if ctx.Err() != nil {
				op.SQLState = stopped // the run's end, not the system's answer
			}
			// As pgxpool does, a connection left inside a transaction (a
			// BEGIN lost in a failover is answered 40001 in a failed
			// transaction) is not used again.
			if conn.IsClosed() || conn.PgConn().TxStatus() != 'I' || op.SQLState == "" ||
				strings.HasPrefix(op.SQLState, "08") || strings.HasPrefix(op.SQLState, "57P") {
				conn.Close(context.Background())
				conn = nil
			}
		}
		r.record(op)
	}
}

// transfer moves amount from one account to another and appends id, in
// one transaction. An error before COMMIT was sent is a failure (the
// transaction cannot have committed: Postgres commits nothing of a
// transaction whose COMMIT it never received); an error answering COMMIT is
// a failure only with a SQLSTATE that says it did not commit, else
// ambiguous.
func transfer(ctx context.Context, conn *pgx.Conn, from, to int, amount, id int64, oneByOne bool) (Outcome, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Failed, err
	}
	b := &pgx.Batch{}
	if oneByOne {
		b = nil // each statement its own round trip (Options.Sharded)
	}
	queue := func(sql string, args ...any) {
		if b != nil {
			b.Queue(sql, args...)
		} else if err == nil {
			_, err = tx.Exec(ctx, sql, args...)
		}
	}
	// The lower account first, so that transfers do not deadlock.
	if from < to {
		queue("UPDATE bank_accounts SET balance = balance - $1 WHERE id = $2", amount, from)
		queue("UPDATE bank_accounts SET balance = balance + $1 WHERE id = $2", amount, to)
	} else {
		queue("UPDATE bank_accounts SET balance = balance + $1 WHERE id = $2", amount, to)
		queue("UPDATE bank_accounts SET balance = balance - $1 WHERE id = $2", amount, from)
	}
	queue("INSERT INTO bank_ids (id) VALUES ($1)", id)
	if b != nil {
		err = tx.SendBatch(ctx, b).Close()
	}
	if err != nil {
		_ = tx.Rollback(context.Background())
		return Failed, err
	}
	if err := tx.Commit(ctx); err != nil {
		switch s := sqlState(err); {
		case s == "", strings.HasPrefix(s, "08"), strings.HasPrefix(s, "57P"):
			// 08007, or the connection lost with COMMIT in flight.
			return Ambiguous, err
		default:
			// 40001, 40P01, 25P02, ...: Postgres did not commit.
			return Failed, err
		}
	}
	return Acked, nil
}

// stopped is the SQLSTATE recorded for an operation cut short by the end
// of the run (Run's ctx): not counted among the errors.
const stopped = "stopped"

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func (r *Recorder) record(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Result is what Check found.
type Result struct {
	Acked, Ambiguous, Failed int // transfers, by outcome
	Reads, ReadsFailed       int // reads, and those the system failed (not those the run's end cut short)
	// Stopped counts the operations cut short by the end of the run (in
	// Failed and Ambiguous as their outcome says, never in Errors).
	Stopped        int
	Lost           []int64 // acknowledged ids missing: must be empty
	Phantom        []int64 // ids present that failed or were never attempted: must be empty
	AmbiguousFound int     // ambiguous ids present (they committed)
	BadSums        []int64 // sums read, or the final one, that were not the total
	TornSums       int     // sums read across shards while transfers committed that were not the total (Options.Sharded)
	FinalSum       int64
	// Errors counts the failed and ambiguous operations by SQLSTATE ("conn"
	// for a lost connection without one).
	Errors map[string]int
	// ErrorsAfter counts those that started after the fault (Check's at):
	// statements sent after it, which should not fail.
	ErrorsAfter map[string]int
	// AfterSamples are the first few of those errors' messages, each after
	// how long after at its operation started.
	AfterSamples []string
	// FirstAckAfter is from at to the first transfer acknowledged that
	// started after it (0: none).
	FirstAckAfter time.Duration
}

// OK says whether the run kept its promises: nothing lost, no phantom, the
// sums right.
func (res *Result) OK() bool {
	return len(res.Lost) == 0 && len(res.Phantom) == 0 && len(res.BadSums) == 0
}

func (res *Result) String() string {
	keys := func(m map[string]int) string {
		var out []string
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		}) {
			out = append(out, fmt.Sprintf("%s:%d", k, m[k]))
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, " ")
	}
	return fmt.Sprintf("transfers acked %d, ambiguous %d (%d committed), failed %d; reads %d (%d failed); %d operations cut short by the run's end; lost %d, phantom %d, bad sums %d (final %d), torn sums %d; errors %s; errors of operations started after the fault %s; first ack after the fault %v",
		res.Acked, res.Ambiguous, res.AmbiguousFound, res.Failed, res.Reads, res.ReadsFailed, res.Stopped, len(res.Lost), len(res.Phantom),
		len(res.BadSums), res.FinalSum, res.TornSums, keys(res.Errors), keys(res.ErrorsAfter), res.FirstAckAfter.Round(time.Millisecond))
}

// Check reads the final state over conn (the primary after the fault) and
// checks what r recorded against it; at is when the fault was injected.
func (r *Recorder) Check(ctx context.Context, conn *pgx.Conn, at time.Time, o Options) (*Result, error) {
	return r.CheckShards(ctx, []*pgx.Conn{conn}, at, o)
}

// CheckShards is Check over a sharded bank: conns are each shard's
// primary, read directly; their ids and sums together are the bank's.
func (r *Recorder) CheckShards(ctx context.Context, conns []*pgx.Conn, at time.Time, o Options) (*Result, error) {
	o.defaults()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Errors: map[string]int{}, ErrorsAfter: map[string]int{}, BadSums: slices.Clone(r.badSums), TornSums: r.tornSums}
	present := map[int64]bool{}
	for _, conn := range conns {
		ids, err := IDs(ctx, conn)
		if err != nil {
			return nil, err
		}
		maps.Copy(present, ids)
		var sum int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(sum(balance), 0)::int8 FROM bank_accounts").Scan(&sum); err != nil {
			return nil, err
		}
		res.FinalSum += sum
	}
	if total := int64(o.Accounts) * o.Initial; res.FinalSum != total {
		res.BadSums = append(res.BadSums, res.FinalSum)
	}
	if !at.IsZero() {
		res.FirstAckAfter = r.firstAckAfter(at)
	}
	outcome := r.outcomes()
	for _, op := range r.ops {
		if op.SQLState == stopped {
			res.Stopped++
		}
		if op.Outcome != Acked && op.SQLState != stopped {
			k := op.SQLState
			if k == "" {
				k = "conn"
			}
			res.Errors[k]++
			if !at.IsZero() && op.Start.After(at) {
				res.ErrorsAfter[k]++
				if len(res.AfterSamples) < 5 {
					res.AfterSamples = append(res.AfterSamples, fmt.Sprintf("%v after: %s", op.Start.Sub(at).Round(time.Microsecond), op.Err))
				}
			}
		}
		if op.ID == 0 {
			if strings.HasPrefix(op.Err, "connect: ") {
				continue
			}
			res.Reads++
			if op.Outcome != Acked && op.SQLState != stopped {
				res.ReadsFailed++
			}
			continue
		}
		switch op.Outcome {
		case Acked:
			res.Acked++
			if !present[op.ID] {
				res.Lost = append(res.Lost, op.ID)
			}
		case Ambiguous:
			res.Ambiguous++
			if present[op.ID] {
				res.AmbiguousFound++
			}
		case Failed:
			res.Failed++
		}
	}
	for id := range present {
		if o, ok := outcome[id]; !ok || o == Failed { // never attempted, or told it failed
			res.Phantom = append(res.Phantom, id)
		}
	}
	return res, nil
}

// IDs are the ids present in the bank over conn (a primary, or an old
// primary read directly).
func IDs(ctx context.Context, conn *pgx.Conn) (map[int64]bool, error) {
	rows, err := conn.Query(ctx, "SELECT id FROM bank_ids")
	if err != nil {
		return nil, err
	}
	present := map[int64]bool{}
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		present[id] = true
		return nil
	}); err != nil {
		return nil, err
	}
	return present, nil
}

// OldTimeline is what CheckOldTimeline found on a primary that was cut
// off and replaced: what it holds beyond the point where the new
// primary's timeline forked from its own.
type OldTimeline struct {
	// Beyond are the ids the old primary has and the new one lacks:
	// committed on the old timeline after the fork (an id is attempted
	// once, so it cannot be on both by two transactions).
	Beyond []int64
	// Acked are those of them a client was told committed: each is an
	// acknowledged write on the old timeline, lost. Must be empty.
	Acked []int64
	// Ambiguous and Failed count the others by what their clients were
	// told (an unknown outcome, such as 08007; a failure).
	Ambiguous, Failed int
}

// OK says no acknowledged write is on the old timeline only.
func (o *OldTimeline) OK() bool { return len(o.Acked) == 0 }

func (o *OldTimeline) String() string {
	return fmt.Sprintf("%d ids beyond the fork on the old timeline: %d acknowledged, %d ambiguous, %d failed",
		len(o.Beyond), len(o.Acked), o.Ambiguous, o.Failed)
}

// CheckOldTimeline compares old, the ids an old primary holds (IDs, read
// from it directly before it is rewound, with the commits still waiting
// there for a synchronous standby ended so that they show), with cur, the
// ids of the new primary, against what the clients were told.
func (r *Recorder) CheckOldTimeline(old, cur map[int64]bool) *OldTimeline {
	r.mu.Lock()
	defer r.mu.Unlock()
	outcome := r.outcomes()
	res := &OldTimeline{}
	for id := range old {
		if cur[id] {
			continue
		}
		res.Beyond = append(res.Beyond, id)
		switch o, ok := outcome[id]; {
		case ok && o == Acked:
			res.Acked = append(res.Acked, id)
		case ok && o == Failed:
			res.Failed++
		default: // ambiguous, or in flight when the run ended
			res.Ambiguous++
		}
	}
	slices.Sort(res.Beyond)
	slices.Sort(res.Acked)
	return res
}

// LongestWait is the longest a client waited for an answer after from
// (the fault): for each operation running at from or started after it,
// from its start or from from, whichever is later, to its answer. An
// operation cut short by the run's end is not counted.
func (r *Recorder) LongestWait(from time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Duration
	for _, op := range r.ops {
		if op.End.After(from) && op.SQLState != stopped {
			start := op.Start
			if start.Before(from) {
				start = from
			}
			d = max(d, op.End.Sub(start))
		}
	}
	return d
}

// FirstAckAfter is, of what was recorded so far, the time from at to the
// end of the first acknowledged transfer that started after at (0: none
// yet): a run can stop once writes have resumed. Safe for concurrent use
// with the clients.
func (r *Recorder) FirstAckAfter(at time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstAckAfter(at)
}

// outcomes is what each transfer's client was told, by id. Under r.mu.
func (r *Recorder) outcomes() map[int64]Outcome {
	out := map[int64]Outcome{}
	for _, op := range r.ops {
		if op.ID != 0 {
			out[op.ID] = op.Outcome
		}
	}
	return out
}

// firstAckAfter is FirstAckAfter under r.mu.
func (r *Recorder) firstAckAfter(at time.Time) time.Duration {
	var first time.Duration
	for _, op := range r.ops {
		if op.ID == 0 || op.Outcome != Acked || !op.Start.After(at) {
			continue
		}
		if d := op.End.Sub(at); first == 0 || d < first {
			first = d
		}
	}
	return first
}

// AckedBetween counts the transfers acknowledged (answered) in [from, to):
// those a primary acknowledged while it ran without a synchronous standby,
// say. Safe for concurrent use with the clients.
func (r *Recorder) AckedBetween(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, op := range r.ops {
		if op.ID != 0 && op.Outcome == Acked && !op.End.Before(from) && op.End.Before(to) {
			n++
		}
	}
	return n
}
