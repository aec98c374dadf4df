package ktls_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// envHelper makes the test binary run one transfer instead of its tests;
// see TestMain. TestZeroCopyUsed runs it under strace.
const envHelper = "KTLS_TEST_ZEROCOPY_HELPER"

// zeroCopyHelper runs one transfer of n bytes with the given path and
// checks the data; it is the process strace watches.
func zeroCopyHelper(mode string, n int64) error {
	t := &helperT{}
	defer t.cleanup()
	ccfg, scfg := ktlstest.TLS13.Configs()
	var c, s net.Conn
	if err := t.run(func() { c, s = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg)) }); err != nil {
		return err
	}
	got := make(chan error, 1)
	var sum [32]byte
	switch mode {
	case "sendfile":
		f, want, err := tempFile(n)
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		go func() { _, err := drainCompare(c, n, want); got <- err }()
		if _, err := io.Copy(s, f); err != nil {
			return err
		}
		return <-got
	case "splice-pipe":
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		go func() { sum, _ = wiretest.Stream(pw, n, 3); pw.Close() }()
		go func() {
			h := sha256.New()
			m, err := io.CopyN(h, c, n)
			if err == nil && (m != n || [32]byte(h.Sum(nil)) != sum) {
				err = errors.New("data through the pipe arrived corrupted")
			}
			got <- err
		}()
		if _, err := s.(*ktls.Conn).ReadFrom(pr); err != nil {
			return err
		}
		return <-got
	case "splice-socket":
		// The server's decrypted stream goes to a plain TCP socket.
		var a, b *net.TCPConn
		if err := t.run(func() { a, b = wiretest.TCPPair(t, "tcp") }); err != nil {
			return err
		}
		go func() { s2, err := wiretest.Stream(c, n, 4); sum = s2; c.(*ktls.Conn).CloseWrite(); got <- err }()
		done := make(chan error, 1)
		go func() {
			h := sha256.New()
			m, err := io.Copy(h, b)
			if err == nil && m != n {
				err = fmt.Errorf("spliced %d bytes, want %d", m, n)
			}
			if err == nil {
				if err = <-got; err == nil && [32]byte(h.Sum(nil)) != sum {
					err = errors.New("spliced data arrived corrupted")
				}
			}
			done <- err
		}()
		if _, err := io.Copy(a, s); err != nil {
			return err
		}
		a.CloseWrite()
		return <-done
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// TestZeroCopyUsed proves the data went through sendfile and splice, not
// through user-space buffers: it runs the transfer in a child process
// under strace and adds up the bytes those calls moved. A silent fallback
// to read and write makes the sum come out short.
func TestZeroCopyUsed(t *testing.T) {
	kerneltest.RequireULP(t)
	straceBin := kerneltest.Program(t, "strace")
	const n = 8 << 20
	for _, tc := range []struct {
		mode, call string
		want       int64
	}{
		{"sendfile", "sendfile", n},
		{"splice-pipe", "splice", n},
		{"splice-socket", "splice", 2 * n}, // socket to pipe, pipe to socket
	} {
		t.Run(tc.mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "strace.out")
			cmd := kerneltest.Strace(straceBin, out, "sendfile,splice", os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envHelper+"="+tc.mode+":"+strconv.Itoa(n))
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("transfer under strace: %v\n%s", err, b)
			}
			moved, calls := kerneltest.StraceBytes(t, out, tc.call)
			t.Logf("%s: %d calls moved %d bytes", tc.call, calls, moved)
			if moved != tc.want {
				t.Fatalf("%s moved %d bytes, want %d: the data went another way", tc.call, moved, tc.want)
			}
		})
	}
}

// sendfileLargeSHA256 is the SHA-256 of TestSendfileLarge's file.
var sendfileLargeSHA256 = [32]byte{0x87, 0x63, 0xe6, 0x2d, 0x5f, 0x58, 0x6a, 0xd2, 0xed, 0x09, 0x0e, 0xae, 0xf8, 0xe4, 0x25, 0xf5, 0xca, 0xd1, 0x78, 0xd5, 0x6a, 0xb0, 0xd9, 0x9b, 0x9a, 0x7a, 0x83, 0x33, 0x54, 0xe5, 0xb2, 0x06}

// TestSendfileLarge sends a 1 GiB file with sendfile and checks its
// SHA-256 at the other end. On the lab kernels other than
// kerneltest.BulkKernel it sends the file's first 128 MiB.
func TestSendfileLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB; -short skips it (the lab runs it)")
	}
	const fullSize = 1 << 30
	size := kerneltest.BulkSize(fullSize, 128<<20)
	// Mostly holes, so it takes no memory in the guest's tmpfs, with
	// random blocks all through it.
	f, err := os.CreateTemp("", "sendfile-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(fullSize); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	block := make([]byte, 4096)
	for off := int64(0); off < fullSize; off += 1 << 20 {
		for i := range block {
			block[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(block, off+int64(rng.IntN(1<<20-4096))); err != nil {
			t.Fatal(err)
		}
	}
	// Hashing 1 GiB is slow under emulation, and the file is the same
	// every time: its hash is a constant, checked on the host, where it
	// is cheap, and taken on trust in the lab.
	want := sendfileLargeSHA256
	if !inLab() || size != fullSize {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			t.Fatal(err)
		}
		got := [32]byte(h.Sum(nil))
		if size == fullSize && got != want {
			t.Fatalf("the 1 GiB test file hashes to %x; update sendfileLargeSHA256", got)
		}
		want = got
	}
	if !kerneltest.HaveULP() {
		// Without kernel TLS there is no sendfile to prove, and 1 GiB
		// through crypto/tls under the race detector takes a minute; the
		// fallback's copy path is tested with less.
		t.Log("the golden hash holds; the transfer itself runs where the kernel encrypts")
		return
	}

	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	errc := make(chan error, 1)
	go func() {
		_, err := drainCompare(c, size, want)
		errc <- err
	}()
	start := time.Now()
	if _, err := s.(*ktls.Conn).ReadFrom(io.LimitReader(f, size)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d MiB in %v (emulated in the lab)", size>>20, time.Since(start).Round(time.Millisecond))
}

// TestSendfileRanges sends byte ranges at unaligned offsets, as
// http.ServeContent does for Range requests: seek, then copy a limited
// reader.
func TestSendfileRanges(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	f := testFile(t, 3<<20+12345)
	content, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	ranges := [][2]int64{{0, 1}, {1, 4095}, {4097, 65537}, {123457, 1 << 20}, {int64(len(content)) - 7, 7}, {3, int64(len(content)) - 3}}
	go func() {
		for _, r := range ranges {
			if _, err := f.Seek(r[0], io.SeekStart); err != nil {
				return
			}
			if _, err := io.CopyN(s, f, r[1]); err != nil {
				return
			}
		}
	}()
	for _, r := range ranges {
		got := make([]byte, r[1])
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %d+%d arrived different", r[0], r[1])
		}
	}
}

// TestSendfileShrinkingFile: a file that is truncated while it is sent
// ends the copy early; what arrived is a prefix of the file, and nothing
// hangs.
func TestSendfileShrinkingFile(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	const size = 32 << 20
	f := testFile(t, size)
	content, _ := os.ReadFile(f.Name())
	sent := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(s, f)
		s.(interface{ CloseWrite() error }).CloseWrite()
		sent <- n
	}()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.Name(), 2<<20); err != nil {
		t.Fatal(err)
	}
	rest, err := wiretest.ReadAll(c)
	if err != io.EOF {
		t.Fatalf("reading after the truncation: %v", err)
	}
	got := append(first, rest...)
	n := <-sent
	if int64(len(got)) != n || !bytes.Equal(got, content[:len(got)]) {
		t.Fatalf("received %d bytes (sender says %d), want an intact prefix of the file", len(got), n)
	}
	t.Logf("sent %d of %d bytes before the file shrank", n, size)
}

// TestPeerClosesMidTransfer: when the reader goes away, the sender's copy
// fails promptly, instead of hanging or reporting the whole file sent (see
// checkSent).
func TestPeerClosesMidTransfer(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	f := testFile(t, 64<<20)
	errc := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = io.Copy(s, f)
		errc <- err
	}()
	resetMidStream(t, c)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatalf("copy to a closed peer succeeded after %d of %d bytes", n, 64<<20)
		}
		t.Logf("the copy failed after %d bytes with %v", n, err)
	case <-time.After(30 * time.Second):
		t.Fatal("copy to a closed peer hung")
	}
}

// TestWritesAfterPeerReset: once the peer has reset the connection, a
// writer learns of it within a bounded number of writes. It is why plain
// writes don't get checkSent: where sendfile and splice can lose the
// reset (TestPeerClosesMidTransfer), write(2) has kept it every time.
func TestWritesAfterPeerReset(t *testing.T) {
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
			const bound = 64 << 20 // written after the reset, at most
			chunk := make([]byte, 1<<20)
			errc := make(chan error, 1)
			reset := make(chan struct{})
			go func() {
				var after int
				for {
					select {
					case <-reset:
						after += len(chunk)
					default:
					}
					if after > bound {
						errc <- nil
						return
					}
					if _, err := s.Write(chunk); err != nil {
						errc <- err
						return
					}
				}
			}()
			resetMidStream(t, c)
			close(reset)
			select {
			case err := <-errc:
				if err == nil {
					t.Fatalf("%d MiB written after the peer reset the connection, and no error", bound>>20)
				}
				t.Logf("the write failed with %v", err)
			case <-time.After(60 * time.Second):
				t.Fatal("a write to a reset connection hung")
			}
		})
	}
}

// TestRelayToResetPeer: WriteTo from one offloaded connection to another
// splices into a socket the kernel encrypts, where a reset can be lost as
// in TestPeerClosesMidTransfer; the relay must fail, not report the
// source's whole stream delivered.
func TestRelayToResetPeer(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	src, in := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	reader, out := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	const size = 64 << 20
	go func() {
		chunk := make([]byte, 1<<20)
		for written := 0; written < size; written += len(chunk) {
			if _, err := src.Write(chunk); err != nil {
				return // the relay stopped reading and the test closed src
			}
		}
		src.(*ktls.Conn).CloseWrite()
	}()
	done := wiretest.Async(func() (int64, error) { return in.(*ktls.Conn).WriteTo(out) })
	resetMidStream(t, reader)
	select {
	case r := <-done:
		if r.Err == nil {
			t.Fatalf("the relay reported %d of %d bytes delivered to a peer that reset", r.V, size)
		}
		t.Logf("the relay failed after %d bytes with %v", r.V, r.Err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the relay to a reset peer hung")
	}
}

// resetMidStream reads 256 KiB from c, then closes its socket while more
// is on the way: with data unread, close sends a reset rather than a FIN.
func resetMidStream(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.ReadFull(c, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	c.(*ktls.Conn).NetConn().Close()
}

// TestSpliceAlerts: splice stops at a control record (EINVAL); the copy
// takes it with recvmsg and goes on (a TLS 1.2 warning), ends cleanly
// (close_notify), or ends with the alert's error after all the data
// before it.
func TestSpliceAlerts(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range []ktlstest.SuiteCase{ktlstest.TLS12, ktlstest.TLS13} {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
			kc := c.(*ktls.Conn)
			a, b := wiretest.TCPPair(t, "tcp")
			var want bytes.Buffer
			sent := make(chan struct{}) // want is complete
			go func() {
				defer close(sent)
				for i := range 20 {
					chunk := bytes.Repeat([]byte{byte(i)}, 100<<10+i)
					want.Write(chunk)
					kc.Write(chunk)
					if sc.Version == tls.VersionTLS12 {
						kc.SendAlert(1, 90) // a warning: user_canceled
					}
				}
				if sc.Version == tls.VersionTLS12 {
					kc.CloseWrite()
				} else {
					kc.SendAlert(2, 80) // fatal internal_error
				}
			}()
			got := make(chan []byte, 1)
			go func() { data, _ := io.ReadAll(b); got <- data }()
			n, err := io.Copy(a, s)
			a.CloseWrite()
			data := <-got
			<-sent
			if int64(len(data)) != n || !bytes.Equal(data, want.Bytes()) {
				t.Fatalf("spliced %d bytes, want %d intact", len(data), want.Len())
			}
			var alert tls.AlertError
			switch {
			case sc.Version == tls.VersionTLS12 && err != nil:
				t.Fatalf("copy ended with %v, want nil after close_notify", err)
			case sc.Version == tls.VersionTLS13 && (!errors.As(err, &alert) || alert != 80):
				t.Fatalf("copy ended with %v, want the peer's internal_error alert", err)
			}
		})
	}
}

// tempFile makes a file of n pseudo-random bytes, open for reading.
func tempFile(n int64) (*os.File, [32]byte, error) {
	f, err := os.CreateTemp("", "ktls-")
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum, err := wiretest.Stream(f, n, 5)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	return f, sum, err
}

// testFile is tempFile for a test or benchmark, which fails where it
// can't be made and removes it when done.
func testFile(tb testing.TB, n int64) *os.File {
	tb.Helper()
	f, _, err := tempFile(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Remove(f.Name()) })
	return f
}

// drainCompare reads n bytes and checks their hash.
func drainCompare(r io.Reader, n int64, want [32]byte) (int64, error) {
	got, err := wiretest.Drain(r, n)
	if err != nil {
		return 0, err
	}
	if got != want {
		return n, errors.New("data arrived corrupted")
	}
	return n, nil
}

// Benchmarks of the data paths. On the host they measure crypto/tls (no
// ULP); in the lab, the kernel under TCG: compare ratios only.
func BenchmarkWrite(b *testing.B)    { benchSend(b, "write") }
func BenchmarkSendfile(b *testing.B) { benchSend(b, "sendfile") }
func BenchmarkSplice(b *testing.B)   { benchSend(b, "splice") }

func benchSend(b *testing.B, mode string) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(b, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	const chunk = 4 << 20
	f := testFile(b, chunk)
	src, _ := os.ReadFile(f.Name())
	go io.Copy(io.Discard, c)
	var sb net.Conn
	if mode == "splice" {
		sa, b2 := wiretest.TCPPair(b, "tcp")
		sb = b2
		go func() {
			for {
				if _, err := sa.Write(src); err != nil {
					return
				}
			}
		}()
	}
	b.SetBytes(chunk)
	b.ResetTimer()
	var err error
	for range b.N {
		switch mode {
		case "write":
			_, err = s.Write(src)
		case "sendfile":
			f.Seek(0, io.SeekStart)
			_, err = io.Copy(s, f)
		case "splice":
			_, err = s.(*ktls.Conn).ReadFrom(io.LimitReader(sb, chunk))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "allocs/op")
}

// relayStream sends n pseudo-random bytes from c in two parts, calling
// between() once the first is sent, then ends with close_notify. It
// returns the whole stream.
func relayStream(t *testing.T, c net.Conn, first, second int, between func()) <-chan []byte {
	t.Helper()
	sent := make(chan []byte, 1)
	go func() {
		data := wiretest.RandomBytes(first+second, 3)
		defer func() { sent <- data }()
		if _, err := c.Write(data[:first]); err != nil {
			t.Errorf("sending: %v", err)
			return
		}
		between()
		if _, err := c.Write(data[first:]); err != nil {
			t.Errorf("sending: %v", err)
			return
		}
		c.(*ktls.Conn).CloseWrite()
	}()
	return sent
}

// writeToPair connects two ktls ends for a WriteTo test, the server's
// with a deadline that ends a test that hangs.
func writeToPair(t *testing.T) (c, s net.Conn) {
	t.Helper()
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	s.SetDeadline(time.Now().Add(time.Minute))
	return c, s
}

// wantWholeStream checks that WriteTo reported the n bytes the
// destination received (delivered), and that those, then what Read
// returns after WriteTo, are the stream sent, by SHA-256.
func wantWholeStream(t *testing.T, s net.Conn, sent <-chan []byte, n int64, delivered []byte) {
	t.Helper()
	if int64(len(delivered)) != n {
		t.Errorf("WriteTo reported %d bytes, the destination got %d", n, len(delivered))
	}
	rest, err := wiretest.ReadAll(s)
	if err != io.EOF {
		t.Errorf("Read after WriteTo: %v, want io.EOF after the rest", err)
	}
	want := <-sent
	got := append(delivered, rest...)
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("%d bytes reached the destination and %d came from Read after it, want the %d sent, intact: decrypted data was lost", len(delivered), len(rest), len(want))
	}
	t.Logf("%d bytes through WriteTo, %d from Read after it", len(delivered), len(rest))
}

// TestWriteToAppendFile: splice(2) can't write a file opened with O_APPEND
// (EINVAL), and it would find out only after the data left the socket.
// WriteTo writes such a file from user space, and every byte gets there.
func TestWriteToAppendFile(t *testing.T) {
	kerneltest.RequireULP(t)
	c, s := writeToPair(t)
	if o := s.(*ktls.Conn).Offload(); !o.RX {
		t.Fatalf("Offload() = %v, want RX", o)
	}
	name := filepath.Join(t.TempDir(), "append")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sent := relayStream(t, c, 1<<20, 2<<20+12345, func() {})
	n, err := s.(*ktls.Conn).WriteTo(f)
	if err != nil {
		t.Errorf("WriteTo an O_APPEND file: %v", err)
	}
	got, _ := os.ReadFile(name)
	wantWholeStream(t, s, sent, n, got)
}

// TestWriteToDrainFailure: the destination fails after splice took data
// from the socket into WriteTo's pipe. What is in the pipe then goes to
// the destination through user space, or stays for the next Read; none
// of it is dropped with the pipe.
func TestWriteToDrainFailure(t *testing.T) {
	kerneltest.RequireULP(t)
	// splice stops working mid-copy (O_APPEND set on the open file);
	// write(2) still does.
	t.Run("splice-refused-mid-copy", func(t *testing.T) {
		c, s := writeToPair(t)
		name := filepath.Join(t.TempDir(), "out")
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sent := relayStream(t, c, 2<<20, 2<<20+777, func() {
			for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
				if st, err := f.Stat(); err == nil && st.Size() >= 1<<20 {
					break
				}
				if time.Since(start) > 30*time.Second {
					t.Error("WriteTo wrote no 1 MiB into the file in 30 s")
					break
				}
			}
			rc, _ := f.SyscallConn()
			rc.Control(func(fd uintptr) {
				fl, _ := unix.FcntlInt(fd, unix.F_GETFL, 0)
				unix.FcntlInt(fd, unix.F_SETFL, fl|unix.O_APPEND)
			})
		})
		n, err := s.(*ktls.Conn).WriteTo(f)
		if err != nil {
			t.Errorf("WriteTo: %v", err)
		}
		got, _ := os.ReadFile(name)
		wantWholeStream(t, s, sent, n, got)
	})

	// The destination socket is shut for writing mid-copy: EPIPE from
	// splice, then from write(2).
	t.Run("socket-shut-mid-copy", func(t *testing.T) {
		c, s := writeToPair(t)
		a, b := wiretest.TCPPair(t, "tcp")
		var (
			received = make(chan []byte, 1)
			oneMiB   = make(chan struct{})
		)
		go func() {
			var buf bytes.Buffer
			io.CopyN(&buf, b, 1<<20)
			close(oneMiB)
			io.Copy(&buf, b)
			received <- buf.Bytes()
		}()
		sent := relayStream(t, c, 2<<20, 2<<20+777, func() {
			select {
			case <-oneMiB:
			case <-time.After(30 * time.Second):
				t.Error("WriteTo delivered no 1 MiB in 30 s")
			}
			a.CloseWrite()
		})
		n, err := s.(*ktls.Conn).WriteTo(a)
		if err == nil {
			t.Error("WriteTo into a socket shut for writing succeeded")
		}
		t.Logf("WriteTo: %d, %v", n, err)
		wantWholeStream(t, s, sent, n, <-received)
	})

	// splice refuses /dev/full (no splice_write: EINVAL), and write(2)
	// fails with ENOSPC: all of it stays for Read.
	t.Run("dev-full", func(t *testing.T) {
		c, s := writeToPair(t)
		f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sent := relayStream(t, c, 1<<20, 0, func() {})
		n, err := s.(*ktls.Conn).WriteTo(f)
		if !errors.Is(err, syscall.ENOSPC) || n != 0 {
			t.Errorf("WriteTo /dev/full = %d, %v; want 0, ENOSPC", n, err)
		}
		wantWholeStream(t, s, sent, n, nil)
	})
}

// failingWriter takes limit bytes, then fails.
type failingWriter struct {
	buf   bytes.Buffer
	limit int
}

var errDestinationFull = errors.New("destination full")

func (w *failingWriter) Write(b []byte) (int, error) {
	n := min(len(b), w.limit-w.buf.Len())
	w.buf.Write(b[:n])
	if n < len(b) {
		return n, errDestinationFull
	}
	return n, nil
}

// TestWriteToFailingWriter: WriteTo into a writer splice can't reach,
// which fails part way through a buffer: what it didn't take comes from
// the next Read. On the kernel path and on crypto/tls alike.
func TestWriteToFailingWriter(t *testing.T) {
	c, s := writeToPair(t)
	sent := relayStream(t, c, 1<<20, 0, func() {})
	w := &failingWriter{limit: 300001}
	n, err := s.(*ktls.Conn).WriteTo(w)
	if !errors.Is(err, errDestinationFull) || n != int64(w.limit) {
		t.Errorf("WriteTo = %d, %v; want %d, %v", n, err, w.limit, errDestinationFull)
	}
	wantWholeStream(t, s, sent, n, w.buf.Bytes())
}

// TestWriteToEmptyRecords: an empty application_data record is legal, and
// crypto/tls skips up to 16 in a row; splice(2) consumes one and returns
// 0, as it does at the end of the stream. WriteTo must skip it and go on,
// not end the copy with io.ErrUnexpectedEOF and lose the connection. (A
// run of them is let through as Read lets it through, see the hostile
// suite's empty-records case: recvmsg skips the empty records it finds
// ahead of data.)
func TestWriteToEmptyRecords(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		for _, empties := range []int{1, 1000} {
			t.Run(fmt.Sprintf("%s/%d-empty", sc.Name, empties), func(t *testing.T) {
				ccfg, scfg := sc.Configs()
				p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
				if o := s.(*ktls.Conn).Offload(); !o.RX {
					t.Fatalf("Offload() = %v, want RX", o)
				}
				deadline := time.Now().Add(30 * time.Second)
				s.SetDeadline(deadline)
				p.Conn.SetDeadline(deadline)
				pr, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer pr.Close()
				got := make(chan []byte, 1)
				go func() { b, _ := io.ReadAll(pr); got <- b }()
				go func() {
					// One write: splice finds the empty records
					// already there, behind the data.
					b := p.Out.Seal(record.TypeApplicationData, []byte("before"))
					for range empties {
						b = append(b, p.Out.Seal(record.TypeApplicationData, nil)...)
					}
					b = append(b, p.Out.Seal(record.TypeApplicationData, []byte("after"))...)
					b = append(b, p.Out.Seal(record.TypeApplicationData, nil)...)
					b = append(b, p.Out.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify})...)
					if _, err := p.Conn.Write(b); err != nil {
						t.Errorf("raw peer: %v", err)
					}
				}()
				n, err := io.Copy(pw, s)
				pw.Close()
				data := <-got
				if err != nil || string(data) != "beforeafter" || n != int64(len(data)) {
					t.Fatalf("WriteTo = %d, %v; the pipe got %q, want 11, nil and %q", n, err, data, "beforeafter")
				}
			})
		}
	}
}
