package loop

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pgcluster"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sqlstateOf is the SQLSTATE of err ("" for nil, "?" for an error that is
// not Postgres's).
func sqlstateOf(err error) string {
	if err == nil {
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return "?"
}

// codeCounts counts outcomes by SQLSTATE (ok for none), for the log.
type codeCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *codeCounts) add(what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	code := sqlstateOf(err)
	if code == "" {
		code = "ok"
	}
	c.n[what+":"+code]++
}

func (c *codeCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c.n[k])
	}
	return b.String()
}

// TestFailover (issue H): the test plays the orchestrator. It kills -9 the
// primary of a cluster of its own (etcd holds the topology) while clients
// work, promotes the replica about a second later and publishes it with
// the next term. Statements sent after the kill wait and succeed; a
// transaction open at the kill gets 40001 and its connection stays usable
// (belay answers its ROLLBACK); a COMMIT in flight gets 08007 (never
// another error); an autocommit write in flight gets 08007; a read in
// flight on the primary is sent again and answered; reads keep going to
// the replica during the hold; settings and prepared statements work on
// the new primary. Then, with the new primary killed too and no replica
// left, a proxy with a short hold answers ERROR 57P03 after its bound and
// the client keeps its connection; a held statement can be cancelled.
func TestFailover(t *testing.T) {
	ctx := context.Background()
	cl := pgtest.NewCluster(t, pgcluster.Options{Replicas: 1})
	pri, rep := cl.Primary(), cl.Replicas()[0]
	etcd := etcdtest.New(t)
	store, err := ha.NewStore(etcdtest.Client(t, etcd), "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateShard(ctx, "0", ha.ShardRecord{Term: 1, Primary: pri.Name}); err != nil {
		t.Fatal(err)
	}
	for _, n := range cl.Nodes() {
		if _, err := store.PutNode(ctx, n.Name, ha.NodeRecord{Shard: "0", Addr: n.Addr(), State: ha.StateUp}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := store.Watch(ctx, ha.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	adm := connect(t, pri.ConnString("postgres", "postgres"))
	if _, err := adm.Exec(ctx, `CREATE TABLE kf (id serial PRIMARY KEY, who text);
		CREATE TABLE kslow (v int);
		CREATE FUNCTION ksleep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(60); RETURN NULL; END$$;
		CREATE CONSTRAINT TRIGGER kslow_commit AFTER INSERT ON kslow DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION ksleep()`); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, pri.Instance(), func(c *Config) {
		c.Cluster, c.HealthDial, c.PoolSize, c.FailoverHold = w, healthDial, 8, 15*time.Second
	})
	upAll := func(p *Proxy, names ...string) func() bool {
		return func() bool {
			for _, n := range p.cluster.view.Load().nodes {
				for _, want := range names {
					if h := n.health.Current(); n.name == want && (h == nil || !h.Up) {
						return false
					}
				}
			}
			return true
		}
	}
	eventually(t, 20*time.Second, "every node's health check", upAll(p, pri.Name, rep.Name))
	cs := p.connString("postgres", "postgres")
	var counts codeCounts

	// The session whose settings and prepared statement must follow it.
	st := connectMode(t, cs, pgx.QueryExecModeCacheStatement)
	if _, err := st.Exec(ctx, "SET kf.who = 'state'"); err != nil {
		t.Fatal(err)
	}
	const stateSQL = "INSERT INTO kf (who) VALUES (current_setting('kf.who') || $1) RETURNING pg_is_in_recovery()"
	var standby bool
	if err := st.QueryRow(ctx, stateSQL, "-before").Scan(&standby); err != nil || standby {
		t.Fatalf("before: %v, standby %v", err, standby)
	}

	// Work in flight on the primary at the kill, each in its own client:
	// a transaction, a COMMIT (a deferred trigger sleeps in it), an
	// autocommit write, a read (sent to the primary by its hint).
	type outcome struct {
		what string
		err  error
		took time.Duration
	}
	inflight := make(chan outcome, 8)
	txc := connectMode(t, cs, pgx.QueryExecModeCacheStatement)
	idle := connectMode(t, cs, pgx.QueryExecModeExec)
	idleTx, err := idle.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idleTx.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "idle-tx"); err != nil {
		t.Fatal(err)
	}
	var txInFlight pgx.Tx
	started := make(chan struct{})
	go func() {
		tx, err := txc.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "tx")
		}
		txInFlight = tx
		close(started)
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT pg_sleep($1)", 60) // extended protocol: the error comes at the Sync
		}
		inflight <- outcome{what: "tx", err: err}
	}()
	commitc := connectMode(t, cs, pgx.QueryExecModeSimpleProtocol)
	go func() {
		tx, err := commitc.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO kslow VALUES (1)")
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		inflight <- outcome{what: "commit", err: err}
	}()
	writec := connectMode(t, cs, pgx.QueryExecModeSimpleProtocol)
	go func() {
		_, err := writec.Exec(ctx, "INSERT INTO kf (who) SELECT 'write' FROM pg_sleep(60)")
		inflight <- outcome{what: "write", err: err}
	}()
	readc := connectMode(t, cs, pgx.QueryExecModeCacheStatement)
	go func() {
		var standby bool
		start := time.Now()
		err := readc.QueryRow(ctx, "/* belay.route=primary */ SELECT pg_is_in_recovery() FROM pg_sleep($1::float8)", 3).Scan(&standby)
		if err == nil && standby {
			err = errors.New("the read was answered by a standby")
		}
		inflight <- outcome{what: "read", err: err, took: time.Since(start)}
	}()
	<-started
	eventually(t, 20*time.Second, "4 statements sleeping on the primary", func() bool {
		var n int
		_ = adm.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").Scan(&n)
		return n == 4
	})

	// The kill; the orchestrator's work, a second later.
	if err := pri.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	promoted := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		c, err := pgx.Connect(ctx, rep.ConnString("postgres", "postgres"))
		if err == nil {
			_, err = c.Exec(ctx, "SELECT pg_promote()")
			c.Close(ctx)
		}
		if err == nil {
			_, err = store.SetPrimary(ctx, "0", 1, rep.Name)
		}
		promoted <- err
	}()

	// Writes sent after the kill: each waits for the new primary, none fails.
	var wg sync.WaitGroup
	var maxWait time.Duration
	var mu sync.Mutex
	for i := range 4 {
		c := connectMode(t, cs, []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement}[i%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				start := time.Now()
				_, err := c.Exec(cctx, "INSERT INTO kf (who) VALUES ($1)", fmt.Sprintf("after-%d-%d", i, j))
				cancel()
				counts.add("after-kill write", err)
				if err != nil {
					t.Errorf("a write sent after the kill failed: %v", err)
				}
				mu.Lock()
				maxWait = max(maxWait, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	// Reads keep flowing to the replica meanwhile.
	rc := connectMode(t, cs, pgx.QueryExecModeSimpleProtocol)
	for range 3 {
		start := time.Now()
		var standby bool
		err := rc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby)
		counts.add("read during hold", err)
		if err != nil {
			t.Errorf("a read during the hold: %v", err)
		} else if took := time.Since(start); standby && took > 500*time.Millisecond {
			t.Errorf("a read on the replica during the hold took %v", took)
		}
	}
	if err := <-promoted; err != nil {
		t.Fatalf("promoting %s: %v", rep.Name, err)
	}
	wg.Wait()
	t.Logf("the kill to the last write: max wait %v (promotion published %v after the kill)", maxWait, time.Since(killed).Round(time.Millisecond))

	// What was in flight.
	for range 4 {
		o := <-inflight
		counts.add("in flight "+o.what, o.err)
		code := sqlstateOf(o.err)
		switch o.what {
		case "tx":
			if code != "40001" {
				t.Errorf("the transaction in flight got %v, want 40001", o.err)
			}
		case "commit":
			if code != "08007" && code != "" {
				t.Errorf("the COMMIT in flight got %v, want 08007 or success", o.err)
			}
		case "write":
			if code != "08007" {
				t.Errorf("the autocommit write in flight got %v, want 08007", o.err)
			}
		case "read":
			if o.err != nil {
				t.Errorf("the read in flight got %v, want it sent again and answered", o.err)
			}
		}
	}
	// The transaction's connection: belay plays its failed transaction.
	for _, sql := range []string{"SELECT 1", "SELECT $1::int"} { // simple, then extended
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, 1)
		}
		_, err = txInFlight.Exec(ctx, sql, args...)
		counts.add("failed tx statement", err)
		if sqlstateOf(err) != "25P02" {
			t.Errorf("%s in the lost transaction got %v, want 25P02", sql, err)
		}
	}
	if err := txInFlight.Rollback(ctx); err != nil {
		t.Errorf("ROLLBACK of the lost transaction: %v", err)
	}
	// The transaction idle at the kill learns at its next statement.
	_, err = idleTx.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "idle-tx-2")
	counts.add("idle tx statement", err)
	if sqlstateOf(err) != "40001" {
		t.Errorf("the idle transaction's next statement got %v, want 40001", err)
	}
	if err := idleTx.Rollback(ctx); err != nil {
		t.Errorf("ROLLBACK of the idle lost transaction: %v", err)
	}
	// Every connection still works, on the new primary.
	for name, c := range map[string]*pgx.Conn{"tx": txc, "idle": idle, "commit": commitc, "write": writec, "read": readc} {
		var standby bool
		err := c.QueryRow(ctx, "/* belay.route=primary */ SELECT pg_is_in_recovery()").Scan(&standby)
		counts.add("after", err)
		if err != nil || standby {
			t.Errorf("client %s after the failover: %v, standby %v", name, err, standby)
		}
	}
	// Settings and the prepared statement follow the session.
	if err := st.QueryRow(ctx, stateSQL, "-after").Scan(&standby); err != nil || standby {
		t.Fatalf("the session's statement after the failover: %v, standby %v", err, standby)
	}
	var who string
	if err := st.QueryRow(ctx, "/* belay.route=primary */ SELECT who FROM kf WHERE who LIKE 'state%' ORDER BY id DESC LIMIT 1").Scan(&who); err != nil || who != "state-after" {
		t.Fatalf("the session's setting on the new primary: %q, %v", who, err)
	}
	t.Logf("outcomes by SQLSTATE: %s", &counts)

	// No new primary: the new one dies and no replica is left; a proxy with
	// a short hold fails the work after its bound, and the client stays.
	const bound = 1500 * time.Millisecond
	p2 := startProxy(t, rep.Instance(), func(c *Config) {
		c.Cluster, c.HealthDial, c.PoolSize, c.FailoverHold = w, healthDial, 4, bound
	})
	eventually(t, 20*time.Second, "the new primary's health check", upAll(p2, rep.Name))
	c2 := connectMode(t, p2.connString("postgres", "postgres"), pgx.QueryExecModeCacheStatement)
	if _, err := c2.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "p2"); err != nil {
		t.Fatal(err)
	}
	c3 := connectMode(t, p2.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	if err := rep.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the primary seen down", func() bool {
		v := p2.cluster.view.Load()
		h := v.nodes[v.primary].health.Current()
		return h != nil && !h.Up
	})
	// A held client may cancel its statement (57014 at once).
	cancelled := make(chan error, 1)
	go func() {
		go func() {
			time.Sleep(300 * time.Millisecond)
			_ = c3.PgConn().CancelRequest(ctx)
		}()
		start := time.Now()
		_, err := c3.Exec(ctx, "INSERT INTO kf (who) VALUES ('p2-cancel')")
		if took := time.Since(start); sqlstateOf(err) != "57014" || took > bound-200*time.Millisecond {
			err = fmt.Errorf("a held statement cancelled after 300 ms: %v after %v, want 57014 at once", err, took)
		} else {
			err = nil
		}
		cancelled <- err
	}()
	start := time.Now()
	_, err = c2.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "p2-lost")
	took := time.Since(start)
	if sqlstateOf(err) != "57P03" || took < bound-300*time.Millisecond || took > bound+2*time.Second {
		t.Fatalf("with no new primary: %v after %v, want 57P03 after about %v", err, took, bound)
	}
	t.Logf("with no new primary: %v after %v", err, took.Round(time.Millisecond))
	if err := <-cancelled; err != nil {
		t.Error(err)
	}
	start = time.Now()
	_, err = c2.Exec(ctx, "INSERT INTO kf (who) VALUES ($1)", "p2-lost-2")
	if sqlstateOf(err) != "57P03" || time.Since(start) > 500*time.Millisecond || c2.IsClosed() {
		t.Fatalf("after the hold expired: %v after %v (closed %v), want 57P03 at once on the same connection", err, time.Since(start), c2.IsClosed())
	}
}

// TestTxKind: which transaction control statements end the transaction
// (a failover then answers 08007 and 'I'), and which leave the client in
// one (40001 and 'E').
func TestTxKind(t *testing.T) {
	for stmt, want := range map[string]txClass{
		"COMMIT": txEnds, "commit work": txEnds, "END": txEnds, " /* c */ -- x\n rollback": txEnds,
		"ABORT TRANSACTION": txEnds, "PREPARE TRANSACTION 'x'": txEnds, "COMMIT AND CHAIN": txEnds,
		"BEGIN": txOther, "START TRANSACTION READ ONLY": txOther, "SAVEPOINT a": txOther,
		"RELEASE a": txOther, "ROLLBACK TO SAVEPOINT a": txOther, "rollback work to a": txOther,
		"COMMIT PREPARED 'x'": txUnsure, "ROLLBACK PREPARED 'x'": txUnsure, "": txUnsure, "/* unterminated": txUnsure,
	} {
		if got := txKind([]byte(stmt)); got != want {
			t.Errorf("txKind(%q) = %d, want %d", stmt, got, want)
		}
	}
	for q, want := range map[string][2]bool{ // isTxEnd(q, false), isTxEnd(q, true)
		"ROLLBACK": {true, false}, "rollback;": {true, false}, "abort work": {true, false},
		"COMMIT": {false, true}, "end transaction ;": {false, true}, "ROLLBACK TO a": {false, false}, "SELECT 1": {false, false},
	} {
		if got := [2]bool{isTxEnd([]byte(q), false), isTxEnd([]byte(q), true)}; got != want {
			t.Errorf("isTxEnd(%q) = %v, want %v", q, got, want)
		}
	}
}
