// Package bench is the ktls bench command: it runs HTTPS servers (ktls
// serve, Go's net/http with crypto/tls, nginx with OpenSSL with and
// without kernel TLS) as separate processes, drives each with the same Go
// load client, and measures throughput, latency and the server process's
// CPU time per GiB, split into user and system time.
//
// Each figure is measured several times and reported as min, median and
// max. Only figures from one run, on one machine, compare: in the kernel
// lab everything is emulated, and only the ratios mean anything.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Sample is one measurement.
type Sample struct {
	Bytes    int64         `json:"bytes"`
	Requests int           `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	User     time.Duration `json:"user_ns"` // server process CPU
	Sys      time.Duration `json:"sys_ns"`
	// Latencies of the requests, for the latency scenario.
	P50 time.Duration `json:"p50_ns,omitempty"`
	P99 time.Duration `json:"p99_ns,omitempty"`
}

// Throughput in MiB/s.
func (s Sample) Throughput() float64 {
	return float64(s.Bytes) / (1 << 20) / s.Elapsed.Seconds()
}

// CPUPerGiB is the server's CPU seconds per GiB sent, user and system.
func (s Sample) CPUPerGiB() (user, sys float64) {
	gib := float64(s.Bytes) / (1 << 30)
	return s.User.Seconds() / gib, s.Sys.Seconds() / gib
}

// RequestRate is requests per second.
func (s Sample) RequestRate() float64 { return float64(s.Requests) / s.Elapsed.Seconds() }

// CPUPerRequest is the server's CPU milliseconds per request, over the
// samples.
func (r Result) CPUPerRequest() Stat {
	return r.figure(func(s Sample) float64 {
		return float64((s.User + s.Sys).Microseconds()) / 1000 / float64(s.Requests)
	})
}

// A Result is the repeated measurement of one case.
type Result struct {
	Scenario string   `json:"scenario"`
	Server   string   `json:"server"`
	Case     string   `json:"case"` // size, cipher, ...
	Conns    int      `json:"conns"`
	Samples  []Sample `json:"samples"`
	Err      string   `json:"error,omitempty"`
}

// Stat is the min, median and max of a figure over the samples.
type Stat struct{ Min, Median, Max float64 }

func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Stat{s[0], s[len(s)/2], s[len(s)-1]}
}

func (r Result) figure(f func(Sample) float64) Stat {
	var xs []float64
	for _, s := range r.Samples {
		xs = append(xs, f(s))
	}
	return stat(xs)
}

// Throughput over the samples, MiB/s.
func (r Result) Throughput() Stat { return r.figure(Sample.Throughput) }

// CPU over the samples, server CPU seconds per GiB: user+sys, user, sys.
func (r Result) CPU() (total, user, sys Stat) {
	total = r.figure(func(s Sample) float64 { u, y := s.CPUPerGiB(); return u + y })
	user = r.figure(func(s Sample) float64 { u, _ := s.CPUPerGiB(); return u })
	sys = r.figure(func(s Sample) float64 { _, y := s.CPUPerGiB(); return y })
	return
}

// Latency p50 and p99 over the samples, in microseconds.
func (r Result) Latency() (p50, p99 Stat) {
	p50 = r.figure(func(s Sample) float64 { return float64(s.P50.Microseconds()) })
	p99 = r.figure(func(s Sample) float64 { return float64(s.P99.Microseconds()) })
	return
}

// A Report is a whole run.
type Report struct {
	Machine  string    `json:"machine"` // what it ran on
	Kernel   string    `json:"kernel"`
	Emulated bool      `json:"emulated"` // in the lab, under TCG
	Date     time.Time `json:"date"`
	Results  []Result  `json:"results"`
}

// WriteJSON writes the report as JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rep)
}

func fmtStat(s Stat, prec int) string {
	return fmt.Sprintf("%.*f [%.*f–%.*f]", prec, s.Median, prec, s.Min, prec, s.Max)
}

// WriteTable writes the report as tables, one per scenario, with each
// figure as median [min–max], and ratios against a baseline server.
func (rep *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s, kernel %s", rep.Machine, rep.Kernel)
	if rep.Emulated {
		fmt.Fprint(w, " (emulated: compare ratios only)")
	}
	fmt.Fprintln(w)
	var scenarios []string
	for _, r := range rep.Results {
		if !slices.Contains(scenarios, r.Scenario) {
			scenarios = append(scenarios, r.Scenario)
		}
	}
	for _, sc := range scenarios {
		fmt.Fprintf(w, "\n%s\n", sc)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		switch sc {
		case "latency":
			fmt.Fprintln(tw, "server\tcase\tconns\tp50 µs\tp99 µs\t")
		case "handshake":
			fmt.Fprintln(tw, "server\tcase\tconns\tconn/s\tCPU ms/conn\tCPU vs base\t")
		default:
			fmt.Fprintln(tw, "server\tcase\tconns\tMiB/s\tCPU s/GiB\tuser\tsys\tCPU vs base\t")
		}
		base := map[string]float64{}
		for _, r := range rep.Results {
			if r.Scenario != sc || r.Err != "" || r.Server != baseline {
				continue
			}
			t, _, _ := r.CPU()
			if sc == "handshake" {
				t = r.CPUPerRequest()
			}
			base[r.Case] = t.Median
		}
		for _, r := range rep.Results {
			if r.Scenario != sc {
				continue
			}
			if r.Err != "" {
				fmt.Fprintf(tw, "%s\t%s\t%d\terror: %s\t\n", r.Server, r.Case, r.Conns, firstLine(r.Err))
				continue
			}
			if sc == "latency" {
				p50, p99 := r.Latency()
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t\n", r.Server, r.Case, r.Conns, fmtStat(p50, 0), fmtStat(p99, 0))
				continue
			}
			if sc == "handshake" {
				cpu := r.CPUPerRequest()
				ratio := "-"
				if b := base[r.Case]; b > 0 {
					ratio = fmt.Sprintf("%.2f×", cpu.Median/b)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t\n", r.Server, r.Case, r.Conns,
					fmtStat(r.figure(Sample.RequestRate), 0), fmtStat(cpu, 2), ratio)
				continue
			}
			t, u, s := r.CPU()
			ratio := "-"
			if b := base[r.Case]; b > 0 {
				ratio = fmt.Sprintf("%.2f×", t.Median/b)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.2f\t%.2f\t%s\t\n", r.Server, r.Case, r.Conns,
				fmtStat(r.Throughput(), 1), fmtStat(t, 2), u.Median, s.Median, ratio)
		}
		tw.Flush()
	}
}

// baseline is the server ratios are against: Go's own net/http and
// crypto/tls.
const baseline = "go"

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
