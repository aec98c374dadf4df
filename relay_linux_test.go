package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestCloseDuringRelay: src.WriteTo(dst) holds dst's write lock while it
// waits for data from src. dst.Close must not wait for that relay: it
// closes the socket, and the relay fails when the next data comes, which
// then stays for src's next Read.
func TestCloseDuringRelay(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			peer, src, dst, reader := relayConns(t, ccfg, scfg)
			relayed := wiretest.Async(func() (int64, error) { return src.(*ktls.Conn).WriteTo(dst) })
			// Data through the relay: it has dst's lock, and waits on src.
			first := wiretest.RandomBytes(100<<10, 1)
			if _, err := peer.Write(first); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(first))
			if _, err := io.ReadFull(reader, got); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("through the relay: %v, intact %v", err, bytes.Equal(got, first))
			}

			closed := make(chan error, 1)
			go func() { closed <- dst.Close() }()
			select {
			case err := <-closed:
				t.Logf("dst.Close: %v", err)
			case <-time.After(promptly):
				t.Fatalf("dst.Close did not return within %v while src.WriteTo(dst) waited for data", promptly)
			}

			second := wiretest.RandomBytes(64<<10, 2)
			if _, err := peer.Write(second); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-relayed:
				if r.Err == nil || r.V != int64(len(first)) {
					t.Fatalf("relay into the closed dst = %d, %v; want %d and an error", r.V, r.Err, len(first))
				}
				t.Logf("the relay ended with %v", r.Err)
			case <-time.After(promptly):
				t.Fatalf("the relay into the closed dst went on %v after data came", promptly)
			}
			// Nothing the relay took from src is lost.
			if _, err := io.ReadFull(src, got[:len(second)]); err != nil || !bytes.Equal(got[:len(second)], second) {
				t.Fatalf("src.Read after the relay failed: %v, intact %v; want the data the relay could not deliver", err, bytes.Equal(got[:len(second)], second))
			}
		})
	}
}

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

// relayConns connects two ktls pairs for a relay from src (whose RX the
// kernel took) to dst (whose TX it took): peer writes into src, reader
// reads what reaches dst. Every end gets a one-minute deadline.
func relayConns(t *testing.T, ccfg, scfg *tls.Config) (peer, src, dst, reader net.Conn) {
	t.Helper()
	peer, src = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	dst, reader = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	if o := src.(*ktls.Conn).Offload(); !o.RX {
		t.Fatalf("src: Offload() = %v, want RX", o)
	}
	if o := dst.(*ktls.Conn).Offload(); !o.TX {
		t.Fatalf("dst: Offload() = %v, want TX", o)
	}
	deadline := time.Now().Add(time.Minute)
	for _, c := range []net.Conn{peer, src, dst, reader} {
		c.SetDeadline(deadline)
	}
	return peer, src, dst, reader
}
