package khttp_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
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

// TestOutOfFiles: a server out of file descriptors (a client that opens
// connections until none are left) waits for one, as net/http does,
// instead of stopping: afterwards it serves again. (Serve returned
// accept's EMFILE, and ktls serve exited.)
func TestOutOfFiles(t *testing.T) {
	_, base := startServer(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})})
	outOfFiles(t, base[len("https://"):], 100*time.Millisecond)
	for name, c := range clients(t) {
		c.Timeout = 5 * time.Second
		resp, err := c.Get(base)
		if err != nil {
			t.Fatalf("%s: after running out of files, the server doesn't serve: %v", name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || err != nil {
			t.Errorf("%s: after running out of files, GET = %q, %v", name, b, err)
		}
	}
}
