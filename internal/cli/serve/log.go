package serve

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/ktlsgo/ktls/khttp"
)

// statusWriter records what a handler sent. It passes ReadFrom through,
// so bodies still go out with sendfile.
type statusWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	readFrom bool // the body came through ReadFrom
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile path: http.ServeContent copies a
// file into the ResponseWriter, and only net/http's own writer knows to
// hand it to the connection's ReadFrom, which is where sendfile happens.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.readFrom = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request, and counts it for the metrics.
func accessLog(log *slog.Logger, m *metrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		offload, reason := "", ""
		kernelTX := false
		if c, ok := khttp.ConnFromContext(r.Context()); ok {
			o := c.Offload()
			offload, reason, kernelTX = OffloadLabel(o), reasonLabel(o), o.TX
		}
		// net/http hands an HTTP/1.x body given to ReadFrom to the
		// connection's ReadFrom, which is sendfile where the kernel
		// encrypts; HTTP/2 frames every body in user space.
		bodyPath := "write"
		if sw.readFrom && kernelTX && r.ProtoMajor == 1 {
			bodyPath = "sendfile"
		}
		m.request(r.Method, sw.status, d, bodyPath, offload, sw.bytes)
		attrs := []any{"remote", r.RemoteAddr, "proto", r.Proto, "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "bytes", sw.bytes, "duration", d.Round(time.Microsecond), "ktls", offload}
		if reason != "" {
			attrs = append(attrs, "ktls_reason", reason)
		}
		log.Info("request", attrs...)
	})
}
