package shard_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/planner"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5"
)

// gatherQueries are read over the whole table and merged from its parts;
// those with ORDER BY order totally (k is unique), so their rows compare
// in order.
var gatherQueries = []string{
	`SELECT count(*), count(v), sum(v), min(v), max(v), avg(v) FROM t`,
	`SELECT avg(n), avg(i8), sum(n), min(n), max(f) FROM t WHERE g < 3`,
	`SELECT avg(v) AS mean, count(*) FILTER (WHERE v > 0) AS pos FROM t`,
	`SELECT g, count(*), sum(v), avg(v), min(n), max(n) FROM t GROUP BY g`,
	`SELECT g, avg(n) FROM t GROUP BY 1 HAVING count(*) > 20 AND avg(n) >= 0`,
	`SELECT g, count(*) FROM t GROUP BY g HAVING 10 < sum(v)`,
	`SELECT count(*) FROM t HAVING count(*) > 100000`,
	`SELECT b, g, count(*) FROM t GROUP BY g, b ORDER BY g DESC, b NULLS FIRST`,
	`SELECT g % 2 AS parity, sum(v) FROM t GROUP BY g % 2 ORDER BY sum(v) DESC`,
	`SELECT sum(v) FROM t GROUP BY g ORDER BY g`,
	`SELECT g, count(*) AS c FROM t GROUP BY g ORDER BY c DESC, g LIMIT 2 OFFSET 1`,
	`SELECT g, avg(v) FROM t GROUP BY g ORDER BY avg(v), g`,
	`SELECT d, count(*) FROM t GROUP BY d ORDER BY d NULLS FIRST LIMIT 5`,
	`SELECT DISTINCT g FROM t`,
	`SELECT DISTINCT g, b FROM t ORDER BY g, b`,
	`SELECT DISTINCT n FROM t WHERE n IS NOT NULL ORDER BY n DESC LIMIT 7`,
	`SELECT k, v FROM t ORDER BY v DESC NULLS LAST, k LIMIT 10`,
	`SELECT k FROM t ORDER BY v, k OFFSET 495`,
	`SELECT * FROM t ORDER BY k DESC LIMIT 3`,
	`SELECT * FROM t ORDER BY ts, k LIMIT 4 OFFSET 2`,
	`SELECT k, s FROM t ORDER BY s COLLATE "C", k LIMIT 6`,
	`SELECT v FROM t ORDER BY k LIMIT 5`,
	`SELECT k, f FROM t WHERE f IS NOT NULL ORDER BY f, k LIMIT 5`,
	`SELECT u FROM t WHERE u IS NOT NULL ORDER BY u LIMIT 3`,
	`SELECT k FROM t ORDER BY 1 DESC LIMIT 2`,
	`SELECT k FROM t ORDER BY k LIMIT ALL OFFSET 498`,
	`SELECT count(*) FROM t WHERE k < 0`,
	`SELECT g, count(*) FROM t WHERE k < 0 GROUP BY g`,
	`SELECT max(d), min(ts) FROM t`,
}

// refusedQueries cannot be merged as PostgreSQL would compute them.
var refusedQueries = []string{
	`SELECT k, s FROM t ORDER BY s LIMIT 3`,
	`SELECT min(s) FROM t`,
	`SELECT sum(f) FROM t`,
	`SELECT avg(f) FROM t`,
	`SELECT count(DISTINCT g) FROM t`,
	`SELECT sum(v) + 1 FROM t`,
	`SELECT k, row_number() OVER (ORDER BY k) FROM t`,
	`SELECT g, count(*) FROM t GROUP BY ROLLUP (g)`,
	`SELECT DISTINCT ON (g) g, k FROM t`,
	`SELECT k FROM t UNION SELECT v FROM t`,
	`SELECT g, count(*) FROM t GROUP BY g HAVING count(*) > 1 OR g = 1`,
	`SELECT k FROM t ORDER BY k FETCH FIRST 3 ROWS WITH TIES`,
	`SELECT g AS v FROM t GROUP BY v`,
	`SELECT string_agg(s, ',') FROM t`,
}

// TestGatherMatchesPostgres: the table split in 2, 3 and 4 parts (each a
// schema of its own, as a shard), every query of gatherQueries planned by
// planner.PlanGather, its shard SQL run on each part and the parts' rows
// merged: the result is PostgreSQL's over the whole table, to the byte.
// refusedQueries are refused with 0A000, by the planner or the merge.
func TestGatherMatchesPostgres(t *testing.T) {
	pg := pgtest.Shared(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.ConnString("postgres", pg.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	const cols = `k int PRIMARY KEY, g int, v int, i8 int8, n numeric, f float8, s text, d date, ts timestamptz, b bool, u uuid`
	setup := []string{`DROP SCHEMA IF EXISTS gw CASCADE`, `CREATE SCHEMA gw`, `CREATE TABLE gw.t (` + cols + `)`}
	r := rand.New(rand.NewPCG(7, 8))
	nul := func(s string) string {
		if r.IntN(8) == 0 {
			return "NULL"
		}
		return s
	}
	var rows []string
	for k := range 500 {
		rows = append(rows, fmt.Sprintf("(%d, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s)", k, r.IntN(5),
			nul(fmt.Sprint(r.IntN(2001)-1000)), nul(fmt.Sprint(r.Int64N(1<<60))),
			nul(fmt.Sprintf("%d.%0*d", r.IntN(200)-100, 1+r.IntN(3), r.IntN(10))),
			nul(fmt.Sprintf("%g", r.NormFloat64())), nul(fmt.Sprintf("'%c%d'", 'A'+rune(r.IntN(60)), r.IntN(9))),
			nul(fmt.Sprintf("'2026-%02d-%02d'", 1+r.IntN(12), 1+r.IntN(28))),
			nul(fmt.Sprintf("'2026-03-29 %02d:%02d:00+0%d'", r.IntN(24), r.IntN(60), r.IntN(3))),
			nul(fmt.Sprint(r.IntN(2) == 0)), nul(fmt.Sprintf("'%08x-0000-4000-8000-%012x'", r.Uint32(), r.Uint64()>>16))))
	}
	setup = append(setup, `INSERT INTO gw.t VALUES `+strings.Join(rows, ","))
	for parts := 2; parts <= 4; parts++ {
		for p := range parts {
			sc := fmt.Sprintf("gw_%d_%d", parts, p)
			setup = append(setup, `DROP SCHEMA IF EXISTS `+sc+` CASCADE`, `CREATE SCHEMA `+sc,
				fmt.Sprintf(`CREATE TABLE %s.t AS SELECT * FROM gw.t WHERE k %% %d = %d`, sc, parts, p))
		}
	}
	for _, q := range setup {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	run := func(schema, q string) ([]uint32, [][][]byte, error) {
		t.Helper()
		if _, err := c.Exec(ctx, "SET search_path = "+schema); err != nil {
			t.Fatal(err)
		}
		rs, err := c.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return nil, nil, err
		}
		defer rs.Close()
		var types []uint32
		for _, fd := range rs.FieldDescriptions() {
			types = append(types, fd.DataTypeOID)
		}
		var out [][][]byte
		for rs.Next() {
			var row [][]byte
			for _, v := range rs.RawValues() {
				if v == nil {
					row = append(row, nil)
				} else {
					row = append(row, append([]byte{}, v...))
				}
			}
			out = append(out, row)
		}
		return types, out, rs.Err()
	}
	show := func(rows [][][]byte) []string {
		var s []string
		for _, r := range rows {
			var cs []string
			for _, v := range r {
				if v == nil {
					cs = append(cs, "NULL")
				} else {
					cs = append(cs, string(v))
				}
			}
			s = append(s, strings.Join(cs, "|"))
		}
		return s
	}
	merge := func(parts int, q string) ([][][]byte, error) {
		g, err := planner.PlanGather(q)
		if err != nil {
			return nil, err
		}
		var types []uint32
		var all [][][]byte
		for p := range parts {
			ty, rows, err := run(fmt.Sprintf("gw_%d_%d", parts, p), g.SQL)
			if err != nil {
				t.Fatalf("%s: part %d: shard SQL %q: %v", q, p, g.SQL, err)
			}
			types = ty
			all = append(all, rows...)
		}
		return g.Merge.Rows(types, all)
	}
	for _, q := range gatherQueries {
		_, want, err := run("gw", q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		ordered := strings.Contains(q, "ORDER BY")
		for parts := 2; parts <= 4; parts++ {
			got, err := merge(parts, q)
			if err != nil {
				t.Errorf("%s: %d parts: %v", q, parts, err)
				continue
			}
			w, g := show(want), show(got)
			if !ordered {
				slices.Sort(w)
				slices.Sort(g)
			}
			if !slices.Equal(w, g) {
				t.Errorf("%s: %d parts:\n merged     %q\n PostgreSQL %q", q, parts, g, w)
			}
		}
	}
	for _, q := range refusedQueries {
		_, err := merge(2, q)
		var se *shard.Error
		if !errors.As(err, &se) || se.Code != "0A000" {
			t.Errorf("%s: not refused with 0A000: %v", q, err)
		}
	}
}
