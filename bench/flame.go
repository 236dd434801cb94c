package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/belaydb/belay/flamegraphs"
	"github.com/google/pprof/profile"
)

// flameResult is one scenario's profile, for the README of the flame graphs.
type flameResult struct {
	sc      Scenario
	run     RunResult
	summary flamegraphs.Summary
	cpu     float64 // seconds in the profile
}

// flamegraphs profiles belay under each scenario (a run of its own, not a
// timed one) and writes DIR/<id>.svg, DIR/<id>.pb.gz and DIR/README.md.
func (e *env) flamegraphs(ctx context.Context) error {
	dir := e.o.FlameDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var results []flameResult
	for _, sc := range e.o.Scenarios {
		if sc.Kind == KindNoisy {
			e.logf("flame graph %-22s skipped: it measures fairness between users, not CPU", sc.ID)
			continue
		}
		if len(sc.Variants) > 0 {
			e.logf("flame graph %-22s skipped: it compares belay's settings (its adaptive limit), not CPU", sc.ID)
			continue
		}
		prof := filepath.Join(e.work, sc.ID+".pb.gz")
		if err := e.startBelay(ctx, prof); err != nil {
			return err
		}
		t, _, err := e.target(ctx, Belay)
		if err != nil {
			return err
		}
		r := RunResult{Scenario: sc.ID, Target: Belay, Round: 1, CPUPer1k: -1}
		switch sc.Kind {
		case KindPgbench:
			err = e.pgbenchInto(ctx, sc, t, &r)
		case KindIdle:
			err = e.runIdle(ctx, sc, t, &r)
		case KindSlow:
			err = e.runSlow(ctx, t, &r)
		}
		if serr := e.belay.Stop(); serr != nil && err == nil {
			err = serr
		}
		e.belay = nil
		if err != nil {
			return fmt.Errorf("%s: %w", sc.ID, err)
		}
		fr, err := renderFlame(prof, dir, sc, r)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.ID, err)
		}
		e.logf("flame graph %-22s %s  (%.1f s of CPU profiled; %s)", sc.ID, filepath.Join(dir, sc.ID+".svg"), fr.cpu, summaryLine(sc, r))
		results = append(results, fr)
	}
	readme := renderFlameReadme(results, e.meta(ctx), e.o)
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme), 0o644); err != nil {
		return err
	}
	e.logf("done in %s: %s", time.Since(e.start).Round(time.Second), filepath.Join(dir, "README.md"))
	return nil
}

func renderFlame(profPath, dir string, sc Scenario, r RunResult) (flameResult, error) {
	raw, err := os.ReadFile(profPath)
	if err != nil {
		return flameResult{}, err
	}
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil {
		return flameResult{}, fmt.Errorf("parsing %s: %w", profPath, err)
	}
	if err := os.WriteFile(filepath.Join(dir, sc.ID+".pb.gz"), raw, 0o644); err != nil {
		return flameResult{}, err
	}
	stacks, unit := flamegraphs.FromProfile(p)
	sum := flamegraphs.Summarize(stacks, 12)
	cpu := float64(sum.Total)
	if unit == "nanoseconds" {
		cpu /= 1e9
	}
	sub := fmt.Sprintf("%s — %.1f s of belay CPU over %.0f s", sc.Title, cpu, float64(p.DurationNanos)/1e9)
	if r.Transactions > 0 {
		sub += fmt.Sprintf(", %s transactions (%.0f tps)", thousands(r.Transactions), r.TPS)
	}
	var svg bytes.Buffer
	if err := flamegraphs.WriteSVG(&svg, stacks, flamegraphs.SVGOptions{
		Title: "belay proxy CPU: " + sc.ID, Subtitle: stripTicks(sub), Unit: unit,
	}); err != nil {
		return flameResult{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, sc.ID+".svg"), svg.Bytes(), 0o644); err != nil {
		return flameResult{}, err
	}
	return flameResult{sc: sc, run: r, summary: sum, cpu: cpu}, nil
}

func stripTicks(s string) string { return strings.ReplaceAll(s, "`", "") }

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func catShare(s flamegraphs.Summary, name string) string {
	for _, c := range s.Categories {
		if c.Name == name {
			return pct(c.Frac)
		}
	}
	return "0.0%"
}

func renderFlameReadme(results []flameResult, m Meta, o Options) string {
	var b strings.Builder
	b.WriteString("# Flame graphs of belay\n\n")
	b.WriteString("CPU profiles of `belay proxy` under each core scenario of `belay bench`, each from a run of its own " +
		"(not the timed runs), rendered as SVG flame graphs by package `flamegraphs`: callers below, callees above, a frame's " +
		"width is its share of the proxy's CPU time; hover a frame for its full name and time. They are the baseline " +
		"performance work is compared to, e.g. `go tool pprof -diff_base flamegraphs/select-simple-c10.pb.gz new.pb.gz`.\n\n")
	b.WriteString("`make flamegraphs` regenerates them (SVGs, raw profiles `*.pb.gz` and this README).\n\n")
	fmt.Fprintf(&b, "Generated %s on %d cores (%s), belay commit %s, %s, PostgreSQL %s; %g s per scenario, --pool-size %d.\n\n",
		time.Now().Format("2006-01-02"), runtime.NumCPU(), m.CPUModel, m.BelayCommit, m.GoVersion, m.PostgresVersion, o.Duration.Seconds(), o.PoolSize)
	b.WriteString("Self time by kind of code (the leaf frame of each sample):\n\n")
	b.WriteString("| scenario | flame graph | CPU s | tps | belay | gnet | system calls | Go runtime: GC and allocation | Go runtime: other | other | top system calls |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range results {
		var sys []string
		for i, s := range r.summary.Syscalls {
			if i == 3 {
				break
			}
			sys = append(sys, fmt.Sprintf("%s %s", flamegraphs.Short(s.Name), pct(s.Frac)))
		}
		tps := "–"
		if r.run.TPS > 0 {
			tps = tpsText(r.run.TPS)
		}
		fmt.Fprintf(&b, "| %s | [svg](%s.svg) | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.sc.ID, r.sc.ID, r.cpu, tps,
			catShare(r.summary, "belay"), catShare(r.summary, "gnet"), catShare(r.summary, "system calls"),
			catShare(r.summary, "Go runtime: GC and allocation"), catShare(r.summary, "Go runtime: scheduler, timers, other"),
			catShare(r.summary, "other (std, pgx, ...)"), strings.Join(sys, ", "))
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n![%s](%s.svg)\n\n", r.sc.ID, r.sc.Title, r.sc.ID, r.sc.ID)
		b.WriteString("| top self time | share | | belay and gnet, cumulative | share |\n|---|--:|---|---|--:|\n")
		for i := 0; i < max(len(r.summary.TopFlat), len(r.summary.TopCumBelay)); i++ {
			var a, av, c, cv string
			if i < len(r.summary.TopFlat) {
				a, av = "`"+flamegraphs.Short(r.summary.TopFlat[i].Name)+"`", pct(r.summary.TopFlat[i].Frac)
			}
			if i < len(r.summary.TopCumBelay) {
				c, cv = "`"+flamegraphs.Short(r.summary.TopCumBelay[i].Name)+"`", pct(r.summary.TopCumBelay[i].Frac)
			}
			fmt.Fprintf(&b, "| %s | %s | | %s | %s |\n", a, av, c, cv)
		}
	}
	return b.String()
}
