package ktls_test

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestRelayWithoutPipe: WriteTo into another *Conn whose kernel encrypts
// holds that Conn's write lock for the whole relay. When the splice pipe
// can't be made (out of file descriptors), the relay copies through user
// space instead, and must write as the holder of that lock. Before the
// fix it wrote through the Conn's own Write, which waits for the same
// lock, and the relay never returned.
func TestRelayWithoutPipe(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	peer, src, dst, reader := relayConns(t, ccfg, scfg)

	data := wiretest.RandomBytes(256<<10, 7)
	go func() {
		if _, err := peer.Write(data); err == nil {
			peer.(*ktls.Conn).CloseWrite()
		}
	}()
	restore := noFreeFiles(t)
	type result struct {
		n   int64
		err error
	}
	relayed := make(chan result, 1)
	go func() {
		n, err := src.(*ktls.Conn).WriteTo(dst)
		relayed <- result{n, err}
	}()
	// The relay tried the pipe before it read anything.
	reader.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(data))
	_, err := io.ReadFull(reader, got)
	restore()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("through a relay that could not make its pipe: %v, intact %v", err, bytes.Equal(got, data))
	}
	select {
	case r := <-relayed:
		if r.err != nil || r.n != int64(len(data)) {
			t.Fatalf("relay = %d, %v; want %d, nil", r.n, r.err, len(data))
		}
	case <-time.After(promptly):
		t.Fatalf("the relay did not return within %v of the peer's close_notify", promptly)
	}
}

// noFreeFiles lowers RLIMIT_NOFILE to the lowest free descriptor, so that
// the next one this process opens fails with EMFILE, until restore (or
// the end of the test).
func noFreeFiles(t *testing.T) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	restored := false
	restore = func() {
		if !restored {
			restored = true
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	t.Cleanup(restore)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(fd), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); !errors.Is(err, syscall.EMFILE) {
		if err == nil {
			syscall.Close(p[0])
			syscall.Close(p[1])
		}
		restore()
		t.Fatalf("pipe2 with RLIMIT_NOFILE at %d: %v, want EMFILE", fd, err)
	}
	return restore
}
