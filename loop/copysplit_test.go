package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCopyAcrossShards: COPY FROM STDIN through belay into a table sharded
// over two shards puts each row on the shard its key hashes to (text and
// CSV, a column list in any order or none, integer and text keys, rows
// spanning the client's messages, a header) and answers COPY n counting
// every shard's rows; into a reference table, every row on every shard.
// A COPY that fails anywhere leaves nothing anywhere: a shard's
// constraint, a row the splitter refuses (Postgres's error and line), the
// client's CopyFail, a client gone mid-COPY. What belay does not do is
// refused with 0A000. Nothing is left prepared or open on any shard.
func TestCopyAcrossShards(t *testing.T) {
	sc, err := shard.New(2, shard.ShardedTable(shard.TableName{Name: "kc"}, "aid", shard.KeyInteger),
		shard.ShardedTable(shard.TableName{Name: "kt"}, "name", shard.KeyText), shard.ReferenceTable(shard.TableName{Name: "kref"}))
	if err != nil {
		t.Fatal(err)
	}
	ps := startPreparingShards(t, "copy", `CREATE TABLE kc (aid int8 PRIMARY KEY, v text, n int CHECK (n >= 0));
		CREATE TABLE kt (name text PRIMARY KEY, x int); CREATE TABLE kref (id int, label text)`, sc,
		func(c *Config) { c.MaxBufferedBytes = 256 << 10 }) // a shard that stops reading parks the client soon
	p, direct, ctx := ps.p, ps.direct, context.Background()
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	copyIn := func(sql, data string) (pgconn.CommandTag, error) {
		return c.PgConn().CopyFrom(ctx, strings.NewReader(data), sql)
	}
	// placed checks that each shard holds exactly the rows of table whose
	// key (column key, read as text) places them there, n in all.
	placed := func(what, table, key string, n int, place func(k string) int) {
		t.Helper()
		total := 0
		for i, d := range direct {
			rows, err := d.Query(ctx, fmt.Sprintf("SELECT %s::text FROM %s", key, table))
			if err != nil {
				t.Fatal(err)
			}
			keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if place(k) != i {
					t.Fatalf("%s: key %q is on shard %d, its hash says %d", what, k, i, place(k))
				}
			}
			total += len(keys)
		}
		if total != n {
			t.Fatalf("%s: %d rows over the shards, want %d", what, total, n)
		}
	}
	intPlace := func(k string) int {
		var v int64
		fmt.Sscan(k, &v)
		return shard.Int(v).Shard(2)
	}
	clean := func(what string) { t.Helper(); ps.noneOpen(t, what) }

	// Text, a column list, 3,000 rows (several of the client's messages
	// are split mid-row by pgconn's 64 KiB chunks).
	var b strings.Builder
	for k := 1; k <= 3000; k++ {
		fmt.Fprintf(&b, "%d\tvalue %d with some padding to make the rows longer than a few bytes each\t%d\n", k, k, k)
	}
	if tag, err := copyIn("COPY kc (aid, v, n) FROM STDIN", b.String()); err != nil || tag.String() != "COPY 3000" {
		t.Fatalf("a COPY of 3000 rows: %q, %v", tag, err)
	}
	placed("text COPY", "kc", "aid", 3000, intPlace)
	var sum int64
	if err := c.QueryRow(ctx, "SELECT sum(n) FROM kc").Scan(&sum); err != nil || sum != 3000*3001/2 {
		t.Fatalf("sum through belay: %d, %v", sum, err)
	}
	clean("text COPY")

	// CSV: a header, the key second, quoted fields holding the delimiter,
	// quotes and a newline, a quoted key, CRLF line ends.
	csv := "v,aid,n\r\n\"a, b\",3001,1\r\n\"two\nlines\",\"3002\",2\r\n\"say \"\"hi\"\"\",3003,3\r\n,3004,4\r\n"
	if tag, err := copyIn("COPY kc (v, aid, n) FROM STDIN WITH (FORMAT csv, HEADER)", csv); err != nil || tag.String() != "COPY 4" {
		t.Fatalf("a CSV COPY: %q, %v", tag, err)
	}
	var v string
	if err := c.QueryRow(ctx, "SELECT v FROM kc WHERE aid = 3002").Scan(&v); err != nil || v != "two\nlines" {
		t.Fatalf("row 3002: %q, %v", v, err)
	}
	var null bool
	if err := c.QueryRow(ctx, "SELECT v IS NULL FROM kc WHERE aid = 3004").Scan(&null); err != nil || !null {
		t.Fatalf("row 3004's empty unquoted field is NULL: %v, %v", null, err)
	}
	placed("CSV COPY", "kc", "aid", 3004, intPlace)

	// No column list: the table's columns, read from a shard's catalog.
	if tag, err := copyIn("COPY kc FROM STDIN", "3005\tfive\t5\n3006\t\\N\t6\n"); err != nil || tag.String() != "COPY 2" {
		t.Fatalf("a COPY without columns: %q, %v", tag, err)
	}
	placed("COPY without columns", "kc", "aid", 3006, intPlace)

	// A text key: each name on the shard its hash gives.
	var names strings.Builder
	for i := range 200 {
		fmt.Fprintf(&names, "%d|name-%d-é\n", i, i)
	}
	if tag, err := copyIn("COPY kt (x, name) FROM STDIN (DELIMITER '|')", names.String()); err != nil || tag.String() != "COPY 200" {
		t.Fatalf("a COPY with a text key: %q, %v", tag, err)
	}
	placed("text keys", "kt", "name", 200, func(k string) int { return shard.Text(k).Shard(2) })

	// pgx's CopyFrom: the binary format, in both protocols' connections.
	for i, conn := range []*pgx.Conn{c, connect(t, p.connString("postgres", "postgres"))} {
		var src [][]any
		for k := range 500 {
			src = append(src, []any{int64(10000 + 1000*i + k), fmt.Sprintf("binary %d", k), int32(k)})
		}
		if n, err := conn.CopyFrom(ctx, pgx.Identifier{"kc"}, []string{"aid", "v", "n"}, pgx.CopyFromRows(src)); err != nil || n != 500 {
			t.Fatalf("pgx's CopyFrom (binary), connection %d: %d, %v", i, n, err)
		}
	}
	placed("binary COPY", "kc", "aid", 4006, intPlace)
	if _, err := c.Exec(ctx, "DELETE FROM kc WHERE aid >= 10000"); err != nil {
		t.Fatal(err)
	}
	// A text key read in another client encoding than UTF8 would not be
	// the key Postgres stores: refused.
	latin := connect(t, p.connString("postgres", "postgres")+" client_encoding=LATIN1")
	var pe *pgconn.PgError
	if _, err := latin.PgConn().CopyFrom(ctx, strings.NewReader("1|caf\xe9\n"), "COPY kt (x, name) FROM STDIN (DELIMITER '|')"); !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "client_encoding LATIN1") {
		t.Fatalf("a text key's COPY in LATIN1: %v", err)
	}

	// A reference table: every row on every shard, counted once.
	if tag, err := copyIn("COPY kref (id, label) FROM STDIN (FORMAT csv)", "1,one\n2,two\n3,three\n"); err != nil || tag.String() != "COPY 3" {
		t.Fatalf("a reference table's COPY: %q, %v", tag, err)
	}
	for i, d := range direct {
		var n int
		if err := d.QueryRow(ctx, "SELECT count(*) FROM kref").Scan(&n); err != nil || n != 3 {
			t.Fatalf("kref on shard %d: %d rows, %v", i, n, err)
		}
	}
	clean("the COPYs")

	// A shard that stops reading (its backend stopped): the client is
	// parked, not buffered without bound, and goes on once it reads.
	var stopped int
	parks := p.Stats().Parks
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.PgConn().CopyFrom(ctx, r, "COPY kc (aid, v, n) FROM STDIN")
		done <- err
	}()
	pad := strings.Repeat("p", 100)
	row := func(k int) []byte { return fmt.Appendf(nil, "%d\t%s\t%d\n", k, pad, 1) }
	if _, err := w.Write(row(100000)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "shard 1's COPY backend", func() bool {
		err := direct[1].QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'BEGIN;%COPY kc%'").Scan(&stopped)
		return err == nil
	})
	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(stopped, syscall.SIGCONT)
	wrote := make(chan error, 1)
	const big = 300000 // ~16 MB for each shard: past the sockets' buffers
	go func() {
		var chunk []byte
		for k := 100001; k < 100000+big; k++ {
			chunk = append(chunk, row(k)...)
			if len(chunk) > 32<<10 {
				if _, err := w.Write(chunk); err != nil {
					wrote <- err
					return
				}
				chunk = chunk[:0]
			}
		}
		_, err := w.Write(chunk)
		wrote <- err
	}()
	eventually(t, 20*time.Second, "the client parked", func() bool { return p.Stats().Parks > parks })
	if err := syscall.Kill(stopped, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if err := <-done; err != nil {
		t.Fatalf("the COPY a shard held up: %v", err)
	}
	if _, err := c.Exec(ctx, "DELETE FROM kc WHERE aid >= 100000"); err != nil {
		t.Fatal(err)
	}
	clean("a held-up COPY")

	// Failures: nothing of the COPY anywhere, the client told why.
	before := 3006
	fails := []struct {
		name, sql, data, code, where string
	}{
		// Key 1 exists: its shard refuses the row, the other shard's rows go too.
		{"a shard's constraint", "COPY kc (aid, n) FROM STDIN", "5001\t1\n5002\t1\n1\t1\n5003\t1\n", "23505", ""},
		{"a shard's CHECK", "COPY kc (aid, n) FROM STDIN", "5001\t1\n5002\t-1\n", "23514", ""},
		{"a bad key", "COPY kc (aid, n) FROM STDIN", "5001\t1\nfive\t2\n", "22P02", `COPY kc, line 2, column aid: "five"`},
		{"missing data", "COPY kc (aid, v, n) FROM STDIN", "5001\tx\t1\n5002\tx\n", "22P04", `COPY kc, line 2: "5002	x"`},
		{"an unterminated quote", "COPY kc (aid, v) FROM STDIN (FORMAT csv)", "5001,x\n5002,\"open\n", "22P04", "COPY kc, line 3: \"5002,\"open\n\""},
	}
	for _, f := range fails {
		_, err := copyIn(f.sql, f.data)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != f.code || f.where != "" && pe.Where != f.where {
			t.Fatalf("%s: %v (where %q), want %s (where %q)", f.name, err, pe.Where, f.code, f.where)
		}
		placed(f.name, "kc", "aid", before, intPlace)
	}
	// The client's CopyFail.
	_, err = c.PgConn().CopyFrom(ctx, io.MultiReader(strings.NewReader("5001\t1\n"), errReader{}), "COPY kc (aid, n) FROM STDIN")
	if !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("the client's CopyFail: %v", err)
	}
	placed("CopyFail", "kc", "aid", before, intPlace)
	clean("the failed COPYs")

	// A client gone in the middle of its rows.
	gone := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	r, w = io.Pipe()
	go func() {
		_, err := gone.PgConn().CopyFrom(ctx, r, "COPY kc (aid, n) FROM STDIN")
		done <- err
	}()
	if _, err := w.Write([]byte("6001\t1\n6002\t1\n6003\t1\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the rows reach the shards
	gone.PgConn().Conn().Close()
	_ = w.Close()
	<-done
	clean("a client gone mid-COPY")
	placed("a client gone mid-COPY", "kc", "aid", before, intPlace)

	// A shard's backend terminated in the middle of the rows: the client
	// is told the COPY failed (08006), and the other shard keeps nothing.
	r, w = io.Pipe()
	go func() {
		_, err := c.PgConn().CopyFrom(ctx, r, "COPY kc (aid, n) FROM STDIN")
		done <- err
	}()
	for k := 6001; k <= 6100; k++ {
		if _, err := fmt.Fprintf(w, "%d\t1\n", k); err != nil {
			t.Fatal(err)
		}
	}
	var victim int
	eventually(t, 10*time.Second, "shard 1's COPY backend", func() bool {
		return direct[1].QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'BEGIN;%COPY kc%'").Scan(&victim) == nil
	})
	if _, err := direct[1].Exec(ctx, "SELECT pg_terminate_backend($1)", victim); err != nil {
		t.Fatal(err)
	}
	for k := 6101; k <= 6200; k++ { // the client goes on until it ends its rows
		if _, err := fmt.Fprintf(w, "%d\t1\n", k); err != nil {
			break
		}
	}
	_ = w.Close()
	if err := <-done; !errors.As(err, &pe) || pe.Code != "08006" {
		t.Fatalf("a COPY whose shard's backend was terminated: %v", err)
	}
	placed("a COPY whose shard's backend was terminated", "kc", "aid", before, intPlace)
	clean("a COPY whose shard's backend was terminated")

	// Refused with 0A000: nothing runs.
	for _, sql := range []string{
		"COPY kc (v, n) FROM STDIN",  // no key
		"COPY kc FROM '/tmp/kc.txt'", // a server file
		"COPY kc TO STDOUT",          // out of a sharded table
		"COPY kc (aid, n) FROM STDIN (ENCODING 'LATIN1')",
	} {
		_, err := copyIn(sql, "7001\t1\n")
		if !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	placed("the refusals", "kc", "aid", before, intPlace)
	clean("the refusals")
	// The connection still serves.
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM kc").Scan(&n); err != nil || n != before {
		t.Fatalf("after it all: %d, %v", n, err)
	}
}

// errReader fails: pgconn's CopyFrom then sends CopyFail.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("the source broke") }
