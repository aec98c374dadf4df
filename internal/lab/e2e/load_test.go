package e2e_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/serve"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestLoadServe runs ktls serve in this process and opens 2,000
// connections to it that are all open at once: each dials, shakes hands
// and sends its request, and waits until every other one has; then all
// read their response together. Most fetch 64 KiB, one in a hundred
// 1 MiB, and every body is checked by SHA-256. Half the clients are ktls
// (the kernel decrypts what the server's kernel encrypted), half
// crypto/tls. The server must offload every connection, and when it has
// shut down, this process's file descriptors and goroutines are back
// where they were.
func TestLoadServe(t *testing.T) {
	kerneltest.RequireULP(t)
	conns := 2000
	if testing.Short() {
		conns = 200
	}
	// Each connection is two descriptors here, the server's and the
	// client's.
	raiseFileLimit(t, uint64(2*conns+1000))
	ktlstest.WarmProbes(t)

	// The files served are apart from the certificate's.
	dir, pf := t.TempDir(), writePeerFiles(t)
	files := map[string]struct {
		size int64
		sum  [32]byte
	}{}
	for name, size := range map[string]int64{"small.bin": 64 << 10, "big.bin": 1 << 20} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := wiretest.Stream(f, size, uint64(size))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[name] = struct {
			size int64
			sum  [32]byte
		}{size, sum}
	}

	// The baseline: what is open before the server starts.
	baseFDs, baseGoroutines := wiretest.OpenFDs(t), runtime.NumGoroutine()
	ignore := goleak.IgnoreCurrent()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &wiretest.SyncBuffer{}
	events := &serveEvents{}
	served := make(chan error, 1)
	go func() {
		served <- serve.Run(ctx, serve.Config{
			Addr: "127.0.0.1:0", Dir: dir, CertFile: pf.cert, KeyFile: pf.key, Metrics: "127.0.0.1:0",
			ShutdownTimeout: time.Minute, Stdout: out, Log: slog.New(events),
			// The default 10 s bounds a handshake against a client that
			// stalls; here every client is honest, and 64 handshakes at
			// once on the lab's two emulated CPUs can take longer (one of
			// 2000 did on 6.1). The hostile suites test the bound.
			ReadHeaderTimeout: time.Minute,
		})
	}()
	addr := waitServing(t, out, served)
	t.Logf("%s", strings.TrimSpace(out.String()))

	var (
		ready, done    sync.WaitGroup
		release        = make(chan struct{})
		handshakes     = make(chan struct{}, 64) // handshakes in flight at once
		open           atomic.Int64
		bytesRead      atomic.Int64
		kernelClients  atomic.Int64
		failures       atomic.Int64
		firstErrs      sync.Map
		clientDeadline = time.Now().Add(5 * time.Minute)
	)
	fail := func(i int, err error) {
		if failures.Add(1) <= 5 {
			firstErrs.Store(i, err)
		}
	}
	start := time.Now()
	ready.Add(conns)
	done.Add(conns)
	for i := range conns {
		name := "small.bin"
		if i%100 == 99 {
			name = "big.bin"
		}
		want := files[name]
		go func() {
			defer done.Done()
			handshakes <- struct{}{}
			conn, err := loadDial(ctx, addr, pf.bundle, i%2 == 0, &kernelClients)
			if err == nil {
				conn.SetDeadline(clientDeadline)
				_, err = io.WriteString(conn, "GET /"+name+" HTTP/1.1\r\nHost: localhost\r\n\r\n")
			}
			<-handshakes
			if err == nil {
				open.Add(1)
			}
			ready.Done()
			if err != nil {
				fail(i, err)
				if conn != nil {
					conn.Close()
				}
				return
			}
			defer conn.Close()
			defer open.Add(-1)
			<-release
			n, err := readBody(conn, want.size, want.sum)
			bytesRead.Add(n)
			if err != nil {
				fail(i, err)
			}
		}()
	}
	ready.Wait()
	connected := time.Since(start)
	atOnce := open.Load()
	close(release)
	done.Wait()
	took := time.Since(start)

	metrics := scrapeMetrics(t, events.metricsAddr())
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve.Run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not shut down")
	}

	t.Logf("%d connections (%d through ktls clients), %d open at once, all connected in %.1fs; %d MiB read in %.1fs; %d failures",
		conns, kernelClients.Load(), atOnce, connected.Seconds(), bytesRead.Load()>>20, took.Seconds(), failures.Load())
	firstErrs.Range(func(k, v any) bool {
		t.Errorf("connection %v: %v", k, v)
		return true
	})
	if w := events.warnings(); len(w) > 0 {
		t.Logf("server warnings (%d), the first: %s", len(w), w[0])
	}
	if failures.Load() > 0 {
		t.Errorf("%d of %d connections failed", failures.Load(), conns)
	}
	if atOnce != int64(conns) {
		t.Errorf("%d connections were open at once, want %d", atOnce, conns)
	}
	// Every connection the server accepted was offloaded both ways.
	if got := metricValue(metrics, `ktls_handshakes_total{offload="tx+rx",reason=""}`); got != fmt.Sprint(conns) {
		t.Errorf("ktls_handshakes_total with TX+RX = %q, want %d; the metrics:\n%s", got, conns, grepLines(metrics, "ktls_handshake"))
	}

	// Back to the baseline.
	goleak.VerifyNone(t, ignore)
	wiretest.CheckFDs(t, baseFDs)
	t.Logf("after shutdown: %d goroutines (baseline %d), %d file descriptors (baseline %d)",
		runtime.NumGoroutine(), baseGoroutines, len(wiretest.OpenFDs(t)), len(baseFDs))
}

// raiseFileLimit makes room for n open files, raising the hard limit too
// where this process may (root in the lab), and restores the limit after
// the test.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur >= n {
		return
	}
	lim := syscall.Rlimit{Cur: n, Max: max(n, old.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raising RLIMIT_NOFILE from %d/%d to %d: %v", old.Cur, old.Max, n, err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// loadDial dials the server with ktls or crypto/tls, over HTTP/1.1.
func loadDial(ctx context.Context, addr string, b *testcert.Bundle, useKTLS bool, kernelClients *atomic.Int64) (net.Conn, error) {
	cfg := b.ClientConfig()
	cfg.NextProtos = []string{"http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !useKTLS {
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	}
	c, err := (&ktls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o := c.(*ktls.Conn).Offload(); !o.TX || !o.RX {
		c.Close()
		return nil, fmt.Errorf("client Offload() = %v", o)
	}
	kernelClients.Add(1)
	return c, nil
}

// readBody reads one HTTP response and checks its body.
func readBody(conn net.Conn, size int64, sum [32]byte) (int64, error) {
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, err
	}
	if n != size || [32]byte(h.Sum(nil)) != sum {
		return n, fmt.Errorf("body of %d bytes, want %d intact", n, size)
	}
	return n, nil
}

// waitServing waits for serve's first line and returns its address.
func waitServing(t *testing.T, out *wiretest.SyncBuffer, served <-chan error) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-served:
			t.Fatalf("serve.Run: %v", err)
		default:
		}
		line, _, _ := strings.Cut(out.String(), "\n")
		if rest, ok := strings.CutPrefix(line, "serving https://"); ok {
			addr, _, _ := strings.Cut(rest, " ")
			return addr
		}
	}
	t.Fatalf("serve never said where it listens; it said %q", out.String())
	return ""
}

// scrapeMetrics fetches the metrics page, without keeping a connection
// (or a goroutine) alive afterwards.
func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	if addr == "" {
		t.Fatal("serve logged no metrics address")
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, data)
	}
	return string(data)
}

// metricValue returns the value of the sample named exactly so.
func metricValue(page, sample string) string {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func grepLines(page, substr string) string {
	var b strings.Builder
	for _, line := range strings.Split(page, "\n") {
		if strings.Contains(line, substr) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// serveEvents is serve's log, less the access log: it keeps the metrics
// address and the warnings.
type serveEvents struct {
	mu       sync.Mutex
	addr     string
	warnList []string
}

func (e *serveEvents) Enabled(context.Context, slog.Level) bool { return true }
func (e *serveEvents) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *serveEvents) WithGroup(string) slog.Handler            { return e }

func (e *serveEvents) Handle(_ context.Context, r slog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case r.Message == "metrics":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				e.addr = a.Value.String()
			}
			return true
		})
	case r.Level >= slog.LevelWarn:
		e.warnList = append(e.warnList, r.Message)
	}
	return nil
}

func (e *serveEvents) metricsAddr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

func (e *serveEvents) warnings() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.warnList...)
}
