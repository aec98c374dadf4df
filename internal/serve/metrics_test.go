package serve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ktlsgo/ktls"
)

// The kernel's counters reach the metrics page with a type each: the
// sessions open now as gauges, the rest as counters. One name for both
// kinds made every scrape of a kernel-TLS host fail with a 500, which a
// host without kernel TLS never shows: it has no tls_stat to export.
func TestTLSStatCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tlsStatCollector{path: filepath.Join("testdata", "tls_stat-7.3")})

	want := `
# HELP ktls_kernel_tls_sessions The kernel's TLS sessions open now, from the TlsCurr* lines of /proc/net/tls_stat, by name (TlsCurrTxSw, ...).
# TYPE ktls_kernel_tls_sessions gauge
ktls_kernel_tls_sessions{name="TlsCurrRxDevice"} 0
ktls_kernel_tls_sessions{name="TlsCurrRxSw"} 4
ktls_kernel_tls_sessions{name="TlsCurrTxDevice"} 0
ktls_kernel_tls_sessions{name="TlsCurrTxSw"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ktls_kernel_tls_sessions"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(tlsStatCollector{path: filepath.Join("testdata", "tls_stat-7.3")}, "ktls_kernel_tls_stat_total"); n != 13 {
		t.Errorf("%d counters, want 13", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A host without kernel TLS exports no kernel counters, and the page
// still serves.
func TestTLSStatCollectorNoKernelTLS(t *testing.T) {
	c := tlsStatCollector{path: filepath.Join(t.TempDir(), "tls_stat")}
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d metrics without tls_stat, want 0", n)
	}
}

// A file the parser refuses fails the scrape with why, instead of
// exporting part of it.
func TestTLSStatCollectorBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tls_stat")
	if err := os.WriteFile(path, []byte("TlsTxSw lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(tlsStatCollector{path: path})
	if _, err := reg.Gather(); err == nil {
		t.Error("Gather succeeded on a tls_stat that doesn't parse")
	}
}

// The whole page gathers: the connection counter with its labels, the
// response bytes, the Go and process collectors, and the kernel's
// counters, without a clash between them.
func TestMetricsPage(t *testing.T) {
	m := newMetrics()
	m.reg.Unregister(tlsStatCollector{path: "/proc/net/tls_stat"})
	m.reg.MustRegister(tlsStatCollector{path: filepath.Join("testdata", "tls_stat-7.3")})
	m.connection(ktls.Offload{TX: true, RX: true})
	m.connection(ktls.Offload{TX: true, RX: true})
	m.response(100)

	want := `
# HELP ktls_connections_total TLS connections served, by what the kernel took (tx+rx, tx, none) and why not (reason).
# TYPE ktls_connections_total counter
ktls_connections_total{offload="tx+rx",reason=""} 2
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "ktls_connections_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.reg, "ktls_kernel_tls_stat_total", "ktls_kernel_tls_sessions", "ktls_response_bytes_total"); err != nil || n != 18 {
		t.Errorf("GatherAndCount = %d, %v; want 18", n, err)
	}
}
