package ha

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/belaydb/belay/twopc"
	"github.com/jackc/pgx/v5"
)

// TestOrchestratorResolves: what a coordinator left prepared on a shard is
// finished by the leading orchestrator as etcd's decision says: committed
// where Commit is recorded (in the database it was prepared in), rolled
// back, with Abort written first, where no decision came within the grace;
// another's prepared transaction is left alone; the records of the
// decisions are deleted once nothing of theirs is prepared.
func TestOrchestratorResolves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := pgtest.New(t, pginstance.Options{Settings: map[string]string{"max_prepared_transactions": "10"}})
	s, cli := newStore(t)
	if _, err := s.PutNode(ctx, "n0", NodeRecord{Shard: "0", Addr: pg.Addr()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateShard(ctx, "0", ShardRecord{Term: 1, Primary: "n0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSharding(ctx, func(*shard.Schema) (*shard.Schema, error) { return shard.New(1) }); err != nil {
		t.Fatal(err)
	}
	dialDB := func(ctx context.Context, addr, db string) (*pgx.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		return pgx.Connect(ctx, "host="+host+" port="+port+" user=postgres dbname="+db+" sslmode=disable")
	}
	admin, err := dialDB(ctx, pg.Addr(), "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE other_db"); err != nil {
		t.Fatal(err)
	}
	committed, aborted, inOther := twopc.TxID{1}, twopc.TxID{2}, twopc.TxID{3}
	prepare := func(db, gid string, v int) {
		t.Helper()
		c, err := dialDB(ctx, pg.Addr(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS r (v int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "BEGIN; INSERT INTO r VALUES ($1); PREPARE TRANSACTION '"+gid+"'", pgx.QueryExecModeSimpleProtocol, v); err != nil {
			t.Fatal(err)
		}
	}
	prepare("postgres", twopc.GID(committed, 0), 1)
	prepare("postgres", twopc.GID(aborted, 0), 2)
	prepare("postgres", "someone-else", 3)
	prepare("other_db", twopc.GID(inOther, 0), 4)
	for _, tx := range []twopc.TxID{committed, inOther} {
		if _, err := s.RecordDecision(ctx, tx, twopc.Commit, []int{0}); err != nil {
			t.Fatal(err)
		}
	}
	octx, stop := context.WithCancel(ctx)
	defer stop()
	o := NewOrchestrator(OrchOptions{Store: s, Client: cli, ID: "r", Dial: dialSuperuser, DialDB: dialDB, ResolveGrace: time.Second, ForgetAfter: 4 * time.Second})
	go func() { _ = o.Run(octx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left []string
		rows, err := admin.Query(ctx, "SELECT gid FROM pg_prepared_xacts ORDER BY gid")
		if err != nil {
			t.Fatal(err)
		}
		left, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 && left[0] == "someone-else" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still prepared after 30 s: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := admin.Exec(ctx, "ROLLBACK PREPARED 'someone-else'"); err != nil {
		t.Fatal(err)
	}
	var vs []int
	rows, err := admin.Query(ctx, "SELECT v FROM r ORDER BY v")
	if err != nil {
		t.Fatal(err)
	}
	if vs, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil || len(vs) != 1 || vs[0] != 1 {
		t.Fatalf("rows after the resolver: %v, %v (want the committed one's, 1)", vs, err)
	}
	other, err := dialDB(ctx, pg.Addr(), "other_db")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var n int
	if err := other.QueryRow(ctx, "SELECT count(*) FROM r WHERE v = 4").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the commit prepared in other_db: %d rows, %v", n, err)
	}
	if d, err := s.Decision(ctx, aborted); err != nil || d != twopc.Abort {
		t.Fatalf("the decision of the one left undecided: %v, %v", d, err)
	}
	// Once no shard holds them prepared, their records go (ForgetAfter).
	for {
		ds, err := s.Decisions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		if time.Now().After(deadline.Add(15 * time.Second)) {
			t.Fatalf("decisions still recorded: %v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
