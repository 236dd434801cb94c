package loop

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/codec"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/poolcore"
)

// countingConn is a rawConn that counts the bytes it sends and the bytes of
// the messages it reads, after its login.
type countingConn struct {
	*rawConn
	sent, received int
}

func (c *countingConn) query(sql string) {
	c.t.Helper()
	b := codec.AppendQuery(nil, sql)
	c.send(b)
	c.sent += len(b)
}

// until reads messages up to a ReadyForQuery and returns its status.
func (c *countingConn) until() byte {
	c.t.Helper()
	for {
		f, err := c.next()
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		c.received += 5 + len(f.Body)
		if f.Type == codec.MsgErrorResponse {
			e, _ := codec.ParseErrorFields(f.Body)
			c.t.Fatalf("error: %s", e.Message)
		}
		if f.Type == codec.MsgReadyForQuery {
			return f.Body[0]
		}
	}
}

func (c *countingConn) exec(sql string, wantStatus byte) {
	c.t.Helper()
	c.query(sql)
	if st := c.until(); st != wantStatus {
		c.t.Fatalf("%s: status %q, want %q", sql, st, wantStatus)
	}
}

// TestPoolTotals runs known work through belay and reads it back from
// Pool.Totals and the metrics: queries and transactions counted as
// PgBouncer counts them (a query per ReadyForQuery, a transaction per
// ReadyForQuery that leaves the client idle), the bytes each way exactly,
// the times plausibly (above zero, queries within transactions, all within
// the wall time of the work), a wait for the pool's one server, clients by
// state, and a pin.
func TestPoolTotals(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 1 })
	pool := poolOf(t, p, "postgres")

	start := time.Now()
	a := &countingConn{rawConn: dialRaw(t, p)}
	a.login("postgres")
	b := &countingConn{rawConn: dialRaw(t, p)}
	b.login("postgres")

	const xacts, perXact, single = 3, 2, 5
	for range xacts {
		a.exec("BEGIN", 'T')
		for range perXact {
			a.exec("SELECT 1", 'T')
		}
		a.exec("COMMIT", 'I')
	}
	for i := range single {
		a.exec("SELECT "+strconv.Itoa(i), 'I')
	}
	a.exec("SELECT 1; SELECT 2", 'I') // one ReadyForQuery: one query
	queries, txs := xacts*(perXact+2)+single+1, xacts+single+1

	// b waits for the pool's one server while a holds it in a transaction.
	waitsBefore := pool.Stats().Served
	a.exec("BEGIN", 'T')
	b.query("SELECT 1")
	waitFor(t, "b to wait", func() bool { return pool.Clients().Waiting == 1 })
	if c := pool.Clients(); c.Active != 1 {
		t.Errorf("clients %+v while b waits, want 1 active", c)
	}
	waitFor(t, "the wait to show", func() bool { return pool.OldestWait() > 0 })
	a.exec("COMMIT", 'I')
	if st := b.until(); st != 'I' {
		t.Fatalf("b: status %q", st)
	}
	wall := time.Since(start)
	queries, txs = queries+3, txs+2

	got := pool.Totals()
	want := poolcore.Totals{Xacts: uint64(txs), Queries: uint64(queries),
		Received: uint64(a.sent + b.sent), Sent: uint64(a.received + b.received)}
	if got.Xacts != want.Xacts || got.Queries != want.Queries || got.Received != want.Received || got.Sent != want.Sent {
		t.Errorf("totals %+v, want %+v", got, want)
	}
	if got.QueryTime <= 0 || got.QueryTime > got.XactTime || got.XactTime > wall {
		t.Errorf("query time %v, transaction time %v: want 0 < query ≤ transaction ≤ %v (the wall time)", got.QueryTime, got.XactTime, wall)
	}
	st := pool.Stats()
	if st.Served <= waitsBefore || got.WaitTime != st.Waited || got.WaitTime <= 0 || got.WaitTime > wall {
		t.Errorf("wait time %v after %d waits (%d before b's), want the Stats' %v, above 0 and at most %v",
			got.WaitTime, st.Served, waitsBefore, st.Waited, wall)
	}
	if c := pool.Clients(); c != (poolcore.Clients{Active: 2}) {
		t.Errorf("clients %+v, want 2 active", c)
	}
	if ow := pool.OldestWait(); ow != 0 {
		t.Errorf("oldest wait %v with nobody waiting", ow)
	}
	qh, xh, wh := pool.Histograms()
	if qh.Count() != got.Queries || xh.Count() != got.Xacts || wh.Count() != uint64(st.Served) {
		t.Errorf("histogram counts %d, %d, %d; want %d queries, %d transactions, %d waits",
			qh.Count(), xh.Count(), wh.Count(), got.Queries, got.Xacts, st.Served)
	}

	// LISTEN pins a to its server.
	a.exec("LISTEN belay_stats", 'I')
	waitFor(t, "a pinned", func() bool { return pool.Pins() == 1 })
	queries, txs = queries+1, txs+1
	st = pool.Stats() // a may have waited again: b's server may be on the other loop

	var buf bytes.Buffer
	p.Metrics().WritePrometheus(&buf)
	text := buf.String()
	labels := `{database="postgres",user="postgres"}`
	for _, line := range []string{
		"belay_pool_queries_total" + labels + " " + strconv.Itoa(queries),
		"belay_pool_transactions_total" + labels + " " + strconv.Itoa(txs),
		"belay_pool_received_bytes_total" + labels + " " + strconv.Itoa(a.sent+b.sent),
		"belay_pool_sent_bytes_total" + labels + " " + strconv.Itoa(a.received+b.received),
		"belay_pool_pinned_clients" + labels + " 1",
		`belay_pool_clients{database="postgres",user="postgres",state="active"} 2`,
		`belay_pool_clients{database="postgres",user="postgres",state="waiting"} 0`,
		"belay_pool_query_duration_seconds_count" + labels + " " + strconv.Itoa(queries),
		`belay_pool_query_duration_seconds_bucket{database="postgres",user="postgres",le="+Inf"} ` + strconv.Itoa(queries),
		"belay_pool_transaction_duration_seconds_count" + labels + " " + strconv.Itoa(txs),
		"belay_pool_wait_duration_seconds_count" + labels + " " + strconv.FormatInt(st.Served, 10),
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	for _, name := range []string{"belay_plan_cache_hits_total", "belay_plan_cache_misses_total",
		"belay_pool_query_duration_seconds_sum", "belay_pool_wait_duration_seconds_sum"} {
		if !strings.Contains(text, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	// Buckets are cumulative and end at the count.
	re := regexp.MustCompile(`(?m)^belay_pool_transaction_duration_seconds_bucket\{[^}]*le="([^"]+)"\} (\d+)$`)
	prev := uint64(0)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if n < prev {
			t.Errorf("bucket le=%s holds %d, less than the one before (%d)", m[1], n, prev)
		}
		prev = n
	}
	if prev != uint64(txs) {
		t.Errorf("last transaction bucket %d, want %d", prev, txs)
	}
	if t.Failed() {
		fmt.Println(text)
	}
}
