package loop

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Scripts of issue K: what real drivers do that a proxy must not change.
// Each runs directly and through belay (TestProtocolScripts), where both
// clients share one server connection.

func describeS(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'S', Name: name}
}
func describeP(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'P', Name: name}
}
func closeS(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }

var transparencyScripts = []protoScript{
	{"schema change, then re-prepare (named)", "", []protoStep{
		q("DROP TABLE IF EXISTS k1; CREATE TABLE k1 (a int); INSERT INTO k1 VALUES (1)"),
		ext(parse("s", "SELECT * FROM k1"), describeS("s"), bind("s"), execute()),
		otherExt(parse("o", "SELECT * FROM k1"), bind("o"), execute()),
		otherQ("ALTER TABLE k1 ADD COLUMN b int DEFAULT 2"),
		// the statement predates the change: 0A000 directly
		ext(bind("s"), execute()),
		// prepared again: a plan made after the change
		ext(closeS("s"), parse("s", "SELECT * FROM k1"), describeS("s"), bind("s"), execute()),
		// the other client's statement is stale too, and recovers the same way
		otherExt(bind("o"), execute()),
		otherExt(closeS("o"), parse("o", "SELECT * FROM k1"), describeS("o"), bind("o"), execute()),
		// under another name, the same text
		ext(parse("s2", "SELECT * FROM k1"), bind("s2"), execute()),
		otherQ("ALTER TABLE k1 DROP COLUMN a"),
		ext(bind("s2"), execute()),
		ext(closeS("s2"), parse("s2", "SELECT * FROM k1"), bind("s2"), execute(), bind("s"), execute()),
		q("DROP TABLE k1"),
	}},
	{"schema change, then re-prepare (unnamed)", "", []protoStep{
		q("DROP TABLE IF EXISTS k1u; CREATE TABLE k1u (a int); INSERT INTO k1u VALUES (1)"),
		ext(parse("", "SELECT * FROM k1u"), describeS(""), bind(""), execute()),
		otherQ("ALTER TABLE k1u ADD COLUMN b int DEFAULT 2"),
		// (Using the old unnamed statement here gives 0A000 directly; belay
		// prepares it again on the server the client lands on, where
		// another client's Query destroyed it: README, "Differences".)
		ext(parse("", "SELECT * FROM k1u"), describeS(""), bind(""), execute()),
		ext(bind(""), execute()),
		q("DROP TABLE k1u"),
	}},
	{"a type dropped and created again under its name", "", []protoStep{
		q("DROP TABLE IF EXISTS k2; DROP TYPE IF EXISTS k2mood; DROP TYPE IF EXISTS k2pair; " +
			"CREATE TYPE k2mood AS ENUM ('a', 'b'); CREATE TYPE k2pair AS (x int, y text)"),
		ext(parse("m", "SELECT 'a'::k2mood, ROW(1, 'one')::k2pair"), bind("m"), execute()),
		otherExt(parse("m", "SELECT 'a'::k2mood, ROW(1, 'one')::k2pair"), bind("m"), execute()),
		otherQ("DROP TYPE k2mood; CREATE TYPE k2mood AS ENUM ('a', 'b', 'c'); DROP TYPE k2pair; CREATE TYPE k2pair AS (x int, y text)"),
		ext(bind("m"), execute()),
		ext(closeS("m"), parse("m", "SELECT 'a'::k2mood, ROW(1, 'one')::k2pair"), bind("m"), execute()),
		otherExt(bind("m"), execute()),
		otherExt(closeS("m"), parse("m", "SELECT 'a'::k2mood, ROW(1, 'one')::k2pair"), bind("m"), execute()),
		q("DROP TYPE k2mood; DROP TYPE k2pair"),
	}},
	{"a pipeline with Flush after an error", "", []protoStep{
		flushed(2, parse("", "SELECT 1/0"), bind(""), execute()),
		// skipped up to the Sync: nothing comes back, nothing is created
		flushed(0, parse("", "SELECT 2"), bind(""), execute()),
		flushed(0, parse("n", "SELECT 3"), bind("n"), describeP(""), execute(), closeS("n")),
		unsynced(&pgproto3.Query{String: "SELECT 'ignored'"}),
		ext(parse("", "SELECT 4"), bind(""), execute()),
		flushed(1, bind("n"), execute()), // n never existed
		flushed(0, parse("", "SELECT 5"), bind(""), execute()),
		ext(),
		flushed(4, parse("", "SELECT 6"), bind(""), execute()),
		flushed(3, parse("n", "SELECT 7"), describeS("n")),
		flushed(3, bind("n"), execute()),
		ext(),
		// an error in the middle of a pipeline of named statements
		flushed(4, bind("n"), execute(), parse("bad", "SELEC"), bind("n"), execute()),
		flushed(0, parse("bad", "SELECT 8"), bind("bad"), execute()),
		ext(bind("n"), execute()),
		ext(bind("bad"), execute()),
		ext(bind("n"), execute()),
	}},
	{"statement_timeout from Parse to Sync", "", []protoStep{
		q("SET statement_timeout = '100ms'"),
		unsynced(parse("t", "SELECT 1")),
		after(250*time.Millisecond, ext(describeS("t"))),
		unsynced(parse("", "SELECT 2")),
		after(250*time.Millisecond, ext(bind(""), execute())),
		q("RESET statement_timeout"),
	}},
	{"pg_prepared_statements shows the client's own", "", []protoStep{
		q("PREPARE p(int) AS SELECT $1 + 1"),
		ext(parse("n", "SELECT 2")),
		otherQ("PREPARE p AS SELECT 'other'"),
		otherExt(parse("x", "SELECT 3")),
		q("SELECT name, statement, from_sql, parameter_types FROM pg_prepared_statements ORDER BY name"),
		ext(parse("", "SELECT name, from_sql FROM pg_catalog.pg_prepared_statements WHERE name <> 'zz' ORDER BY 1"), bind(""), execute()),
		q("SELECT count(*) FROM pg_prepared_statements s JOIN pg_prepared_statements t USING (name)"),
		q("DEALLOCATE ALL"),
		q("SELECT count(*) FROM pg_prepared_statements"),
	}},
	{"EXPLAIN and CREATE TABLE AS of EXECUTE", "", []protoStep{
		q("PREPARE p(int) AS SELECT $1 + 1 AS v"),
		otherQ("PREPARE p AS SELECT 'other'"),
		q("EXPLAIN (COSTS OFF) EXECUTE p(1)"),
		q("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE p(1)"),
		q("DROP TABLE IF EXISTS k6; CREATE TABLE k6 AS EXECUTE p(2)"),
		q("SELECT * FROM k6"),
		ext(parse("", "EXPLAIN (COSTS OFF) EXECUTE p(3)"), bind(""), execute()),
		q("DROP TABLE k6"),
	}},
	{"error positions in texts whose names belay maps", "", []protoStep{
		q("PREPARE p(int) AS SELECT $1 + 1 AS v"),
		q("EXECUTE p(1); SELECT nosuchcolumn FROM pg_class"),
		q("EXECUTE p('x')"),
		q("SELECT 1; EXECUTE p(1, 2)"),
		q("PREPARE löng_näme AS SELECT 1; EXECUTE löng_näme; SELECT 'é' + nosuch"),
		ext(parse("", "EXECUTE p(1) /* é */ ; SELECT x"), bind(""), execute()),
		ext(parse("", "EXPLAIN EXECUTE p(nosuch)"), bind(""), execute()),
	}},
	{"currval and lastval after an INSERT in an earlier transaction", "", []protoStep{
		q("DROP TABLE IF EXISTS k7; CREATE TABLE k7 (id serial PRIMARY KEY, v text)"),
		q("SELECT currval('k7_id_seq')"),
		q("INSERT INTO k7 (v) VALUES ('a')"),
		otherQ("SELECT 1"),
		q("SELECT currval('k7_id_seq'), lastval()"),
		ext(parse("", "SELECT currval('k7_id_seq')"), bind(""), execute()),
		q("SELECT nextval('k7_id_seq')"),
		otherQ("SELECT 1"),
		q("SELECT lastval()"),
		q("DISCARD SEQUENCES"),
		q("SELECT lastval()"),
		q("DROP TABLE k7"),
	}},
}

// TestStatementTimeoutFromParse (issue K.4): Postgres starts a statement's
// clock (statement_timeout) at the first extended-protocol message after a
// Sync, so a client that sends Parse, waits, then Describe and Sync gets
// 57014. belay sends the server each message when the client sends it, so
// that holds through belay too (the script "statement_timeout from Parse to
// Sync") - except for a Parse of a statement the server already holds,
// which belay answers itself: that Parse never reaches the server, whose
// clock starts at the next message. This test pins that documented
// difference (README, "Where belay differs from Postgres").
func TestStatementTimeoutFromParse(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops = 1, 1 })
	host, port, _ := net.SplitHostPort(p.Addr())
	steps := []protoStep{
		ext(parse("known", "SELECT 'k4'")), // now on the server
		q("SET statement_timeout = '100ms'"),
		unsynced(parse("again", "SELECT 'k4'")),
		after(250*time.Millisecond, ext(describeS("again"))),
		unsynced(parse("new", "SELECT 'k4 new'")),
		after(250*time.Millisecond, ext(describeS("new"))),
	}
	direct := runProtoScript(t, pg.Host, fmt.Sprint(pg.Port), "", steps)
	through := runProtoScript(t, host, port, "", steps)
	timeouts := func(s string) int { return strings.Count(s, "Error 57014") }
	if timeouts(direct) != 2 || timeouts(through) != 1 || !strings.Contains(through, "step 5\n  ParseComplete\n  Error 57014") {
		t.Fatalf("want 57014 twice directly and only for the new statement through belay\n--- direct\n%s\n--- through belay\n%s", direct, through)
	}
}
