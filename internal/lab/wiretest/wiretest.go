// Package wiretest holds what tests of every layer put on the wire and
// take off it: loopback TCP pairs, seeded byte streams checked by SHA-256
// at the other end, test vectors in hex as RFCs print them, a buffer a
// server writes while a test reads it, and the count of a process's open
// file descriptors. It imports nothing of ktls, so the tests of the
// packages below ktls (kernel, recordio) can use it too.
package wiretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Unhex decodes a test vector written as RFCs print hex: in groups,
// across lines. It fails t where s is not hex.
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad test vector %q: %v", s, err)
	}
	return b
}

// TCPPair returns the two ends of a loopback TCP connection of network
// ("tcp", "tcp4" or "tcp6": then over ::1), closed when t ends.
func TCPPair(t testing.TB, network string) (client, server *net.TCPConn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// Control runs fn with c's file descriptor, or fails t.
func Control(t testing.TB, c net.Conn, fn func(fd int)) {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

// Stream writes n pseudo-random bytes, the same for a seed, and returns
// their SHA-256.
func Stream(w io.Writer, n int64, seed uint64) ([32]byte, error) {
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

// RandomFile writes n pseudo-random bytes, Stream's for the seed, to a
// new file at path, and returns their SHA-256.
func RandomFile(t testing.TB, path string, n int64, seed uint64) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Stream(f, n, seed)
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// Drain reads exactly n bytes and returns their SHA-256.
func Drain(r io.Reader, n int64) ([32]byte, error) {
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

// Exchange sends n bytes each way between a and b at once, and fails t
// unless both arrive intact.
func Exchange(t testing.TB, a, b net.Conn, n int64) {
	t.Helper()
	type res struct {
		sum [32]byte
		err error
	}
	aSent, bSent, aGot, bGot := make(chan res, 1), make(chan res, 1), make(chan res, 1), make(chan res, 1)
	go func() { s, err := Stream(a, n, 1); aSent <- res{s, err} }()
	go func() { s, err := Stream(b, n, 2); bSent <- res{s, err} }()
	go func() { s, err := Drain(a, n); aGot <- res{s, err} }()
	go func() { s, err := Drain(b, n); bGot <- res{s, err} }()
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

// RandomBytes returns n pseudo-random bytes, the same for a seed.
func RandomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// ReadAll reads until an error and returns what came, and the error:
// io.EOF where the stream ended cleanly, unlike io.ReadAll, so that a test
// can tell a clean end from io.ErrUnexpectedEOF.
func ReadAll(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	_, err := io.Copy(&buf, r)
	if err == nil {
		err = io.EOF
	}
	return buf.Bytes(), err
}

// IsTimeout reports whether err is a timeout, a deadline's.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A SyncBuffer is a bytes.Buffer that one goroutine (a server's log, a
// child process's output) writes while another reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *SyncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// OpenFDs lists this process's open file descriptors and what each is
// open on, from /proc/self/fd.
func OpenFDs(t testing.TB) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue // the directory being read
		}
		fds[e.Name()] = target
	}
	return fds
}

// CheckFDs fails t if descriptors are open that were not in before
// (from OpenFDs). It gives closing goroutines 5 seconds to finish.
func CheckFDs(t testing.TB, before map[string]string) {
	t.Helper()
	var extra []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		extra = extra[:0]
		for fd, target := range OpenFDs(t) {
			if _, ok := before[fd]; !ok {
				extra = append(extra, fmt.Sprintf("%s -> %s", fd, target))
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(extra) > 0 {
		t.Errorf("file descriptors left open: %v", extra)
	}
}

// A Result is what a function run by Async returned.
type Result[T any] struct {
	V   T
	Err error
}

// Async runs f in a goroutine; the channel, buffered, receives what it
// returns, so that a test can wait for it with a select and a timeout, or
// after the other end of a connection has done its part.
func Async[T any](f func() (T, error)) <-chan Result[T] {
	ch := make(chan Result[T], 1)
	go func() {
		v, err := f()
		ch <- Result[T]{v, err}
	}()
	return ch
}

// Go runs f in a goroutine; the channel, buffered, receives its error.
func Go(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// A Handshaker is a TLS end: a *tls.Conn, or a *ktls.Conn.
type Handshaker interface{ Handshake() error }

// Handshake runs the handshakes of two ends of one connection at once, the
// server's in a goroutine, and returns their errors.
func Handshake(client, server Handshaker) (cerr, serr error) {
	done := Go(server.Handshake)
	cerr = client.Handshake()
	return cerr, <-done
}

// StartServer runs run, a server command's Run, in a goroutine until t
// ends; then it cancels run's context and hands the error run returns, if
// any, to stopped (t.Errorf where the server must stop cleanly). It
// returns the first line run writes to stdout, which such a command starts
// with (the address it serves on), or fails t where run returns first or
// writes no line within 10 s.
func StartServer(t testing.TB, run func(ctx context.Context, stdout io.Writer) error, stopped func(format string, args ...any)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &firstLine{line: make(chan string, 1)}
	first := out.line
	done := Go(func() error { return run(ctx, out) })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			stopped("Run: %v", err)
		}
	})
	select {
	case line := <-first:
		return line
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server printed nothing")
	}
	return ""
}

// firstLine hands the first line written to it to a channel.
type firstLine struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line chan string
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.line != nil {
		w.buf.Write(p)
		if i := bytes.IndexByte(w.buf.Bytes(), '\n'); i >= 0 {
			w.line <- w.buf.String()[:i]
			w.line = nil
		}
	}
	return len(p), nil
}
