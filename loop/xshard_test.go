package loop

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestTxAcrossShards: a transaction that writes on two shards commits on
// both with two-phase commit (simple protocol, and prepared statements
// going back and forth between the shards), rolls back on both, and
// commits nothing when a shard's part fails: a statement's error, or a
// deferred constraint at the PREPARE. What belay does not do is refused
// with FATAL 0A000, nothing committed: a pipeline of two shards' keys in
// one Sync, a savepoint, a COMMIT with other statements. A COMMIT in the
// extended protocol, unnamed or prepared, commits every part. Pipelined
// units of two shards are run one after the other. Nothing is left
// prepared or idle in a transaction on any shard.
func TestTxAcrossShards(t *testing.T) {
	ps := startPreparingShards(t, "xshard", `CREATE TABLE kx (aid int8 PRIMARY KEY, v int NOT NULL,
		u int UNIQUE DEFERRABLE INITIALLY DEFERRED); CREATE TABLE kref (id int)`, aidSchema(t, "kx"), nil)
	p, direct, store, ctx := ps.p, ps.direct, ps.store, context.Background()
	var keys [2][]int64
	for k := int64(1); len(keys[0]) < 10 || len(keys[1]) < 10; k++ {
		i := shard.Int(k).Shard(2)
		keys[i] = append(keys[i], k)
	}
	simple := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeSimpleProtocol)
	for i := range 2 {
		for _, k := range keys[i] {
			if _, err := simple.Exec(ctx, fmt.Sprintf("INSERT INTO kx (aid, v) VALUES (%d, 100)", k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// balance reads key k's v on its shard directly.
	balance := func(k int64) int {
		t.Helper()
		var v int
		if err := direct[shard.Int(k).Shard(2)].QueryRow(ctx, "SELECT v FROM kx WHERE aid = $1", k).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	clean := func(what string) { t.Helper(); ps.noneOpen(t, what) }
	transfer := func(c *pgx.Conn, from, to int64, amount int) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = v - $1 WHERE aid = $2", amount, from); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = v + $1 WHERE aid = $2", amount, to); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	a, b := keys[0][0], keys[1][0]
	// Committed on both shards, in each protocol; back and forth.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		c := connectMode(t, p.connString("postgres", "postgres"), mode)
		if err := transfer(c, a, b, 7); err != nil {
			t.Fatalf("mode %v: a transfer across shards: %v", mode, err)
		}
		if err := transfer(c, b, a, 2); err != nil {
			t.Fatalf("mode %v: a transfer back: %v", mode, err)
		}
		c.Close(ctx)
	}
	if va, vb := balance(a), balance(b); va != 85 || vb != 115 {
		t.Fatalf("after three transfers of 5 across shards: %d and %d, want 85 and 115", va, vb)
	}
	clean("after the commits")
	// Each decision was recorded, then forgotten once carried out.
	eventually(t, 10*time.Second, "the decisions' records to be deleted", func() bool {
		resp, err := store.Client().Get(ctx, ha.Prefix("xshard")+"2pc/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 0 && resp.Header.Revision >= 13 // six transfers, each record written and deleted
	})
	c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeCacheStatement)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int64{a, b, keys[0][1], keys[1][1], a} {
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = v + 1 WHERE aid = $1", k); err != nil {
			t.Fatalf("back and forth, key %d: %v", k, err)
		}
	}
	var v int
	if err := tx.QueryRow(ctx, "SELECT v FROM kx WHERE aid = $1", a).Scan(&v); err != nil || v != 87 {
		t.Fatalf("a read of the transaction's own write on the first shard: %d, %v", v, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if va, vb := balance(a), balance(b); va != 87 || vb != 116 {
		t.Fatalf("back and forth: %d and %d, want 87 and 116", va, vb)
	}
	// Rolled back on both.
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int64{a, b} {
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = 0 WHERE aid = $1", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if va, vb := balance(a), balance(b); va != 87 || vb != 116 {
		t.Fatalf("after a ROLLBACK: %d and %d", va, vb)
	}
	clean("after the ROLLBACK")
	// A statement fails on the second shard: COMMIT rolls back both.
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE kx SET v = 0 WHERE aid = $1", a); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if _, err := tx.Exec(ctx, "INSERT INTO kx (aid, v) VALUES ($1, 1)", b); !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("a duplicate key on the second shard: %v", err)
	}
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("COMMIT of a failed transaction across shards: %v", err)
	}
	// A deferred constraint fails at the second shard's PREPARE.
	tx, err = c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// u = 5 on a (shard 0), and on b and its neighbour (shard 1, twice).
	for _, k := range []int64{a, b, keys[1][2]} {
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = 0, u = 5 WHERE aid = $1", k); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("COMMIT with a deferred unique violation on one shard: %v", err)
	}
	if va, vb := balance(a), balance(b); va != 87 || vb != 116 {
		t.Fatalf("after failed transactions: %d and %d, want them untouched", va, vb)
	}
	clean("after the failed transactions")
	// Units pipelined for two shards run one after the other.
	if _, err := simple.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	pl := simple.PgConn().StartPipeline(ctx)
	for _, k := range []int64{a, b, keys[0][3]} {
		pl.SendQueryParams("UPDATE kx SET v = v + 10 WHERE aid = $1", [][]byte{fmt.Appendf(nil, "%d", k)}, nil, nil, nil)
		if err := pl.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		res, err := pl.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); err != nil {
				t.Fatalf("a pipelined unit: %v", err)
			}
		}
		if res, err = pl.GetResults(); err != nil {
			t.Fatal(err)
		} else if _, ok := res.(*pgconn.PipelineSync); !ok {
			t.Fatalf("a pipeline's Sync: %T", res)
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := simple.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if va, vb := balance(a), balance(b); va != 97 || vb != 126 {
		t.Fatalf("after a pipelined transaction: %d and %d, want 97 and 126", va, vb)
	}
	// A BEGIN in the extended protocol with the statement after it in one
	// unit, as JDBC sends them, runs with it on the statement's shard.
	if err := simple.QueryRow(ctx, fmt.Sprintf("SELECT v FROM kx WHERE aid = %d", a)).Scan(&v); err != nil {
		t.Fatal(err) // the client is on a's shard
	}
	pl = simple.PgConn().StartPipeline(ctx)
	pl.SendQueryParams("BEGIN", nil, nil, nil, nil)
	pl.SendQueryParams("UPDATE kx SET v = v + 1 WHERE aid = $1", [][]byte{fmt.Appendf(nil, "%d", b)}, nil, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := pl.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		if rr, ok := res.(*pgconn.ResultReader); !ok {
			t.Fatalf("a BEGIN with its statement: %T", res)
		} else if _, err := rr.Close(); err != nil {
			t.Fatalf("a BEGIN with its statement: %v", err)
		}
	}
	if res, err := pl.GetResults(); err != nil {
		t.Fatal(err)
	} else if _, ok := res.(*pgconn.PipelineSync); !ok {
		t.Fatalf("a pipeline's Sync: %T", res)
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf("UPDATE kx SET v = v + 1 WHERE aid = %d", a), "COMMIT"} {
		if _, err := simple.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if va, vb := balance(a), balance(b); va != 98 || vb != 127 {
		t.Fatalf("after a transaction begun in the extended protocol: %d and %d, want 98 and 127", va, vb)
	}
	// A COMMIT in the extended protocol, as JDBC sends it: unnamed, then
	// a named statement prepared inside the transaction and executed.
	ex := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
	for i, commit := range []func() (pgconn.CommandTag, error){
		func() (pgconn.CommandTag, error) {
			return ex.PgConn().ExecParams(ctx, "COMMIT", nil, nil, nil, nil).Close()
		},
		func() (pgconn.CommandTag, error) {
			if _, err := ex.PgConn().Prepare(ctx, "cm", "COMMIT", nil); err != nil {
				return pgconn.CommandTag{}, err
			}
			return ex.PgConn().ExecPrepared(ctx, "cm", nil, nil, nil).Close()
		},
	} {
		if _, err := ex.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []int64{a, b} {
			if _, err := ex.Exec(ctx, "UPDATE kx SET v = v + 1 WHERE aid = $1", k); err != nil {
				t.Fatal(err)
			}
		}
		if tag, err := commit(); err != nil || tag.String() != "COMMIT" || ex.PgConn().TxStatus() != 'I' {
			t.Fatalf("COMMIT %d in the extended protocol: %q, %v, status %c", i, tag, err, ex.PgConn().TxStatus())
		}
		if va, vb := balance(a), balance(b); va != 99+i || vb != 128+i {
			t.Fatalf("after COMMIT %d in the extended protocol: %d and %d, want %d and %d", i, va, vb, 99+i, 128+i)
		}
	}
	ex.Close(ctx)
	// Refused, nothing committed.
	refused := func(what string, run func(c *pgx.Conn) error) {
		t.Helper()
		c := connectMode(t, p.connString("postgres", "postgres"), pgx.QueryExecModeExec)
		defer c.Close(ctx)
		if err := run(c); !errors.As(err, &pe) || pe.Code != "0A000" || pe.Severity != "FATAL" {
			t.Fatalf("%s: %v, want FATAL 0A000", what, err)
		}
		if va, vb := balance(a), balance(b); va != 100 || vb != 129 {
			t.Fatalf("%s: %d and %d committed", what, va, vb)
		}
		clean(what)
	}
	refused("two shards' keys in one Sync", func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE kx SET v = 1 WHERE aid = $1", a); err != nil {
			return err
		}
		bt := &pgx.Batch{}
		bt.Queue("UPDATE kx SET v = 1 WHERE aid = $1", a)
		bt.Queue("UPDATE kx SET v = 1 WHERE aid = $1", b)
		return tx.SendBatch(ctx, bt).Close()
	})
	// onBoth begins a transaction on c that writes on both shards.
	onBoth := func(c *pgx.Conn) (pgx.Tx, error) {
		tx, err := c.Begin(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range []int64{a, b} {
			if _, err := tx.Exec(ctx, "UPDATE kx SET v = 1 WHERE aid = $1", k); err != nil {
				return nil, err
			}
		}
		return tx, nil
	}
	refused("a savepoint across shards", func(c *pgx.Conn) error {
		tx, err := onBoth(c)
		if err == nil {
			_, err = tx.Exec(ctx, "SAVEPOINT s")
		}
		return err
	})
	refused("a COMMIT with another statement", func(c *pgx.Conn) error {
		_, err := onBoth(c)
		if err == nil {
			_, err = c.Exec(ctx, "SELECT 1; COMMIT", pgx.QueryExecModeSimpleProtocol)
		}
		return err
	})
	// The client that used all this goes on.
	if err := c.QueryRow(ctx, "SELECT v FROM kx WHERE aid = $1", b).Scan(&v); err != nil || v != 129 {
		t.Fatalf("after: %d, %v", v, err)
	}
}
