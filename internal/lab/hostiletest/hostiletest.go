// Package hostiletest holds what the hostile-client suites of ktls serve,
// ktls proxy and khttp share: the timeouts a server under test is given,
// the bound within which it must close a hostile client, and the check.
package hostiletest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
)

// Timeout is what the server under test is given for each of its
// timeouts, and Bound how long a case waits for it to close a hostile
// client. The timeouts are short and the bound generous, so that a
// loaded host doesn't fail a case while a server that holds a connection
// does.
var (
	Timeout = 300 * time.Millisecond
	Bound   = 10 * Timeout
)

func init() {
	// Under the lab's emulated CPUs a process's first handshakes take
	// several hundred milliseconds: a normal client must not look like a
	// slow one.
	if _, ok := kerneltest.InLab(); ok {
		Timeout = time.Second
		Bound = 10 * Timeout
	}
}

// ClosedWithin reads c until it ends, and fails t unless the server
// closed it within bound; it returns what was read.
func ClosedWithin(t *testing.T, c net.Conn, bound time.Duration) []byte {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(bound))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still holds the connection after %v (read %d bytes)", bound, got.Len())
	}
	t.Logf("closed after %v (%v), read %q", time.Since(start).Round(time.Millisecond), err, got.Bytes()[:min(got.Len(), 200)])
	return got.Bytes()
}

// DialTCP opens a plain TCP connection to addr, closed when t ends.
func DialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// PartialClientHello is the start of a TLS record that announces a
// ClientHello of 512 bytes, and the first of them.
var PartialClientHello = append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 20)...)

// Trickle writes b to c a byte at a time, every interval, over and over,
// until done or a write fails.
func Trickle(c net.Conn, b []byte, interval time.Duration, done <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		case <-time.After(interval):
		}
		if _, err := c.Write(b[i%len(b) : i%len(b)+1]); err != nil {
			return
		}
	}
}
