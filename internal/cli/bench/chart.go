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

// A series is one server's bars in a chart: the median of its CPU per GiB
// in each case, relative to the baseline's in that case (0 where the
// baseline has none).
type series struct {
	server   string
	fellBack bool // some result fell back to user-space TLS
	values   []float64
}

// label is the series' name in the legend.
func (s series) label() string {
	if s.fellBack {
		return s.server + " (FALLBACK: user-space TLS)"
	}
	return s.server
}

// chartSeries returns the cases of one scenario, in the report's order,
// and a series per server that has results in it.
func (rep *Report) chartSeries(scenario string) (cases []string, ss []series) {
	var servers []string
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
	for _, srv := range servers {
		s := series{server: srv, fellBack: fellBack[srv], values: make([]float64, len(cases))}
		for j, c := range cases {
			if b := val[[2]string{baseline, c}]; b > 0 {
				s.values[j] = val[[2]string{srv, c}] / b
			}
		}
		ss = append(ss, s)
	}
	return cases, ss
}

// WriteChart draws the server CPU per GiB of one scenario relative to Go's
// net/http with crypto/tls (so cases of any size share one scale), a group
// of bars per case and a bar per server, to an SVG or PNG file (by
// extension).
func (rep *Report) WriteChart(file, scenario string) error {
	cases, ss := rep.chartSeries(scenario)
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
	w := vg.Points(14)
	for i, s := range ss {
		bars, err := plotter.NewBarChart(plotter.Values(s.values), w)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = plotutil.Color(i)
		if bars.Color == nil {
			bars.Color = color.Gray{Y: 128}
		}
		bars.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.label(), bars)
	}
	p.Legend.Top = true
	p.NominalX(cases...)
	return p.Save(vg.Length(120+60*len(cases)*len(ss)/2)*vg.Millimeter/4+12*vg.Centimeter, 10*vg.Centimeter, file)
}
