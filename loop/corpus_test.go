package loop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belaydb/belay/ha"
	"github.com/belaydb/belay/internal/etcdtest"
	"github.com/belaydb/belay/internal/pginstance"
	"github.com/belaydb/belay/internal/pgtest"
	"github.com/belaydb/belay/shard"
	"github.com/jackc/pgx/v5/pgconn"
)

// The sharding corpus (issue J's first must-show): the statements of
// testdata/shardcorpus/*.sql, files in name order, run one by one through
// belay in front of N shards and on one plain PostgreSQL holding all the
// data, for N = 2 and 4. Each run starts from empty databases; the corpus
// creates its tables (DDL through belay reaches every shard) and loads
// its rows through belay, so writes are routed as any others.
//
// The format. A statement is one or more lines, the last ending in ';'.
// A COPY ... FROM STDIN statement is followed by its data lines, up to a
// line `\.` (not sent). Lines starting with `--` before a statement are
// comments, or directives when their first word is one of:
//
//	-- sharded: TABLE KEY TYPE  the schema: TABLE sharded by KEY (integer, text, uuid)
//	-- reference: TABLE         the schema: TABLE copied to every shard
//	-- construct: NAME          the label of the statements that follow (sticky)
//	-- must                     belay must answer it (no 0A000): a construct it supports
//	-- refused                  belay must refuse it with 0A000 (answering could be wrong)
//	-- ordered                  rows compared in order (else as multisets)
//	-- error SQLSTATE           the plain PostgreSQL fails with SQLSTATE (checks the corpus)
//	-- params: V | V | ...      run with the extended protocol, these text parameters (NULL: null)
//	-- prepared                 with params: a named prepared statement, then its execution
//	-- known-wrong: REASON      belay is known to answer it wrongly: logged loudly, still a failure
//
// The flags (must, refused, ordered, prepared) are the line's only word.
// The schema directives may appear only before a file's first statement.
//
// The rule for each statement: belay runs it first. An answer 0A000 is a
// refusal, allowed unless the statement is `-- must` (then a failure), and
// the plain PostgreSQL does not run it; inside a transaction, the
// transaction is rolled back on both sides (belay ends the connection or
// the transaction) and the rest of it, up to its COMMIT or ROLLBACK, is
// skipped. Otherwise the plain PostgreSQL runs it, and both must have the
// same columns (name and type), the same command tags and the same rows
// (values in text format; as multisets unless `-- ordered`), or the same
// SQLSTATE. Any other error from belay is a mismatch, as is an answer to
// a `-- refused` statement. The test fails on every mismatch, prints the
// statement and both results, goes on with the rest, and ends with a
// summary per run: statements, identical, refused (by construct). With
// BELAY_CORPUS_REFUSALS set, it logs every refusal with belay's message;
// with BELAY_CORPUS_UNMARKED, every statement answered identically that is
// not marked -- must (candidates for the mark).

// corpusStmt is one statement of the corpus with its directives.
type corpusStmt struct {
	file       string
	line       int
	sql        string
	construct  string
	must       bool
	refused    bool
	ordered    bool
	errCode    string
	extended   bool      // params given: extended protocol
	params     []*string // nil element: NULL
	prepared   bool
	knownWrong string
	copyData   []byte // COPY ... FROM STDIN: the data
}

func (st *corpusStmt) where() string { return fmt.Sprintf("%s:%d", st.file, st.line) }

// corpusTable is a table the corpus declares sharded or a reference table.
type corpusTable struct {
	name, key string
	keyType   shard.KeyType // reference tables: unset
	reference bool
}

// corpus is the statements of every file, in order, and the schema.
type corpus struct {
	stmts  []*corpusStmt
	tables []corpusTable
}

var (
	sqlstatePattern = regexp.MustCompile(`^[0-9A-Z]{5}$`)
	copyFromStdin   = regexp.MustCompile(`(?is)^\s*copy\b.*\bfrom\s+stdin\b`)
)

// readCorpus reads every *.sql file of dir in name order.
func readCorpus(dir string) (*corpus, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no corpus files in %s", dir)
	}
	slices.Sort(files)
	c := &corpus{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := c.parse(filepath.Base(f), b); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parse adds the statements of one file.
func (c *corpus) parse(file string, data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	construct := ""
	var next *corpusStmt // directives read for the next statement
	var sql []string     // lines of the statement under way
	start := 0
	sawStmt := false
	inCopy := false
	fresh := func() *corpusStmt { return &corpusStmt{file: file, construct: construct} }
	next = fresh()
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if inCopy {
			st := c.stmts[len(c.stmts)-1]
			if trimmed == `\.` {
				inCopy = false
				continue
			}
			st.copyData = append(append(st.copyData, line...), '\n')
			continue
		}
		if len(sql) == 0 && trimmed == "" {
			continue
		}
		if len(sql) == 0 && strings.HasPrefix(trimmed, "--") {
			body := strings.TrimSpace(strings.TrimPrefix(trimmed, "--"))
			word, arg, _ := strings.Cut(body, " ")
			arg = strings.TrimSpace(arg)
			bad := func(format string, args ...any) error {
				return fmt.Errorf("%s:%d: %s", file, n, fmt.Sprintf(format, args...))
			}
			switch word {
			case "sharded:", "reference:":
				if sawStmt {
					return bad("the schema is declared before the file's first statement")
				}
				f := strings.Fields(arg)
				if word == "reference:" {
					if len(f) != 1 {
						return bad("-- reference: TABLE")
					}
					c.tables = append(c.tables, corpusTable{name: f[0], reference: true})
					continue
				}
				if len(f) != 3 {
					return bad("-- sharded: TABLE KEY TYPE")
				}
				kt, ok := map[string]shard.KeyType{"integer": shard.KeyInteger, "text": shard.KeyText, "uuid": shard.KeyUUID}[f[2]]
				if !ok {
					return bad("key type %q: integer, text or uuid", f[2])
				}
				c.tables = append(c.tables, corpusTable{name: f[0], key: f[1], keyType: kt})
			case "construct:":
				if arg == "" {
					return bad("-- construct: NAME")
				}
				construct, next.construct = arg, arg
			case "must":
				next.must = next.must || arg == ""
			case "refused":
				next.refused = next.refused || arg == ""
			case "ordered":
				next.ordered = next.ordered || arg == ""
			case "prepared":
				next.prepared = next.prepared || arg == ""
			case "error":
				if !sqlstatePattern.MatchString(arg) {
					return bad("-- error SQLSTATE: %q", arg)
				}
				next.errCode = arg
			case "params:":
				next.extended = true
				for _, p := range strings.Split(arg, "|") {
					p = strings.TrimSpace(p)
					if p == "NULL" {
						next.params = append(next.params, nil)
					} else {
						next.params = append(next.params, &p)
					}
				}
			case "known-wrong:":
				if arg == "" {
					return bad("-- known-wrong: REASON")
				}
				next.knownWrong = arg
			}
			continue
		}
		if len(sql) == 0 {
			start = n
		}
		sql = append(sql, line)
		if !strings.HasSuffix(trimmed, ";") {
			continue
		}
		st := next
		st.line, st.sql = start, strings.Join(sql, "\n")
		sql = nil
		switch {
		case st.must && st.refused:
			return fmt.Errorf("%s: both -- must and -- refused", st.where())
		case st.prepared && !st.extended:
			return fmt.Errorf("%s: -- prepared without -- params:", st.where())
		case st.construct == "":
			return fmt.Errorf("%s: no -- construct: before it", st.where())
		}
		if copyFromStdin.MatchString(st.sql) {
			if st.extended {
				return fmt.Errorf("%s: a COPY with parameters", st.where())
			}
			inCopy = true
		}
		c.stmts = append(c.stmts, st)
		sawStmt = true
		next = fresh()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	switch {
	case len(sql) > 0:
		return fmt.Errorf("%s:%d: a statement without its ';'", file, start)
	case inCopy:
		return fmt.Errorf("%s: COPY data without its \\.", file)
	}
	return nil
}

// schema is the corpus's sharding schema over n shards.
func (c *corpus) schema(n int) (*shard.Schema, error) {
	var tabs []shard.Table
	for _, t := range c.tables {
		if t.reference {
			tabs = append(tabs, shard.ReferenceTable(shard.TableName{Name: t.name}))
		} else {
			tabs = append(tabs, shard.ShardedTable(shard.TableName{Name: t.name}, t.key, t.keyType))
		}
	}
	return shard.New(n, tabs...)
}

// corpusResult is what one side answered: each statement's columns, rows
// and tag, then the error that stopped it, if any.
type corpusResult struct {
	sets []corpusSet
	err  error
}

type corpusSet struct {
	cols []string // name:type oid
	rows []string // each value quoted, NULL bare, joined by " | "
	tag  string
}

// code is the result's SQLSTATE ("" if it succeeded, "conn" for an
// error that is not the server's).
func (r corpusResult) code() string {
	var pe *pgconn.PgError
	switch {
	case r.err == nil:
		return ""
	case errors.As(r.err, &pe):
		return pe.Code
	}
	return "conn"
}

func (r corpusResult) fatal() bool {
	var pe *pgconn.PgError
	return errors.As(r.err, &pe) && (pe.Severity == "FATAL" || pe.Severity == "PANIC")
}

// String prints a result for a failure message: at most 20 rows a set.
func (r corpusResult) String() string {
	var b strings.Builder
	for _, s := range r.sets {
		if len(s.cols) > 0 {
			fmt.Fprintf(&b, "\n    columns %s", strings.Join(s.cols, ", "))
		}
		for i, row := range s.rows {
			if i == 20 {
				fmt.Fprintf(&b, "\n    ... %d rows more", len(s.rows)-20)
				break
			}
			fmt.Fprintf(&b, "\n    %s", row)
		}
		fmt.Fprintf(&b, "\n    %s", s.tag)
	}
	if r.err != nil {
		var pe *pgconn.PgError
		if errors.As(r.err, &pe) {
			fmt.Fprintf(&b, "\n    %s %s: %s", pe.Severity, pe.Code, pe.Message)
		} else {
			fmt.Fprintf(&b, "\n    error: %v", r.err)
		}
	}
	if b.Len() == 0 {
		return "\n    (nothing)"
	}
	return b.String()
}

// sameAs compares two results: columns, tags, rows (sorted unless
// ordered), SQLSTATE.
func (r corpusResult) sameAs(o corpusResult, ordered bool) bool {
	if r.code() != o.code() || len(r.sets) != len(o.sets) {
		return false
	}
	for i := range r.sets {
		a, b := r.sets[i], o.sets[i]
		if !slices.Equal(a.cols, b.cols) || a.tag != b.tag || len(a.rows) != len(b.rows) {
			return false
		}
		ar, br := a.rows, b.rows
		if !ordered {
			ar, br = slices.Sorted(slices.Values(ar)), slices.Sorted(slices.Values(br))
		}
		if !slices.Equal(ar, br) {
			return false
		}
	}
	return true
}

func corpusSetOf(res *pgconn.Result) corpusSet {
	s := corpusSet{tag: res.CommandTag.String()}
	for _, f := range res.FieldDescriptions {
		s.cols = append(s.cols, f.Name+":"+strconv.FormatUint(uint64(f.DataTypeOID), 10))
	}
	for _, row := range res.Rows {
		vals := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = strconv.Quote(string(v))
			}
		}
		s.rows = append(s.rows, strings.Join(vals, " | "))
	}
	return s
}

// runCorpusStmt runs st on c as its directives say.
func runCorpusStmt(ctx context.Context, c *pgconn.PgConn, st *corpusStmt, n int) corpusResult {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var r corpusResult
	switch {
	case st.copyData != nil || copyFromStdin.MatchString(st.sql):
		tag, err := c.CopyFrom(ctx, bytes.NewReader(st.copyData), st.sql)
		r.err = err
		if err == nil {
			r.sets = []corpusSet{{tag: tag.String()}}
		}
	case st.extended:
		vals := make([][]byte, len(st.params))
		for i, p := range st.params {
			if p != nil {
				vals[i] = []byte(*p)
			}
		}
		var res *pgconn.Result
		if st.prepared {
			name := "corpus_" + strconv.Itoa(n)
			if _, err := c.Prepare(ctx, name, strings.TrimSuffix(strings.TrimSpace(st.sql), ";"), nil); err != nil {
				r.err = err
				return r
			}
			res = c.ExecPrepared(ctx, name, vals, nil, nil).Read()
		} else {
			res = c.ExecParams(ctx, strings.TrimSuffix(strings.TrimSpace(st.sql), ";"), vals, nil, nil, nil).Read()
		}
		r.err = res.Err
		if res.Err == nil {
			r.sets = []corpusSet{corpusSetOf(res)}
		}
	default:
		results, err := c.Exec(ctx, st.sql).ReadAll()
		for _, res := range results {
			if res.Err == nil {
				r.sets = append(r.sets, corpusSetOf(res))
			}
		}
		r.err = err
	}
	return r
}

// corpusTally is a run's counts.
type corpusTally struct {
	stmts, identical, refused, skipped, differ, knownWrong int
	refusedBy                                              map[string]int
}

// corpusTxEnd says whether sql ends a transaction (COMMIT, ROLLBACK, END,
// ABORT; not ROLLBACK TO SAVEPOINT).
func corpusTxEnd(sql string) bool {
	f := strings.Fields(strings.ToLower(strings.TrimSuffix(strings.TrimSpace(sql), ";")))
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "commit", "end", "abort":
		return true
	case "rollback":
		return len(f) == 1 || f[1] != "to"
	}
	return false
}

// corpusRun is the corpus run through belay over some shards against a
// plain PostgreSQL.
type corpusRun struct {
	t         *testing.T
	shards    int
	belayConn string // connection strings
	plainConn string
	belay, pg *pgconn.PgConn
	tally     corpusTally
}

func (r *corpusRun) connect(ctx context.Context, cs string) *pgconn.PgConn {
	r.t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := pgconn.Connect(cctx, cs)
	if err != nil {
		r.t.Fatalf("connect %s: %v", cs, err)
	}
	return c
}

// run runs every statement and logs the summary.
func (r *corpusRun) run(ctx context.Context, cp *corpus) {
	t := r.t
	r.belay, r.pg = r.connect(ctx, r.belayConn), r.connect(ctx, r.plainConn)
	defer func() {
		_ = r.belay.Close(ctx)
		_ = r.pg.Close(ctx)
	}()
	r.tally.refusedBy = map[string]int{}
	skipping := false // the rest of a transaction belay refused
	for i, st := range cp.stmts {
		r.tally.stmts++
		if skipping {
			r.tally.skipped++
			if corpusTxEnd(st.sql) {
				skipping = false
			}
			continue
		}
		b := runCorpusStmt(ctx, r.belay, st, i)
		if b.code() == "0A000" {
			if st.must {
				r.tally.differ++
				t.Errorf("%d shards, %s [%s]: belay refused a statement it must answer:\n  %s\n  belay:%s", r.shards, st.where(), st.construct, st.sql, b)
			} else {
				r.tally.refused++
				r.tally.refusedBy[st.construct]++
				if os.Getenv("BELAY_CORPUS_REFUSALS") != "" {
					t.Logf("%d shards, %s [%s]: refused:\n  %s%s", r.shards, st.where(), st.construct, st.sql, b)
				}
			}
			if st.knownWrong != "" {
				t.Logf("%d shards, %s: marked known-wrong (%s) but refused now: drop the directive", r.shards, st.where(), st.knownWrong)
			}
			// Nothing of it ran; inside a transaction, belay ended the
			// transaction (or the connection): so does the plain side.
			inTx := r.pg.TxStatus() != 'I'
			r.resync(ctx, b)
			if inTx && !corpusTxEnd(st.sql) {
				skipping = true
			}
			continue
		}
		if b.code() == "conn" || b.fatal() {
			t.Errorf("%d shards, %s [%s]: belay lost the connection:\n  %s\n  belay:%s", r.shards, st.where(), st.construct, st.sql, b)
		}
		p := runCorpusStmt(ctx, r.pg, st, i)
		if st.errCode != "" && p.code() != st.errCode {
			t.Errorf("%s: the corpus expects %s from the plain PostgreSQL:\n  %s\n  plain:%s", st.where(), st.errCode, st.sql, p)
		}
		same := b.sameAs(p, st.ordered)
		switch {
		case st.refused:
			r.tally.differ++
			t.Errorf("%d shards, %s [%s]: belay must refuse this (0A000) but answered:\n  %s\n  belay:%s\n  plain:%s", r.shards, st.where(), st.construct, st.sql, b, p)
		case same && st.knownWrong != "":
			r.tally.identical++
			t.Logf("%d shards, %s: marked known-wrong (%s) but answered identically: drop the directive", r.shards, st.where(), st.knownWrong)
		case same:
			r.tally.identical++
			if !st.must && os.Getenv("BELAY_CORPUS_UNMARKED") != "" {
				t.Logf("%d shards, %s [%s]: answered identically, not marked -- must", r.shards, st.where(), st.construct)
			}
		case st.knownWrong != "":
			r.tally.knownWrong++
			t.Errorf("%d shards, %s [%s]: KNOWN WRONG ANSWER (%s):\n  %s\n  belay:%s\n  plain:%s", r.shards, st.where(), st.construct, st.knownWrong, st.sql, b, p)
		default:
			r.tally.differ++
			t.Errorf("%d shards, %s [%s]: WRONG ANSWER from belay:\n  %s\n  belay:%s\n  plain:%s", r.shards, st.where(), st.construct, st.sql, b, p)
		}
		if r.belay.IsClosed() || b.fatal() {
			r.resync(ctx, b)
		}
	}
	tl := r.tally
	var by []string
	for _, k := range slices.Sorted(maps.Keys(tl.refusedBy)) {
		by = append(by, fmt.Sprintf("%s %d", k, tl.refusedBy[k]))
	}
	t.Logf("corpus on %d shards: %d of %d statements answered identically, %d refused with 0A000, %d skipped (rest of a refused transaction), %d known wrong, %d differ",
		r.shards, tl.identical, tl.stmts, tl.refused, tl.skipped, tl.knownWrong, tl.differ)
	if len(by) > 0 {
		t.Logf("corpus on %d shards: refused by construct: %s", r.shards, strings.Join(by, "; "))
	}
}

// resync puts both sides outside any transaction after belay refused or
// lost a statement: belay's connection made again if it was closed, an
// open transaction rolled back on each.
func (r *corpusRun) resync(ctx context.Context, b corpusResult) {
	if r.belay.IsClosed() || b.fatal() {
		_ = r.belay.Close(ctx)
		r.belay = r.connect(ctx, r.belayConn)
	} else if r.belay.TxStatus() != 'I' {
		if _, err := r.belay.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			r.t.Fatalf("ROLLBACK through belay after a refusal: %v", err)
		}
	}
	if r.pg.TxStatus() != 'I' {
		if _, err := r.pg.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			r.t.Fatalf("ROLLBACK on the plain PostgreSQL: %v", err)
		}
	}
}

// TestCorpusParse: the corpus reads, has its 300 statements and more, and
// every statement names its construct (no PostgreSQL needed).
func TestCorpusParse(t *testing.T) {
	cp, err := readCorpus(filepath.Join("testdata", "shardcorpus"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.stmts) < 300 {
		t.Errorf("the corpus has %d statements, fewer than 300", len(cp.stmts))
	}
	for _, n := range []int{2, 4} {
		if _, err := cp.schema(n); err != nil {
			t.Fatalf("its schema over %d shards: %v", n, err)
		}
	}
	constructs := map[string]int{}
	for _, st := range cp.stmts {
		constructs[st.construct]++
	}
	t.Logf("%d statements, %d constructs", len(cp.stmts), len(constructs))
}

// TestCorpus runs the sharding corpus through belay over 2 and then 4
// shards, each time against a plain PostgreSQL holding all the data.
// Shards 0 and 1 of the 2-shard run are databases of the first two of the
// 4-shard run's nodes; the plain PostgreSQL is the package's shared one.
func TestCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four PostgreSQL servers and etcd")
	}
	cp, err := readCorpus(filepath.Join("testdata", "shardcorpus"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	settings := map[string]string{"max_prepared_transactions": "10"}
	var nodes []*pginstance.Instance
	for range 4 {
		nodes = append(nodes, pgtest.New(t, pginstance.Options{Settings: settings}))
	}
	plain := pgtest.Shared(t)
	store, err := ha.NewStore(etcdtest.Client(t, etcdtest.New(t)), "corpus")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(pg *pginstance.Instance, sql string) {
		t.Helper()
		c := connect(t, pg.ConnString("postgres", "postgres"))
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s on %s: %v", sql, pg.Addr(), err)
		}
	}
	for _, n := range []int{2, 4} {
		db := fmt.Sprintf("corpus%d", n)
		for _, pg := range append(nodes[:n:n], plain) {
			exec(pg, "DROP DATABASE IF EXISTS "+db)
			exec(pg, "CREATE DATABASE "+db)
		}
		sc, err := cp.schema(n)
		if err != nil {
			t.Fatal(err)
		}
		shards, recs := map[string]ha.ShardRecord{}, map[string]ha.NodeRecord{}
		for k := range n {
			name := "n" + strconv.Itoa(k)
			shards[ha.ShardName(k)] = ha.ShardRecord{Term: 1, Primary: name}
			recs[name] = ha.NodeRecord{Shard: ha.ShardName(k), Addr: nodes[k].Addr()}
		}
		top := ha.Build("corpus", 0, shards, recs)
		top.Sharding = sc
		src := &staticTopology{}
		src.t.Store(top)
		p := startProxy(t, nodes[0], func(c *Config) {
			c.Cluster, c.HealthDial, c.RecordDecision = src, healthDial, store.RecordDecision
		})
		waitShardPrimaries(t, p, n, 20*time.Second)
		r := &corpusRun{t: t, shards: n, belayConn: p.connString(db, "postgres"), plainConn: plain.ConnString(db, "postgres")}
		start := time.Now()
		r.run(ctx, cp)
		t.Logf("corpus on %d shards: %v", n, time.Since(start).Round(time.Millisecond))
		for _, pg := range nodes[:n] {
			c := connect(t, pg.ConnString(db, "postgres"))
			var prepared int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&prepared); err != nil || prepared != 0 {
				t.Errorf("%d shards: %d transactions left prepared on %s (%v)", n, prepared, pg.Addr(), err)
			}
			c.Close(ctx)
		}
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := p.Stop(stopCtx); err != nil {
			t.Errorf("stop: %v", err)
		}
		cancel()
	}
}
