package bench

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", file, got)
	}
}

// TestFigures: the figures a sample's counts give, in the units the table
// prints: MiB/s, CPU seconds per GiB, requests per second.
func TestFigures(t *testing.T) {
	s := Sample{Bytes: 2 << 30, Requests: 600, Elapsed: 2 * time.Second, User: time.Second, Sys: 3 * time.Second}
	if got := s.Throughput(); got != 1024 {
		t.Errorf("Throughput = %v, want 1024 MiB/s", got)
	}
	if u, y := s.CPUPerGiB(); u != 0.5 || y != 1.5 {
		t.Errorf("CPUPerGiB = %v, %v; want 0.5, 1.5", u, y)
	}
	if got := s.RequestRate(); got != 300 {
		t.Errorf("RequestRate = %v, want 300/s", got)
	}
}

// TestStat: min, median and max over the samples, in any order; an even
// count's median is the upper of the middle two.
func TestStat(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want Stat
	}{
		{nil, Stat{}},
		{[]float64{5}, Stat{5, 5, 5}},
		{[]float64{3, 1, 2}, Stat{1, 2, 3}},
		{[]float64{4, 1, 3, 2}, Stat{1, 3, 4}},
	} {
		xs := slices.Clone(tc.xs)
		if got := stat(xs); got != tc.want {
			t.Errorf("stat(%v) = %+v, want %+v", tc.xs, got, tc.want)
		}
		if !slices.Equal(xs, tc.xs) {
			t.Errorf("stat sorted its argument: %v", xs)
		}
	}
}

// TestResultCPU: a result's CPU figures are each sample's CPU time per
// GiB (or per request), user and system apart and together, summarised
// over the samples.
func TestResultCPU(t *testing.T) {
	r := Result{Samples: []Sample{
		{Bytes: 1 << 30, Requests: 100, User: 1 * time.Second, Sys: 3 * time.Second, P50: 100 * time.Microsecond, P99: 900 * time.Microsecond},
		{Bytes: 2 << 30, Requests: 200, User: 1 * time.Second, Sys: 1 * time.Second, P50: 300 * time.Microsecond, P99: 700 * time.Microsecond},
		{Bytes: 1 << 29, Requests: 50, User: 1 * time.Second, Sys: 500 * time.Millisecond, P50: 200 * time.Microsecond, P99: 800 * time.Microsecond},
	}}
	total, user, sys := r.CPU()
	// Per GiB: (1+3)/1, (1+1)/2, (1+0.5)/0.5 = 4, 1, 3.
	if want := (Stat{1, 3, 4}); total != want {
		t.Errorf("CPU total = %+v, want %+v", total, want)
	}
	if want := (Stat{0.5, 1, 2}); user != want {
		t.Errorf("CPU user = %+v, want %+v", user, want)
	}
	if want := (Stat{0.5, 1, 3}); sys != want {
		t.Errorf("CPU sys = %+v, want %+v", sys, want)
	}
	// Per request, in ms: 4000/100, 2000/200, 1500/50.
	if got, want := r.CPUPerRequest(), (Stat{10, 30, 40}); got != want {
		t.Errorf("CPUPerRequest = %+v, want %+v", got, want)
	}
	p50, p99 := r.Latency()
	if want := (Stat{100, 200, 300}); p50 != want {
		t.Errorf("p50 = %+v, want %+v µs", p50, want)
	}
	if want := (Stat{700, 800, 900}); p99 != want {
		t.Errorf("p99 = %+v, want %+v µs", p99, want)
	}
}

// TestCoarseCPUTicks: the mark counts whole clock ticks of user and
// system time together; one sample under minTicks marks the result.
func TestCoarseCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		user, sys time.Duration
		coarse    bool
	}{
		{500 * time.Millisecond, 500 * time.Millisecond, false}, // 100 ticks
		{500 * time.Millisecond, 499 * time.Millisecond, true},  // 99.9
		{0, 2 * time.Second, false},
		{0, 0, true},
	} {
		r := Result{Samples: []Sample{{User: 10 * time.Second}, {User: tc.user, Sys: tc.sys}}}
		if got := r.coarseCPU(); got != tc.coarse {
			t.Errorf("user %v, sys %v: coarse %v, want %v", tc.user, tc.sys, got, tc.coarse)
		}
	}
}

// report is a run with a row of every kind: each scenario, a baseline
// and not, offloaded, fallen back, coarse, and an error.
func report() *Report {
	// A sample of conns connections, off of them offloaded both ways.
	smp := func(mib int64, elapsed, user, sys time.Duration, conns, off int) Sample {
		return Sample{Bytes: mib << 20, Requests: 64, Elapsed: elapsed, User: user, Sys: sys,
			KernelTLS: true, Conns: conns, KernelTX: off, KernelRX: off}
	}
	lat := func(p50, p99 time.Duration, off int) Sample {
		s := smp(1, time.Second, time.Second, time.Second, 1, off)
		s.P50, s.P99 = p50, p99
		return s
	}
	return &Report{Machine: "Test CPU @ 3.00GHz", Kernel: "7.3.4+deb13-amd64", Emulated: true,
		Date: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Results: []Result{
			{Scenario: "files", Server: "go", Case: "4K", Conns: 16, Samples: []Sample{
				smp(1024, 2*time.Second, 2*time.Second, 2*time.Second, 4, 0), smp(1024, 4*time.Second, 3*time.Second, 3*time.Second, 4, 0)}},
			{Scenario: "files", Server: "ktls", Case: "4K", Conns: 16, Samples: []Sample{
				smp(1024, time.Second, time.Second, time.Second, 4, 4), smp(1024, 2*time.Second, time.Second, 2*time.Second, 4, 4)}},
			{Scenario: "files", Server: "nginx-ktls", Case: "4K", Conns: 16, Samples: []Sample{
				smp(1024, time.Second, 2*time.Second, time.Second, 4, 0)}},
			{Scenario: "files", Server: "nginx", Case: "4K", Conns: 16,
				Err: "nginx is not installed: exec: \"nginx\": executable file not found in $PATH\nsecond line"},
			{Scenario: "bulk", Server: "go", Case: "TLS1.3 AES-128-GCM", Conns: 1, Samples: []Sample{
				smp(256, time.Second, 300*time.Millisecond, 200*time.Millisecond, 1, 0)}},
			{Scenario: "bulk", Server: "ktls", Case: "TLS1.3 AES-128-GCM", Conns: 1, Samples: []Sample{
				smp(256, time.Second, 100*time.Millisecond, 150*time.Millisecond, 1, 1)}},
			{Scenario: "upload", Server: "ktls", Case: "256M POST", Conns: 1, Samples: []Sample{
				smp(256, time.Second, time.Second, time.Second, 1, 1)}},
			{Scenario: "latency", Server: "go", Case: "128 B", Conns: 1, Samples: []Sample{
				lat(150*time.Microsecond, 400*time.Microsecond, 0), lat(250*time.Microsecond, 600*time.Microsecond, 0)}},
			{Scenario: "latency", Server: "ktls", Case: "128 B", Conns: 1, Samples: []Sample{
				lat(120*time.Microsecond, 300*time.Microsecond, 1)}},
			{Scenario: "handshake", Server: "go", Case: "new conn + 128 B", Conns: 4, Samples: []Sample{
				smp(1, time.Second, 3*time.Second, time.Second, 4, 0)}},
			{Scenario: "handshake", Server: "ktls", Case: "new conn + 128 B", Conns: 4, Samples: []Sample{
				smp(1, 2*time.Second, 4*time.Second, 2*time.Second, 4, 4)}},
		}}
}

// TestWriteTable: the tables of a report with a row of every kind, byte
// for byte.
func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	report().WriteTable(&buf)
	golden(t, "table.txt", buf.Bytes())
}

// TestWriteJSON: the JSON of the same report, with what is derived from
// the samples filled in.
func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := report().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", buf.Bytes())
}

// TestChartSeries: a chart has a bar per server in each case, its CPU per
// GiB over the baseline's, and the baseline's bars are 1; a case the
// baseline has no figure for is 0 throughout. Error rows are left out.
func TestChartSeries(t *testing.T) {
	rep := report()
	rep.Results = append(rep.Results, Result{Scenario: "files", Server: "ktls", Case: "1M", Conns: 16,
		Samples: []Sample{{Bytes: 1 << 30, Elapsed: time.Second, User: time.Second, KernelTLS: true, Conns: 1, KernelTX: 1, KernelRX: 1}}})
	cases, ss := rep.chartSeries("files")
	if !slices.Equal(cases, []string{"4K", "1M"}) {
		t.Fatalf("cases %q, want 4K and 1M", cases)
	}
	// CPU per GiB, median: go 6, ktls 3, nginx-ktls 3.
	want := []series{
		{server: "go", values: []float64{1, 0}},
		{server: "ktls", values: []float64{0.5, 0}},
		{server: "nginx-ktls", fellBack: true, values: []float64{0.5, 0}},
	}
	if len(ss) != len(want) {
		t.Fatalf("%d series, want %d: %+v", len(ss), len(want), ss)
	}
	for i, w := range want {
		if s := ss[i]; s.server != w.server || s.fellBack != w.fellBack || !slices.Equal(s.values, w.values) {
			t.Errorf("series %d = %+v, want %+v", i, s, w)
		}
	}
	if cases, ss := rep.chartSeries("nothing"); len(cases) != 0 || len(ss) != 0 {
		t.Errorf("a scenario with no results has cases %q and series %+v", cases, ss)
	}
}

// TestWriteChart: an SVG that is well-formed XML, with the title, each
// case and each series' legend in it, and a PNG that decodes; no chart
// for a scenario without results.
func TestWriteChart(t *testing.T) {
	rep := report()
	svg := chart(t, rep, "c.svg", "files")
	var texts []string // the SVG's text elements
	for d := xml.NewDecoder(bytes.NewReader(svg)); ; {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok && strings.TrimSpace(string(cd)) != "" {
			texts = append(texts, strings.TrimSpace(string(cd)))
		}
	}
	for _, want := range []string{"ktls bench: files, server CPU per GiB (median of each case) — emulated, ratios only",
		"server CPU per GiB, relative to go (lower is better)", "4K", "go", "ktls", "nginx-ktls (FALLBACK: user-space TLS)"} {
		if !slices.Contains(texts, want) {
			t.Errorf("the SVG has no text %q; it has %q", want, texts)
		}
	}
	// The error row is no series.
	if slices.Contains(texts, "nginx") {
		t.Errorf("the SVG has a series for nginx, whose row is an error: %q", texts)
	}

	img, err := png.Decode(bytes.NewReader(chart(t, rep, "c.png", "bulk")))
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("the PNG is %v", b)
	}

	if err := rep.WriteChart(filepath.Join(t.TempDir(), "none.svg"), "nothing"); err == nil {
		t.Error("a chart of a scenario without results was drawn")
	}
}

// chart draws a scenario's chart into a file of the given name, and
// returns the file.
func chart(t *testing.T, rep *Report, name, scenario string) []byte {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := rep.WriteChart(file, scenario); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestNginxConfig: the nginx ktls bench runs, with kernel TLS and
// without, as it always was (testdata/nginx-ktls.conf is what bench
// wrote before internal/cli/bench/nginx).
func TestNginxConfig(t *testing.T) {
	e := &env{dir: "/work/www", work: "/work", certFile: "/work/cert.pem", keyFile: "/work/key.pem"}
	on := e.nginxConfig("nginx-ktls", "127.0.0.1:4433", true).Bytes()
	golden(t, "nginx-ktls.conf", on)
	off := e.nginxConfig("nginx-ktls", "127.0.0.1:4433", false).Bytes()
	if want := bytes.Replace(on, []byte("\t\tssl_conf_command Options KTLS;\n"), nil, 1); !bytes.Equal(off, want) {
		t.Errorf("without kernel TLS:\n%s\nwant the same less the KTLS line:\n%s", off, want)
	}
}
