package serve_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/cli/serve"
	"github.com/ktlsgo/ktls/internal/lab/hostiletest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// The hostile-client suite (issue 13): clients that stall in each phase,
// that stop reading, that send garbage or plain HTTP, or that half-close.
// Each case must see the server close its connection within
// hostiletest.Bound, and the server must then still serve a normal client.
func TestServeHostileClients(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "small.txt"), []byte("small"))
	writeFile(t, filepath.Join(dir, "big.bin"), randBytes(32<<20))
	s := start(t, serve.Config{
		Dir:               dir,
		ReadHeaderTimeout: hostiletest.Timeout,
		ReadTimeout:       hostiletest.Timeout,
		WriteTimeout:      hostiletest.Timeout,
		IdleTimeout:       hostiletest.Timeout,
	})
	// slowBody sends a request's head, then its body a byte at a time:
	// the server reads the body to keep the connection, until the read
	// timeout, then answers and closes.
	slowBody := func(head string) func(t *testing.T) {
		return func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, head)
			done := make(chan struct{})
			defer close(done)
			go hostiletest.Trickle(c, []byte("x"), 50*time.Millisecond, done)
			if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}
	}
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"handshake/silent", func(t *testing.T) {
			hostiletest.ClosedWithin(t, hostiletest.DialTCP(t, s.addr), hostiletest.Bound)
		}},
		{"handshake/partial ClientHello", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			c.Write(hostiletest.PartialClientHello)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"handshake/slow ClientHello", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			done := make(chan struct{})
			defer close(done)
			go hostiletest.Trickle(c, hostiletest.PartialClientHello, 50*time.Millisecond, done)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"header/partial", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n")
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"header/slow", func(t *testing.T) {
			c := s.dialTLS(t)
			done := make(chan struct{})
			defer close(done)
			go hostiletest.Trickle(c, []byte("GET /small.txt HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 50*time.Millisecond, done)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		// Under net/http's 256 KiB, so that it reads the body to keep the
		// connection, instead of closing at once.
		{"body/slow, with a length", slowBody("POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")},
		{"body/slow, chunked", slowBody("POST /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n")},
		{"stalled reader/HTTP/1.1", func(t *testing.T) {
			c := s.dialTLS(t)
			before := strings.Count(s.log.String(), "path=/big.bin")
			io.WriteString(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
			waitRequests(t, s, "path=/big.bin", before+1)
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"stalled reader/HTTP/2", func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: testcert.Get(testcert.ECDSA).ClientConfig(), ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			before := strings.Count(s.log.String(), "path=/big.bin")
			resp, err := (&http.Client{Transport: tr}).Get("https://" + s.addr + "/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("got %s, want HTTP/2", resp.Proto)
			}
			// Read nothing: the stream's window fills, and the handler
			// must give up.
			waitRequests(t, s, "path=/big.bin", before+1)
		}},
		{"garbage", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x37}, 64))
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"garbage record", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			c.Write(append([]byte{0x16, 0x03, 0x01, 0x00, 0x40}, bytes.Repeat([]byte{0xee}, 64)...))
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"plain HTTP", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			got := hostiletest.ClosedWithin(t, c, hostiletest.Bound)
			if !bytes.HasPrefix(got, []byte("HTTP/1.0 400 Bad Request\r\n")) || !bytes.Contains(got, []byte("Client sent an HTTP request to an HTTPS server")) {
				t.Errorf("answer to plain HTTP = %q, want net/http's 400", got)
			}
		}},
		{"half-closed/FIN before the handshake", func(t *testing.T) {
			c := hostiletest.DialTCP(t, s.addr)
			c.CloseWrite()
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
		{"half-closed/FIN after a request", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			c.NetConn().(*net.TCPConn).CloseWrite()
			if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"half-closed/close_notify after a request", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			c.CloseWrite()
			if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"idle keep-alive", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			hostiletest.ClosedWithin(t, c, hostiletest.Bound)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			// The server still serves.
			if code, body := s.get(t, "/small.txt"); code != 200 || body != "small" {
				t.Fatalf("afterwards, GET /small.txt = %d %q", code, body)
			}
		})
	}
}

// waitRequests waits, up to the bound, for the access log to hold n
// lines with s: the handler of a request has returned.
func waitRequests(t *testing.T, srv *server, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(hostiletest.Bound)
	for strings.Count(srv.log.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the handler for %s still runs after %v", s, hostiletest.Bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeMetricsIdle: a kept-alive connection to the metrics address
// is closed after the idle timeout, as on the main address, and a silent
// one after the read-header timeout: a client can't hold the process's
// file descriptors there, which the main address shares. (It had no idle
// timeout: a connection held forever after one request.)
func TestServeMetricsIdle(t *testing.T) {
	s := start(t, serve.Config{
		Dir:               t.TempDir(),
		Metrics:           "127.0.0.1:0",
		ReadHeaderTimeout: hostiletest.Timeout,
		IdleTimeout:       hostiletest.Timeout,
		WriteTimeout:      hostiletest.Timeout,
	})
	line, ok := s.log.waitFor("msg=metrics", hostiletest.Bound)
	if !ok {
		t.Fatalf("no metrics address in the log:\n%s", s.log)
	}
	_, addr, _ := strings.Cut(line, "addr=")
	addr = strings.Fields(addr)[0]

	c := hostiletest.DialTCP(t, addr)
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := hostiletest.ClosedWithin(t, c, hostiletest.Bound); !bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK")) {
		t.Errorf("metrics answer %q, want 200", got[:min(len(got), 100)])
	}
	hostiletest.ClosedWithin(t, hostiletest.DialTCP(t, addr), hostiletest.Bound)
}
