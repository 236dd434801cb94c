package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// RenderMarkdown renders rep as report.md. charts maps a scenario ID to the
// chart files (relative to report.md) to show under its table.
func RenderMarkdown(rep *Report, charts map[string][]string) string {
	var b strings.Builder
	m := rep.Meta
	onlyFailover := !slices.ContainsFunc(rep.Scenarios, func(s ScenarioResult) bool { return s.Scenario.Kind != KindFailover })
	if onlyFailover && len(rep.Scenarios) > 0 {
		b.WriteString("# belay bench: failover, belay against Patroni\n\n")
	} else {
		onlyFailover = false
		b.WriteString("# belay bench: direct PostgreSQL, PgBouncer and belay side by side\n\n")
	}
	if m.Command != "" {
		fmt.Fprintf(&b, "`%s`, started %s", m.Command, m.Started.Format("2006-01-02 15:04 MST"))
	} else {
		fmt.Fprintf(&b, "Started %s", m.Started.Format("2006-01-02 15:04 MST"))
	}
	if m.WallSeconds > 0 {
		fmt.Fprintf(&b, ", took %s", (time.Duration(m.WallSeconds) * time.Second).String())
	}
	b.WriteString(".\n\n")
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| machine | %d cores (%s), %s, %s; load average %s at the start, %s at the end |\n", m.Cores, m.CPUModel, m.Memory, m.Kernel, m.LoadStart, m.LoadEnd)
	if onlyFailover {
		// The failover section states its own settings and figures.
		fmt.Fprintf(&b, "| PostgreSQL | %s |\n", m.PostgresVersion)
		fmt.Fprintf(&b, "| belay | commit %s (%s), --pool-size %d |\n", m.BelayCommit, m.GoVersion, m.PoolSize)
		fmt.Fprintf(&b, "| runs | %s; %d round(s), targets alternated per round |\n", m.PgbenchVersion, m.Rounds)
	} else {
		fmt.Fprintf(&b, "| PostgreSQL | %s (%s; pgbench scale %d) |\n", m.PostgresVersion, m.PostgresSettings, m.Scale)
		fmt.Fprintf(&b, "| PgBouncer | %s (pool_mode=transaction, default_pool_size=%d; the session-mode row: pool_mode=session, pool_size=%d, a server per client) |\n", m.PgBouncerVersion, m.PoolSize, sessionPoolSize)
		fmt.Fprintf(&b, "| belay | commit %s (%s), --pool-size %d |\n", m.BelayCommit, m.GoVersion, m.PoolSize)
		fmt.Fprintf(&b, "| runs | %s; %g s per run, %d round(s), targets alternated per round; figures are medians across rounds |\n", m.PgbenchVersion, m.Duration, m.Rounds)
	}
	if m.Placement != "" {
		fmt.Fprintf(&b, "| placement | %s |\n", m.Placement)
	}
	b.WriteString("\n")
	if onlyFailover {
		b.WriteString("Everything runs on this one machine over loopback TCP: the clients, the proxies, Patroni, etcd and every " +
			"PostgreSQL node share the cores.\n\n")
	} else {
		b.WriteString("tps is pgbench's (without initial connection time); latency percentiles come from pgbench's " +
			"per-transaction logs (`-l`); proxy CPU is utime+stime of the proxy process (/proc/PID/stat) over the run, " +
			"per 1,000 transactions; errors are failed transactions + aborted clients + failed connections + hung runs. " +
			"Everything runs on this one machine over loopback TCP: pgbench and the proxy share the cores.\n\n")
	}
	for _, n := range m.Notes {
		fmt.Fprintf(&b, "> **Note:** %s\n\n", n)
	}
	b.WriteString("## Summary\n\n")
	b.WriteString(RenderSummary(rep))
	for _, s := range rep.Scenarios {
		fmt.Fprintf(&b, "\n## %s\n\n", s.Scenario.Title)
		switch s.Scenario.Kind {
		case KindSlow:
			renderSlow(&b, &s, m)
		case KindIdle:
			renderIdle(&b, &s)
		case KindNoisy:
			if len(s.Scenario.Variants) > 0 {
				renderNoisySweep(&b, &s, m)
			} else {
				renderNoisy(&b, &s, m)
			}
		case KindQuota:
			renderQuota(&b, &s, m)
		case KindReadScale:
			renderReadScale(&b, &s)
		case KindFailover:
			renderFailover(&b, &s)
		case KindSharded:
			renderSharded(&b, &s)
		default:
			if len(s.Scenario.Variants) > 0 {
				renderSweep(&b, &s, m)
			} else {
				renderPgbench(&b, &s)
			}
		}
		renderErrors(&b, &s)
		if hung := hungRows(&s); s.Scenario.SessionRow && hung != "" {
			fmt.Fprintf(&b, "\nHung (%s): `pgbench -M prepared` prepares each statement with a blocking PQprepare on a client's first use of it. "+
				"Where a pooler gives each client a server of its own (PgBouncer in session mode) "+
				"and clients outnumber the pool, a pgbench thread blocks in one client's prepare while its other clients hold the servers: "+
				"nothing moves until pgbench is killed.\n", hung)
		}
		if files := charts[s.Scenario.ID]; len(files) > 0 {
			b.WriteString("\n")
			for _, f := range files {
				fmt.Fprintf(&b, "![%s](%s) ", strings.TrimSuffix(f, ".png"), f)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func refLabel(s *ScenarioResult) string {
	if ref := s.Reference(); ref != nil && ref.Target == PgBouncerSession {
		return "ratio to PgBouncer (session mode)"
	}
	return "ratio to PgBouncer"
}

func renderPgbench(b *strings.Builder, s *ScenarioResult) {
	fmt.Fprintf(b, "| target | tps | %s | p50 ms | p99 ms | p99.9 ms | proxy CPU s / 1k tx | errors |\n", refLabel(s))
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	ref := s.Reference()
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, tpsText(r.TPS), ratio(r.TPS, ref),
			ms(r.P50), ms(r.P99), ms(r.P999), cpuText(r.CPUPer1k), errText(r))
	}
	if tr, br := s.Row(BelayTiers), s.Row(Belay); tr != nil && tr.NA == "" && len(tr.TierCPUPer1k) > 0 {
		var parts []string
		for _, tc := range tr.TierCPUPer1k {
			parts = append(parts, fmt.Sprintf("%s %s", tc.Tier, cpuText(tc.Per1k)))
		}
		fmt.Fprintf(b, "\nbelay's two tiers, CPU s / 1k tx by tier: %s.", strings.Join(parts, ", "))
		if br != nil && br.NA == "" && br.P50 > 0 && br.P99 > 0 {
			fmt.Fprintf(b, " Their latency over belay proxy's: p50 %.2f×, p99 %.2f×; tps %.2f×.",
				tr.P50/br.P50, tr.P99/br.P99, tr.TPS/br.TPS)
		}
		b.WriteString("\n")
	}
	if r := s.Row(Belay); r != nil {
		var hits, misses uint64
		for _, run := range r.Runs {
			hits, misses = hits+run.PlanHits, misses+run.PlanMisses
		}
		if hits+misses > 0 {
			fmt.Fprintf(b, "\nbelay's plan cache served %s of %s statements (%.3f%%); %s were parsed.\n",
				thousands(int64(hits)), thousands(int64(hits+misses)), 100*float64(hits)/float64(hits+misses), thousands(int64(misses)))
		}
	}
}

// renderTiersIdle tells what the two tiers' idle run adds: the RSS per
// idle client of each process and the kill of the second gateway.
func renderTiersIdle(b *strings.Builder, s *ScenarioResult) {
	tr := s.Row(BelayTiers)
	if tr == nil || tr.NA != "" || len(tr.TierRSSPerIdle) == 0 {
		return
	}
	var parts []string
	for _, tc := range tr.TierRSSPerIdle {
		parts = append(parts, fmt.Sprintf("%s %s", tc.Tier, bytesText(tc.Per1k)))
	}
	fmt.Fprintf(b, "\nbelay's two tiers: the idle clients spread over two gateways, pgbench's workers on the first; RSS per idle client by process: %s (the pooler's, over all of them). "+
		"Halfway through the workers' run the second gateway was killed (kill -9): of its idle clients, %s in all rounds together, %s were still open after; "+
		"the workers' failed transactions and the first gateway's closed idle clients are in the row's errors.\n",
		strings.Join(parts, ", "), thousands(int64(tr.KilledGatewayIdle)), thousands(int64(tr.KilledGatewayIdleOpen)))
}

func renderIdle(b *strings.Builder, s *ScenarioResult) {
	fmt.Fprintf(b, "| target | idle clients open | proxy RSS before | with idle clients | RSS per idle client | workers' tps | %s | p50 ms | p99 ms | p99.9 ms | proxy CPU s / 1k tx | errors |\n", refLabel(s))
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	ref := s.Reference()
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label,
			thousands(int64(r.IdleOpened)), mib(r.RSSBefore), mib(r.RSSIdle), bytesText(r.RSSPerIdle),
			tpsText(r.TPS), ratio(r.TPS, ref), ms(r.P50), ms(r.P99), ms(r.P999), cpuText(r.CPUPer1k), errText(r))
	}
	renderTiersIdle(b, s)
}

func renderSlow(b *strings.Builder, s *ScenarioResult, m Meta) {
	fmt.Fprintf(b, "The client reads at most %s/s and leaves after reading for a while; the proxy's RSS is sampled every 100 ms.\n\n", mib(m.SlowReadRate))
	b.WriteString("| target | bytes read | read rate | proxy RSS before | peak RSS | peak growth | server query ended after the client left | serves a new client afterwards | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s/s | %s | %s | %s | %s | %s | %s |\n", r.Label, mib(r.BytesRead), mib(int64(r.ReadRate)),
			mib(r.RSSBase), mib(r.RSSPeak), mib(r.RSSPeak-r.RSSBase), releaseText(r.ReleaseMs), yesNo(r.Serves), errText(r))
	}
}

func renderNoisy(b *strings.Builder, s *ScenarioResult, m Meta) {
	sc := s.Scenario
	fmt.Fprintf(b, "Both proxies may open at most %d server connections to PostgreSQL in all (PgBouncer: `max_db_connections = %d` "+
		"on the database, `default_pool_size = %d` per user; belay: `--max-db-connections %d --pool-size %d`); their pools log in as "+
		"the client's own user, and every phase starts with a freshly started proxy.\n\n", sc.Budget, sc.Budget, m.PoolSize, sc.Budget, m.PoolSize)
	fmt.Fprintf(b, "- **together**: user `noisy` runs %d pgbench clients; %s later user `quiet` runs %d for %g s; both are counted "+
		"while both ran, from the start of the quiet run (connecting included) to its exit or the noisy run's last transaction, "+
		"by the completion times in pgbench's logs; quiet's latencies are those of its transactions in that window. "+
		"Quiet's whole demand is %d of the %d servers: about %.1f of the transactions if every server does the same work; "+
		"fair shares of the budget should give it at least 0.3.\n", sc.Clients, noisyLead, sc.QuietClients, m.Duration,
		sc.QuietClients, sc.Budget, float64(sc.QuietClients)/float64(sc.Budget))
	fmt.Fprintf(b, "- **alone**: the quiet user's %d clients with nothing else running.\n", sc.QuietClients)
	fmt.Fprintf(b, "- **arrivals**: while `noisy` runs %d clients flat out (from %s before the first arrival), %d fresh users "+
		"(a pool each) arrive, one every %s, each on a connection of its own (one kept waiting delays no other): "+
		"each connects, logs in, runs `SELECT 1` and leaves. "+
		"The time is from its TCP connect to the result of `SELECT 1`, so that waiting for a server counts whether a proxy makes "+
		"the user wait during login or at its first query; *after login* is the part from ReadyForQuery to the result. "+
		"Percentiles are nearest-rank over every round's arrivals (n of them; below 100, p99 is the largest). "+
		"*No load*: %d fresh users before `noisy` starts. An arrival still waiting when the noisy run ends is counted with "+
		"its wait so far (≥).\n", sc.Clients, noisyLead, sc.Arrivals, arrivalGap, calmArrivals)
	b.WriteString("- **servers held**: backends of each user in `pg_stat_activity`, sampled every 250 ms: medians over the window, " +
		"and the most of all users at once.\n\n")
	b.WriteString("| target | quiet's share of transactions | noisy tps | quiet tps | quiet's first transaction, ms after it started " +
		"| quiet p99 ms: alone / with noisy | quiet p50 ms: alone / with noisy | servers held: noisy / quiet (most in all) " +
		"| arrival → first result ms: median / p99 / max (n) | after login ms: median / p99 | no load ms: median | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		f := r.Noisy
		if r.NA != "" || f == nil {
			fmt.Fprintf(b, "| %s | n/a | | | | | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		first := "none"
		if f.QuietFirstMs >= 0 {
			first = ms(f.QuietFirstMs)
		}
		ge := atLeast(*f)
		arr := fmt.Sprintf("%s / %s%s / %s%s (%d", ms(f.ArrivalP50), ge, ms(f.ArrivalP99), ge, ms(f.ArrivalMax), f.Arrivals)
		if f.ArrivalTimeouts > 0 {
			arr += fmt.Sprintf(", %d still waiting at the end", f.ArrivalTimeouts)
		}
		arr += ")"
		fmt.Fprintf(b, "| %s | %.2f | %s | %s | %s | %s / %s | %s / %s | %g / %g (%g) | %s | %s / %s | %s | %s |\n", r.Label,
			f.QuietShare, tpsText(f.NoisyTPS), tpsText(f.QuietTPS), first, ms(f.QuietAloneP99), ms(f.QuietP99), ms(f.QuietAloneP50), ms(f.QuietP50),
			f.NoisyServers, f.QuietServers, f.MaxServers, arr, ms(f.ReadyP50), ms(f.ReadyP99), ms(f.CalmP50), errText(r))
	}
	for _, r := range s.Rows {
		if r.NA == "" && r.Noisy != nil && r.Noisy.Limit != nil {
			fmt.Fprintf(b, "\n%s's adaptive limit while both users ran (`belay_node_limit` of its /metrics, every %s; its "+
				"ceiling is the budget): median %s.\n", r.Label, limitSampleEvery, limitText(r.Noisy.Limit))
		}
	}
}

func hungRows(s *ScenarioResult) string {
	var names []string
	for _, r := range s.Rows {
		if r.Hung > 0 {
			names = append(names, r.Label)
		}
	}
	return strings.Join(names, ", ")
}

func renderErrors(b *strings.Builder, s *ScenarioResult) {
	first := true
	for _, r := range s.Rows {
		if len(r.Errors) == 0 {
			continue
		}
		if first {
			b.WriteString("\nErrors:\n")
			first = false
		}
		for _, e := range r.Errors {
			fmt.Fprintf(b, "- %s: `%s`\n", r.Label, strings.ReplaceAll(e, "`", "'"))
		}
	}
}

// RenderSummary is one line per scenario: each target's tps (or the
// scenario's own figure), belay ÷ PgBouncer, p99 and errors. It is the table
// README.md quotes.
func RenderSummary(rep *Report) string {
	var b strings.Builder
	if slices.ContainsFunc(rep.Scenarios, func(s ScenarioResult) bool {
		return s.Scenario.Kind != KindReadScale && s.Scenario.Kind != KindFailover && s.Scenario.Kind != KindSharded &&
			s.Scenario.Kind != KindQuota && len(s.Scenario.Variants) == 0
	}) {
		b.WriteString("| scenario | direct | PgBouncer | belay | belay ÷ PgBouncer | p99 ms: direct / PgBouncer / belay | errors: direct / PgBouncer / belay |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	}
	cell := func(r *Row, f func(Row) string) string {
		if r == nil || r.NA != "" {
			return "n/a"
		}
		return f(*r)
	}
	tps := func(r Row) string { return tpsText(r.TPS) }
	p99 := func(r Row) string { return ms(r.P99) }
	errs := func(r Row) string { return thousands(r.ErrorCount()) }
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		d, pb, bl := s.Row(Direct), s.Row(PgBouncer), s.Row(Belay)
		name := s.Scenario.ID
		if len(s.Scenario.Variants) > 0 {
			continue // a table of its own, below
		}
		switch s.Scenario.Kind {
		case KindSlow:
			growth := func(r Row) string { return "+" + mib(r.RSSPeak-r.RSSBase) }
			fmt.Fprintf(&b, "| %s: proxy peak RSS growth | %s | %s | %s | | | %s / %s / %s |\n", name,
				cell(d, growth), cell(pb, growth), cell(bl, growth), cell(d, errs), cell(pb, errs), cell(bl, errs))
			continue
		case KindNoisy:
			share := func(r Row) string { return fmt.Sprintf("%.2f", noisyOf(r).QuietShare) }
			fmt.Fprintf(&b, "| %s: quiet's share of transactions (quiet's p99 ms with noisy) | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s |\n", name,
				// No ratio: the shares are the figures (PgBouncer's is
				// often near 0, and a ratio to it says nothing).
				cell(d, share), cell(pb, share), cell(bl, share), "",
				cell(d, p99), cell(pb, p99), cell(bl, p99), cell(d, errs), cell(pb, errs), cell(bl, errs))
			arrival := func(r Row) string { return ms(noisyOf(r).ArrivalP50) }
			arrival99 := func(r Row) string { return atLeast(noisyOf(r)) + ms(noisyOf(r).ArrivalP99) }
			fmt.Fprintf(&b, "| %s: a new user's first result, median ms (p99 ms), budget full | %s | %s | %s | %s | %s / %s / %s | |\n", name,
				cell(d, arrival), cell(pb, arrival), cell(bl, arrival), ratioOf(bl, pb, func(r Row) float64 { return noisyOf(r).ArrivalP50 }),
				cell(d, arrival99), cell(pb, arrival99), cell(bl, arrival99))
			continue
		case KindReadScale, KindFailover, KindSharded:
			continue // a table of its own, below
		case KindIdle:
			per := func(r Row) string { return bytesText(r.RSSPerIdle) }
			fmt.Fprintf(&b, "| %s: proxy RSS per idle client | %s | %s | %s | %s | | |\n", name,
				cell(d, per), cell(pb, per), cell(bl, per), ratioOf(bl, pb, func(r Row) float64 { return r.RSSPerIdle }))
			name += ": workers' tps"
		}
		rat := ratioOf(bl, pb, func(r Row) float64 { return r.TPS })
		if s.Scenario.SessionRow && pb != nil && pb.ErrorCount() > 0 {
			rat = "n/a: PgBouncer failed" // PgBouncer in transaction mode cannot keep prepared statements
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s |\n", name,
			cell(d, tps), cell(pb, tps), cell(bl, tps), rat,
			cell(d, p99), cell(pb, p99), cell(bl, p99), cell(d, errs), cell(pb, errs), cell(bl, errs))
		if ps := s.Row(PgBouncerSession); s.Scenario.SessionRow && ps != nil {
			fmt.Fprintf(&b, "| %s vs PgBouncer session mode | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s |\n", s.Scenario.ID,
				cell(d, tps), cell(ps, tps), cell(bl, tps), ratioOf(bl, ps, func(r Row) float64 { return r.TPS }),
				cell(d, p99), cell(ps, p99), cell(bl, p99), cell(d, errs), cell(ps, errs), cell(bl, errs))
		}
	}
	b.WriteString(renderAdaptiveSummary(rep))
	b.WriteString(renderReadScaleSummary(rep))
	b.WriteString(renderShardedSummary(rep))
	b.WriteString(renderFailoverSummary(rep))
	return b.String()
}

// atLeast is "≥ " when some arrivals of f were still waiting at the end
// (their times are lower bounds), else "".
func atLeast(f NoisyFigures) string {
	if f.ArrivalTimeouts > 0 {
		return "≥ "
	}
	return ""
}

// noisyOf is r's noisy-neighbour figures, zero when it has none.
func noisyOf(r Row) NoisyFigures {
	if r.Noisy == nil {
		return NoisyFigures{}
	}
	return *r.Noisy
}

func ratioOf(a, b *Row, f func(Row) float64) string {
	if a == nil || b == nil || a.NA != "" || b.NA != "" || f(*b) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", f(*a)/f(*b))
}

func ratio(v float64, ref *Row) string {
	if ref == nil || ref.NA != "" || ref.TPS == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v/ref.TPS)
}

func errText(r Row) string {
	n := r.ErrorCount()
	if n == 0 && len(r.Errors) == 0 {
		return "0"
	}
	var parts []string
	if r.Failed > 0 {
		parts = append(parts, thousands(r.Failed)+" failed tx")
	}
	if r.Aborted > 0 {
		parts = append(parts, fmt.Sprintf("%d clients aborted", r.Aborted))
	}
	if r.ConnFails > 0 {
		parts = append(parts, fmt.Sprintf("%d connections failed", r.ConnFails))
	}
	if r.Hung > 0 {
		parts = append(parts, fmt.Sprintf("pgbench hung in %d of %d runs", r.Hung, len(r.Runs)))
	}
	if r.IdleErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d idle connections failed", r.IdleErrors))
	}
	if r.Noisy != nil && r.Noisy.ArrivalErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d arrivals failed", r.Noisy.ArrivalErrors))
	}
	if len(parts) == 0 {
		return "see below"
	}
	return strings.Join(parts, ", ")
}

func tpsText(v float64) string { return thousands(int64(math.Round(v))) }

func ms(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func cpuText(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func releaseText(msv float64) string {
	if msv < 0 {
		return "still running after 10 s"
	}
	if msv == 0 {
		return "–"
	}
	if msv < 1000 {
		return fmt.Sprintf("%.0f ms", msv)
	}
	return fmt.Sprintf("%.1f s", msv/1000)
}

// thousands formats n with commas: 12345 → "12,345".
func thousands(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// mib formats a byte count: "812 KiB", "3.4 MiB", "1.20 GiB".
func mib(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	f := float64(n)
	switch {
	case n < 1<<20:
		return fmt.Sprintf("%s%.0f KiB", neg, f/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%s%.1f MiB", neg, f/(1<<20))
	}
	return fmt.Sprintf("%s%.2f GiB", neg, f/(1<<30))
}

// bytesText formats a per-client byte count: "5.2 KiB", "740 B".
func bytesText(v float64) string {
	switch {
	case math.Abs(v) < 1024:
		return fmt.Sprintf("%.0f B", v)
	case math.Abs(v) < 1<<20:
		return fmt.Sprintf("%.1f KiB", v/1024)
	}
	return fmt.Sprintf("%.2f MiB", v/(1<<20))
}
