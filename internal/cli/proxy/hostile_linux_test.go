package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/cli/proxy"
	"github.com/ktlsgo/ktls/internal/lab/hostiletest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// TestProxyOutOfFiles: a server out of file descriptors (a client that
// opens connections until none are left) waits for one, as net/http
// does, instead of stopping: afterwards it serves again. (It returned
// accept's EMFILE from Run, and the command exited.)
func TestProxyOutOfFiles(t *testing.T) {
	addr, _ := startLogged(t, proxy.Config{Backend: echo(t), IdleTimeout: time.Minute})
	hostiletest.OutOfFiles(t, addr, 100*time.Millisecond)

	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, testcert.Get(testcert.ECDSA).ClientConfig())
	if err != nil {
		t.Fatalf("after running out of files, the proxy doesn't serve: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("after running out of files, echo = %q, %v", buf, err)
	}
}
