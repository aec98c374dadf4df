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
	"maps"
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
	// What the kernel did for the sample's connections (see offload.go):
	// whether the host has kernel TLS at all, the connections the client
	// opened, and how many of them had a TX and an RX key installed.
	KernelTLS bool `json:"kernel_tls"`
	Conns     int  `json:"connections"`
	KernelTX  int  `json:"kernel_tx"`
	KernelRX  int  `json:"kernel_rx"`
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
	// Derived from the samples (see Offload and coarseCPU).
	OffloadSummary string `json:"offload,omitempty"`
	Fallback       string `json:"fallback,omitempty"`   // why a kernel-TLS server's row is not one
	CoarseCPU      bool   `json:"coarse_cpu,omitempty"` // some sample had under minTicks of CPU
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

// WriteJSON writes the report as JSON, with each result's offload, its
// fallback reason and its coarse-CPU mark filled in.
func (rep *Report) WriteJSON(w io.Writer) error {
	for i := range rep.Results {
		rep.Results[i].annotate()
	}
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
	fallbacks := map[string]bool{}
	anyCoarse := false
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
			fmt.Fprintln(tw, "server\toffload\tcase\tconns\tp50 µs\tp99 µs\t")
		case "handshake":
			fmt.Fprintln(tw, "server\toffload\tcase\tconns\tconn/s\tCPU ms/conn\tCPU vs base\t")
		default:
			fmt.Fprintln(tw, "server\toffload\tcase\tconns\tMiB/s\tCPU s/GiB\tuser\tsys\tCPU vs base\t")
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
				fmt.Fprintf(tw, "%s\t\t%s\t%d\terror: %s\t\n", r.Server, r.Case, r.Conns, firstLine(r.Err))
				continue
			}
			offload, fallback := r.Offload()
			server := r.Server
			if fallback != "" {
				server += " (FALLBACK)"
				fallbacks[r.Server+": "+fallback] = true
			}
			coarse := ""
			if r.coarseCPU() {
				coarse = " !"
				anyCoarse = true
			}
			if sc == "latency" {
				p50, p99 := r.Latency()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t\n", server, offload, r.Case, r.Conns, fmtStat(p50, 0), fmtStat(p99, 0))
				continue
			}
			if sc == "handshake" {
				cpu := r.CPUPerRequest()
				ratio := "-"
				if b := base[r.Case]; b > 0 {
					ratio = fmt.Sprintf("%.2f×", cpu.Median/b)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s%s\t%s\t\n", server, offload, r.Case, r.Conns,
					fmtStat(r.figure(Sample.RequestRate), 0), fmtStat(cpu, 2), coarse, ratio)
				continue
			}
			t, u, s := r.CPU()
			ratio := "-"
			if b := base[r.Case]; b > 0 {
				ratio = fmt.Sprintf("%.2f×", t.Median/b)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s%s\t%.2f\t%.2f\t%s\t\n", server, offload, r.Case, r.Conns,
				fmtStat(r.Throughput(), 1), fmtStat(t, 2), coarse, u.Median, s.Median, ratio)
		}
		tw.Flush()
	}
	if len(fallbacks) > 0 {
		fmt.Fprintln(w, "\nFALLBACK rows ran on user-space TLS, not the kernel's:")
		for _, f := range slices.Sorted(maps.Keys(fallbacks)) {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if anyCoarse {
		fmt.Fprintf(w, "\n! some sample of this row had under %d clock ticks (%v) of server CPU: the CPU figure is coarse; give each sample more work\n",
			minTicks, time.Duration(minTicks)*time.Second/clockTick)
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
