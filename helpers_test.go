package ktls_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(envHelper); spec != "" {
		mode, n, _ := strings.Cut(spec, ":")
		size, _ := strconv.ParseInt(n, 10, 64)
		if err := zeroCopyHelper(mode, size); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// helperT lets the test helpers run outside a test, in the child process
// TestZeroCopyUsed starts.
type helperT struct {
	testing.TB
	cleanups []func()
	err      error
}

func (h *helperT) Helper()                   {}
func (h *helperT) Cleanup(f func())          { h.cleanups = append(h.cleanups, f) }
func (h *helperT) Fatal(args ...any)         { h.err = errors.New(fmt.Sprint(args...)); runtime.Goexit() }
func (h *helperT) Fatalf(f string, a ...any) { h.err = fmt.Errorf(f, a...); runtime.Goexit() }
func (h *helperT) Logf(string, ...any)       {}

// run calls f in a goroutine, so Fatal can end it, and returns the error
// Fatal recorded.
func (h *helperT) run(f func()) error {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
	return h.err
}

func (h *helperT) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
}

// endpoint says how one side of a test connection runs.
type endpoint struct {
	ktls   bool // ktls.Conn, else crypto/tls
	config *tls.Config
	opts   *ktls.Options
}

// connect makes a loopback TCP connection and runs the handshake on both
// ends at once.
func connect(t testing.TB, client, server endpoint) (c, s net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, s = connectVia(t, client, server, ln, ln.Addr().String())
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// connectRaw is connect, leaving the closing to the caller.
func connectRaw(t testing.TB, client, server endpoint) (c, s net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return connectVia(t, client, server, ln, ln.Addr().String())
}

// connectVia is connect where the server accepts on ln and the client
// dials addr, which may be a relay in front of ln.
func connectVia(t testing.TB, client, server endpoint, ln net.Listener, addr string) (c, s net.Conn) {
	t.Helper()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		conn := serverConn(raw, server)
		err = conn.Handshake()
		done <- result{conn, err}
	}()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var cc interface {
		net.Conn
		Handshake() error
	}
	if client.ktls {
		cc = ktls.ClientWithOptions(raw, client.config, client.opts)
	} else {
		cc = tls.Client(raw, client.config)
	}
	cerr := cc.Handshake()
	r := <-done
	if cerr != nil || r.err != nil {
		raw.Close()
		if r.conn != nil {
			r.conn.Close()
		}
		t.Fatalf("handshake: client: %v, server: %v", cerr, r.err)
	}
	return cc, r.conn
}

type handshaker interface {
	net.Conn
	Handshake() error
}

// serverConn makes the server end of a test connection.
func serverConn(raw net.Conn, server endpoint) handshaker {
	if server.ktls {
		return ktls.ServerWithOptions(raw, server.config, server.opts)
	}
	return tls.Server(raw, server.config)
}

// stream writes n pseudo-random bytes, seeded, and returns their SHA-256.
func stream(w io.Writer, n int64, seed uint64) ([32]byte, error) {
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	buf := make([]byte, 256<<10)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		rng.Read(chunk)
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			return [32]byte{}, err
		}
		n -= int64(len(chunk))
	}
	return [32]byte(h.Sum(nil)), nil
}

// drain reads exactly n bytes and returns their SHA-256.
func drain(r io.Reader, n int64) ([32]byte, error) {
	h := sha256.New()
	got, err := io.Copy(h, io.LimitReader(r, n))
	if err != nil {
		return [32]byte{}, err
	}
	if got != n {
		return [32]byte{}, fmt.Errorf("read %d bytes, want %d: %w", got, n, io.ErrUnexpectedEOF)
	}
	return [32]byte(h.Sum(nil)), nil
}

// exchange sends n bytes each way at once and checks both arrive intact.
func exchange(t testing.TB, a, b net.Conn, n int64) {
	t.Helper()
	type res struct {
		sum [32]byte
		err error
	}
	aSent, bSent, aGot, bGot := make(chan res, 1), make(chan res, 1), make(chan res, 1), make(chan res, 1)
	go func() { s, err := stream(a, n, 1); aSent <- res{s, err} }()
	go func() { s, err := stream(b, n, 2); bSent <- res{s, err} }()
	go func() { s, err := drain(a, n); aGot <- res{s, err} }()
	go func() { s, err := drain(b, n); bGot <- res{s, err} }()
	as, bs, ag, bg := <-aSent, <-bSent, <-aGot, <-bGot
	for _, r := range []res{as, bs, ag, bg} {
		if r.err != nil {
			t.Fatalf("exchange: %v", r.err)
		}
	}
	if as.sum != bg.sum {
		t.Fatal("data from the first end arrived corrupted")
	}
	if bs.sum != ag.sum {
		t.Fatal("data from the second end arrived corrupted")
	}
}

// inLab reports whether the test runs in the kernel lab.
func inLab() bool {
	_, ok := kerneltest.InLab()
	return ok
}

// warmProbes runs the kernel feature probes ktls uses, which install keys
// on throwaway sockets, so they don't show in the counters a test reads.
func warmProbes(t testing.TB) {
	for _, v := range []uint16{kernel.VersionTLS12, kernel.VersionTLS13} {
		for _, c := range []kernel.Cipher{kernel.CipherAESGCM128, kernel.CipherAESGCM256, kernel.CipherChaCha20Poly1305} {
			for _, d := range []kernel.Direction{kernel.TX, kernel.RX} {
				kernel.CipherFeature(v, c, d).Check()
			}
		}
	}
	kernel.FeatureRekey.Check()
	kernel.FeatureRXExpectNoPad.Check()
	kernel.FeatureTXZerocopyRO.Check()
}

func tlsStat(t testing.TB, name string) uint64 { return kerneltest.Stat(t, name) }

func serverConfig(k testcert.Kind) *tls.Config { return testcert.Get(k).ServerConfig() }
func clientConfig(k testcert.Kind) *tls.Config { return testcert.Get(k).ClientConfig() }

// readAll reads until an error and returns what came, and the error.
func readAll(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	_, err := io.Copy(&buf, r)
	if err == nil {
		err = io.EOF
	}
	return buf.Bytes(), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var _ = time.Second
