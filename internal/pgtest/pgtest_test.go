package pgtest_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func selectOne(t *testing.T, connString string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, connString)
	if err != nil {
		t.Fatalf("connect %q: %v", connString, err)
	}
	defer conn.Close(ctx)
	res, err := conn.Exec(ctx, "select 1").ReadAll()
	if err != nil {
		t.Fatalf("select 1: %v", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "1" {
		t.Fatalf("select 1: got %+v", res)
	}
}

func TestSharedAndPrivate(t *testing.T) {
	shared := pgtest.Shared(t)
	selectOne(t, shared.ConnString("postgres", shared.Superuser))
	if again := pgtest.Shared(t); again != shared {
		t.Fatalf("Shared returned a second instance")
	}

	private := pgtest.New(t, pginstance.Options{})
	if private.Port == shared.Port || private.DataDir == shared.DataDir {
		t.Fatalf("private instance shares port or data dir with the shared one: %+v vs %+v", private, shared)
	}
	selectOne(t, private.ConnString("postgres", private.Superuser))

	// Stop is idempotent and the instance is gone afterwards.
	if err := private.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := private.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgconn.Connect(ctx, private.ConnString("postgres", private.Superuser)); err == nil {
		conn.Close(ctx)
		t.Fatalf("connected to a stopped instance")
	}
}

func TestSCRAM(t *testing.T) {
	inst := pgtest.New(t, pginstance.Options{
		Settings: map[string]string{"password_encryption": "scram-sha-256"},
		HBA:      []string{"host all scram_user 127.0.0.1/32 scram-sha-256"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	su, err := pgconn.Connect(ctx, inst.ConnString("postgres", inst.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "create role scram_user login password 'sekret'").ReadAll(); err != nil {
		t.Fatal(err)
	}

	_, err = pgconn.Connect(ctx, inst.ConnString("postgres", "scram_user"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" { // invalid_password
		t.Fatalf("login without password: want SQLSTATE 28P01, got %v", err)
	}
	_, err = pgconn.Connect(ctx, inst.ConnString("postgres", "scram_user")+" password=wrong")
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("login with a wrong password: want SQLSTATE 28P01, got %v", err)
	}
	selectOne(t, inst.ConnString("postgres", "scram_user")+" password=sekret")
}

// TestStopAfterCrash: Stop must not hang, nor fail, on a server that died.
func TestStopAfterCrash(t *testing.T) {
	inst := pgtest.New(t, pginstance.Options{})
	if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("postmaster did not exit after SIGKILL")
	}
	done := make(chan error, 1)
	go func() { done <- inst.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Stop after crash: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop hung on a dead server")
	}
}

func TestRequireBinary(t *testing.T) {
	for _, name := range []string{"psql", "pgbench"} {
		if p := pgtest.RequireBinary(t, name); !strings.HasSuffix(p, name) {
			t.Fatalf("RequireBinary(%q) = %q", name, p)
		}
	}
}
