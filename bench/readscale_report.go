package bench

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// renderReadScale is a read-scaling scenario's section of report.md.
func renderReadScale(b *strings.Builder, s *ScenarioResult) {
	info := s.ReadScale
	if info == nil {
		info = &ReadScaleResult{}
	}
	if info.Skipped != "" {
		fmt.Fprintf(b, "Skipped: %s\n", info.Skipped)
		return
	}
	n := s.Scenario.Nodes
	fmt.Fprintf(b, "A primary and %d streaming replicas (synchronous replication, `ANY 1`, as `belay up` makes them), "+
		"each limited to %.2g core of CPU by a cgroup of its own (%s: %d µs per %d µs period), so that a node added adds "+
		"capacity as it would on a machine of its own although every node shares this machine's cores. "+
		"pgbench, belay and pgpool-II run outside those cgroups, on what the machine has left. Per round, alternating: "+
		"pgbench directly against the primary (the baseline), then through pgpool-II and belay in front of the first 1, 2, … %d nodes "+
		"(1: the primary alone). belay: `belay proxy --etcd … --cluster readscale-N`, the nodes registered in an embedded etcd, "+
		"defaults otherwise (reads to the replica with the least work in flight, never to the primary while a replica is usable; "+
		"read-your-writes). pgpool-II (%s): streaming-replication mode, load balancing over every node with equal weights, "+
		"the primary included (%s).\n\n",
		n-1, info.NodeCPU, info.Cgroup, info.QuotaUs, info.PeriodUs, n, info.Pgpool, info.PgpoolConfig)
	b.WriteString("| nodes | direct to the primary, tps | pgpool-II tps (rounds: min–max) | belay tps (rounds: min–max) | belay ÷ pgpool-II " +
		"| pgpool-II ÷ its 1 node | belay ÷ its 1 node | errors: pgpool-II / belay |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, p := range info.Points {
		direct := ""
		if p.Nodes == 1 {
			direct = tpsText(info.DirectTPS)
		}
		fmt.Fprintf(b, "| %d | %s | %s (%s) | %s (%s) | %s | %s | %s | %s / %s |\n", p.Nodes, direct,
			tpsText(p.PgpoolTPS), p.PgpoolSpread, tpsText(p.BelayTPS), p.BelaySpread, ratioText(p.Ratio),
			ratioText(p.PgpoolScale), ratioText(p.BelayScale), thousands(p.PgpoolErrors), thousands(p.BelayErrors))
	}
	b.WriteString("\nEach target, medians across rounds; *nodes' CPU* is the CPU each node's processes used, in cores " +
		"(pg0 the primary first), and *throttled* the share of the CFS periods in which a node used up its quota:\n\n")
	b.WriteString("| target | tps | p50 ms | p99 ms | proxy CPU s / 1k tx | nodes' CPU, cores | throttled | errors |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Rows {
		if r.NA != "" {
			fmt.Fprintf(b, "| %s | n/a | | | | | | %s |\n", r.Label, r.NA)
			continue
		}
		cpu := medianNodeFigures(r, func(f *ReadScaleRun) []float64 { return f.NodeCPU })
		thr := medianNodeFigures(r, func(f *ReadScaleRun) []float64 { return f.Throttled })
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, tpsText(r.TPS), ms(r.P50), ms(r.P99),
			cpuText(r.CPUPer1k), coresText(cpu), percentsText(thr), errText(r))
	}
}

// renderReadScaleSummary is the summary's table of the read-scaling
// scenarios of rep ("" when there is none).
func renderReadScaleSummary(rep *Report) string {
	var b strings.Builder
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		if s.Scenario.Kind != KindReadScale || s.ReadScale == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nRead scaling (CPU-limited nodes; tps, medians across rounds):\n\n")
			b.WriteString("| scenario | nodes | direct to the primary | pgpool-II | belay | belay ÷ pgpool-II |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|\n")
		}
		if s.ReadScale.Skipped != "" {
			fmt.Fprintf(&b, "| %s | | | | | skipped: %s |\n", s.Scenario.ID, s.ReadScale.Skipped)
			continue
		}
		for _, p := range s.ReadScale.Points {
			direct := ""
			if p.Nodes == 1 {
				direct = tpsText(s.ReadScale.DirectTPS)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", s.Scenario.ID, p.Nodes, direct, tpsText(p.PgpoolTPS), tpsText(p.BelayTPS), ratioText(p.Ratio))
		}
	}
	return b.String()
}

// ratioText is v with two decimals, "n/a" for 0.
func ratioText(v float64) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

// percentsText is "97% / 3% / 0%": a share per node.
func percentsText(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f%%", 100*x)
	}
	return strings.Join(s, " / ")
}

// readScaleChart draws tps against the node count, a line per proxy,
// with the direct baseline as a point at 1 node; false when there is
// nothing to draw.
func readScaleChart(path string, s *ScenarioResult) (bool, error) {
	info := s.ReadScale
	if info == nil || info.Skipped != "" || len(info.Points) == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = s.Scenario.ID + ": tps by node count (median of rounds)"
	p.X.Label.Text = "nodes (1: the primary alone)"
	p.Y.Label.Text = "transactions / s"
	p.Y.Min = 0
	p.X.Min, p.X.Max = 0.5, float64(len(info.Points))+0.5
	for _, c := range []struct {
		name, label string
		tps         func(ReadScalePoint) float64
	}{
		{PgBouncer, "pgpool-II", func(p ReadScalePoint) float64 { return p.PgpoolTPS }},
		{Belay, "belay", func(p ReadScalePoint) float64 { return p.BelayTPS }},
	} {
		var xys plotter.XYs
		for _, pt := range info.Points {
			xys = append(xys, plotter.XY{X: float64(pt.Nodes), Y: c.tps(pt)})
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return false, err
		}
		l.Color, pts.Color = targetColor(c.name), targetColor(c.name)
		l.Width = vg.Points(1.5)
		p.Add(l, pts)
		p.Legend.Add(c.label, l, pts)
	}
	d, err := plotter.NewScatter(plotter.XYs{{X: 1, Y: info.DirectTPS}})
	if err != nil {
		return false, err
	}
	d.Color = color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
	d.Radius = vg.Points(4)
	p.Add(d)
	p.Legend.Add("direct to the primary", d)
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Max *= 1.15
	var ticks []plot.Tick
	for _, pt := range info.Points {
		ticks = append(ticks, plot.Tick{Value: float64(pt.Nodes), Label: fmt.Sprint(pt.Nodes)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	return true, p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// readScaleCharts writes s's charts into dir: tps by node count, and the
// latency CDF of every target.
func readScaleCharts(dir string, s *ScenarioResult) ([]string, error) {
	var files []string
	for _, c := range []struct {
		file string
		draw func(string, *ScenarioResult) (bool, error)
	}{{"-scaling.png", readScaleChart}, {"-latency.png", cdfChart}} {
		f := s.Scenario.ID + c.file
		ok, err := c.draw(filepath.Join(dir, f), s)
		if err != nil {
			return nil, err
		}
		if ok {
			files = append(files, f)
		}
	}
	return files, nil
}

// readScaleColor is the color of proxy (pgpool-II blue, belay orange, as
// PgBouncer and belay elsewhere) in front of n nodes: lighter for fewer.
func readScaleColor(proxy string, n int) color.Color {
	base := targetColor(Belay).(color.RGBA)
	if proxy == pgpoolProxy {
		base = targetColor(PgBouncer).(color.RGBA)
	}
	// Mix with white: 1 node 50%, 2 nodes 25%, 3 or more none.
	w := map[int]float64{1: 0.5, 2: 0.25}[n]
	mix := func(c uint8) uint8 { return uint8(float64(c)*(1-w) + 255*w) }
	return color.RGBA{R: mix(base.R), G: mix(base.G), B: mix(base.B), A: 0xff}
}
