package proxy_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/proxy"
	"github.com/ktlsgo/ktls/internal/testcert"
)

// outOfFiles makes the next accept on addr fail with EMFILE: it lowers
// the process's limit on open files, takes every descriptor left with
// /dev/null, then frees one for a client's socket to addr, so that the
// server, woken for that connection, has none to accept it with. After
// hold it gives the descriptors back and restores the limit.
func outOfFiles(t *testing.T, addr string, hold time.Duration) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	low := lim
	low.Cur = uint64(len(open) + 64)
	if low.Cur > lim.Cur {
		t.Skipf("the limit on open files, %d, is too low to lower", lim.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []*os.File
	defer func() {
		for _, f := range fill {
			f.Close()
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial with one descriptor free: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	time.Sleep(hold)
}

// TestProxyOutOfFiles: a server out of file descriptors (a client that
// opens connections until none are left) waits for one, as net/http
// does, instead of stopping: afterwards it serves again. (It returned
// accept's EMFILE from Run, and the command exited.)
func TestProxyOutOfFiles(t *testing.T) {
	addr, _ := startLogged(t, proxy.Config{Backend: echo(t), IdleTimeout: time.Minute})
	outOfFiles(t, addr, 100*time.Millisecond)

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
