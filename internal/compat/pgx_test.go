package compat

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPgx runs the scenario with pgx, in-process, in every QueryExecMode.
func TestPgx(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{
		pgx.QueryExecModeCacheStatement,
		pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec,
		pgx.QueryExecModeExec,
		pgx.QueryExecModeSimpleProtocol,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			compareThroughBelay(t, "pgx "+mode.String(), func(ctx context.Context, ep endpoint, id int) (string, error) {
				return pgxScenario(ctx, ep, id, mode)
			}, nil)
		})
	}
}

// transcript collects a scenario's lines.
type transcript struct{ b strings.Builder }

func (tr *transcript) add(step string, format string, args ...any) {
	fmt.Fprintf(&tr.b, "%s: %s\n", step, fmt.Sprintf(format, args...))
}

// sqlstate is an error's SQLSTATE, or its text when it has none (which
// makes the transcript differ from the reference: it is not expected).
func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "SQLSTATE " + pe.Code
	}
	if err == nil {
		return "no error"
	}
	return "error: " + err.Error()
}

// result is "ok" or the error's SQLSTATE.
func result(err error) string {
	if err == nil {
		return "ok"
	}
	return sqlstate(err)
}

// pgxScenario is the scenario for pgx: steps (a) to (f) of the suite, with
// pgx's own server-side prepared statements (Conn.Prepare, executed by
// name, in every mode; the cache modes also prepare each parameterized
// query themselves).
func pgxScenario(ctx context.Context, ep endpoint, id int, mode pgx.QueryExecMode) (string, error) {
	var tr transcript
	cfg, err := pgx.ParseConfig(ep.connString())
	if err != nil {
		return "", err
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	tag := "zq" + strconv.Itoa(id)

	// (a) SET then use.
	for _, set := range []string{
		"SET application_name = 'app_" + tag + "'",
		"SET myapp.tenant = 'tenant_" + tag + "'",
		"SET search_path = sp_" + tag + ", public",
	} {
		_, err := conn.Exec(ctx, set)
		tr.add("a.set", "%s", result(err))
	}
	for _, show := range []string{"application_name", "myapp.tenant", "search_path"} {
		var v string
		err := conn.QueryRow(ctx, "SHOW "+show).Scan(&v)
		tr.add("a.show "+show, "%s %s", v, result(err))
	}
	for i := 1; i <= 20; i++ {
		var app, tenant, sp string
		q := "SELECT current_setting('application_name'), current_setting($1), current_setting('search_path')"
		if i%2 == 0 {
			// In a transaction of its own.
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, q, "myapp.tenant").Scan(&app, &tenant, &sp)
			})
		} else {
			err = conn.QueryRow(ctx, q, "myapp.tenant").Scan(&app, &tenant, &sp)
		}
		tr.add("a.read "+strconv.Itoa(i), "%s %s %s %s", app, tenant, sp, result(err))
	}

	// (b) Driver-level prepared statements across transactions, then SQL-level.
	_, err = conn.Prepare(ctx, "q1", "SELECT $1::int + 1000, $2::text")
	tr.add("b.prepare q1", "%s", result(err))
	for i := 1; i <= 30; i++ {
		var n int
		var s string
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "q1", i, "v"+strconv.Itoa(i)).Scan(&n, &s)
		})
		tr.add("b.q1 "+strconv.Itoa(i), "%d %s %s", n, s, result(err))
	}
	for i := 1; i <= 5; i++ {
		var n int
		err = conn.QueryRow(ctx, "SELECT $1::int * 3", i).Scan(&n)
		tr.add("b.unnamed "+strconv.Itoa(i), "%d %s", n, result(err))
	}
	tr.add("b.deallocate q1", "%s", result(conn.Deallocate(ctx, "q1")))
	for _, q := range []string{
		"PREPARE p(int) AS SELECT $1 * 2", "EXECUTE p(21)", "DEALLOCATE p",
		"PREPARE p(int) AS SELECT $1 * 3", "EXECUTE p(21)", "DEALLOCATE p",
	} {
		if strings.HasPrefix(q, "EXECUTE") {
			var n int
			err := conn.QueryRow(ctx, q).Scan(&n)
			tr.add("b."+q, "%d %s", n, result(err))
			continue
		}
		ct, err := conn.Exec(ctx, q)
		tr.add("b."+q, "%s %s", ct, result(err))
	}

	// (c) Temp table across transactions.
	ct, err := conn.Exec(ctx, "CREATE TEMP TABLE tmp_items (n int, s text)")
	tr.add("c.create", "%s %s", ct, result(err))
	for i := 1; i <= 3; i++ {
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO tmp_items SELECT g, 'item ' || g FROM generate_series($1::int, $2::int) g", i*10-9, i*10)
			return err
		})
		tr.add("c.insert "+strconv.Itoa(i), "%s", result(err))
		var n, sum int
		err = conn.QueryRow(ctx, "SELECT count(*), sum(n) FROM tmp_items").Scan(&n, &sum)
		tr.add("c.select "+strconv.Itoa(i), "%d %d %s", n, sum, result(err))
	}
	ct, err = conn.Exec(ctx, "DROP TABLE tmp_items")
	tr.add("c.drop", "%s %s", ct, result(err))

	// (d) LISTEN/NOTIFY on this one connection.
	ch := "ch_" + tag
	_, err = conn.Exec(ctx, "LISTEN "+ch)
	tr.add("d.listen", "%s", result(err))
	_, err = conn.Exec(ctx, "NOTIFY "+ch+", 'hello'")
	tr.add("d.notify", "%s", result(err))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err != nil {
		tr.add("d.receive", "%s", result(err))
	} else {
		tr.add("d.receive", "%s %s", n.Channel, n.Payload)
	}
	_, err = conn.Exec(ctx, "UNLISTEN *")
	tr.add("d.unlisten", "%s", result(err))

	// (e) Errors.
	tx, err := conn.Begin(ctx)
	tr.add("e.begin", "%s", result(err))
	if err == nil {
		var x int
		err = tx.QueryRow(ctx, "SELECT 1 / 0").Scan(&x)
		tr.add("e.divide by zero", "%s", sqlstate(err))
		tr.add("e.rollback", "%s", result(tx.Rollback(ctx)))
	}
	var one int
	err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
	tr.add("e.after rollback", "%d %s", one, result(err))
	_, err = conn.Prepare(ctx, "bad", "SELEC 1")
	tr.add("e.prepare syntax error", "%s", sqlstate(err))
	_, err = conn.Exec(ctx, "EXECUTE nope")
	tr.add("e.execute unknown", "%s", sqlstate(err))
	err = conn.QueryRow(ctx, "SELECT 2").Scan(&one)
	tr.add("e.after errors", "%d %s", one, result(err))

	// (f) COPY both ways.
	_, err = conn.Exec(ctx, "CREATE TEMP TABLE copy_items (n int, s text)")
	tr.add("f.create", "%s", result(err))
	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{i + 1, "row " + strconv.Itoa(i+1)}
	}
	cn, err := conn.CopyFrom(ctx, pgx.Identifier{"copy_items"}, []string{"n", "s"}, pgx.CopyFromRows(rows))
	tr.add("f.copy in (binary)", "%d %s", cn, result(err))
	var in strings.Builder
	for i := 1001; i <= 2000; i++ {
		fmt.Fprintf(&in, "%d\trow %d\n", i, i)
	}
	ct, err = conn.PgConn().CopyFrom(ctx, strings.NewReader(in.String()), "COPY copy_items FROM STDIN")
	tr.add("f.copy in (text)", "%s %s", ct, result(err))
	var out bytes.Buffer
	ct, err = conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM copy_items ORDER BY n) TO STDOUT")
	sumMD5 := md5.Sum(out.Bytes())
	lines, sum := 0, 0
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		lines++
		f, _, _ := strings.Cut(sc.Text(), "\t")
		v, _ := strconv.Atoi(f)
		sum += v
	}
	tr.add("f.copy out", "%s %s: %d lines, sum %d, md5 %x", ct, result(err), lines, sum, sumMD5)
	_, err = conn.Exec(ctx, "DROP TABLE copy_items")
	tr.add("f.drop", "%s", result(err))
	tr.add("done", "%s", mode)
	return tr.b.String(), nil
}
