package serve_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/kerneltest"
	"github.com/ktlsgo/ktls/internal/serve"
	"github.com/ktlsgo/ktls/internal/testcert"
)

// The hostile-client suite (issue 13): clients that stall in each phase,
// that stop reading, that send garbage or plain HTTP, or that half-close.
// Each case must see the server close its connection within the bound
// below, and the server must then still serve a normal client. The
// timeouts are short, the bound generous, so that a loaded host doesn't
// fail a case, while a server that holds a connection does.
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

// closedWithin reads c until it ends, and fails unless the server closed
// it within bound; it returns what was read.
func closedWithin(t *testing.T, c net.Conn, bound time.Duration) []byte {
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

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
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

func TestServeHostileClients(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "small.txt"), []byte("small"))
	writeFile(t, filepath.Join(dir, "big.bin"), randBytes(32<<20))
	s := start(t, serve.Config{
		Dir:               dir,
		ReadHeaderTimeout: hostileTimeout,
		ReadTimeout:       hostileTimeout,
		WriteTimeout:      hostileTimeout,
		IdleTimeout:       hostileTimeout,
	})
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"handshake/silent", func(t *testing.T) {
			closedWithin(t, dialTCP(t, s.addr), hostileBound)
		}},
		{"handshake/partial ClientHello", func(t *testing.T) {
			c := dialTCP(t, s.addr)
			c.Write(partialClientHello)
			closedWithin(t, c, hostileBound)
		}},
		{"handshake/slow ClientHello", func(t *testing.T) {
			c := dialTCP(t, s.addr)
			done := make(chan struct{})
			defer close(done)
			go trickle(c, partialClientHello, 50*time.Millisecond, done)
			closedWithin(t, c, hostileBound)
		}},
		{"header/partial", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n")
			closedWithin(t, c, hostileBound)
		}},
		{"header/slow", func(t *testing.T) {
			c := s.dialTLS(t)
			done := make(chan struct{})
			defer close(done)
			go trickle(c, []byte("GET /small.txt HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 50*time.Millisecond, done)
			closedWithin(t, c, hostileBound)
		}},
		{"body/slow, with a length", func(t *testing.T) {
			c := s.dialTLS(t)
			// Under net/http's 256 KiB, so that it reads the body to
			// keep the connection, instead of closing at once.
			io.WriteString(c, "POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
			done := make(chan struct{})
			defer close(done)
			go trickle(c, []byte("x"), 50*time.Millisecond, done)
			if got := closedWithin(t, c, hostileBound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"body/slow, chunked", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "POST /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n")
			done := make(chan struct{})
			defer close(done)
			go trickle(c, []byte("x"), 50*time.Millisecond, done)
			if got := closedWithin(t, c, hostileBound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"stalled reader/HTTP/1.1", func(t *testing.T) {
			c := s.dialTLS(t)
			before := strings.Count(s.log.String(), "path=/big.bin")
			io.WriteString(c, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
			waitRequests(t, s, "path=/big.bin", before+1)
			closedWithin(t, c, hostileBound)
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
			c := dialTCP(t, s.addr)
			c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x37}, 64))
			closedWithin(t, c, hostileBound)
		}},
		{"garbage record", func(t *testing.T) {
			c := dialTCP(t, s.addr)
			c.Write(append([]byte{0x16, 0x03, 0x01, 0x00, 0x40}, bytes.Repeat([]byte{0xee}, 64)...))
			closedWithin(t, c, hostileBound)
		}},
		{"plain HTTP", func(t *testing.T) {
			c := dialTCP(t, s.addr)
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			got := closedWithin(t, c, hostileBound)
			if !bytes.HasPrefix(got, []byte("HTTP/1.0 400 Bad Request\r\n")) || !bytes.Contains(got, []byte("Client sent an HTTP request to an HTTPS server")) {
				t.Errorf("answer to plain HTTP = %q, want net/http's 400", got)
			}
		}},
		{"half-closed/FIN before the handshake", func(t *testing.T) {
			c := dialTCP(t, s.addr)
			c.CloseWrite()
			closedWithin(t, c, hostileBound)
		}},
		{"half-closed/FIN after a request", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			c.NetConn().(*net.TCPConn).CloseWrite()
			if got := closedWithin(t, c, hostileBound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"half-closed/close_notify after a request", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			c.CloseWrite()
			if got := closedWithin(t, c, hostileBound); !bytes.HasSuffix(got, []byte("\r\n\r\nsmall")) {
				t.Errorf("response %q, want the file", got)
			}
		}},
		{"idle keep-alive", func(t *testing.T) {
			c := s.dialTLS(t)
			io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			closedWithin(t, c, hostileBound)
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
	deadline := time.Now().Add(hostileBound)
	for strings.Count(srv.log.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the handler for %s still runs after %v", s, hostileBound)
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
		ReadHeaderTimeout: hostileTimeout,
		IdleTimeout:       hostileTimeout,
		WriteTimeout:      hostileTimeout,
	})
	line, ok := s.log.waitFor("msg=metrics", hostileBound)
	if !ok {
		t.Fatalf("no metrics address in the log:\n%s", s.log)
	}
	_, addr, _ := strings.Cut(line, "addr=")
	addr = strings.Fields(addr)[0]

	c := dialTCP(t, addr)
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := closedWithin(t, c, hostileBound); !bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK")) {
		t.Errorf("metrics answer %q, want 200", got[:min(len(got), 100)])
	}
	closedWithin(t, dialTCP(t, addr), hostileBound)
}
