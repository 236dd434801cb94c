package loop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestStatementsForShardsInTx: inside a transaction, statements for
// several shards run on the transaction's parts (a new part begun where it
// had none): an UPDATE of every shard's rows, a read of every shard that
// sees the transaction's own writes, DDL, TRUNCATE, a COPY split by key,
// an INSERT whose rows span the shards. The COMMIT commits every part by
// two-phase commit, the ROLLBACK rolls every part back; a shard's error
// fails the transaction (25P02 until ROLLBACK) and nothing of it stays.
// Nothing is left prepared or idle in a transaction.
func TestStatementsForShardsInTx(t *testing.T) {
	ps := startPreparingShards(t, "txspread", `CREATE TABLE kx (aid int8 PRIMARY KEY, n int NOT NULL CHECK (n >= 0)); CREATE TABLE kref (id int)`,
		aidSchema(t, "kx"), nil)
	p, direct, ctx := ps.p, ps.direct, context.Background()
	var keys [2][]int64
	for k := int64(1); len(keys[0]) < 5 || len(keys[1]) < 5; k++ {
		if i := shard.Int(k).Shard(2); len(keys[i]) < 5 {
			keys[i] = append(keys[i], k)
		}
	}
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	exec := func(sql string) pgconn.CommandTag {
		t.Helper()
		tag, err := c.Exec(ctx, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return tag
	}
	failsWith := func(sql, code string) {
		t.Helper()
		var pe *pgconn.PgError
		if _, err := c.Exec(ctx, sql); !errors.As(err, &pe) || pe.Code != code || pe.Severity != "ERROR" {
			t.Fatalf("%s: %v, want ERROR %s", sql, err, code)
		}
	}
	// onShards is what sql answers on each shard directly (an int).
	onShards := func(sql string) [2]int {
		t.Helper()
		var n [2]int
		for i, d := range direct {
			if err := d.QueryRow(ctx, sql).Scan(&n[i]); err != nil {
				t.Fatalf("%s on shard %d: %v", sql, i, err)
			}
		}
		return n
	}
	clean := func(what string) { t.Helper(); ps.noneOpen(t, what) }
	var values []string
	for i := range 2 {
		for _, k := range keys[i] {
			values = append(values, fmt.Sprintf("(%d, 10)", k))
		}
	}
	// An INSERT whose rows span the shards, in a transaction begun by belay.
	exec("BEGIN")
	if tag := exec("INSERT INTO kx (aid, n) VALUES " + strings.Join(values, ", ")); tag.String() != "INSERT 0 10" {
		t.Fatalf("a split INSERT in a transaction: %q", tag)
	}
	// Its own writes, read back from every shard before the COMMIT.
	var sum int
	if err := c.QueryRow(ctx, "SELECT sum(n) FROM kx").Scan(&sum); err != nil || sum != 100 {
		t.Fatalf("a read of every shard in the transaction: %d, %v", sum, err)
	}
	if n := onShards("SELECT count(*)::int FROM kx"); n != [2]int{} {
		t.Fatalf("rows seen outside the transaction before its COMMIT: %v", n)
	}
	exec("COMMIT")
	if n := onShards("SELECT count(*)::int FROM kx"); n != [2]int{5, 5} {
		t.Fatalf("rows by shard after the COMMIT: %v", n)
	}
	clean("a split INSERT committed")

	// A keyed write first (the transaction on one shard), then an UPDATE
	// of every shard's rows and a write to a reference table, then the
	// other shard by key; ROLLBACK undoes it all.
	exec("BEGIN")
	exec(fmt.Sprintf("UPDATE kx SET n = n + 100 WHERE aid = %d", keys[1][0]))
	if tag := exec("UPDATE kx SET n = n + 1"); tag.String() != "UPDATE 10" {
		t.Fatalf("an UPDATE of every shard in a transaction: %q", tag)
	}
	exec("INSERT INTO kref VALUES (1)")
	if got, err := pgx.CollectRows(must(c.Query(ctx, "UPDATE kx SET n = n RETURNING aid")), pgx.RowTo[int64]); err != nil || len(got) != 10 {
		t.Fatalf("an UPDATE of every shard with RETURNING in the transaction: %v, %v", got, err)
	}
	exec(fmt.Sprintf("UPDATE kx SET n = n + 1000 WHERE aid = %d", keys[0][0]))
	if err := c.QueryRow(ctx, "SELECT sum(n) FROM kx").Scan(&sum); err != nil || sum != 100+10+100+1000 {
		t.Fatalf("the transaction's own sum: %d, %v", sum, err)
	}
	if got, err := pgx.CollectRows(must(c.Query(ctx, "SELECT aid FROM kx WHERE n > 100")), pgx.RowTo[int64]); err != nil || len(got) != 2 {
		t.Fatalf("a read of every shard's rows in the transaction: %v, %v", got, err)
	}
	exec("ROLLBACK")
	if n := onShards("SELECT sum(n)::int FROM kx"); n != [2]int{50, 50} {
		t.Fatalf("after a ROLLBACK, sums by shard: %v", n)
	}
	if n := onShards("SELECT count(*)::int FROM kref"); n != [2]int{} {
		t.Fatalf("after a ROLLBACK, kref: %v", n)
	}
	clean("a ROLLBACK")

	// pgbench -i's way: TRUNCATE and COPY in one transaction.
	exec("BEGIN")
	exec("TRUNCATE kx, kref")
	var rows strings.Builder
	for k := 1; k <= 200; k++ {
		fmt.Fprintf(&rows, "%d\t%d\n", k, k)
	}
	if tag, err := c.PgConn().CopyFrom(ctx, strings.NewReader(rows.String()), "COPY kx (aid, n) FROM STDIN"); err != nil || tag.String() != "COPY 200" {
		t.Fatalf("a COPY in a transaction: %q, %v", tag, err)
	}
	if tag, err := c.PgConn().CopyFrom(ctx, strings.NewReader("1\n2\n"), "COPY kref FROM STDIN"); err != nil || tag.String() != "COPY 2" {
		t.Fatalf("a reference table's COPY in a transaction: %q, %v", tag, err)
	}
	if err := c.QueryRow(ctx, "SELECT sum(n) FROM kx").Scan(&sum); err != nil || sum != 200*201/2 {
		t.Fatalf("the COPY's rows read in the transaction: %d, %v", sum, err)
	}
	exec("COMMIT")
	if n := onShards("SELECT count(*)::int FROM kx"); n[0]+n[1] != 200 || n[0] == 0 || n[1] == 0 {
		t.Fatalf("the COPY's rows by shard: %v", n)
	}
	if n := onShards("SELECT count(*)::int FROM kref"); n != [2]int{2, 2} {
		t.Fatalf("kref by shard: %v", n)
	}
	clean("TRUNCATE and COPY committed")

	// The same through the extended protocol, with parameters (pgx's
	// default mode): an UPDATE of every shard, a merged read, a split
	// INSERT, committed.
	ext := connect(t, p.connString("postgres", "postgres"))
	tx, err := ext.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, fmt.Sprintf("UPDATE kx SET n = n + 1 WHERE aid = %d", keys[0][0])); err != nil || tag.String() != "UPDATE 1" {
		t.Fatalf("a keyed UPDATE in an extended transaction: %q, %v", tag, err)
	}
	if tag, err := tx.Exec(ctx, "UPDATE kx SET n = n + $1 WHERE n >= $2", 2, 0); err != nil || tag.String() != "UPDATE 200" {
		t.Fatalf("an UPDATE of every shard with parameters in a transaction: %q, %v", tag, err)
	}
	if err := tx.QueryRow(ctx, "SELECT sum(n) FROM kx WHERE n > $1", 0).Scan(&sum); err != nil || sum != 200*201/2+1+400 {
		t.Fatalf("a merged read with parameters in a transaction: %d, %v", sum, err)
	}
	if tag, err := tx.Exec(ctx, "INSERT INTO kx (aid, n) VALUES ($1, 1), ($2, 1)", 100000+keys[0][0], 100000+keys[1][0]); err != nil || tag.String() != "INSERT 0 2" {
		t.Fatalf("a split INSERT with parameters in a transaction: %q, %v", tag, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n := onShards("SELECT sum(n)::int FROM kx"); n[0]+n[1] != 200*201/2+1+400+2 {
		t.Fatalf("after the extended transaction: %v", n)
	}
	if _, err := c.Exec(ctx, "DELETE FROM kx WHERE aid > 100000"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "UPDATE kx SET n = aid"); err != nil {
		t.Fatal(err)
	}
	clean("an extended transaction")

	// DDL in a transaction, rolled back on every shard.
	exec("BEGIN")
	exec("CREATE TABLE kdraft (id int)")
	var seen int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'kdraft'").Scan(&seen); err != nil || seen != 1 {
		t.Fatalf("the table created in the transaction, seen in it: %d, %v", seen, err)
	}
	exec("ROLLBACK")
	if n := onShards("SELECT count(*)::int FROM pg_tables WHERE tablename = 'kdraft'"); n != [2]int{} {
		t.Fatalf("a table created in a rolled back transaction: %v", n)
	}

	// A shard's error fails the transaction: 25P02 until ROLLBACK,
	// nothing of it stays.
	exec("BEGIN")
	exec(fmt.Sprintf("UPDATE kx SET n = 0 WHERE aid = %d", keys[0][1]))
	failsWith(fmt.Sprintf("UPDATE kx SET n = n - %d", 150), "23514") // a CHECK on some rows of both shards
	failsWith(fmt.Sprintf("SELECT n FROM kx WHERE aid = %d", keys[1][1]), "25P02")
	exec("ROLLBACK")
	if n := onShards("SELECT sum(n)::int FROM kx"); n[0]+n[1] != 200*201/2 {
		t.Fatalf("after a failed transaction: %v", n)
	}
	// VACUUM in a transaction: PostgreSQL's 25001, the transaction failed.
	exec("BEGIN")
	failsWith("VACUUM kx", "25001")
	failsWith("SELECT 1", "25P02")
	exec("ROLLBACK")
	// A COPY that fails fails the transaction too.
	exec("BEGIN")
	exec("DELETE FROM kx WHERE aid > 100")
	if _, err := c.PgConn().CopyFrom(ctx, strings.NewReader("1000\t1\nnot a key\t2\n"), "COPY kx (aid, n) FROM STDIN"); err == nil {
		t.Fatal("a COPY of a bad row in a transaction succeeded")
	}
	failsWith("SELECT count(*) FROM kx", "25P02")
	exec("ROLLBACK")
	if n := onShards("SELECT count(*)::int FROM kx"); n[0]+n[1] != 200 {
		t.Fatalf("after a failed COPY in a transaction: %v", n)
	}
	clean("the failed transactions")
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM kx").Scan(&n); err != nil || n != 200 {
		t.Fatalf("after it all: %d, %v", n, err)
	}

	// Concurrent transactions writing the same reference rows on every
	// shard (pgbench's TPC-B does, to its tellers and branches): each
	// write takes its locks shard after shard, so none waits for another
	// that waits for it on another shard. (Run on every shard at once,
	// they deadlocked across the shards, which no shard detects.)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			w, err := pgx.Connect(wctx, p.connString("postgres", "postgres"))
			if err != nil {
				errs <- err
				return
			}
			defer w.Close(context.Background())
			for range 25 {
				tx, err := w.Begin(wctx)
				if err == nil {
					_, err = tx.Exec(wctx, "UPDATE kref SET id = id + 1")
				}
				if err == nil {
					_, err = tx.Exec(wctx, fmt.Sprintf("UPDATE kx SET n = n WHERE aid = %d", keys[0][0]))
				}
				if err == nil {
					_, err = tx.Exec(wctx, "UPDATE kref SET id = id - 1")
				}
				if err == nil {
					err = tx.Commit(wctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent writes of a reference table in transactions: %v", err)
		}
	}
	if n := onShards("SELECT sum(id)::int FROM kref"); n != [2]int{3, 3} {
		t.Fatalf("kref after the concurrent transactions: %v", n)
	}
	clean("concurrent reference writes")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
