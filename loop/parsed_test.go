package loop

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"
)

// TestPrepareKnownWithoutServer: while another client holds the only
// server in a transaction, a PQprepare (Parse and Sync) of a statement
// that parsed before under the same settings is answered at once; one
// never parsed, or parsed only under other settings, waits for the server
// and gets Postgres's answer. The statement then runs where the client
// uses it.
func TestPrepareKnownWithoutServer(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 1, 1 })
	host, port, _ := net.SplitHostPort(p.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, _ := openRaw(t, ctx, host, port, "")
	b, bConn := openRaw(t, ctx, host, port, "")
	other, otherConn := openRaw(t, ctx, host, port, "search_path=pg_catalog")

	send := func(f *pgproto3.Frontend, msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		for _, m := range msgs {
			f.Send(m)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// until reads f's messages up to a ReadyForQuery and describes them.
	until := func(f *pgproto3.Frontend) []string {
		t.Helper()
		var got []string
		for {
			m, err := f.Receive()
			if err != nil {
				t.Fatalf("receive: %v (so far %v)", err, got)
			}
			got = append(got, describeBackend(m))
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				return got
			}
		}
	}
	// answered says whether a reply is in conn's socket after d, without
	// reading it (MSG_PEEK): the Frontend reads it later.
	answered := func(conn net.Conn, d time.Duration) bool {
		t.Helper()
		time.Sleep(d)
		rc, err := conn.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := rc.Control(func(fd uintptr) {
			var one [1]byte
			n, _, _ = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		}); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}

	const text = "SELECT $1::int + 1"
	send(a, parse("mine", text), &pgproto3.Sync{})
	if got := until(a); len(got) != 2 {
		t.Fatalf("a's prepare: %v", got)
	}
	send(a, &pgproto3.Query{String: "BEGIN"})
	until(a) // a holds the only server now

	send(b, parse("q", text), &pgproto3.Sync{})
	if !answered(bConn, time.Second) {
		t.Fatal("a PQprepare of a statement known to parse waited for the server")
	}
	if got := until(b); len(got) != 2 || got[0] != "ParseComplete" {
		t.Fatalf("b's prepare: %v", got)
	}

	// Not known under other settings (its search_path): it waits.
	send(other, parse("q", text), &pgproto3.Sync{})
	if answered(otherConn, 500*time.Millisecond) {
		t.Fatal("a PQprepare under other settings was answered without a server")
	}
	// Never parsed: it waits too, and gets Postgres's error.
	send(b, parse("bad", "SELECT * FROM no_such_table_here"), &pgproto3.Sync{})
	if answered(bConn, 500*time.Millisecond) {
		t.Fatal("a PQprepare of a statement never parsed was answered without a server")
	}
	send(a, &pgproto3.Query{String: "COMMIT"})
	until(a)
	if got := until(other); len(got) != 2 || got[0] != "ParseComplete" {
		t.Fatalf("other's prepare: %v", got)
	}
	if got := until(b); len(got) != 2 || !regexp.MustCompile(`^Error 42P01`).MatchString(got[0]) {
		t.Fatalf("b's prepare of a missing table: %v", got)
	}
	send(b, bind("q", "41"), execute(), &pgproto3.Sync{})
	if got := until(b); len(got) != 4 || got[1] != "DataRow 42" {
		t.Fatalf("b runs its statement: %v", got)
	}
}

// TestPgbenchPreparedMoreClientsThanServers: pgbench -M prepared's TPC-B
// with three times as many clients as servers. pgbench prepares each
// command with a blocking PQprepare on its first use on a connection;
// without parsed.go a thread blocked so waits for a server that its own
// clients hold mid-transaction, and the run never ends.
func TestPgbenchPreparedMoreClientsThanServers(t *testing.T) {
	pg := pgtest.Shared(t)
	pgbench := pgtest.RequireBinary(t, "pgbench")
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "DROP DATABASE IF EXISTS benchprep")
	mustExecDirect(t, pg.ConnString("postgres", "postgres"), "CREATE DATABASE benchprep")
	p := startProxy(t, pg, func(c *Config) { c.PoolSize = 4 })
	cs := p.connString("benchprep", "postgres")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", cs).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", "prepared", "-c", "12", "-j", "2", "-T", "3", cs)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pgbench -M prepared -c 12 through 4 servers did not end in 60 s (the first PQprepares wait for servers their own threads hold):\n%s", out)
	}
	if err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	n := regexp.MustCompile(`actually processed: (\d+)`).FindSubmatch(out)
	f := regexp.MustCompile(`failed transactions: (\d+)`).FindSubmatch(out)
	if n == nil || f == nil {
		t.Fatalf("no summary:\n%s", out)
	}
	if done, _ := strconv.Atoi(string(n[1])); done == 0 || string(f[1]) != "0" {
		t.Fatalf("pgbench: %s transactions, %s failed:\n%s", n[1], f[1], out)
	}
	t.Logf("%s transactions, 0 failed", n[1])
}
