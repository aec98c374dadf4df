package ktls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// BenchmarkRXRead measures the receive path. A crypto/tls peer writes
// records of one size, 256 KiB an op, and waits until the server's
// kernel has all of it; then the timer runs while a ktls server reads
// those 256 KiB in reads of one size, and stops before the next write.
// So what is timed, and the CPU time reported (getrusage RUSAGE_SELF, user
// and system, as cpu-s/GiB), is the reader's alone: decryption in the
// kernel is system time, in crypto/tls user time. best-s/GiB is the
// fastest op's wall time, per GiB: with the data queued and the writer
// idle, an op is one busy thread, and the fastest one is the least
// disturbed by whatever else the machine runs.
//
// The ways of reading, compared in one run:
//
//	kernel        the kernel decrypts (recvmsg(2)); a read smaller than a
//	              record goes through a 16 KiB buffer, into which the
//	              kernel decrypts a whole record in place
//	kernel-64K    the same through a 64 KiB buffer, which can take more
//	              records a call
//	kernel-nobuf  a read smaller than a record goes straight to the
//	              caller's buffer: the kernel decrypts into its own memory
//	              and copies out read by read
//	tls           RX left to crypto/tls (Options.RX = Disabled)
//
// The host is shared and the lab emulated: only ratios within one run
// mean anything. KTLS_RXREAD_ROUNDS (default 1) runs every case that many
// times, the ways of reading interleaved and alternating in order, as
// round=N sub-benchmarks (benchstat -ignore round merges them).
//
//	KTLS_RXREAD_ROUNDS=4 go run ./cmd/ktls-lab test -k 7 --memory 1536 \
//	    --run '^$' --bench RXRead --benchtime 30x .
func BenchmarkRXRead(b *testing.B) {
	ktlstest.TLS13.RequireRX(b)
	rounds := 1
	if v := os.Getenv("KTLS_RXREAD_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("KTLS_RXREAD_ROUNDS=%q: want a count", v)
		}
		rounds = n
	}
	recs := []int{16 << 10, 1 << 10}
	conns := map[rxConnKey]*rxConn{}
	for _, rec := range recs {
		for _, k := range []bool{true, false} {
			conns[rxConnKey{rec, k}] = newRXConn(b, rec, k)
		}
	}
	for r := range rounds {
		b.Run(fmt.Sprintf("round=%d", r), func(b *testing.B) {
			for _, rec := range recs {
				b.Run("rec="+sizeName(rec), func(b *testing.B) {
					for _, size := range []int{4 << 10, 16 << 10, 64 << 10} {
						b.Run("read="+sizeName(size), func(b *testing.B) {
							vs := rxVariants
							if r%2 == 1 {
								vs = reversed(vs)
							}
							for _, v := range vs {
								if v.buf != 0 && size >= 16<<10 {
									continue // reads of a record or more don't use the buffer
								}
								b.Run("rx="+v.name, func(b *testing.B) {
									benchRXRead(b, conns[rxConnKey{rec, v.kernel}], size, v)
								})
							}
						})
					}
				})
			}
		})
	}
}

type rxVariant struct {
	name   string
	kernel bool // else crypto/tls decrypts
	buf    int  // the small-read buffer: 0 for one record, -1 for none
}

var rxVariants = []rxVariant{
	{name: "kernel", kernel: true},
	{name: "kernel-64K", kernel: true, buf: 64 << 10},
	{name: "kernel-nobuf", kernel: true, buf: -1},
	{name: "tls"},
}

func reversed[T any](s []T) []T {
	r := make([]T, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

func sizeName(n int) string { return fmt.Sprintf("%dK", n>>10) }

// rxOpBytes is what one op reads: queued whole in the socket buffers.
const rxOpBytes = 256 << 10

func benchRXRead(b *testing.B, c *rxConn, size int, v rxVariant) {
	defer ktls.SetRXSmallReadBuf(v.buf)()
	buf := make([]byte, size)
	b.SetBytes(rxOpBytes)
	b.ReportAllocs()
	var cpu int64
	best := time.Duration(math.MaxInt64)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := c.queue(rxOpBytes); err != nil {
			b.Fatal(err)
		}
		var ru0, ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru0)
		start := time.Now()
		b.StartTimer()
		for got := 0; got < rxOpBytes; {
			n, err := c.server.Read(buf[:min(size, rxOpBytes-got)])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		b.StopTimer()
		best = min(best, time.Since(start))
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu += tvNanos(ru1.Utime) - tvNanos(ru0.Utime) + tvNanos(ru1.Stime) - tvNanos(ru0.Stime)
	}
	perGiB := float64(1<<30) / rxOpBytes
	b.ReportMetric(float64(cpu)/1e9/float64(b.N)*perGiB, "cpu-s/GiB")
	b.ReportMetric(best.Seconds()*perGiB, "best-s/GiB")
}

func tvNanos(tv unix.Timeval) int64 { return tv.Sec*1e9 + tv.Usec*1e3 }

type rxConnKey struct {
	rec    int
	kernel bool
}

// An rxConn is a ktls server and the crypto/tls client that writes to
// it, in records of one size.
type rxConn struct {
	server *ktls.Conn
	client *tls.Conn
	raw    net.Conn // the client's socket
	rec    []byte
}

// rxSocketBuffer is the send and receive buffer size of the benchmark's
// connections: room for an op's records.
const rxSocketBuffer = 2 << 20

func newRXConn(b *testing.B, rec int, kernelRX bool) *rxConn {
	_, scfg := ktlstest.TLS13.Configs()
	opts := &ktls.Options{TX: ktls.Required, RX: ktls.Required}
	if !kernelRX {
		opts.RX = ktls.Disabled
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *ktls.Conn, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		raw.(*net.TCPConn).SetReadBuffer(rxSocketBuffer)
		s := ktls.ServerWithOptions(raw, scfg, opts)
		s.SetDeadline(time.Now().Add(time.Minute))
		if s.Handshake() != nil {
			s.Close()
			s = nil
		}
		accepted <- s
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	raw.(*net.TCPConn).SetWriteBuffer(rxSocketBuffer)
	c := &rxConn{raw: raw, rec: make([]byte, rec)}
	c.client = tls.Client(raw, &tls.Config{
		InsecureSkipVerify: true, // a benchmark's own peer
		MinVersion:         tls.VersionTLS13,
		// A record a Write, from the first one.
		DynamicRecordSizingDisabled: true,
	})
	cerr := c.client.Handshake()
	c.server = <-accepted
	b.Cleanup(func() {
		raw.Close()
		if c.server != nil {
			c.server.Close()
		}
	})
	if cerr != nil || c.server == nil {
		b.Fatalf("handshake: client %v, server failed: %v", cerr, c.server == nil)
	}
	c.server.SetDeadline(time.Time{})
	o := c.server.Offload()
	if o.RX != kernelRX || kernelRX && !o.RXNoPad || o.CipherSuite != tls.TLS_AES_128_GCM_SHA256 {
		b.Fatalf("Offload() = %v, RXNoPad %v; want RX %v with RXNoPad, and AES-128-GCM", o, o.RXNoPad, kernelRX)
	}
	for i := range c.rec {
		c.rec[i] = byte(i * 7)
	}
	return c
}

// queue writes n bytes in records of the connection's size and returns
// once the server's kernel has acknowledged all of them.
func (c *rxConn) queue(n int) error {
	for ; n > 0; n -= len(c.rec) {
		if _, err := c.client.Write(c.rec[:min(n, len(c.rec))]); err != nil {
			return err
		}
	}
	rc, err := c.raw.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var left int
		var ierr error
		if err := rc.Control(func(fd uintptr) { left, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
			return err
		}
		if ierr != nil {
			return ierr
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the server's kernel did not take the queued records")
		}
		time.Sleep(100 * time.Microsecond)
	}
}
