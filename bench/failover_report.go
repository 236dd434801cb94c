package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// FailoverRun is one kill -9 of a primary's postmaster under load
// (KindFailover): what the clients saw and what the checker found.
// Times are milliseconds from the kill.
type FailoverRun struct {
	// Err, when set, is why the run could not be measured (a cluster that
	// did not start, say); the other fields are then partial or zero.
	Err string `json:"error,omitempty"`
	// OldPrimary was killed; NewPrimary is the primary afterwards (the same
	// node when it was restarted in place).
	OldPrimary string `json:"old_primary"`
	NewPrimary string `json:"new_primary"`
	FailedOver bool   `json:"failed_over"`
	// WritableMs is from the SIGKILL to the acknowledgement of the first
	// transfer sent after the old primary was gone (GoneMs); -1: none
	// before the run ended.
	WritableMs float64 `json:"writable_ms"`
	// GoneMs is from the SIGKILL to the moment the old primary's last
	// process was gone: operations started after it are "sent after the
	// kill" (ErrorsAfter, WritableMs); an orphaned backend may answer
	// before it.
	GoneMs float64 `json:"gone_ms"`
	// PromotedMs is from the kill to the first sample (every 50 ms) in
	// which a node answered as a primary; -1: none.
	PromotedMs float64 `json:"promoted_ms"`
	// NoSyncMs is how long that primary was seen with
	// synchronous_standby_names empty (0: never), NoSyncOpen that it still
	// was at the end; AckedNoSync the transfers acknowledged meanwhile,
	// each durable on one node only.
	NoSyncMs    float64 `json:"no_sync_standby_ms"`
	NoSyncOpen  bool    `json:"no_sync_standby_at_end,omitempty"`
	AckedNoSync int     `json:"acked_without_sync_standby"`
	// The checker's figures: transfers by outcome, acknowledged ones
	// missing afterwards (Lost), ids present that were never attempted or
	// told failed (Phantom), sums read that were wrong (BadSums).
	Acked              int `json:"acked"`
	Ambiguous          int `json:"ambiguous"`
	AmbiguousCommitted int `json:"ambiguous_committed"`
	Failed             int `json:"failed"`
	Lost               int `json:"lost"`
	Phantom            int `json:"phantom"`
	BadSums            int `json:"bad_sums"`
	// Checked: the checker read the final state (Lost and Phantom mean
	// something).
	Checked bool `json:"checked"`
	// Errors are the checker's failed and ambiguous operations by SQLSTATE
	// ("conn": a connection lost or refused, which has none);
	// ErrorsAfter those of operations started after the kill.
	Errors       map[string]int `json:"errors"`
	ErrorsAfter  map[string]int `json:"errors_after_kill"`
	AfterSamples []string       `json:"errors_after_kill_samples,omitempty"`
	// pgbench's TPC-B run (-c 10) over the same kind of connection.
	PgbenchProcessed int64    `json:"pgbench_processed"`
	PgbenchFailed    int64    `json:"pgbench_failed"`
	PgbenchRetried   int64    `json:"pgbench_retried"`
	PgbenchAborted   int      `json:"pgbench_aborted_clients"`
	PgbenchErrors    []string `json:"pgbench_errors,omitempty"`
}

// ErrorCount is the checker's errors of the run, all SQLSTATEs.
func (f *FailoverRun) ErrorCount() int { return sumCounts(f.Errors) }

// ErrorsAfterCount is the errors of operations started after the kill.
func (f *FailoverRun) ErrorsAfterCount() int { return sumCounts(f.ErrorsAfter) }

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// FailoverFigures fold a target's runs: medians and worst across rounds,
// counts summed.
type FailoverFigures struct {
	Runs     int `json:"runs"`
	Measured int `json:"measured"` // runs without Err
	// FailedOver is the runs in which another node became the primary.
	FailedOver int `json:"failed_over"`
	// Writable: median and worst of WritableMs over the measured runs;
	// NeverWritable counts those without a write acknowledged, which make
	// the worst "none" (WritableWorstMs -1).
	WritableMedianMs float64 `json:"writable_median_ms"`
	WritableWorstMs  float64 `json:"writable_worst_ms"`
	NeverWritable    int     `json:"never_writable"`
	PromotedMedianMs float64 `json:"promoted_median_ms"`
	PromotedWorstMs  float64 `json:"promoted_worst_ms"`
	NoSyncMedianMs   float64 `json:"no_sync_standby_median_ms"`
	NoSyncWorstMs    float64 `json:"no_sync_standby_worst_ms"`
	// NoSyncOpen counts the runs that ended with the window still open:
	// their NoSyncMs are lower bounds.
	NoSyncOpen  int `json:"no_sync_standby_open_at_end"`
	AckedNoSync int `json:"acked_without_sync_standby"`
	// Summed over the runs.
	Lost      int `json:"lost"`
	Phantom   int `json:"phantom"`
	BadSums   int `json:"bad_sums"`
	Unchecked int `json:"unchecked"` // runs whose final state could not be read
	Acked     int `json:"acked"`
	Ambiguous int `json:"ambiguous"`
	// The checker's errors per run: median and worst.
	ErrorsMedian      float64 `json:"errors_median"`
	ErrorsWorst       int     `json:"errors_worst"`
	ErrorsAfterMedian float64 `json:"errors_after_kill_median"`
	ErrorsAfterWorst  int     `json:"errors_after_kill_worst"`
	// Summed by SQLSTATE.
	Errors      map[string]int `json:"errors"`
	ErrorsAfter map[string]int `json:"errors_after_kill"`
	// pgbench, summed.
	PgbenchProcessed int64 `json:"pgbench_processed"`
	PgbenchFailed    int64 `json:"pgbench_failed"`
	PgbenchRetried   int64 `json:"pgbench_retried"`
	PgbenchAborted   int   `json:"pgbench_aborted_clients"`
	// RunErrors are the distinct Err of the runs that could not be measured.
	RunErrors []string `json:"run_errors,omitempty"`
}

// aggregateFailover folds the failover figures of runs; nil when none has
// any.
func aggregateFailover(runs []RunResult) *FailoverFigures {
	var fs []*FailoverRun
	for _, r := range runs {
		if r.Failover != nil {
			fs = append(fs, r.Failover)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	g := &FailoverFigures{Runs: len(fs), Errors: map[string]int{}, ErrorsAfter: map[string]int{}}
	var writable, promoted, noSync, errs, after []float64
	for _, f := range fs {
		if f.Err != "" {
			if !slices.Contains(g.RunErrors, f.Err) && len(g.RunErrors) < maxErrors {
				g.RunErrors = append(g.RunErrors, f.Err)
			}
			continue
		}
		g.Measured++
		if f.FailedOver {
			g.FailedOver++
		}
		if f.WritableMs < 0 {
			g.NeverWritable++
		} else {
			writable = append(writable, f.WritableMs)
		}
		if f.PromotedMs >= 0 {
			promoted = append(promoted, f.PromotedMs)
		}
		noSync = append(noSync, f.NoSyncMs)
		if f.NoSyncOpen {
			g.NoSyncOpen++
		}
		g.AckedNoSync += f.AckedNoSync
		g.Lost += f.Lost
		g.Phantom += f.Phantom
		g.BadSums += f.BadSums
		if !f.Checked {
			g.Unchecked++
		}
		g.Acked += f.Acked
		g.Ambiguous += f.Ambiguous
		errs = append(errs, float64(f.ErrorCount()))
		after = append(after, float64(f.ErrorsAfterCount()))
		g.ErrorsWorst = max(g.ErrorsWorst, f.ErrorCount())
		g.ErrorsAfterWorst = max(g.ErrorsAfterWorst, f.ErrorsAfterCount())
		for k, v := range f.Errors {
			g.Errors[k] += v
		}
		for k, v := range f.ErrorsAfter {
			g.ErrorsAfter[k] += v
		}
		g.PgbenchProcessed += f.PgbenchProcessed
		g.PgbenchFailed += f.PgbenchFailed
		g.PgbenchRetried += f.PgbenchRetried
		g.PgbenchAborted += f.PgbenchAborted
	}
	worst := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return slices.Max(v)
	}
	g.WritableMedianMs, g.WritableWorstMs = Median(writable), worst(writable)
	if g.NeverWritable > 0 {
		g.WritableWorstMs = -1
	}
	g.PromotedMedianMs, g.PromotedWorstMs = Median(promoted), worst(promoted)
	g.NoSyncMedianMs, g.NoSyncWorstMs = Median(noSync), worst(noSync)
	g.ErrorsMedian, g.ErrorsAfterMedian = Median(errs), Median(after)
	return g
}

// FailoverInfo describes the failover scenario's setup for the report.
type FailoverInfo struct {
	// Versions: PostgreSQL, Patroni (Debian's package), etcd (Debian's
	// etcd-server); PatroniSkipped says why the Patroni targets did not run.
	Postgres       string `json:"postgres_version"`
	Patroni        string `json:"patroni_version,omitempty"`
	Etcd           string `json:"etcd_version,omitempty"`
	PatroniSkipped string `json:"patroni_skipped,omitempty"`
	// BelayEtcd says which etcd belay's proxy and orchestrators used.
	BelayEtcd string `json:"belay_etcd"`
	// Settings are every node's PostgreSQL settings (both clusters).
	Settings string `json:"postgres_settings"`
	// Setups: each target's configuration, by target.
	Setups map[string]string `json:"setups"`
	// The run's shape: seconds of load before the kill, pgbench's -T,
	// load kept after writes resumed, the longest wait for them.
	LoadSeconds    float64 `json:"load_before_kill_s"`
	PgbenchSeconds float64 `json:"pgbench_s"`
	AfterSeconds   float64 `json:"after_writable_s"`
	MaxWaitSeconds float64 `json:"max_wait_s"`
	CheckerClients int     `json:"checker_clients"`
	PgbenchClients int     `json:"pgbench_clients"`
}

// failoverLabel is a failover target's name in the report.
func failoverLabel(target string) string {
	switch target {
	case failoverBelay:
		return "belay (proxy + 2 orch)"
	case patroniDefaultsPst0:
		return "Patroni, defaults, primary_start_timeout 0"
	case patroniTunedPst0:
		return "Patroni, ttl 10 / loop_wait 1 / retry_timeout 4, primary_start_timeout 0"
	case patroniDefaultsAsIs:
		return "Patroni, defaults as they are (primary_start_timeout 300)"
	}
	return target
}

// msText is a duration in ms for the report: "1,234 ms", "–" for 0,
// "none" for a negative one.
func msText(v float64) string {
	switch {
	case v < 0:
		return "none"
	case v == 0:
		return "0"
	}
	return thousands(int64(math.Round(v))) + " ms"
}

// countsText is "08007:3 conn:120", keys sorted; "none" when empty.
func countsText(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%s", k, thousands(int64(m[k]))))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// writableText is a row's time to writable: "median / worst".
func (g *FailoverFigures) writableText(maxWait float64) string {
	if g.Measured == 0 {
		return "n/a"
	}
	if g.NeverWritable == g.Measured {
		return fmt.Sprintf("none within %g s", maxWait)
	}
	w := msText(g.WritableWorstMs)
	if g.NeverWritable > 0 {
		w = fmt.Sprintf("none within %g s (%d of %d runs)", maxWait, g.NeverWritable, g.Measured)
	}
	return msText(g.WritableMedianMs) + " / " + w
}

// renderFailover is the failover scenario's section of report.md.
func renderFailover(b *strings.Builder, s *ScenarioResult) {
	info := s.Failover
	if info == nil {
		info = &FailoverInfo{}
	}
	fmt.Fprintf(b, "Each run starts a cluster of its own, a primary and 2 streaming replicas on this machine (PostgreSQL %s; %s), "+
		"makes the tables and waits for both standbys to replay them, loads it for %g s with pgbench TPC-B (`-c %d -j 2 -T %g --max-tries 5 --failures-detailed`, scale 1) and the bank checker "+
		"(`internal/bankcheck`, %d clients: transfers that also append a unique id, and sums), then sends SIGKILL to the primary's postmaster "+
		"and keeps the checker running until a transfer sent after the kill is acknowledged plus %g s, the new primary has a synchronous standby named, "+
		"and pgbench has ended (at most %g s after the kill); "+
		"the checker then reads the final state on the primary.\n\n",
		info.Postgres, info.Settings, info.LoadSeconds, info.PgbenchClients, info.PgbenchSeconds, info.CheckerClients,
		info.AfterSeconds, info.MaxWaitSeconds)
	for _, r := range s.Rows {
		if set := info.Setups[r.Target]; set != "" {
			fmt.Fprintf(b, "- **%s**: %s\n", r.Label, set)
		}
	}
	if info.PatroniSkipped != "" {
		fmt.Fprintf(b, "- Patroni was not run: %s\n", info.PatroniSkipped)
	}
	b.WriteString("\nTimes count from the SIGKILL. The old primary's backends outlive their postmaster for a moment (each exits when it notices; " +
		"one may even acknowledge a commit its standby had): operations started once every process of the old primary was gone " +
		"(*gone*, in the table of every run) are those *sent after the kill*. " +
		"*Writable*: from the SIGKILL to the acknowledgement of the first transfer sent after the kill. *Promoted*: to the first " +
		"50 ms sample in which a node answered `pg_is_in_recovery() = false`. *No sync standby*: how long that primary was seen with " +
		"`synchronous_standby_names` empty, and the transfers acknowledged meanwhile (each on one node only). *Lost*: acknowledged " +
		"transfers missing afterwards. Client errors are the checker's failed or ambiguous operations, by SQLSTATE; `conn` is a " +
		"connection lost or refused (no SQLSTATE); *after the kill* counts those of operations started after it. pgbench aborts a " +
		"client whose connection is lost (libpq does not reconnect): those are the aborted clients.\n\n")
	b.WriteString("| target | writable: median / worst | promoted: median / worst | no sync standby: median / worst (transfers acknowledged in it) " +
		"| acknowledged writes lost | client errors per run: median / worst | errors of operations sent after the kill: median / worst " +
		"| client errors by SQLSTATE, all runs | pgbench: transactions / failed / aborted clients | failed over |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|---|--:|--:|\n")
	for _, r := range s.Rows {
		g := r.Failover
		if r.NA != "" || g == nil {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		if g.Measured == 0 {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | no run measured: %s |\n", r.Label, strings.Join(g.RunErrors, "; "))
			continue
		}
		lost := thousands(int64(g.Lost))
		if g.Phantom > 0 || g.BadSums > 0 {
			lost += fmt.Sprintf(" (%d phantom, %d bad sums)", g.Phantom, g.BadSums)
		}
		if g.Unchecked > 0 {
			lost += fmt.Sprintf(" (%d runs unchecked)", g.Unchecked)
		}
		noSync := fmt.Sprintf("%s / %s (%s acked)", msText(g.NoSyncMedianMs), msText(g.NoSyncWorstMs), thousands(int64(g.AckedNoSync)))
		if g.NoSyncOpen > 0 {
			noSync = fmt.Sprintf("≥ %s / ≥ %s (≥ %s acked; still open at the end of %d of %d runs)", msText(g.NoSyncMedianMs),
				msText(g.NoSyncWorstMs), thousands(int64(g.AckedNoSync)), g.NoSyncOpen, g.Measured)
		}
		fmt.Fprintf(b, "| %s | %s | %s / %s | %s | %s | %s / %s | %s / %s | %s | %s / %s / %s | %d of %d |\n", r.Label,
			g.writableText(info.MaxWaitSeconds), msText(g.PromotedMedianMs), msText(g.PromotedWorstMs),
			noSync, lost,
			trimFloat(g.ErrorsMedian), thousands(int64(g.ErrorsWorst)), trimFloat(g.ErrorsAfterMedian), thousands(int64(g.ErrorsAfterWorst)),
			countsText(g.Errors), thousands(g.PgbenchProcessed), thousands(g.PgbenchFailed), thousands(int64(g.PgbenchAborted)),
			g.FailedOver, g.Measured)
	}
	b.WriteString("\nEvery run:\n\n")
	b.WriteString("| round | target | primary: killed → after | gone | writable | promoted | no sync standby | acked / ambiguous (committed) / failed | lost | client errors | after the kill | pgbench: tx / failed / retried / aborted |\n")
	b.WriteString("|--:|---|---|--:|--:|--:|--:|--:|--:|---|---|--:|\n")
	for _, run := range failoverRunsByRound(s) {
		f := run.Failover
		if f.Err != "" {
			fmt.Fprintf(b, "| %d | %s | not measured: %s | | | | | | | | | |\n", run.Round, failoverLabel(run.Target), strings.ReplaceAll(f.Err, "|", "/"))
			continue
		}
		noSync := msText(f.NoSyncMs)
		if f.NoSyncOpen {
			noSync = "≥ " + noSync + " (still at the end)"
		}
		lost := strconv.Itoa(f.Lost)
		if !f.Checked {
			lost = "unchecked"
		}
		fmt.Fprintf(b, "| %d | %s | %s → %s | %s | %s | %s | %s (%d acked) | %d / %d (%d) / %d | %s | %s | %s | %d / %d / %d / %d |\n", run.Round,
			failoverLabel(run.Target), f.OldPrimary, f.NewPrimary, msText(f.GoneMs), msText(f.WritableMs), msText(f.PromotedMs), noSync, f.AckedNoSync,
			f.Acked, f.Ambiguous, f.AmbiguousCommitted, f.Failed, lost, countsText(f.Errors), countsText(f.ErrorsAfter),
			f.PgbenchProcessed, f.PgbenchFailed, f.PgbenchRetried, f.PgbenchAborted)
	}
	var samples []string
	for _, run := range failoverRunsByRound(s) {
		for _, e := range run.Failover.AfterSamples {
			line := failoverLabel(run.Target) + ": " + e
			if !slices.Contains(samples, line) && len(samples) < 8 {
				samples = append(samples, line)
			}
		}
		for _, e := range run.Failover.PgbenchErrors {
			line := failoverLabel(run.Target) + ", pgbench: " + e
			if !slices.Contains(samples, line) && len(samples) < 12 {
				samples = append(samples, line)
			}
		}
	}
	if len(samples) > 0 {
		b.WriteString("\nErrors seen (first few):\n")
		for _, e := range samples {
			fmt.Fprintf(b, "- `%s`\n", strings.ReplaceAll(trunc(e, 300), "`", "'"))
		}
	}
}

// failoverRunsByRound are the measured and failed runs of s, by round,
// then in target order.
func failoverRunsByRound(s *ScenarioResult) []RunResult {
	var all []RunResult
	for _, r := range s.Rows {
		for _, run := range r.Runs {
			if run.Failover != nil {
				all = append(all, run)
			}
		}
	}
	slices.SortStableFunc(all, func(a, b RunResult) int { return a.Round - b.Round })
	return all
}

// renderFailoverSummary is the summary's table of the failover scenarios
// of rep ("" when there is none).
func renderFailoverSummary(rep *Report) string {
	var b strings.Builder
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		if s.Scenario.Kind != KindFailover {
			continue
		}
		maxWait := 0.0
		if s.Failover != nil {
			maxWait = s.Failover.MaxWaitSeconds
		}
		if b.Len() == 0 {
			b.WriteString("\nFailover (kill -9 of the primary's postmaster under pgbench TPC-B and the bank checker; median / worst across rounds):\n\n")
			b.WriteString("| target | writable after the kill | acknowledged writes lost | new primary without a synchronous standby | client errors per run | errors after the kill | pgbench aborted clients |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
		}
		for _, r := range s.Rows {
			g := r.Failover
			if r.NA != "" || g == nil || g.Measured == 0 {
				fmt.Fprintf(&b, "| %s | n/a | | | | | |\n", r.Label)
				continue
			}
			ge := ""
			if g.NoSyncOpen > 0 {
				ge = "≥ "
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s%s / %s%s | %s / %d | %s / %d | %d |\n", r.Label, g.writableText(maxWait), g.Lost,
				ge, msText(g.NoSyncMedianMs), ge, msText(g.NoSyncWorstMs), trimFloat(g.ErrorsMedian), g.ErrorsWorst, trimFloat(g.ErrorsAfterMedian), g.ErrorsAfterWorst, g.PgbenchAborted)
		}
	}
	return b.String()
}

// trimFloat is v without a trailing ".0": medians of counts are whole
// or halves.
func trimFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// failoverCSVHeader is the header of failover.csv.
var failoverCSVHeader = []string{"scenario", "round", "target", "error", "old_primary", "new_primary", "failed_over",
	"gone_ms", "writable_ms", "promoted_ms", "no_sync_standby_ms", "acked_without_sync_standby", "acked", "ambiguous", "ambiguous_committed",
	"failed", "lost", "phantom", "bad_sums", "checked", "client_errors", "client_errors_after_kill", "errors_by_sqlstate",
	"errors_after_kill_by_sqlstate", "pgbench_processed", "pgbench_failed", "pgbench_retried", "pgbench_aborted_clients"}

// writeFailoverCSV writes every failover run of rep as a CSV line; false
// when there is none.
func writeFailoverCSV(w io.Writer, rep *Report) (bool, error) {
	cw := csv.NewWriter(w)
	any := false
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		if s.Scenario.Kind != KindFailover {
			continue
		}
		for _, run := range failoverRunsByRound(s) {
			if !any {
				if err := cw.Write(failoverCSVHeader); err != nil {
					return false, err
				}
				any = true
			}
			f := run.Failover
			d := strconv.Itoa
			fl := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
			if err := cw.Write([]string{s.Scenario.ID, d(run.Round), run.Target, f.Err, f.OldPrimary, f.NewPrimary,
				strconv.FormatBool(f.FailedOver), fl(f.GoneMs), fl(f.WritableMs), fl(f.PromotedMs), fl(f.NoSyncMs), d(f.AckedNoSync),
				d(f.Acked), d(f.Ambiguous), d(f.AmbiguousCommitted), d(f.Failed), d(f.Lost), d(f.Phantom), d(f.BadSums),
				strconv.FormatBool(f.Checked), d(f.ErrorCount()), d(f.ErrorsAfterCount()), countsText(f.Errors), countsText(f.ErrorsAfter),
				strconv.FormatInt(f.PgbenchProcessed, 10), strconv.FormatInt(f.PgbenchFailed, 10), strconv.FormatInt(f.PgbenchRetried, 10),
				d(f.PgbenchAborted)}); err != nil {
				return false, err
			}
		}
	}
	cw.Flush()
	return any, cw.Error()
}
