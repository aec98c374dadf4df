package hostiletest

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// OutOfFiles makes the next accept on addr fail with EMFILE: it lowers
// the process's limit on open files, takes every descriptor left with
// /dev/null, then frees one for a client's socket to addr, so that the
// server, woken for that connection, has none to accept it with. After
// hold it gives the descriptors back and restores the limit.
func OutOfFiles(t *testing.T, addr string, hold time.Duration) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting open files: %v", err)
	}
	low := lim
	low.Cur = uint64(len(open) + 64)
	if low.Cur > lim.Cur {
		t.Fatalf("the limit on open files, %d, is too low to lower", lim.Cur)
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
	// Free one descriptor for the dial. Another goroutine of the test
	// process (a server's accept loop, a client closing and redialling)
	// may take it first; then free one more, so that the dial gets one
	// and the process is still left with none.
	var c net.Conn
	for {
		if len(fill) == 0 {
			t.Fatal("no descriptor stayed free for the dial")
		}
		fill[len(fill)-1].Close()
		fill = fill[:len(fill)-1]
		c, err = net.Dial("tcp", addr)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("dial with one descriptor free: %v", err)
		}
	}
	t.Cleanup(func() { c.Close() })
	time.Sleep(hold)
}
