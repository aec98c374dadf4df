package proxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/proxy"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo is a TCP backend that writes back what it reads, and closes its
// writing side when the client closes its own.
func echo(t *testing.T) string {
	return backend(t, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

// start runs a proxy to backend and returns its address.
func start(t *testing.T, backend string, idle time.Duration) string {
	t.Helper()
	return startConfig(t, proxy.Config{Backend: backend, IdleTimeout: idle})
}

// startConfig runs a proxy with cfg, its listener, certificate and
// output filled in, and returns its address.
func startConfig(t *testing.T, cfg proxy.Config) string {
	t.Helper()
	addr, _ := startLogged(t, cfg)
	return addr
}

// logLines hands each log line with "msg=connection", which the proxy
// writes once it has closed both connections of a pair, to a channel.
type logLines struct{ ch chan string }

func (w logLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		if strings.Contains(line, "msg=connection") {
			select {
			case w.ch <- line:
			default:
			}
		}
	}
	return len(p), nil
}

// startLogged is startConfig, and also returns the channel on which the
// proxy's "connection" log lines come, one per pair it ended.
func startLogged(t *testing.T, cfg proxy.Config) (string, <-chan string) {
	t.Helper()
	ended := logLines{make(chan string, 16)}
	certFile, keyFile := testcert.Get(testcert.ECDSA).WriteFiles(t, t.TempDir())
	cfg.Listen, cfg.CertFile, cfg.KeyFile = "127.0.0.1:0", certFile, keyFile
	cfg.Log = slog.New(slog.NewTextHandler(ended, nil))
	line := wiretest.StartServer(t, func(ctx context.Context, stdout io.Writer) error {
		cfg.Stdout = stdout
		return proxy.Run(ctx, cfg)
	}, t.Errorf)
	return strings.Fields(strings.TrimPrefix(line, "proxying tls://"))[0], ended.ch
}

// TestProxy: 16 MiB each way through the proxy to an echo backend,
// intact; the client's half-close reaches the backend, and the backend's
// comes back as close_notify.
func TestProxy(t *testing.T) {
	addr := start(t, echo(t), time.Minute)
	c := dialKTLS(t, addr)
	const n = 16 << 20
	data := wiretest.RandomBytes(n, 1)
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
	if kerneltest.HaveULP() {
		if o := c.Offload(); !o.TX || !o.RX {
			t.Errorf("client Offload() = %v", o)
		}
	}
}

// TestIdle: a connection on which nothing moves is closed.
func TestIdle(t *testing.T) {
	addr := start(t, echo(t), 300*time.Millisecond)
	c := dialTLS(t, addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
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
	c := dialTLS(t, addr)
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
	c := dialTLS(t, addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read = %v, want io.EOF (close_notify)", err)
	}
}

// backend is a TCP backend that hands each connection to serve.
func backend(t *testing.T, serve func(net.Conn)) string {
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
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// flood writes to c until a write fails: until the proxy closes c.
func flood(c net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// pairEnded fails unless the proxy ended a pair within limit of since:
// it logs "connection" when both of its connections are closed.
func pairEnded(t *testing.T, ended <-chan string, since time.Time, limit time.Duration) string {
	t.Helper()
	select {
	case line := <-ended:
		t.Logf("after %v: %s", time.Since(since).Round(time.Millisecond), line)
		return line
	case <-time.After(limit):
		t.Fatalf("the proxy still holds the pair after %v", limit)
	}
	return ""
}

// dialTLS and dialKTLS connect to addr with crypto/tls and with ktls,
// trusting the test certificate, and close the connection when t ends.
func dialTLS(t *testing.T, addr string) *tls.Conn   { return dial(t, addr, tls.Dial) }
func dialKTLS(t *testing.T, addr string) *ktls.Conn { return dial(t, addr, ktls.Dial) }

func dial[C io.Closer](t *testing.T, addr string, dial func(network, addr string, cfg *tls.Config) (C, error)) C {
	t.Helper()
	c, err := dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestProxyStalledReader: a client that stops reading while the backend
// sends doesn't hold the pair: it ends after the write timeout, however
// long the idle timeout. (Issue 13, finding 5: the way to the client
// waited in a write with no deadline, and nothing closed the client.)
func TestProxyStalledReader(t *testing.T) {
	addr, ended := startLogged(t, proxy.Config{Backend: backend(t, flood), IdleTimeout: time.Minute, WriteTimeout: 300 * time.Millisecond})
	dialTLS(t, addr)
	line := pairEnded(t, ended, time.Now(), 5*time.Second)
	if !strings.Contains(line, "the client took nothing") {
		t.Errorf("the pair ended for another reason: %s", line)
	}
}

// TestProxySlowReader: a client that reads slowly but steadily, for many
// times the write timeout, gets the whole stream: the write timeout
// bounds each write's progress, not the response.
func TestProxySlowReader(t *testing.T) {
	const n = 2 << 20
	data := wiretest.RandomBytes(n, 3)
	be := backend(t, func(c net.Conn) { c.Write(data) })
	addr := startConfig(t, proxy.Config{Backend: be, IdleTimeout: time.Minute, WriteTimeout: 300 * time.Millisecond})
	c := dialTLS(t, addr)
	// 2 MiB at 64 KiB per 50 ms: more than 1.5 s, five write timeouts.
	var got []byte
	buf := make([]byte, 64<<10)
	for len(got) < n {
		time.Sleep(50 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := io.ReadFull(c, buf[:min(len(buf), n-len(got))])
		got = append(got, buf[:m]...)
		if err != nil {
			t.Fatalf("read %d bytes, then %v", len(got), err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the stream arrived changed")
	}
}

// TestProxyOneSideCloses: when one peer is done and the other doesn't
// read, the pair still ends within the write timeout. (Issue 13, finding
// 5: the way into the peer that doesn't read waited forever.)
func TestProxyOneSideCloses(t *testing.T) {
	t.Run("backend done, client not reading", func(t *testing.T) {
		be := backend(t, func(c net.Conn) { c.Write(make([]byte, 16<<20)) })
		addr, ended := startLogged(t, proxy.Config{Backend: be, IdleTimeout: time.Minute, WriteTimeout: 300 * time.Millisecond})
		dialTLS(t, addr)
		pairEnded(t, ended, time.Now(), 5*time.Second)
	})
	t.Run("client done, backend not reading", func(t *testing.T) {
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		be := backend(t, func(c net.Conn) { <-done })
		addr, ended := startLogged(t, proxy.Config{Backend: be, IdleTimeout: time.Minute, WriteTimeout: 300 * time.Millisecond})
		c := dialKTLS(t, addr)
		// More than the sockets between the proxy and the backend hold,
		// then close_notify; the client is done.
		go func() {
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(make([]byte, 16<<20))
			c.CloseWrite()
		}()
		pairEnded(t, ended, time.Now(), 5*time.Second)
	})
}
