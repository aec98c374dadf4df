package serve

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// The whole page gathers and lints, as promtool check metrics would:
// handshakes and their failures, open connections, requests by code and
// method, their durations, body bytes by path and offload, the Go and
// process collectors and the kernel's counters, without a clash.
func TestMetricsPage(t *testing.T) {
	m := newMetrics()
	m.reg.Unregister(tlsStatCollector{path: "/proc/net/tls_stat"})
	m.reg.MustRegister(tlsStatCollector{path: filepath.Join("testdata", "tls_stat-7.3")})
	m.handshakes.WithLabelValues("tx+rx", "").Add(2)
	m.handshakes.WithLabelValues("none", ktls.CodeNoULP).Inc()
	m.handshakeFailure.WithLabelValues(handshakeFailure(tls.RecordHeaderError{RecordHeader: [5]byte{'G', 'E', 'T', ' ', '/'}})).Inc()
	m.handshakeFailure.WithLabelValues(handshakeFailure(&ktls.RequiredError{Direction: "TX", Reason: ktls.ErrDisabled})).Inc()
	m.open.Inc()
	m.request("GET", 200, 3*time.Millisecond, "sendfile", "tx+rx", 1000)
	m.request("BREW", 405, time.Millisecond, "write", "tx+rx", 10)

	want := `
# HELP ktls_handshakes_total TLS handshakes completed, by what the kernel took (tx+rx, tx, none) and, where it took less than both, the reason code of the first direction it didn't (ktls.ReasonCode).
# TYPE ktls_handshakes_total counter
ktls_handshakes_total{offload="none",reason="no-ulp"} 1
ktls_handshakes_total{offload="tx+rx",reason=""} 2
# HELP ktls_handshake_failures_total TLS handshakes that failed, by reason: plain-http, not-tls, timeout, eof, alert, required, other.
# TYPE ktls_handshake_failures_total counter
ktls_handshake_failures_total{reason="plain-http"} 1
ktls_handshake_failures_total{reason="required"} 1
# HELP ktls_http_requests_total HTTP requests answered, by status code and method.
# TYPE ktls_http_requests_total counter
ktls_http_requests_total{code="200",method="GET"} 1
ktls_http_requests_total{code="405",method="other"} 1
# HELP ktls_http_response_bytes_total Bytes of response bodies, by how they left (sendfile: the kernel read the file and encrypted it; write: through user space) and by what the kernel took of the connection.
# TYPE ktls_http_response_bytes_total counter
ktls_http_response_bytes_total{offload="tx+rx",path="sendfile"} 1000
ktls_http_response_bytes_total{offload="tx+rx",path="write"} 10
# HELP ktls_connections_open Connections open now, from their handshake to their close.
# TYPE ktls_connections_open gauge
ktls_connections_open 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "ktls_handshakes_total", "ktls_handshake_failures_total",
		"ktls_http_requests_total", "ktls_http_response_bytes_total", "ktls_connections_open"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.reg, "ktls_kernel_tls_stat_total", "ktls_kernel_tls_sessions", "ktls_http_request_duration_seconds"); err != nil || n != 19 {
		t.Errorf("GatherAndCount = %d, %v; want 19", n, err)
	}
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestHandshakeFailureReasons: each kind of failed handshake has its
// label.
func TestHandshakeFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{tls.RecordHeaderError{RecordHeader: [5]byte{'G', 'E', 'T', ' ', '/'}}, "plain-http"},
		{tls.RecordHeaderError{RecordHeader: [5]byte{0x16, 0x03, 0x01, 0xff, 0xff}}, "not-tls"},
		{&ktls.RequiredError{Direction: "RX", Reason: ktls.ErrRXNeedsTX}, "required"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{io.EOF, "eof"},
		{io.ErrUnexpectedEOF, "eof"},
		{&net.OpError{Op: "remote error", Err: tls.AlertError(40)}, "alert"},
		{errors.New("something else"), "other"},
	} {
		if got := handshakeFailure(tc.err); got != tc.want {
			t.Errorf("handshakeFailure(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
