package bench

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteChart draws the server CPU per GiB of one scenario relative to Go's
// net/http with crypto/tls (so cases of any size share one scale), a group
// of bars per case and a bar per server, to an SVG or PNG file (by
// extension).
func (rep *Report) WriteChart(file, scenario string) error {
	var cases, servers []string
	val := map[[2]string]float64{}
	fellBack := map[string]bool{}
	for _, r := range rep.Results {
		if r.Scenario != scenario || r.Err != "" || len(r.Samples) == 0 {
			continue
		}
		if _, fb := r.Offload(); fb != "" {
			fellBack[r.Server] = true
		}
		if !slices.Contains(cases, r.Case) {
			cases = append(cases, r.Case)
		}
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
		t, _, _ := r.CPU()
		val[[2]string{r.Server, r.Case}] = t.Median
	}
	if len(cases) == 0 {
		return fmt.Errorf("bench: no results for %s to chart", scenario)
	}
	p := plot.New()
	title := fmt.Sprintf("ktls bench: %s, server CPU per GiB (median of each case)", scenario)
	if rep.Emulated {
		title += " — emulated, ratios only"
	}
	p.Title.Text = title
	p.Y.Label.Text = "server CPU per GiB, relative to " + baseline + " (lower is better)"
	for _, c := range cases {
		b := val[[2]string{baseline, c}]
		for _, srv := range servers {
			if b > 0 {
				val[[2]string{srv, c}] /= b
			} else {
				val[[2]string{srv, c}] = 0
			}
		}
	}
	w := vg.Points(14)
	for i, srv := range servers {
		vs := make(plotter.Values, len(cases))
		for j, c := range cases {
			vs[j] = val[[2]string{srv, c}]
		}
		bars, err := plotter.NewBarChart(vs, w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		if bars.Color == nil {
			bars.Color = color.Gray{Y: 128}
		}
		bars.Offset = w * vg.Length(float64(i)-float64(len(servers)-1)/2)
		p.Add(bars)
		label := srv
		if fellBack[srv] {
			label += " (FALLBACK: user-space TLS)"
		}
		p.Legend.Add(label, bars)
	}
	p.Legend.Top = true
	p.NominalX(cases...)
	return p.Save(vg.Length(120+60*len(cases)*len(servers)/2)*vg.Millimeter/4+12*vg.Centimeter, 10*vg.Centimeter, file)
}
