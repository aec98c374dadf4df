package serve

import (
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
)

// metrics are what /metrics serves.
type metrics struct {
	reg   *prometheus.Registry
	conns *prometheus.CounterVec
	bytes prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ktls_connections_total",
			Help: "TLS connections served, by what the kernel took (tx+rx, tx, none) and why not (reason).",
		}, []string{"offload", "reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ktls_response_bytes_total",
			Help: "Bytes of response bodies sent.",
		}),
	}
	m.reg.MustRegister(m.conns, m.bytes, tlsStatCollector{path: kernel.StatsFile},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) connection(o ktls.Offload) {
	m.conns.WithLabelValues(offloadLabel(o), reasonLabel(o)).Inc()
}

func (m *metrics) response(n int64) { m.bytes.Add(float64(n)) }

func offloadLabel(o ktls.Offload) string {
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

// reasonLabel sorts the reason a direction isn't offloaded into a few
// values, so the label stays small: the full text is in Offload.
func reasonLabel(o ktls.Offload) string {
	r := o.TXReason
	if r == nil {
		r = o.RXReason
	}
	switch {
	case r == nil:
		return ""
	case errors.Is(r, ktls.ErrNotSupported):
		if kernel.FeatureULP.Check() != nil {
			return "no-kernel-tls"
		}
		return "unsupported"
	case errors.Is(r, ktls.ErrDeferred):
		return "deferred"
	case errors.Is(r, ktls.ErrDisabled), errors.Is(r, ktls.ErrRXNeedsTX):
		return "disabled"
	}
	return "error"
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
