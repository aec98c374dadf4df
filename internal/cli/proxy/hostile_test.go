package proxy_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/cli/proxy"
	"github.com/ktlsgo/ktls/internal/lab/hostiletest"
)

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

// The hostile-client suite (issue 13) for the proxy: clients that stall
// in each phase, that stop reading, that send garbage or plain HTTP, or
// that half-close. Each case must see the proxy close the client's
// connection (or end the pair, for a client that doesn't read) within
// hostiletest.Bound, and the proxy must then still carry a normal client.
func TestProxyHostileClients(t *testing.T) {
	timeouts := proxy.Config{HandshakeTimeout: hostiletest.Timeout, IdleTimeout: hostiletest.Timeout, WriteTimeout: hostiletest.Timeout}
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
			hostiletest.ClosedWithin(t, hostiletest.DialTCP(t, addr), hostiletest.Bound)
		}},
		{"handshake/partial ClientHello", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			c.Write(hostiletest.PartialClientHello)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"handshake/slow ClientHello", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			done := make(chan struct{})
			defer close(done)
			go hostiletest.Trickle(c, hostiletest.PartialClientHello, 50*time.Millisecond, done)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"after the handshake/partial request, then silence", func(t *testing.T) {
			c := dialKTLS(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			// The backend echoes it; then nothing moves: idle.
			if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); string(got) != "GET / HTTP/1.1\r\nHost: x\r\n" {
				t.Errorf("echoed %q", got)
			}
		}},
		{"after the handshake/slow body", func(t *testing.T) {
			// Bytes that keep moving, if slowly, are not idle: the
			// trickle goes on for more than three idle timeouts, and
			// the connection ends once it stops.
			c := dialKTLS(t, addr)
			done := make(chan struct{})
			go hostiletest.Trickle(c, []byte("x"), 50*time.Millisecond, done)
			time.Sleep(4 * hostiletest.Timeout)
			close(done)
			got := hostiletest.ClosedWithin(t, c, hostiletest.Bound)
			if len(got) < 10 {
				t.Errorf("echoed %d bytes of the trickle, want it carried while it went on", len(got))
			}
		}},
		{"stalled reader", func(t *testing.T) {
			dialKTLS(t, floodAddr)
			pairEnded(t, floodEnded, time.Now(), hostiletest.Bound)
		}},
		{"garbage", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x37}, 64))
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"garbage record", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			c.Write(append([]byte{0x16, 0x03, 0x01, 0x00, 0x40}, bytes.Repeat([]byte{0xee}, 64)...))
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"plain HTTP", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"half-closed/FIN before the handshake", func(t *testing.T) {
			c := hostiletest.DialTCP(t, addr)
			c.CloseWrite()
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"half-closed/close_notify", func(t *testing.T) {
			// A clean half-close passes through, the answer comes back,
			// and the pair ends.
			c := dialKTLS(t, addr)
			io.WriteString(c, "last words")
			c.CloseWrite()
			if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); string(got) != "last words" {
				t.Errorf("echoed %q", got)
			}
		}},
		{"half-closed/FIN without close_notify", func(t *testing.T) {
			c := dialKTLS(t, addr)
			io.WriteString(c, "cut")
			c.NetConn().(*net.TCPConn).CloseWrite()
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"reset mid-stream", func(t *testing.T) {
			c := dialKTLS(t, floodAddr)
			io.ReadFull(c, make([]byte, 1<<20))
			c.NetConn().(*net.TCPConn).SetLinger(0)
			c.NetConn().Close()
			pairEnded(t, floodEnded, time.Now(), hostiletest.Bound)
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
