package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// sample is a Sample of 1 GiB in 1 s with the given CPU and offload.
func sample(cpu time.Duration, kernelTLS bool, conns, tx, rx int) Sample {
	return Sample{Bytes: 1 << 30, Requests: conns, Elapsed: time.Second, User: cpu / 2, Sys: cpu / 2,
		KernelTLS: kernelTLS, Conns: conns, KernelTX: tx, KernelRX: rx}
}

func TestOffload(t *testing.T) {
	for _, tc := range []struct {
		name, server     string
		samples          []Sample
		offload          string
		fallbackContains string // "" for none
	}{
		{"no kernel TLS", "ktls", []Sample{sample(2*time.Second, false, 4, 0, 0)}, "none", "no kernel TLS on this host"},
		{"no kernel TLS, go", "go", []Sample{sample(2*time.Second, false, 4, 0, 0)}, "none", ""},
		{"offloaded", "ktls", []Sample{sample(2*time.Second, true, 4, 4, 4), sample(2*time.Second, true, 4, 4, 4)}, "TX+RX", ""},
		{"TX only", "ktls-rxoff", []Sample{sample(2*time.Second, true, 4, 4, 0)}, "TX", ""},
		{"refused", "nginx-ktls", []Sample{sample(2*time.Second, true, 4, 0, 0)}, "none", "the kernel encrypted 0 of 4 connections"},
		{"mixed", "ktls", []Sample{sample(2*time.Second, true, 4, 4, 4), sample(2*time.Second, true, 4, 1, 0)}, "TX on 5, RX on 4 of 8 conns", "the kernel encrypted 5 of 8 connections"},
		{"go, kernel present", "go", []Sample{sample(2*time.Second, true, 4, 0, 0)}, "none", ""},
		// Other processes set keys during the sample: more sessions than
		// connections. nginx's offload then is unknown, not a number.
		{"tls_stat shared", "nginx-ktls", []Sample{sample(2*time.Second, true, 4, 9, 0)}, "unknown (tls_stat moved for other processes too)", ""},
		// A server that can't offload is none, whatever tls_stat did.
		{"go, tls_stat shared", "go", []Sample{sample(2*time.Second, true, 400, 5, 4)}, "none", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Server: tc.server, Samples: tc.samples}
			offload, fallback := r.Offload()
			if offload != tc.offload {
				t.Errorf("offload %q, want %q", offload, tc.offload)
			}
			if tc.fallbackContains == "" && fallback != "" || !strings.Contains(fallback, tc.fallbackContains) {
				t.Errorf("fallback %q, want one containing %q", fallback, tc.fallbackContains)
			}
		})
	}
}

// TestTableLabelsFallback: on a host without kernel TLS, every row says
// it ran on user-space TLS, and a kernel-TLS server's row is labelled
// FALLBACK with the reason, in the table and in the JSON.
func TestTableLabelsFallback(t *testing.T) {
	rep := &Report{Machine: "test", Kernel: "6.18", Results: []Result{
		{Scenario: "files", Server: "ktls", Case: "4K", Conns: 4, Samples: []Sample{sample(2*time.Second, false, 4, 0, 0)}},
		{Scenario: "files", Server: "go", Case: "4K", Conns: 4, Samples: []Sample{sample(2*time.Second, false, 4, 0, 0)}},
		{Scenario: "files", Server: "nginx-ktls", Case: "4K", Conns: 4, Samples: []Sample{sample(2*time.Second, false, 4, 0, 0)}},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	out := buf.String()
	for _, want := range []string{"ktls (FALLBACK)", "nginx-ktls (FALLBACK)", "FALLBACK rows ran on user-space TLS",
		"ktls: no kernel TLS on this host"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "go (FALLBACK)") {
		t.Errorf("the go row, which never offloads, is labelled FALLBACK:\n%s", out)
	}

	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Results []struct {
			Server   string `json:"server"`
			Offload  string `json:"offload"`
			Fallback string `json:"fallback"`
		} `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, r := range got.Results {
		wantFallback := r.Server != "go"
		if r.Offload != "none" || strings.Contains(r.Fallback, "no kernel TLS") != wantFallback {
			t.Errorf("JSON for %s: offload %q, fallback %q", r.Server, r.Offload, r.Fallback)
		}
	}
}

// TestTableOffloaded: a row whose connections the kernel took is not a
// fallback row, and says what it got.
func TestTableOffloaded(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scenario: "bulk", Server: "ktls", Case: "x", Conns: 1, Samples: []Sample{sample(2*time.Second, true, 1, 1, 1)}},
		{Scenario: "bulk", Server: "go", Case: "x", Conns: 1, Samples: []Sample{sample(4*time.Second, true, 1, 0, 0)}},
	}}
	var buf bytes.Buffer
	rep.WriteTable(&buf)
	out := buf.String()
	if strings.Contains(out, "FALLBACK") {
		t.Errorf("offloaded rows labelled as fallback:\n%s", out)
	}
	if !strings.Contains(out, "TX+RX") || !strings.Contains(out, "0.50×") {
		t.Errorf("table lacks the offload or the ratio:\n%s", out)
	}
}

// TestCoarseCPU: a CPU figure from fewer than minTicks clock ticks is
// marked, in the table and in the JSON.
func TestCoarseCPU(t *testing.T) {
	fine := Result{Scenario: "files", Server: "go", Case: "4K", Samples: []Sample{sample(time.Second, false, 1, 0, 0)}}
	coarse := Result{Scenario: "files", Server: "go", Case: "1M", Samples: []Sample{sample(990*time.Millisecond, false, 1, 0, 0)}}
	if fine.coarseCPU() {
		t.Error("100 ticks counted as coarse")
	}
	if !coarse.coarseCPU() {
		t.Error("99 ticks not counted as coarse")
	}
	var buf bytes.Buffer
	(&Report{Results: []Result{fine}}).WriteTable(&buf)
	if strings.Contains(buf.String(), "clock ticks") {
		t.Errorf("fine figure warned about:\n%s", buf.String())
	}
	buf.Reset()
	rep := &Report{Results: []Result{coarse}}
	rep.WriteTable(&buf)
	if !strings.Contains(buf.String(), " !") || !strings.Contains(buf.String(), "under 100 clock ticks") {
		t.Errorf("coarse figure not marked:\n%s", buf.String())
	}
	buf.Reset()
	rep.WriteJSON(&buf)
	if !strings.Contains(buf.String(), `"coarse_cpu": true`) {
		t.Errorf("JSON lacks coarse_cpu:\n%s", buf.String())
	}
}

// TestChartLabelsFallback: the chart's legend says which servers fell
// back, as the table does.
func TestChartLabelsFallback(t *testing.T) {
	rep := &Report{Results: []Result{
		{Scenario: "files", Server: "ktls", Case: "4K", Samples: []Sample{sample(2*time.Second, false, 4, 0, 0)}},
		{Scenario: "files", Server: "go", Case: "4K", Samples: []Sample{sample(2*time.Second, false, 4, 0, 0)}},
	}}
	svg := chart(t, rep, "c.svg", "files")
	if !bytes.Contains(svg, []byte("ktls (FALLBACK: user-space TLS)")) {
		t.Error("the chart's legend doesn't say ktls fell back")
	}
	if bytes.Contains(svg, []byte("go (FALLBACK")) {
		t.Error("the chart's legend says go fell back")
	}
}

// TestInterleave checks the order of the samples: every server of a case
// sampled once a round, the rounds of one case together, and the order
// of the servers reversed every other round, so that no server is always
// the first after the previous case.
func TestInterleave(t *testing.T) {
	// Two cases of three servers: jobs 0-2 and 3-5.
	got := interleave(6, 3, 3)
	want := []step{
		{0, 0}, {1, 0}, {2, 0},
		{2, 1}, {1, 1}, {0, 1},
		{0, 2}, {1, 2}, {2, 2},
		{3, 0}, {4, 0}, {5, 0},
		{5, 1}, {4, 1}, {3, 1},
		{3, 2}, {4, 2}, {5, 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("interleave(6, 3, 3) =\n%v, want\n%v", got, want)
	}
	if got := interleave(2, 1, 2); !slices.Equal(got, []step{{0, 0}, {0, 1}, {1, 0}, {1, 1}}) {
		t.Errorf("one server: %v", got)
	}
}
