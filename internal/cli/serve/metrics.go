package serve

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/khttp"
)

// metrics are what /metrics serves. docs/METRICS.md describes each series.
type metrics struct {
	reg              *prometheus.Registry
	handshakes       *prometheus.CounterVec
	handshakeFailure *prometheus.CounterVec
	open             prometheus.Gauge
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	bytes            *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		handshakes: counterVec("ktls_handshakes_total",
			"TLS handshakes completed, by what the kernel took (tx+rx, tx, none) and, where it took less than both, the reason code of the first direction it didn't (ktls.ReasonCode).",
			"offload", "reason"),
		handshakeFailure: counterVec("ktls_handshake_failures_total",
			"TLS handshakes that failed, by reason: plain-http, not-tls, timeout, eof, alert, required, other.",
			"reason"),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ktls_connections_open",
			Help: "Connections open now, from their handshake to their close.",
		}),
		requests: counterVec("ktls_http_requests_total",
			"HTTP requests answered, by status code and method.",
			"code", "method"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ktls_http_request_duration_seconds",
			Help:    "Time from a request's header to the end of its response, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms to 131 s
		}, []string{"method"}),
		bytes: counterVec("ktls_http_response_bytes_total",
			"Bytes of response bodies, by how they left (sendfile: the kernel read the file and encrypted it; write: through user space) and by what the kernel took of the connection.",
			"path", "offload"),
	}
	m.reg.MustRegister(m.handshakes, m.handshakeFailure, m.open, m.requests, m.duration, m.bytes,
		tlsStatCollector{path: kernel.StatsFile},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// counterVec is a counter with labels, for newMetrics.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// handshake counts one handshake, done or failed.
func (m *metrics) handshake(c *ktls.Conn, err error) {
	if err != nil {
		m.handshakeFailure.WithLabelValues(handshakeFailure(err)).Inc()
		return
	}
	o := c.Offload()
	m.handshakes.WithLabelValues(OffloadLabel(o), reasonLabel(o)).Inc()
}

// request counts one request and its response body.
func (m *metrics) request(method string, status int, d time.Duration, bodyPath, offload string, n int64) {
	method = methodLabel(method)
	m.requests.WithLabelValues(strconv.Itoa(status), method).Inc()
	m.duration.WithLabelValues(method).Observe(d.Seconds())
	m.bytes.WithLabelValues(bodyPath, offload).Add(float64(n))
}

// methodLabel keeps the method label to a known set: a client chooses
// the method, and must not choose new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodOptions, http.MethodPatch, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// OffloadLabel is what the kernel took of a connection in one word,
// tx+rx, tx, rx or none, for logs and metrics.
func OffloadLabel(o ktls.Offload) string {
	switch {
	case o.TX && o.RX:
		return "tx+rx"
	case o.TX:
		return "tx"
	case o.RX:
		return "rx"
	}
	return "none"
}

// reasonLabel is the reason code of the first direction the kernel
// didn't take: a small, fixed set (ktls.ReasonCode), where the reason's
// sentence is in Offload.
func reasonLabel(o ktls.Offload) string {
	if code := o.TXCode(); code != "" {
		return code
	}
	return o.RXCode()
}

// handshakeFailure sorts a failed handshake's error into a few reasons.
func handshakeFailure(err error) string {
	var rh tls.RecordHeaderError
	var re *ktls.RequiredError
	var ae tls.AlertError
	switch {
	case errors.As(err, &re):
		return "required"
	case errors.As(err, &rh):
		if khttp.IsPlainHTTP(err) {
			return "plain-http"
		}
		return "not-tls"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ae):
		return "alert"
	}
	return "other"
}

// tlsStatCollector exports /proc/net/tls_stat at each scrape. The
// kernel's file mixes two kinds of number, and Prometheus wants one type
// per metric name: the TlsCurr* sessions open now go up and down, a
// gauge; the rest only count up.
type tlsStatCollector struct {
	path string // kernel.StatsFile; a test's file in tests
}

var (
	tlsStatDesc = prometheus.NewDesc("ktls_kernel_tls_stat_total",
		"The kernel's TLS event counters from /proc/net/tls_stat, by name (TlsTxSw, TlsRxSw, TlsDecryptError, ...).",
		[]string{"name"}, nil)
	tlsCurrDesc = prometheus.NewDesc("ktls_kernel_tls_sessions",
		"The kernel's TLS sessions open now, from the TlsCurr* lines of /proc/net/tls_stat, by name (TlsCurrTxSw, ...).",
		[]string{"name"}, nil)
)

func (tlsStatCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tlsStatDesc
	ch <- tlsCurrDesc
}

func (c tlsStatCollector) Collect(ch chan<- prometheus.Metric) {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return // no kernel TLS here: nothing to export
	}
	stats, err := kernel.ParseStats(data)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(tlsStatDesc, err)
		return
	}
	for _, s := range stats {
		if strings.HasPrefix(s.Name, "TlsCurr") {
			ch <- prometheus.MustNewConstMetric(tlsCurrDesc, prometheus.GaugeValue, float64(s.Value), s.Name)
		} else {
			ch <- prometheus.MustNewConstMetric(tlsStatDesc, prometheus.CounterValue, float64(s.Value), s.Name)
		}
	}
}
