package khttp_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/khttp"
)

// BenchmarkFiles serves small files over keep-alive connections, as `ktls
// bench --scenarios files` does, from khttp and from net/http with
// crypto/tls, in this process: the client is the same for both, so the
// difference per request is the server's. On a host without kernel TLS,
// khttp's connections fall back to crypto/tls, and this is the cost of
// the fallback's per-request path (profile it with -cpuprofile).
func BenchmarkFiles(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int64
	}{{"4K", 4 << 10}, {"64K", 64 << 10}} {
		dir := b.TempDir()
		writeFile(b, dir, "f", size.n)
		for _, impl := range []string{"go", "khttp"} {
			b.Run(impl+"/"+size.name, func(b *testing.B) {
				base := serveFiles(b, impl, dir)
				benchmarkGets(b, base, "/f", size.n, 4)
			})
		}
	}
}

// serveFiles serves dir with impl ("go" or "khttp") on loopback and
// returns its address.
func serveFiles(b *testing.B, impl, dir string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.FileServer(http.Dir(dir)),
		TLSConfig: testcert.Get(testcert.ECDSA).ServerConfig(),
	}
	done := make(chan error, 1)
	var closeSrv func() error
	switch impl {
	case "go":
		go func() { done <- srv.ServeTLS(ln, "", "") }()
		closeSrv = srv.Close
	case "khttp":
		ks := &khttp.Server{HTTP: srv}
		go func() { done <- ks.Serve(ln) }()
		closeSrv = ks.Close
	default:
		b.Fatalf("unknown server %q", impl)
	}
	b.Cleanup(func() {
		closeSrv()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			b.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// benchmarkGets makes b.N GET requests for path on conns keep-alive
// connections, with a lean client: crypto/tls, one request at a time per
// connection, the body read and dropped.
func benchmarkGets(b *testing.B, addr, path string, size int64, conns int) {
	b.Helper()
	cfg := testcert.Get(testcert.ECDSA).ClientConfig()
	type client struct {
		c *tls.Conn
		r *bufio.Reader
	}
	cs := make([]client, conns)
	for i := range cs {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			b.Fatal(err)
		}
		cs[i] = client{c, bufio.NewReader(c)}
		defer c.Close()
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n")
	get := func(cl client) error {
		if _, err := cl.c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(cl.r, nil)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || n != size) {
			err = errors.New("bad response: " + resp.Status)
		}
		return err
	}
	// One request each first, so the servers' connections are set up.
	for _, cl := range cs {
		if err := get(cl); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i, cl := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := get(cl); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	// Wall time depends on what else the machine runs; the process's CPU
	// time (client and server) much less.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the CPU time, user and system, this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
