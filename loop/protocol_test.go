package loop

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// A protocol script is run twice, against Postgres directly and through
// belay, and the two transcripts must match (DESIGN.md, convention 4).
// Between its steps another client runs its own steps: through a belay with
// one event loop and one server connection, it takes the very server the
// first client used, with its own statements of the same names, so
// everything the first client keeps must follow it.
type protoStep struct {
	other bool // run by the other client
	msgs  []pgproto3.FrontendMessage
	// expect is how many messages a step that ends without a Sync or a
	// Query reads (after a Flush; 0 for none); a step with either reads
	// through their ReadyForQuery; -1 reads nothing (a Query the server
	// ignores).
	expect int
	sleep  time.Duration // before the step's messages are sent
}

func q(sql string) protoStep {
	return protoStep{msgs: []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}}
}
func otherQ(sql string) protoStep {
	s := q(sql)
	s.other = true
	return s
}
func ext(msgs ...pgproto3.FrontendMessage) protoStep {
	return protoStep{msgs: append(msgs, &pgproto3.Sync{})}
}
func otherExt(msgs ...pgproto3.FrontendMessage) protoStep {
	s := ext(msgs...)
	s.other = true
	return s
}

// flushed is a step of extended-protocol messages that ends in a Flush and
// reads the n messages the server then owes.
func flushed(n int, msgs ...pgproto3.FrontendMessage) protoStep {
	return protoStep{msgs: append(msgs, &pgproto3.Flush{}), expect: n}
}

// unsynced sends msgs with neither Sync nor Flush and reads nothing.
func unsynced(msgs ...pgproto3.FrontendMessage) protoStep { return protoStep{msgs: msgs, expect: -1} }

// after is st, sent once d has passed.
func after(d time.Duration, st protoStep) protoStep {
	st.sleep = d
	return st
}

func parse(name, sql string, oids ...uint32) *pgproto3.Parse {
	return &pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: oids}
}
func bind(stmt string, args ...string) *pgproto3.Bind {
	b := &pgproto3.Bind{PreparedStatement: stmt}
	for _, a := range args {
		b.Parameters = append(b.Parameters, []byte(a))
	}
	return b
}
func execute() *pgproto3.Execute { return &pgproto3.Execute{} }

// protoScript is a named script of steps.
type protoScript struct {
	name  string
	conn  string // connection parameters of the first client beyond user and dbname
	steps []protoStep
}

var protoScripts = []protoScript{
	{"named statements follow the client", "", []protoStep{
		ext(parse("s1", "SELECT $1::int + 1"), &pgproto3.Describe{ObjectType: 'S', Name: "s1"}),
		otherExt(parse("s1", "SELECT 'other'"), bind("s1"), execute()),
		ext(bind("s1", "41"), execute()),
		otherExt(bind("s1"), execute()),
		ext(bind("s1", "1"), execute(), bind("s1", "2"), execute()),
		// a name in use: 42P05 with the client's name; the Bind is skipped
		ext(parse("s1", "SELECT 2"), bind("s1", "1"), execute()),
		ext(&pgproto3.Close{ObjectType: 'S', Name: "s1"}),
		ext(bind("s1", "1"), execute()),
		// an error in Parse surfaces there, and the name never exists
		ext(parse("s2", "SELEC 1"), bind("s2"), execute()),
		ext(bind("s2"), execute()),
		// closing what does not exist is no error
		ext(&pgproto3.Close{ObjectType: 'S', Name: "nope"}),
		// the same text twice under two names, and a describe of each
		ext(parse("a", "SELECT 7"), parse("b", "SELECT 7"), &pgproto3.Describe{ObjectType: 'S', Name: "b"}),
		otherExt(parse("a", "SELECT 7")),
		ext(bind("a"), execute(), bind("b"), execute()),
	}},
	{"unnamed statement across batches", "", []protoStep{
		ext(parse("", "SELECT $1::text || 'x'"), &pgproto3.Describe{ObjectType: 'S'}),
		otherExt(parse("", "SELECT 'other'"), bind(""), execute()),
		ext(bind("", "a"), execute()),
		otherExt(bind(""), execute()),
		q("SELECT 1"), // destroys the unnamed statement
		ext(bind("", "a"), execute()),
	}},
	{"pipelined batches and a failing one between", "", []protoStep{
		{msgs: []pgproto3.FrontendMessage{parse("p", "SELECT $1::int * 2"), bind("p", "3"), execute(), &pgproto3.Sync{},
			bind("p", "x"), execute(), &pgproto3.Sync{}, bind("p", "5"), execute(), &pgproto3.Sync{}}},
		otherExt(parse("p", "SELECT 1")),
		ext(bind("p", "6"), execute()),
	}},
	{"SQL PREPARE, EXECUTE and DEALLOCATE", "", []protoStep{
		q("PREPARE p(int) AS SELECT $1 * 2"),
		otherQ("PREPARE p AS SELECT 'other'"),
		q("EXECUTE p(21)"),
		otherQ("EXECUTE p"),
		q("PREPARE p AS SELECT 1"), // 42P05 with the client's name
		q("EXECUTE nope"),
		q("PREPARE q AS SELECT 5; EXECUTE q; DEALLOCATE q; EXECUTE q"),
		q("EXECUTE q"),
		q(`PREPARE "Mixed Case" AS SELECT 'mc'; EXECUTE "Mixed Case"`),
		otherQ("DEALLOCATE ALL"),
		q(`EXECUTE "Mixed Case"; EXECUTE p(4)`),
		q("DEALLOCATE p"),
		q("EXECUTE p(1)"),
		q("BEGIN; SELECT 1/0; EXECUTE p(1)"),
		q("EXECUTE p(1)"),
		q("ROLLBACK"),
		q("PREPARE r AS SELECT 7; SELECT 1/0; PREPARE s AS SELECT 8"),
		q("EXECUTE r"),
		q("EXECUTE s"),
	}},
	{"SQL PREPARE through the extended protocol (psycopg 3, JDBC)", "", []protoStep{
		ext(parse("", "PREPARE p(int) AS SELECT $1 * 2"), bind(""), execute()),
		otherQ("PREPARE p AS SELECT 'other'"),
		ext(parse("", "EXECUTE p(21)"), bind(""), &pgproto3.Describe{ObjectType: 'P'}, execute()),
		otherExt(parse("", "EXECUTE p"), bind(""), execute()),
		q("EXECUTE p(4)"),
		ext(parse("", "PREPARE p AS SELECT 1"), bind(""), execute()),
		ext(parse("dp", "DEALLOCATE p")),
		otherQ("SELECT 1"),
		ext(bind("dp"), execute()),
		q("EXECUTE p(1)"),
		ext(parse("", "PREPARE p AS SELECT 5"), bind(""), execute(), parse("", "EXECUTE p"), bind(""), execute()),
		otherQ("EXECUTE p"),
		ext(parse("", "DEALLOCATE ALL"), bind(""), execute()),
		q("EXECUTE p"),
		q("PREPARE q AS SELECT 6"),
		ext(parse("", "DISCARD ALL"), bind(""), execute()),
		q("EXECUTE q"),
		otherQ("EXECUTE p"),
	}},
	{"DISCARD ALL and DEALLOCATE ALL are the client's own", "", []protoStep{
		q("PREPARE p AS SELECT 1"),
		ext(parse("n", "SELECT 2")),
		otherQ("PREPARE p AS SELECT 'other'"),
		otherExt(parse("n", "SELECT 'other n'")),
		q("DEALLOCATE ALL"),
		otherQ("EXECUTE p"),
		otherExt(bind("n"), execute()),
		q("EXECUTE p"),
		ext(bind("n"), execute()),
		q("SET work_mem = '3MB'; PREPARE p AS SELECT 3"),
		q("DISCARD ALL"),
		q("SHOW work_mem"),
		q("EXECUTE p"),
		otherQ("EXECUTE p"),
	}},
	{"more statements than a server keeps", "", []protoStep{
		ext(parse("e1", "SELECT 1"), parse("e2", "SELECT 2"), parse("e3", "SELECT 3"), parse("e4", "SELECT 4"), parse("e5", "SELECT 5")),
		ext(bind("e1"), execute(), bind("e2"), execute(), bind("e3"), execute(), bind("e4"), execute(), bind("e5"), execute()),
		otherExt(parse("x", "SELECT 'x'"), bind("x"), execute()),
		ext(bind("e5"), execute(), bind("e1"), execute(), bind("e4"), execute(), bind("e2"), execute(), bind("e3"), execute()),
		ext(&pgproto3.Describe{ObjectType: 'S', Name: "e1"}, bind("e1"), execute()),
	}},
	{"startup parameters, reset", "application_name=app options='-c DateStyle=German -c search_path=a,b'", []protoStep{
		q("SELECT current_setting('application_name'), current_setting('DateStyle'), current_setting('search_path')"),
		q("SET application_name = 'changed'; SET DateStyle = 'ISO'"),
		otherQ("SELECT 1"),
		q("RESET application_name"),
		otherQ("SELECT 1"),
		q("SELECT current_setting('application_name'), current_setting('DateStyle')"),
		q("RESET ALL"),
		otherQ("SELECT 1"),
		q("SELECT current_setting('application_name'), current_setting('DateStyle'), current_setting('search_path')"),
		q("RESET work_mem"), // a reset that touches no startup parameter
		q("SET application_name = 'x'; DISCARD ALL"),
		q("DISCARD ALL"),
		q("SHOW application_name"),
	}},
	{"settings follow the client", "", []protoStep{
		q("SET work_mem = '1234kB'"),
		otherQ("SET work_mem = '5MB'"),
		q("SHOW work_mem"),
		q("BEGIN; SET work_mem = '3MB'; ROLLBACK"),
		otherQ("SHOW work_mem"),
		q("SHOW work_mem"),
		q("SELECT set_config('work_mem', '2MB', false)"),
		otherQ("SELECT 1"),
		q("SHOW work_mem"),
		q("RESET work_mem"),
		otherQ("SET work_mem = '6MB'"),
		q("SHOW work_mem"),
		// reported settings: the client sees ParameterStatus as from Postgres
		q("SET application_name = 'mine'; SET DateStyle = 'German'"),
		otherQ("SET application_name = 'other'; SET DateStyle = 'SQL, DMY'"),
		q("SELECT current_setting('application_name'), current_setting('DateStyle'), '2024-01-31'::date"),
		q("RESET application_name"),
		otherQ("SELECT 1"),
		q("SELECT current_setting('application_name'), current_setting('DateStyle')"),
		q("RESET ALL"),
		q("SHOW DateStyle"),
	}},
}

func TestProtocolScripts(t *testing.T) {
	pg := pgtest.Shared(t)
	p := startProxy(t, pg, func(c *Config) { c.PoolSize, c.EventLoops, c.MaxPreparedStatements = 1, 1, 3 })
	host, port, _ := net.SplitHostPort(p.Addr())
	for _, sc := range append(protoScripts, transparencyScripts...) {
		t.Run(sc.name, func(t *testing.T) {
			direct := runProtoScript(t, pg.Host, fmt.Sprint(pg.Port), sc.conn, sc.steps)
			through := runProtoScript(t, host, port, sc.conn, sc.steps)
			if direct != through {
				t.Fatalf("transcripts differ\n--- direct\n%s\n--- through belay\n%s", direct, through)
			}
			t.Logf("transcript:\n%s", direct)
		})
	}
	if st := p.Stats(); st.Pinned != 0 {
		t.Fatalf("%d clients left pinned", st.Pinned)
	}
}

// runProtoScript runs steps on two fresh connections and returns the
// transcript of both clients.
func runProtoScript(t *testing.T, host, port, conn string, steps []protoStep) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	me, _ := openRaw(t, ctx, host, port, conn)
	other, _ := openRaw(t, ctx, host, port, "")
	var out strings.Builder
	for i, st := range steps {
		f, who := me, ""
		if st.other {
			f, who = other, "other: "
		}
		time.Sleep(st.sleep)
		syncs := 0
		for _, m := range st.msgs {
			f.Send(m)
			switch m.(type) {
			case *pgproto3.Sync, *pgproto3.Query:
				syncs++
			}
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "step %d\n", i)
		expect := st.expect
		if expect < 0 {
			syncs = 0
		}
		for syncs > 0 || expect > 0 {
			m, err := f.Receive()
			if err != nil {
				t.Fatalf("%s:%s: step %d: %v\n%s", host, port, i, err, out.String())
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				syncs--
			}
			if syncs == 0 {
				expect--
			}
			out.WriteString("  " + who + describeBackend(m) + "\n")
		}
	}
	return out.String()
}

// openRaw logs in with pgconn and hands over the connection as a pgproto3
// Frontend (closed when the test ends, or earlier by closing the net.Conn).
func openRaw(t *testing.T, ctx context.Context, host, port, params string) (*pgproto3.Frontend, net.Conn) {
	t.Helper()
	c, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable %s", host, port, params))
	if err != nil {
		t.Fatal(err)
	}
	hj, err := c.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hj.Conn.Close() })
	_ = hj.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	return hj.Frontend, hj.Conn
}

var digits = regexp.MustCompile(`[0-9]+`)

func describeBackend(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		if m.Code == "XX000" { // OIDs differ from run to run
			m.Message = digits.ReplaceAllString(m.Message, "N")
		}
		if m.Position != 0 {
			return fmt.Sprintf("Error %s %s (position %d)", m.Code, m.Message, m.Position)
		}
		return fmt.Sprintf("Error %s %s", m.Code, m.Message)
	case *pgproto3.DataRow:
		var v []string
		for _, c := range m.Values {
			v = append(v, string(c))
		}
		return "DataRow " + strings.Join(v, ",")
	case *pgproto3.CommandComplete:
		return "CommandComplete " + string(m.CommandTag)
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery " + string(m.TxStatus)
	case *pgproto3.RowDescription:
		var v []string
		for _, f := range m.Fields {
			v = append(v, fmt.Sprintf("%s:%d", f.Name, f.DataTypeOID))
		}
		return "RowDescription " + strings.Join(v, ",")
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription %v", m.ParameterOIDs)
	case *pgproto3.ParameterStatus:
		return "ParameterStatus " + m.Name + "=" + m.Value
	}
	return fmt.Sprintf("%T", m)[len("*pgproto3."):]
}
