package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// writeProbe writes flat out through belay, one autocommit INSERT after
// the other, and records when each was acknowledged: the longest gap
// between two acknowledgements is the pause writers saw.
type writeProbe struct {
	mu     sync.Mutex
	acks   []time.Time
	errors []string
}

func (w *writeProbe) run(ctx context.Context, t *testing.T, cs string) {
	conn, err := pgx.Connect(ctx, cs)
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(context.Background())
	for ctx.Err() == nil {
		_, err := conn.Exec(ctx, "INSERT INTO write_probe VALUES (clock_timestamp())")
		w.mu.Lock()
		if err == nil {
			w.acks = append(w.acks, time.Now())
		} else if ctx.Err() == nil {
			w.errors = append(w.errors, err.Error())
		}
		w.mu.Unlock()
	}
}

// pause is the longest gap between acknowledgements within [from, to],
// and when it began.
func (w *writeProbe) pause(from, to time.Time) (time.Duration, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var worst time.Duration
	var at time.Time
	for i := 1; i < len(w.acks); i++ {
		if w.acks[i].After(from) && !w.acks[i-1].After(to) && w.acks[i].Sub(w.acks[i-1]) > worst {
			worst, at = w.acks[i].Sub(w.acks[i-1]), w.acks[i-1]
		}
	}
	return worst, at
}

// heldRE finds how long the orchestrator held the primary's work in
// belay switchover's (or the console's) report.
var heldRE = regexp.MustCompile(`held ([0-9.]+[a-zµ]+)`)

// TestSwitchover (issue H): planned switchovers under pgbench TPC-B (-c 10)
// through `belay proxy --etcd`, with `belay orch`: first by `belay
// switchover pg1`, then back by the console's `SWITCHOVER pg0` (the old
// primary rewound in between, as belay up does by itself). pgbench fails
// and aborts nothing; a writer writing flat out sees no error, and its
// pause (the longest gap between acknowledged writes) is reported; a
// session's SET and prepared statement follow it to the new primary; the
// new primary replicates synchronously to the others at once.
// BELAY_SWITCHOVER_RUNS repeats the pair and reports the median and worst.
func TestSwitchover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, three Postgres, belay proxy and belay orch")
	}
	runs := envRuns(t, "BELAY_SWITCHOVER_RUNS")
	bin := buildBelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(2+runs)*time.Minute)
	defer cancel()
	b := startBelayCluster(t, ctx, bin, pgtest.NewCluster(t, pgcluster.Options{Replicas: 2}), "s", "orch-1")
	pgbench, env := b.pgbenchInit(t)
	psql := pgtest.RequireBinary(t, "psql")

	setup, err := pgx.Connect(ctx, b.cs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(ctx, "CREATE TABLE write_probe (at timestamptz)"); err != nil {
		t.Fatal(err)
	}
	setup.Close(ctx)
	// A session with state of its own, which must follow it.
	sess, err := pgx.Connect(ctx, b.cs)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close(context.Background())
	if _, err := sess.Exec(ctx, "SET application_name = 'follows_me'"); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Prepare(ctx, "mine", "INSERT INTO write_probe VALUES ($1) RETURNING current_setting('application_name')"); err != nil {
		t.Fatal(err)
	}

	var probe writeProbe
	pctx, stopProbe := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); probe.run(pctx, t, b.cs) }()
	defer func() { stopProbe(); pwg.Wait() }()

	var pauses, helds []time.Duration
	// one switches the primary over to node by how (the CLI or the
	// console) under a pgbench run of its own, and checks what it must.
	one := func(to string, console bool) {
		top, err := b.store.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		from, term := top.Shard("0").Primary, top.Shard("0").Term
		bench := exec.CommandContext(ctx, pgbench, "-c", "10", "-j", "2", "-T", "7", "--failures-detailed")
		bench.Env = env
		var out strings.Builder
		bench.Stdout, bench.Stderr = &out, &out
		if err := bench.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		began := time.Now()
		var cmd *exec.Cmd
		if console {
			cmd = exec.CommandContext(ctx, psql, "-X", "-h", "127.0.0.1", "-p", b.port, "-U", "postgres", "-d", "belay",
				"-v", "ON_ERROR_STOP=1", "-c", "SWITCHOVER "+to)
		} else {
			cmd = exec.CommandContext(ctx, bin, "switchover", "--etcd", b.etcd.Endpoint(), "--cluster", "s", to)
		}
		said, err := cmd.CombinedOutput()
		ended := time.Now()
		if err != nil {
			t.Fatalf("switchover %s -> %s: %v\n%s", from, to, err, said)
		}
		_ = bench.Wait()
		pause, at := probe.pause(began, ended)
		t.Logf("switchover %s -> %s (console %v) in %v, writes paused at most %v (from %s): %s; pgbench: %s", from, to, console,
			ended.Sub(began).Round(time.Millisecond), pause.Round(time.Millisecond), at.UTC().Format("15:04:05.000"),
			strings.TrimSpace(string(said)), pgbenchSummary(out.String()))
		pauses = append(pauses, pause)
		if m := heldRE.FindStringSubmatch(string(said)); m != nil {
			d, _ := time.ParseDuration(m[1])
			helds = append(helds, d)
		}
		if !strings.Contains(out.String(), "number of failed transactions: 0 ") || strings.Contains(out.String(), "aborted") {
			t.Errorf("pgbench under the switchover %s -> %s:\n%s", from, to, out.String())
		}
		top, err = b.store.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sh := top.Shard("0"); sh.Primary != to || sh.Term != term+2 {
			t.Fatalf("after the switchover: primary %s term %d, want %s term %d", sh.Primary, sh.Term, to, term+2)
		}
		var app string
		if err := sess.QueryRow(ctx, "mine", time.Now()).Scan(&app); err != nil || app != "follows_me" {
			t.Errorf("the session's prepared statement and SET after the switchover: %q, %v", app, err)
		}
		// Synchronous replication on the new primary from its first commit.
		np, err := pgx.Connect(ctx, b.cl.Node(to).ConnString("postgres", "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var names string
		if err := np.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names); err != nil {
			t.Fatal(err)
		}
		np.Close(ctx)
		if !strings.HasPrefix(names, "ANY 1 (") || !strings.Contains(names, from) {
			t.Errorf("the new primary's synchronous_standby_names: %q", names)
		}
		// The old primary, fenced, rejoins as a standby of the new one (as
		// belay up's orchestrator does through its Rejoin hook).
		if err := b.cl.SetPrimary(to); err != nil {
			t.Fatal(err)
		}
		if err := b.cl.Node(from).Rejoin(ctx); err != nil {
			t.Fatalf("rejoining %s: %v", from, err)
		}
		if err := b.cl.WaitStreaming(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range runs {
		one("pg1", false)
		one("pg0", true)
	}
	stopProbe()
	pwg.Wait()
	if len(probe.errors) > 0 {
		t.Errorf("the writer saw %d errors: %q", len(probe.errors), probe.errors[:min(5, len(probe.errors))])
	}
	if len(pauses) > 1 {
		same := func(d time.Duration) time.Duration { return d }
		t.Logf("%d switchovers: writes paused %s; the primary's work held (orchestrator) %s",
			len(pauses), medianWorst(pauses, same), medianWorst(helds, same))
	}
}
