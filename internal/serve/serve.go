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
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/khttp"
)

// Config is what the command line sets.
type Config struct {
	Addr     string // listen address
	Dir      string // directory to serve
	CertFile string // PEM certificate chain; with KeyFile, else self-signed
	KeyFile  string
	Metrics  string // address for /metrics, or empty
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	Options         *ktls.Options

	Stdout io.Writer    // the first line, "serving https://..."
	Log    *slog.Logger // the access log and events
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, cfg Config) error {
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
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()

	m := newMetrics()
	srv := &http.Server{
		Handler:           accessLog(cfg.Log, m, http.FileServer(http.Dir(cfg.Dir))),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if kc, ok := c.(*ktls.Conn); ok {
				m.connection(kc.Offload())
			}
			return ctx
		},
	}
	ks := &khttp.Server{HTTP: srv, Options: cfg.Options}

	fmt.Fprintf(cfg.Stdout, "serving https://%s (kernel TLS: %s)\n", ln.Addr(), KernelState(cfg.Options))
	if cfg.CertFile == "" {
		sum := sha256.Sum256(cert.Certificate[0])
		fmt.Fprintf(cfg.Stdout, "self-signed certificate, SHA-256 fingerprint %s\n", fingerprint(sum[:]))
	}
	cfg.Log.Info("serving", "addr", ln.Addr().String(), "dir", cfg.Dir)

	errc := make(chan error, 2)
	go func() { errc <- ks.Serve(ln) }()
	if cfg.Metrics != "" {
		mln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			ks.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		msrv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second}
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
	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
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

// KernelState says, before any connection, what the kernel will do for
// connections with these options: what it can offload, or why nothing.
func KernelState(opts *ktls.Options) string {
	if opts != nil && opts.TX == ktls.Disabled {
		return "off, connections stay on crypto/tls: TX offload is disabled"
	}
	if err := kernel.FeatureULP.Check(); err != nil {
		return "off, connections stay on crypto/tls: " + err.Error()
	}
	var have []string
	for _, c := range []struct {
		name    string
		version uint16
		cipher  kernel.Cipher
	}{
		{"AES-GCM", kernel.VersionTLS13, kernel.CipherAESGCM128},
		{"ChaCha20-Poly1305", kernel.VersionTLS13, kernel.CipherChaCha20Poly1305},
	} {
		if kernel.CipherFeature(c.version, c.cipher, kernel.TX).Check() == nil {
			have = append(have, c.name)
		}
	}
	if len(have) == 0 {
		return "off: the kernel has the tls ULP but none of the ciphers"
	}
	dirs := "TX"
	if (opts == nil || opts.RX != ktls.Disabled) && kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESGCM128, kernel.RX).Check() == nil {
		dirs = "TX+RX"
	}
	return fmt.Sprintf("on, %s, %s", dirs, strings.Join(have, ", "))
}

func fingerprint(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}
