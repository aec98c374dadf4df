package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/proxy"
	"github.com/ktlsgo/ktls/internal/testcert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lineWriter hands the first line written to it to a channel.
type lineWriter struct {
	buf  bytes.Buffer
	line chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if i := bytes.IndexByte(w.buf.Bytes(), '\n'); i >= 0 && w.line != nil {
		w.line <- w.buf.String()[:i]
		w.line = nil
	}
	return len(p), nil
}

// echo is a TCP backend that writes back what it reads, and closes its
// writing side when the client closes its own.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// start runs a proxy to backend and returns its address.
func start(t *testing.T, backend string, idle time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	b := testcert.Get(testcert.ECDSA)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, b.CertPEM, 0o600)
	os.WriteFile(keyFile, b.KeyPEM, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{line: make(chan string, 1)}
	first := out.line
	done := make(chan error, 1)
	go func() {
		done <- proxy.Run(ctx, proxy.Config{
			Listen: "127.0.0.1:0", Backend: backend, CertFile: certFile, KeyFile: keyFile,
			IdleTimeout: idle, Stdout: out, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case line := <-first:
		addr := strings.Fields(strings.TrimPrefix(line, "proxying tls://"))[0]
		return addr
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy printed nothing")
	}
	return ""
}

// TestProxy: 16 MiB each way through the proxy to an echo backend,
// intact; the client's half-close reaches the backend, and the backend's
// comes back as close_notify.
func TestProxy(t *testing.T) {
	addr := start(t, echo(t), time.Minute)
	c, err := ktls.Dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 16 << 20
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(data)
	go func() {
		c.Write(data)
		c.CloseWrite() // close_notify, then FIN
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %d bytes, then %v", len(got), err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echoed %d bytes, want %d intact", len(got), n)
	}
	if kernel.FeatureULP.Check() == nil {
		if o := c.Offload(); !o.TX || !o.RX {
			t.Errorf("client Offload() = %v", o)
		}
	}
}

// TestIdle: a connection on which nothing moves is closed.
func TestIdle(t *testing.T) {
	addr := start(t, echo(t), 300*time.Millisecond)
	c, err := tls.Dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on an idle proxied connection = %v, want it closed", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("closed after %v, want about 300ms", d)
	}
}

// TestBusyIsNotIdle: a connection that moves data one way only, for
// longer than the idle timeout, stays open.
func TestBusyIsNotIdle(t *testing.T) {
	addr := start(t, echo(t), 300*time.Millisecond)
	c, err := tls.Dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 10)
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBackendDown: with no backend, the client's connection ends cleanly.
func TestBackendDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	addr := start(t, dead, time.Minute)
	c, err := tls.Dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read = %v, want io.EOF (close_notify)", err)
	}
}
