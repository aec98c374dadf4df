package proxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kerneltest"
	"github.com/ktlsgo/ktls/internal/proxy"
	"github.com/ktlsgo/ktls/internal/testcert"
)

// The hostile-client suite (issue 13) for the proxy: clients that stall
// in each phase, that stop reading, that send garbage or plain HTTP, or
// that half-close. Each case must see the proxy close the client's
// connection (or end the pair, for a client that doesn't read) within
// the bound below, and the proxy must then still carry a normal client.
// The timeouts are short, the bound generous, so that a loaded host
// doesn't fail a case, while a proxy that holds a connection does.
var (
	hostileTimeout = 300 * time.Millisecond
	hostileBound   = 10 * hostileTimeout
)

func init() {
	// Under the lab's emulated CPUs a process's first handshakes take
	// several hundred milliseconds: a normal client must not look like
	// a slow one.
	if _, ok := kerneltest.InLab(); ok {
		hostileTimeout = time.Second
		hostileBound = 10 * hostileTimeout
	}
}

// closedWithin reads c until it ends, and fails unless the proxy closed
// it within bound; it returns what was read.
func closedWithin(t *testing.T, c net.Conn, bound time.Duration) []byte {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(bound))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the proxy still holds the connection after %v (read %d bytes)", bound, got.Len())
	}
	t.Logf("closed after %v (%v)", time.Since(start).Round(time.Millisecond), err)
	return got.Bytes()
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func dialKTLS(t *testing.T, addr string) *ktls.Conn {
	t.Helper()
	c, err := ktls.Dial("tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// partialClientHello is the start of a TLS record that announces a
// ClientHello of 512 bytes, and the first of them.
var partialClientHello = append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 20)...)

// trickle writes b to c a byte at a time, every interval, until done or
// a write fails.
func trickle(c net.Conn, b []byte, interval time.Duration, done <-chan struct{}) {
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

// echoes checks a normal client's round trip through the proxy.
func echoes(t *testing.T, addr string) {
	t.Helper()
	c := dialKTLS(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello through the proxy")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestProxyHostileClients(t *testing.T) {
	timeouts := proxy.Config{HandshakeTimeout: hostileTimeout, IdleTimeout: hostileTimeout, WriteTimeout: hostileTimeout}
	cfg := timeouts
	cfg.Backend = echo(t)
	addr, ended := startLogged(t, cfg)
	cfg = timeouts
	cfg.Backend = backend(t, flood)
	floodAddr, floodEnded := startLogged(t, cfg)

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"handshake/silent", func(t *testing.T) {
			closedWithin(t, dialTCP(t, addr), hostileBound)
		}},
		{"handshake/partial ClientHello", func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write(partialClientHello)
			closedWithin(t, c, hostileBound)
		}},
		{"handshake/slow ClientHello", func(t *testing.T) {
			c := dialTCP(t, addr)
			done := make(chan struct{})
			defer close(done)
			go trickle(c, partialClientHello, 50*time.Millisecond, done)
			closedWithin(t, c, hostileBound)
		}},
		{"after the handshake/partial request, then silence", func(t *testing.T) {
			c := dialKTLS(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			// The backend echoes it; then nothing moves: idle.
			if got := closedWithin(t, c, hostileBound); string(got) != "GET / HTTP/1.1\r\nHost: x\r\n" {
				t.Errorf("echoed %q", got)
			}
		}},
		{"after the handshake/slow body", func(t *testing.T) {
			// Bytes that keep moving, if slowly, are not idle: the
			// trickle goes on for more than three idle timeouts, and
			// the connection ends once it stops.
			c := dialKTLS(t, addr)
			done := make(chan struct{})
			go trickle(c, []byte("x"), 50*time.Millisecond, done)
			time.Sleep(4 * hostileTimeout)
			close(done)
			got := closedWithin(t, c, hostileBound)
			if len(got) < 10 {
				t.Errorf("echoed %d bytes of the trickle, want it carried while it went on", len(got))
			}
		}},
		{"stalled reader", func(t *testing.T) {
			dialKTLS(t, floodAddr)
			pairEnded(t, floodEnded, time.Now(), hostileBound)
		}},
		{"garbage", func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x37}, 64))
			closedWithin(t, c, hostileBound)
		}},
		{"garbage record", func(t *testing.T) {
			c := dialTCP(t, addr)
			c.Write(append([]byte{0x16, 0x03, 0x01, 0x00, 0x40}, bytes.Repeat([]byte{0xee}, 64)...))
			closedWithin(t, c, hostileBound)
		}},
		{"plain HTTP", func(t *testing.T) {
			c := dialTCP(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			closedWithin(t, c, hostileBound)
		}},
		{"half-closed/FIN before the handshake", func(t *testing.T) {
			c := dialTCP(t, addr)
			c.CloseWrite()
			closedWithin(t, c, hostileBound)
		}},
		{"half-closed/close_notify", func(t *testing.T) {
			// A clean half-close passes through, the answer comes back,
			// and the pair ends.
			c := dialKTLS(t, addr)
			io.WriteString(c, "last words")
			c.CloseWrite()
			if got := closedWithin(t, c, hostileBound); string(got) != "last words" {
				t.Errorf("echoed %q", got)
			}
		}},
		{"half-closed/FIN without close_notify", func(t *testing.T) {
			c := dialKTLS(t, addr)
			io.WriteString(c, "cut")
			c.NetConn().(*net.TCPConn).CloseWrite()
			closedWithin(t, c, hostileBound)
		}},
		{"reset mid-stream", func(t *testing.T) {
			c := dialKTLS(t, floodAddr)
			io.ReadFull(c, make([]byte, 1<<20))
			c.NetConn().(*net.TCPConn).SetLinger(0)
			c.NetConn().Close()
			pairEnded(t, floodEnded, time.Now(), hostileBound)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Drop what earlier cases logged.
			for len(ended) > 0 {
				<-ended
			}
			for len(floodEnded) > 0 {
				<-floodEnded
			}
			tc.run(t)
			echoes(t, addr)
		})
	}
}
