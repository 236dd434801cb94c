package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// targetColor gives each target the same color in every chart.
func targetColor(name string) color.Color {
	switch name {
	case Direct:
		return color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
	case PgBouncer:
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	case PgBouncerSession:
		return color.RGBA{R: 0x6b, G: 0xae, B: 0xd6, A: 0xff}
	case Belay:
		return color.RGBA{R: 0xe6, G: 0x55, B: 0x0d, A: 0xff}
	case BelayTiers:
		return color.RGBA{R: 0xfd, G: 0xae, B: 0x6b, A: 0xff}
	}
	if p, n, ok := parseReadScaleTarget(name); ok {
		return readScaleColor(p, n)
	}
	if name == adaptiveVariantName {
		return targetColor(Belay)
	}
	for i, b := range sweepBudgets {
		if name == fixedVariantName(b) {
			return plotutil.Color(i + 2)
		}
	}
	return plotutil.Color(0)
}

// WriteCharts writes each scenario's charts into dir as PNG: throughput
// bars and a latency CDF for pgbench scenarios, the RSS timeline for the
// slow client, the quiet user's latency CDFs for the noisy neighbour. It
// returns the file names by scenario ID.
func WriteCharts(dir string, rep *Report) (map[string][]string, error) {
	out := map[string][]string{}
	for i := range rep.Scenarios {
		s := &rep.Scenarios[i]
		var files []string
		if s.Scenario.Kind == KindFailover || s.Scenario.Kind == KindSharded {
			// Times and counts per run; tps and CPU by shard count: tables only.
		} else if s.Scenario.Kind == KindQuota {
			for _, c := range []struct {
				suffix, title, y string
				of               func(QuotaSecond) float64
			}{
				{"-p99.png", "p99 latency per second", "p99 latency, ms", func(q QuotaSecond) float64 { return q.P99 }},
				{"-limit.png", "belay's limit per second", "belay_node_limit", func(q QuotaSecond) float64 { return q.Limit }},
			} {
				f := s.Scenario.ID + c.suffix
				if ok, err := quotaChart(filepath.Join(dir, f), s, c.title, c.y, c.of); err != nil {
					return nil, err
				} else if ok {
					files = append(files, f)
				}
			}
		} else if s.Scenario.Kind == KindReadScale {
			f, err := readScaleCharts(dir, s)
			if err != nil {
				return nil, err
			}
			files = f
		} else if s.Scenario.Kind == KindNoisy {
			f := s.Scenario.ID + "-quiet-latency.png"
			if ok, err := quietCDFChart(filepath.Join(dir, f), s); err != nil {
				return nil, err
			} else if ok {
				files = append(files, f)
			}
		} else if s.Scenario.Kind == KindSlow {
			f := s.Scenario.ID + "-rss.png"
			if ok, err := rssChart(filepath.Join(dir, f), s); err != nil {
				return nil, err
			} else if ok {
				files = append(files, f)
			}
		} else {
			f := s.Scenario.ID + "-tps.png"
			if err := tpsChart(filepath.Join(dir, f), s); err != nil {
				return nil, err
			}
			files = append(files, f)
			f = s.Scenario.ID + "-latency.png"
			if ok, err := cdfChart(filepath.Join(dir, f), s); err != nil {
				return nil, err
			} else if ok {
				files = append(files, f)
			}
		}
		out[s.Scenario.ID] = files
	}
	return out, nil
}

func tpsChart(path string, s *ScenarioResult) error {
	p := plot.New()
	p.Title.Text = s.Scenario.ID + ": throughput (median of rounds)"
	p.Y.Label.Text = "transactions / s"
	p.Y.Min = 0
	var names []string
	var xys plotter.XYs
	var labels []string
	for i, r := range s.Rows {
		v := r.TPS
		name := r.Label
		if r.NA != "" {
			v, name = 0, r.Label+" (n/a)"
		}
		names = append(names, name)
		bar, err := plotter.NewBarChart(plotter.Values{v}, vg.Points(50))
		if err != nil {
			return err
		}
		bar.XMin = float64(i)
		bar.Color = targetColor(r.Target)
		bar.LineStyle.Width = 0
		p.Add(bar)
		xys = append(xys, plotter.XY{X: float64(i), Y: v})
		labels = append(labels, tpsText(v))
	}
	if lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels}); err == nil {
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = -0.5
			lb.TextStyle[i].YAlign = 0
		}
		p.Add(lb)
	}
	p.NominalX(names...)
	p.Y.Max *= 1.1
	return p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// cdfPoints samples the CDF of sorted latencies (µs) as (ms, fraction)
// points: evenly in rank, plus more points in the tail.
func cdfPoints(sorted []float64, n int) plotter.XYs {
	if len(sorted) == 0 {
		return nil
	}
	var xys plotter.XYs
	add := func(q float64) {
		v := Percentile(sorted, q) / 1000
		if v <= 0 {
			v = 0.001
		}
		xys = append(xys, plotter.XY{X: v, Y: q})
	}
	for i := 1; i <= n; i++ {
		add(float64(i) / float64(n))
	}
	for _, q := range []float64{0.991, 0.993, 0.995, 0.997, 0.999, 0.9995, 0.9999} {
		add(q)
	}
	add(1e-9) // the minimum
	// sort by quantile
	for i := 1; i < len(xys); i++ {
		for j := i; j > 0 && xys[j].Y < xys[j-1].Y; j-- {
			xys[j], xys[j-1] = xys[j-1], xys[j]
		}
	}
	return xys
}

// newCDFPlot is an empty latency CDF: milliseconds on a log scale, the
// fraction of transactions (yLabel) from 0 to 1, the legend bottom right.
func newCDFPlot(title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency, ms (log scale)"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	return p
}

func cdfChart(path string, s *ScenarioResult) (bool, error) {
	p := newCDFPlot(s.Scenario.ID+": latency CDF (all rounds)", "fraction of transactions")
	any := false
	for _, r := range s.Rows {
		lat := r.Latencies()
		if len(lat) == 0 {
			continue
		}
		if _, err := addLine(p, cdfPoints(lat, 400), r.Target, fmt.Sprintf("%s (p99 %s ms)", r.Label, ms(r.P99))); err != nil {
			return false, err
		}
		any = true
	}
	if !any {
		return false, nil
	}
	p.Add(plotter.NewGrid())
	return true, p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// quietCDFChart draws the quiet user's latency CDF of each target, alone
// (dashed) and with the noisy user (solid).
func quietCDFChart(path string, s *ScenarioResult) (bool, error) {
	p := newCDFPlot(s.Scenario.ID+": the quiet user's latency CDF (all rounds)", "fraction of the quiet user's transactions")
	any := false
	for _, r := range s.Rows {
		if v, ok := variantOf(s, r.Target); r.Noisy == nil || (ok && v.Fixed) {
			continue // the fixed budgets' are in the table: lines for all would hide each other
		}
		for _, c := range []struct {
			lat  []float64
			what string
			p99  float64
			dash bool
		}{{r.AloneLatencies(), "alone", r.Noisy.QuietAloneP99, true}, {r.Latencies(), "with noisy", r.Noisy.QuietP99, false}} {
			if len(c.lat) == 0 {
				continue
			}
			l, err := addLine(p, cdfPoints(c.lat, 400), r.Target, fmt.Sprintf("%s, %s (p99 %s ms)", r.Label, c.what, ms(c.p99)))
			if err != nil {
				return false, err
			}
			if c.dash {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			any = true
		}
	}
	if !any {
		return false, nil
	}
	p.Add(plotter.NewGrid())
	return true, p.Save(6*vg.Inch, 4*vg.Inch, path)
}

func rssChart(path string, s *ScenarioResult) (bool, error) {
	p := plot.New()
	p.Title.Text = s.Scenario.ID + ": proxy resident memory while the client reads slowly"
	p.X.Label.Text = "seconds since the query was sent"
	p.Y.Label.Text = "RSS, MiB"
	p.Y.Min = 0
	any := false
	top := 0.0
	for _, r := range s.Rows {
		if r.NA != "" || len(r.Runs) == 0 {
			continue
		}
		run := r.Runs[0]
		if len(run.RSSSamples) == 0 {
			continue
		}
		var xys plotter.XYs
		for _, smp := range run.RSSSamples {
			v := float64(smp.RSS) / (1 << 20)
			top = math.Max(top, v)
			xys = append(xys, plotter.XY{X: smp.T, Y: v})
		}
		if _, err := addLine(p, xys, r.Target, r.Label); err != nil {
			return false, err
		}
		any = true
	}
	if !any {
		return false, nil
	}
	p.Y.Max = math.Max(top*1.2, 16)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return true, p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// quotaChart draws what of gives of each second of the quota-halved
// scenario's rows (medians across rounds), a line per target, second 0
// the halving; false when there is nothing to draw.
func quotaChart(path string, s *ScenarioResult, title, yLabel string, of func(QuotaSecond) float64) (bool, error) {
	p := plot.New()
	p.Title.Text = s.Scenario.ID + ": " + title
	p.X.Label.Text = "seconds from the halving of the node's CPU quota"
	p.Y.Label.Text = yLabel
	p.Y.Min = 0
	any := false
	for _, r := range s.Rows {
		if r.NA != "" || r.Quota == nil {
			continue
		}
		var xys plotter.XYs
		for _, sec := range r.Quota.Seconds {
			if v := of(sec); v > 0 {
				xys = append(xys, plotter.XY{X: float64(sec.T) + 0.5, Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		if _, err := addLine(p, xys, r.Target, r.Label); err != nil {
			return false, err
		}
		any = true
	}
	if !any {
		return false, nil
	}
	p.Y.Max *= 1.15
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return true, p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// addLine adds xys to p as a line in target's colour, with label in the
// legend.
func addLine(p *plot.Plot, xys plotter.XYer, target, label string) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.Color = targetColor(target)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(label, l)
	return l, nil
}
