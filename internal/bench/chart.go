package bench

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WriteChart draws goodput against loss, one line per algorithm and the
// measured and analytic limits dashed, as base.png and base.svg.
func WriteChart(base, title string, rows []Row) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "loss, % (each direction)"
	p.Y.Label.Text = "goodput, Mbit/s"
	p.Y.Min = 0
	top := 0.0
	for _, r := range rows {
		top = max(top, r.GoodputMbps)
	}
	p.Y.Max = top * 1.5 // room above the lines for the legend
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	colors := map[string]color.Color{
		"sack": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, "seed": color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 255},
		"tcp-cubic": color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, "tcp-bbr": color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255},
		"limit": color.Black, "analytic": color.Gray{Y: 0x80},
	}
	for _, algo := range Algorithms {
		var pts plotter.XYs
		for _, r := range rows {
			if r.Algorithm == algo {
				pts = append(pts, plotter.XY{X: r.LossPct, Y: r.GoodputMbps})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = colors[algo], colors[algo]
		line.Width = vg.Points(1.5)
		points.Shape = draw.CircleGlyph{}
		name := algo
		switch algo {
		case "limit":
			line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			name = "link limit (measured)"
		case "analytic":
			line.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			name = "rate × payload/frame"
		}
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, base+ext); err != nil {
			return fmt.Errorf("chart %q: %w", filepath.Base(base+ext), err)
		}
	}
	return nil
}
