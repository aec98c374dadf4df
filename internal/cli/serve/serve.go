// Package serve is the ktls serve command: an HTTPS file server whose
// connections run on kernel TLS, with sendfile for HTTP/1.1 bodies, an
// access log, optional Prometheus metrics and a graceful shutdown.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/khttp"
)

// Config is what the command line sets.
type Config struct {
	Addr     string // listen address
	Dir      string // directory to serve
	CertFile string // PEM certificate chain; with KeyFile, else self-signed
	KeyFile  string
	Metrics  string // address for /metrics, or empty
	// Dotfiles serves paths with an element that starts with "."
	// (.git, .env); by default they are not found.
	Dotfiles bool
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// WriteTimeout drops a client that takes nothing it is sent for this
	// long: it bounds each write's progress, not a whole response, so a
	// large file still reaches a slow client that reads. Zero means 60
	// seconds, as nginx's send_timeout.
	WriteTimeout time.Duration
	// ReadHeaderTimeout bounds the TLS handshake and the reading of each
	// request's header; zero means 10 seconds.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a request body; zero means 60
	// seconds.
	ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request for this
	// long; zero means 2 minutes.
	IdleTimeout time.Duration
	Options     *ktls.Options

	Stdout io.Writer    // the first line, "serving https://..."
	Log    *slog.Logger // the access log and events
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
	for _, t := range []struct {
		flag string
		d    *time.Duration
		def  time.Duration
	}{
		{"--write-timeout", &cfg.WriteTimeout, time.Minute},
		{"--read-header-timeout", &cfg.ReadHeaderTimeout, 10 * time.Second},
		{"--read-timeout", &cfg.ReadTimeout, time.Minute},
		{"--idle-timeout", &cfg.IdleTimeout, 2 * time.Minute},
		{"--shutdown-timeout", &cfg.ShutdownTimeout, 10 * time.Second},
	} {
		if *t.d < 0 {
			return fmt.Errorf("%s: %v is negative", t.flag, *t.d)
		}
		if *t.d == 0 {
			*t.d = t.def
		}
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return fmt.Errorf("directory to serve: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("directory to serve: %s is not a directory", cfg.Dir)
	}
	cert, err := Certificate(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return fmt.Errorf("directory to serve: %w", err)
	}
	defer root.Close()
	if err := readable(root); err != nil {
		// Better now than a 403 for every request.
		return fmt.Errorf("directory to serve: %w", err)
	}
	files := &rootFS{root: root, dotfiles: cfg.Dotfiles, hidden: map[string]bool{}}
	for _, k := range keysInDir(cfg.Dir, cfg.CertFile, cfg.KeyFile) {
		cfg.Log.Warn("the private key lies inside the directory served; it is not served, but move it out", "file", k.file, "dir", cfg.Dir)
		files.hidden[k.rel] = true
	}
	files.keys = keyFiles(cfg.CertFile, cfg.KeyFile)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	// Everything that can fail at startup fails before the serving line:
	// a script that waits for it knows the server is whole.
	var mln net.Listener
	if cfg.Metrics != "" {
		if mln, err = net.Listen("tcp", cfg.Metrics); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer mln.Close()
	}

	m := newMetrics()
	srv := &http.Server{
		Handler:           accessLog(cfg.Log, m, bounded(withETag(files, fewRanges(http.FileServer(files))), cfg.ReadTimeout, cfg.WriteTimeout)),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// HTTP/2 multiplexes streams on one connection, so its writer is
		// bounded there too: no byte written for WriteTimeout closes it.
		// Streams open at once on one connection are capped as nginx
		// caps them (x/net's default is 250): each may hold a file open
		// until WriteTimeout.
		HTTP2:    &http.HTTP2Config{WriteByteTimeout: cfg.WriteTimeout, MaxConcurrentStreams: 128},
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				m.open.Dec()
			}
		},
	}
	var offloads OffloadLog
	ks := &khttp.Server{HTTP: srv, Options: cfg.Options, OnHandshake: func(c *ktls.Conn, err error) {
		m.handshake(c, err)
		if err == nil {
			m.open.Inc()
			offloads.First(cfg.Log, c.Offload())
		}
	}}

	modes := OffloadModes(cfg.Options)
	fmt.Fprintf(cfg.Stdout, "serving https://%s (kernel TLS: %s)\n", ln.Addr(), modes)
	attrs := []any{"addr", ln.Addr().String(), "dir", cfg.Dir, "kernel_tls", modes}
	if cfg.CertFile == "" {
		sum := sha256.Sum256(cert.Certificate[0])
		fmt.Fprintf(cfg.Stdout, "self-signed certificate, SHA-256 fingerprint %s\n", fingerprint(sum[:]))
		attrs = append(attrs, "self_signed_sha256", fingerprint(sum[:]))
	}
	// The log carries the same facts as the lines above, for --log-json.
	cfg.Log.Info("serving", attrs...)

	errc := make(chan error, 2)
	go func() { errc <- ks.Serve(ln) }()
	if mln != nil {
		// The same bounds as the main address: the two share the
		// process's file descriptors. A metrics page is small, so its
		// WriteTimeout may bound the whole response.
		msrv := &http.Server{
			Handler:           m.handler(),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			WriteTimeout:      cfg.WriteTimeout,
		}
		go msrv.Serve(mln)
		defer msrv.Close()
		cfg.Log.Info("metrics", "addr", mln.Addr().String())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cfg.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := ks.Shutdown(sctx); err != nil {
		ks.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// maxRanges is the most ranges a Range header may ask for. net/http
// serves any number whose lengths add up to no more than the file, so
// one header of many small, overlapping ranges ("0-0,0-0,...") costs a
// part header, a seek and a read each: a body dozens of times the
// file's size, and seconds of CPU, for one request. (Apache's MaxRanges
// is 200, for the same reason.)
const maxRanges = 100

// fewRanges drops a Range header that asks for more than maxRanges
// ranges, so the file is served whole, as RFC 9110 (section 14.2) allows.
func fewRanges(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Count(r.Header.Get("Range"), ",") >= maxRanges {
			r.Header.Del("Range")
		}
		h.ServeHTTP(w, r)
	})
}

type keyInDir struct {
	file string // as the flag names it
	rel  string // inside the directory, slash-separated
}

// keysInDir returns the files among --key and --cert that hold a private
// key and lie inside dir.
func keysInDir(dir, certFile, keyFile string) []keyInDir {
	var out []keyInDir
	for _, f := range []string{keyFile, certFile} {
		if f == "" || (f == certFile && f == keyFile && len(out) > 0) {
			continue
		}
		rel, ok := insideDir(dir, f)
		if !ok {
			continue
		}
		if f == certFile && f != keyFile {
			// A certificate file may carry its key too.
			b, err := os.ReadFile(f)
			if err != nil || !strings.Contains(string(b), "PRIVATE KEY-----") {
				continue
			}
		}
		out = append(out, keyInDir{file: f, rel: rel})
	}
	return out
}

// keyFiles returns what os.Stat says of the files among --key and --cert
// that hold a private key, wherever they lie: the file server refuses
// them by identity, whatever name (a symlink, a hard link) reaches them.
func keyFiles(certFile, keyFile string) []fs.FileInfo {
	var out []fs.FileInfo
	for _, f := range []string{keyFile, certFile} {
		if f == "" {
			continue
		}
		if f != keyFile {
			b, err := os.ReadFile(f)
			if err != nil || !strings.Contains(string(b), "PRIVATE KEY-----") {
				continue
			}
		}
		if st, err := os.Stat(f); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// Certificate loads the certificate and key the flags name, or makes a
// self-signed one when they name none.
func Certificate(certFile, keyFile string) (tls.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		cert, err := SelfSigned()
		if err != nil {
			return cert, fmt.Errorf("making a self-signed certificate: %w", err)
		}
		return cert, nil
	case certFile == "" || keyFile == "":
		return tls.Certificate{}, errors.New("--cert and --key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("loading the certificate: %w", err)
	}
	return cert, nil
}

// OffloadModes says what the options ask of the kernel, for the serving
// line. It probes nothing: what the kernel can do shows in what it does,
// and that is reported per connection, from each one's Offload (the first
// of each kind in the log, every request's ktls=, the handshake metrics).
func OffloadModes(opts *ktls.Options) string {
	if opts == nil {
		opts = &ktls.Options{}
	}
	if opts.TX == ktls.Disabled {
		return "off, connections stay on crypto/tls: TX offload is disabled"
	}
	return "TX " + modeName(opts.TX) + ", RX " + modeName(opts.RX) + "; offload is logged per connection"
}

// CheckCapability asks whether this kernel can offload, in dir, some
// suite of the table (kernel.Offloadable), and says why not for the first
// where none: a check of capability, not of what any connection got, for
// a direction the options make Required, so that a server that can't
// offload anything refuses to start rather than fail every connection.
// RX counts only with TX, which it needs.
func CheckCapability(dir kernel.Direction) error {
	var first error
	for _, s := range keyschedule.Suites() {
		err := kernel.Offloadable(s.Version, s.ID, kernel.TX)
		if err == nil && dir == kernel.RX {
			err = kernel.Offloadable(s.Version, s.ID, kernel.RX)
		}
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// modeName is a Mode as the --tx and --rx flags say it, but for Required
// ("on"), which is named for what it does.
func modeName(m ktls.Mode) string {
	switch m {
	case ktls.Disabled:
		return "off"
	case ktls.Required:
		return "required"
	}
	return "auto"
}

// OffloadLog logs what the handoff did, the first time each outcome is
// seen: the directions the kernel took, with which version and suite, or
// why not. Outcomes are few (a version and suite crypto/tls negotiates,
// and reason codes), so whatever clients do the log stays short; every
// request's line has the word (ktls=), and the metrics the counts.
type OffloadLog struct {
	mu   sync.Mutex
	seen map[offloadKind]bool
}

type offloadKind struct {
	tx, rx               bool
	txCode, rxCode       string
	version, cipherSuite uint16
}

// First logs o unless an outcome of its kind was logged before.
func (l *OffloadLog) First(log *slog.Logger, o ktls.Offload) {
	k := offloadKind{o.TX, o.RX, o.TXCode(), o.RXCode(), o.Version, o.CipherSuite}
	l.mu.Lock()
	seen := l.seen[k]
	if !seen {
		if l.seen == nil {
			l.seen = map[offloadKind]bool{}
		}
		l.seen[k] = true
	}
	l.mu.Unlock()
	if seen {
		return
	}
	attrs := []any{"ktls", OffloadLabel(o)}
	if code := reasonLabel(o); code != "" {
		attrs = append(attrs, "ktls_reason", code)
	}
	log.Info("offload", append(attrs, "offload", o.String())...)
}

func fingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}
