package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/jackc/pgx/v5/pgconn"
)

// The roles of the noisy-neighbour scenario, and its timing.
const (
	noisyUser = "noisy"
	quietUser = "quiet"
	// calmArrivals are the fresh users measured before the noisy user
	// starts, for comparison.
	calmArrivals = 5
	// noisyLead is the noisy user's head start: time to take the whole
	// budget before the quiet user (or the first fresh user) arrives.
	noisyLead = 1500 * time.Millisecond
	// arrivalGap is the least time between the starts of two arrivals.
	arrivalGap = 150 * time.Millisecond
	// serverSampleEvery is how often pg_stat_activity is sampled.
	serverSampleEvery = 250 * time.Millisecond
)

// arrivalUser is the i-th fresh user (1-based).
func arrivalUser(i int) string { return "arrive_" + strconv.Itoa(i) }

// noisyRoles are the PostgreSQL roles the KindNoisy scenarios among scs log
// in as: noisy, quiet, and arrive_1... for the most arrivals of any, plus
// calmArrivals. None without such a scenario.
func noisyRoles(scs []Scenario) []string {
	n, any := 0, false
	for _, sc := range scs {
		if sc.Kind == KindNoisy {
			any = true
			n = max(n, sc.Arrivals+calmArrivals)
		}
	}
	if !any {
		return nil
	}
	roles := []string{noisyUser, quietUser}
	for i := 1; i <= n; i++ {
		roles = append(roles, arrivalUser(i))
	}
	return roles
}

// createRoles creates roles that may log in (PostgreSQL trusts loopback
// connections, see pginstance) and read and write pgbench's tables.
func createRoles(ctx context.Context, inst *pginstance.Instance, roles []string) error {
	if len(roles) == 0 {
		return nil
	}
	conn, err := pgconn.Connect(ctx, inst.ConnString(benchDB, inst.Superuser))
	if err != nil {
		return fmt.Errorf("bench: creating roles: %w", err)
	}
	defer conn.Close(ctx)
	var sql strings.Builder
	for _, r := range roles {
		fmt.Fprintf(&sql, "CREATE ROLE %s LOGIN;\n", r)
	}
	// pgbench's simple-update script (noisy-neighbour-tx) writes too.
	fmt.Fprintf(&sql, "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %s;\n", strings.Join(roles, ", "))
	if _, err := conn.Exec(ctx, sql.String()).ReadAll(); err != nil {
		return fmt.Errorf("bench: creating roles: %w", err)
	}
	return nil
}

// runNoisy is the noisy-neighbour scenario against t, with both proxies
// limited to sc.Budget server connections in all. Each phase starts with a
// freshly started proxy, so that no server connection is left from an
// earlier one:
//
//  1. alone: the quiet user's pgbench (sc.QuietClients clients);
//  2. together: the noisy user's pgbench (sc.Clients clients), and
//     noisyLead later the quiet user's, for e.o.Duration; the noisy run
//     lasts a second longer, and both are counted over the time both ran
//     (by the per-transaction logs' time stamps, see setWindow);
//  3. arrivals: calmArrivals fresh users with nothing else running, then
//     the noisy user's pgbench and, noisyLead later, sc.Arrivals fresh
//     users, one every arrivalGap (see arrive).
//
// Meanwhile pg_stat_activity is sampled for the backends each user holds,
// and in phase 2 belay's adaptive limit (for a target with belay's
// /metrics). The noisy user's pgbench has sc.NoisyJobs threads when set.
// A fixed-budget belay variant skips phase 3. The proxies are restarted
// without the budget at the end (a variant is left for runScenario to
// stop: it ignores the budget).
func (e *env) runNoisy(ctx context.Context, sc Scenario, t Target, r *RunResult) (err error) {
	e.budget = sc.Budget
	variant, isVariant := e.variantNamed(t.Name)
	defer func() {
		e.budget = 0
		if isVariant {
			return
		}
		if _, rerr := e.restart(ctx, t.Name); rerr != nil && err == nil {
			err = rerr
		}
	}()
	f := &NoisyFigures{}
	r.Noisy = f
	prefix := filepath.Join(e.work, "pgbench-logs", fmt.Sprintf("%s-%s-r%d", sc.ID, t.Name, r.Round))
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	spec := func(user string, clients int, d time.Duration, logPrefix string) pgbenchSpec {
		sp := pgbenchSpec{
			Host: t.Host, Port: t.Port, DB: t.DB, User: user,
			Args: sc.PgbenchArgs, Clients: clients, Jobs: e.o.Jobs,
			Duration: d, LogPrefix: logPrefix, MaxClientsPerProc: e.o.MaxClientsPerPgbench,
			SSLMode: sslMode(sc),
		}
		if t.Second != nil { // each user's clients over both gateways
			sp.Spread = []int{t.Port, t.Second.Port}
		}
		if user == noisyUser && sc.NoisyJobs > 0 {
			sp.Jobs = sc.NoisyJobs
		}
		return sp
	}
	start := time.Now()

	// 1. The quiet user alone.
	if t, err = e.restart(ctx, t.Name); err != nil {
		return err
	}
	alone, err := runPgbench(ctx, e.pgbench, spec(quietUser, sc.QuietClients, e.o.Duration, prefix+"-alone-quiet"))
	if err != nil {
		return err
	}
	f.QuietAloneErrors = r.addPgbench("quiet alone", alone)
	f.QuietAloneTPS = alone.Summary.TPS
	sort.Float64s(alone.Log.Latencies)
	r.aloneLat = alone.Log.Latencies
	f.QuietAloneP50 = Percentile(r.aloneLat, 0.50) / 1000
	f.QuietAloneP99 = Percentile(r.aloneLat, 0.99) / 1000

	// 2. Together.
	if t, err = e.restart(ctx, t.Name); err != nil {
		return err
	}
	smp := e.sampleServers(ctx)
	var lim *limitSampler
	if m := t.limitMetrics(); m != "" {
		lim = sampleLimit(ctx, m)
	}
	noisy := e.runBackground(ctx, spec(noisyUser, sc.Clients, wholeSeconds(noisyLead+e.o.Duration+time.Second), prefix+"-together-noisy"))
	sleepCtx(ctx, noisyLead)
	from := time.Now()
	quiet, qerr := runPgbench(ctx, e.pgbench, spec(quietUser, sc.QuietClients, e.o.Duration, prefix+"-together-quiet"))
	to := time.Now()
	nrun, nerr := noisy.wait()
	samples := smp.stop()
	var limits []limitSample
	if lim != nil {
		limits = lim.stop()
	}
	if err := errors.Join(qerr, nerr); err != nil {
		return err
	}
	f.QuietErrors = r.addPgbench("quiet with noisy", quiet)
	f.NoisyErrors = r.addPgbench("noisy", nrun)
	r.setLatencies(f.setWindow(quiet.Log, nrun.Log, from.UnixMicro(), to.UnixMicro()))
	f.setServers(samples, from, to)
	f.QuietP50, f.QuietP99 = r.P50, r.P99
	r.TPS, r.Transactions = f.QuietTPS, f.QuietTx
	f.Limit = limitFigures(limits, from, to)
	if isVariant && variant.Fixed {
		r.Seconds = time.Since(start).Seconds()
		return ctx.Err()
	}

	// 3. Fresh users arriving.
	if t, err = e.restart(ctx, t.Name); err != nil {
		return err
	}
	var calm []string
	for i := 1; i <= calmArrivals; i++ {
		calm = append(calm, arrivalUser(sc.Arrivals+i))
	}
	r.Arrivals = arrive(ctx, t, calm, false, time.Time{})
	smp = e.sampleServers(ctx)
	d := wholeSeconds(max(e.o.Duration, noisyLead+time.Duration(sc.Arrivals)*arrivalGap+2*time.Second))
	noisy = e.runBackground(ctx, spec(noisyUser, sc.Clients, d, ""))
	noisyStart := time.Now()
	sleepCtx(ctx, noisyLead)
	var users []string
	for i := 1; i <= sc.Arrivals; i++ {
		users = append(users, arrivalUser(i))
	}
	// The noisy pgbench's clock starts once its clients are connected: by
	// noisyStart+d minus a margin the budget is surely still held.
	end := noisyStart.Add(d - 300*time.Millisecond)
	loaded := arrive(ctx, t, users, true, end)
	arrived := time.Now()
	nrun, nerr = noisy.wait()
	samples = smp.stop()
	if nerr != nil {
		return nerr
	}
	f.NoisyErrors += r.addPgbench("noisy while users arrive", nrun)
	f.NoisyServersArriving = medianNoisy(samples, noisyStart.Add(noisyLead), arrived)
	r.Arrivals = append(r.Arrivals, loaded...)
	f.setArrivals(r.Arrivals)
	if len(loaded) < sc.Arrivals {
		r.Errors = append(r.Errors, fmt.Sprintf("only %d of %d users arrived before the noisy run ended", len(loaded), sc.Arrivals))
	}
	for _, a := range r.Arrivals {
		if a.Err != "" {
			r.Errors = append(r.Errors, fmt.Sprintf("arrival of %s: %s", a.User, a.Err))
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return ctx.Err()
}

// addPgbench adds run's errors to r (each message prefixed with what),
// and returns its failed transactions, aborted clients and failed
// connections.
func (r *RunResult) addPgbench(what string, run pgbenchRun) int64 {
	s := run.Summary
	failed := max(s.Failed, run.Log.Failed) // the summary and the log count the same failures
	r.Failed += failed
	r.Aborted += s.Aborted
	r.ConnFails += s.ConnFails
	r.Hung = r.Hung || run.Killed
	for _, m := range s.Errors {
		if len(r.Errors) < maxErrors {
			r.Errors = append(r.Errors, what+": "+m)
		}
	}
	return failed + int64(s.Aborted) + int64(s.ConnFails)
}

// background is a pgbench run going on in its own goroutine.
type background struct {
	done chan struct{}
	run  pgbenchRun
	err  error
}

// runBackground starts runPgbench(spec) in a goroutine.
func (e *env) runBackground(ctx context.Context, spec pgbenchSpec) *background {
	b := &background{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.run, b.err = runPgbench(ctx, e.pgbench, spec)
	}()
	return b
}

// wait returns the run's result once it has ended.
func (b *background) wait() (pgbenchRun, error) {
	<-b.done
	return b.run, b.err
}

// arrive starts an arrival of each of users (see arriveOnce), one every
// arrivalGap from now, each in a goroutine of its own: users arrive
// independently of each other, and one kept waiting delays no other. When
// end is not zero, an arrival gives up at end (TimedOut) and none starts
// within half a second of it; otherwise each has 10 s. It returns when
// every arrival has ended, in the order of users.
func arrive(ctx context.Context, t Target, users []string, loaded bool, end time.Time) []Arrival {
	as := make([]Arrival, len(users))
	var wg sync.WaitGroup
	n := 0
	start := time.Now()
	for i, u := range users {
		sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*arrivalGap)))
		if ctx.Err() != nil || (!end.IsZero() && time.Until(end) < 500*time.Millisecond) {
			break
		}
		deadline := end
		if end.IsZero() {
			deadline = time.Now().Add(10 * time.Second)
		}
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			as[i] = arriveOnce(ctx, t, u, loaded, deadline)
		}(i, u)
		n++
	}
	wg.Wait()
	return as[:n]
}

// arriveOnce is one fresh user's arrival through t.
func arriveOnce(ctx context.Context, t Target, user string, loaded bool, deadline time.Time) Arrival {
	a := Arrival{User: user, Loaded: loaded}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := time.Now()
	c, err := dialRaw(actx, t.Addr(), user, t.DB, 0)
	if err == nil {
		a.LoginMs = msSince(start)
		err = c.query(actx, "SELECT 1")
		_ = c.Close()
	}
	a.FirstMs = msSince(start)
	switch {
	case err == nil:
	case ctx.Err() == nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		a.TimedOut = true
	default:
		a.Err = err.Error()
	}
	return a
}

// sampler calls read every period in a goroutine, keeping the samples it
// returns (a failed read returns false and is skipped), until stop.
type sampler[T any] struct {
	quit    chan struct{}
	done    chan struct{}
	samples []T // written by the goroutine until done is closed
}

// startSampler starts sampling; open, when set, runs first in the
// goroutine (a connection of its own) and returns the read and its
// cleanup, or an error that ends the sampling.
func startSampler[T any](ctx context.Context, every time.Duration, open func() (read func(at time.Time) (T, bool), closer func(), err error)) *sampler[T] {
	s := &sampler[T]{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		read, closer, err := open()
		if err != nil {
			return
		}
		if closer != nil {
			defer closer()
		}
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			at := time.Now()
			if v, ok := read(at); ok {
				s.samples = append(s.samples, v)
			}
			select {
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples.
func (s *sampler[T]) stop() []T {
	close(s.quit)
	<-s.done
	return s.samples
}

// serverSampler samples pg_stat_activity every serverSampleEvery.
type serverSampler = sampler[serverSample]

// sampleServers starts sampling the backends of the noisy, quiet and
// arriving users in the bench database, from a connection of its own. A
// failed sample is skipped.
func (e *env) sampleServers(ctx context.Context) *serverSampler {
	return startSampler(ctx, serverSampleEvery, func() (func(time.Time) (serverSample, bool), func(), error) {
		conn, err := pgconn.Connect(ctx, e.pg.ConnString(benchDB, e.pg.Superuser))
		if err != nil {
			e.logf("sampling pg_stat_activity: %v", err)
			return nil, nil, err
		}
		q := fmt.Sprintf("SELECT count(*) FILTER (WHERE usename = '%s'), count(*) FILTER (WHERE usename = '%s'), "+
			"count(*) FILTER (WHERE usename LIKE 'arrive\\_%%') FROM pg_stat_activity WHERE datname = '%s'", noisyUser, quietUser, benchDB)
		read := func(at time.Time) (serverSample, bool) {
			res, err := conn.Exec(ctx, q).ReadAll()
			if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 3 {
				return serverSample{}, false
			}
			row := res[0].Rows[0]
			n := func(i int) int { v, _ := strconv.Atoi(string(row[i])); return v }
			return serverSample{At: at, Noisy: n(0), Quiet: n(1), Other: n(2)}, true
		}
		return read, func() { conn.Close(context.Background()) }, nil
	})
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-tm.C:
	}
}

// wholeSeconds rounds d up to whole seconds (pgbench's -T).
func wholeSeconds(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second * time.Second
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
