package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestRXInterleaved runs streams that interleave application data with
// control records through the kernel read path, at read sizes from 1 byte
// to 64 KiB, so that a control record comes both alone and right behind
// data in the same read (the whole stream is queued before the first
// read). Every byte must come, in order, and every control record must
// act: an ignored alert counts towards the limit on records that carry
// nothing, a KeyUpdate moves to the next key (or the data after it could
// not be decrypted), close_notify ends the stream with io.EOF, and a fatal
// alert with its error.
func TestRXInterleaved(t *testing.T) {
	kerneltest.RequireULP(t)
	ktlstest.WarmProbes(t)
	for _, sc := range ktlstest.OnePerVersion {
		for _, sn := range rxScripts {
			if sn.tls13 && sc.Version != tls.VersionTLS13 {
				continue // not run, rather than run and skipped
			}
			t.Run(sc.Name+"/"+sn.name, func(t *testing.T) {
				if sn.rekey {
					kerneltest.Require(t, kernel.FeatureRekey)
				}
				for _, size := range []int{1, 1000, 4096, record.MaxPlaintext, 64 << 10} {
					t.Run(strconv.Itoa(size), func(t *testing.T) { runRXScript(t, sc, sn, size) })
				}
			})
		}
	}
}

// An rxScript is a stream of records, and how reading it must end.
type rxScript struct {
	name  string
	tls13 bool // only in TLS 1.3
	rekey bool // needs the kernel's TLS 1.3 rekey
	build func(s *rxStream)
	// end checks the error that ended the reading.
	end func(t *testing.T, err error)
}

var rxScripts = []rxScript{
	{name: "interleaved", build: func(s *rxStream) {
		s.data(20000) // two records, the second short
		s.ignoredAlert()
		s.empty()
		s.ignoredAlert() // recvmsg(2) that starts at the empty record returns 0: not the end
		s.data(5)
		s.empty()
		s.ignoredAlert()
		s.data(record.MaxPlaintext)
		s.ignoredAlert()
		s.ignoredAlert()
		s.data(1)
		s.data(3000)
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("after close_notify")))
	}, end: wantEOF},
	{name: "padded", tls13: true, build: func(s *rxStream) {
		// Padding makes the kernel decrypt a record a second time
		// (TLS_RX_EXPECT_NO_PAD); a padded control record retries too.
		s.data(7000)
		s.dataPadded(9000, 300)
		s.raw(s.p.Out.SealPadded(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertUserCanceled}, 40))
		s.dataPadded(100, 1)
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
	}, end: wantEOF},
	{name: "keyupdate", tls13: true, rekey: true, build: func(s *rxStream) {
		s.data(20000)
		s.keyUpdate()
		s.data(3)
		s.keyUpdate()
		s.keyUpdate()
		s.data(40000)
		s.ignoredAlert()
		s.keyUpdate()
		s.alert(record.AlertLevelWarning, record.AlertCloseNotify)
	}, end: wantEOF},
	{name: "fatal-alert", build: func(s *rxStream) {
		s.data(30000)
		s.ignoredAlert()
		s.data(100)
		s.alert(record.AlertLevelFatal, record.AlertInternalError)
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("after the alert")))
	}, end: func(t *testing.T, err error) {
		wantAlert(t, err, "remote error", record.AlertInternalError)
	}},
	{name: "ignored-alerts-over-limit", build: func(s *rxStream) {
		// 16 records that carry nothing in a row are let through, as
		// crypto/tls does; the 17th is an error. An alert lost or taken
		// for data would end this differently.
		s.data(20000)
		for range 17 {
			s.ignoredAlert()
		}
		s.raw(s.p.Out.Seal(record.TypeApplicationData, []byte("never read")))
	}, end: func(t *testing.T, err error) {
		wantAlert(t, err, "local error", record.AlertUnexpectedMessage)
	}},
}

func wantEOF(t *testing.T, err error) {
	t.Helper()
	if err != io.EOF {
		t.Fatalf("Read = %v, want io.EOF", err)
	}
}

func wantAlert(t *testing.T, err error, op string, desc uint8) {
	t.Helper()
	var oe *net.OpError
	var ae tls.AlertError
	if !errors.As(err, &oe) || oe.Op != op || !errors.As(err, &ae) || uint8(ae) != desc {
		t.Fatalf("Read = %v, want %s %v", err, op, tls.AlertError(desc))
	}
}

// An rxStream builds what the raw peer sends, and the application data the
// reader must get from it.
type rxStream struct {
	t    *testing.T
	p    *ktlstest.RawPeer
	rng  *rand.ChaCha8
	wire []byte
	want []byte
}

func (s *rxStream) raw(b []byte) { s.wire = append(s.wire, b...) }

func (s *rxStream) data(n int) { s.dataPadded(n, 0) }

// dataPadded appends n random bytes of application data, in full records
// and a last shorter one, each padded by pad bytes.
func (s *rxStream) dataPadded(n, pad int) {
	b := make([]byte, n)
	s.rng.Read(b)
	s.want = append(s.want, b...)
	for len(b) > 0 {
		m := min(len(b), record.MaxPlaintext-pad)
		s.raw(s.p.Out.SealPadded(record.TypeApplicationData, b[:m], pad))
		b = b[m:]
	}
}

func (s *rxStream) empty() { s.raw(s.p.Out.Seal(record.TypeApplicationData, nil)) }

func (s *rxStream) alert(level, desc uint8) {
	s.raw(s.p.Out.Seal(record.TypeAlert, []byte{level, desc}))
}

// ignoredAlert is an alert the reader drops: a TLS 1.2 warning, a TLS 1.3
// user_canceled.
func (s *rxStream) ignoredAlert() { s.alert(record.AlertLevelWarning, record.AlertUserCanceled) }

// keyUpdate appends a KeyUpdate and moves the peer to its next key.
func (s *rxStream) keyUpdate() {
	s.raw(s.p.Out.Seal(record.TypeHandshake, record.MarshalKeyUpdate(false)))
	s.p.OutSecret = s.p.OutSecret.Next()
	var err error
	if s.p.Out, err = record.NewProtector(s.p.Suite, s.p.OutSecret.Keys(), 0); err != nil {
		s.t.Fatal(err)
	}
}

func runRXScript(t *testing.T, sc ktlstest.SuiteCase, sn rxScript, size int) {
	ccfg, scfg := sc.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	kc := s.(*ktls.Conn)
	if o := kc.Offload(); !o.RX {
		t.Fatalf("Offload() = %v, want RX", o)
	}
	deadline := time.Now().Add(60 * time.Second)
	kc.SetDeadline(deadline)
	p.Conn.SetDeadline(deadline)
	st := &rxStream{t: t, p: p, rng: rand.NewChaCha8([32]byte{byte(size), 7})}
	sn.build(st)
	var rekeyed uint64
	if sn.rekey {
		rekeyed = kerneltest.Stat(t, "TlsRxRekeyOk")
	}

	// The whole stream is written before the first read, where the socket
	// buffers take it, so that control records queue behind data and one
	// read meets both.
	written := make(chan error, 1)
	go func() { _, err := p.Conn.Write(st.wire); written <- err }()
	select {
	case err := <-written:
		written <- err
	case <-time.After(2 * time.Second):
	}

	got, biggest, err := readInSteps(kc, size)
	if werr := <-written; werr != nil {
		t.Fatalf("raw peer: %v", werr)
	}
	if !bytes.Equal(got, st.want) {
		t.Fatalf("read %d bytes, want the %d sent, intact (then: %v)", len(got), len(st.want), err)
	}
	if biggest > size {
		t.Fatalf("a Read of %d bytes returned %d", size, biggest)
	}
	sn.end(t, err)
	if _, again := kc.Read(make([]byte, 10)); again == nil || again.Error() != err.Error() {
		t.Errorf("Read after %v = %v: the error doesn't stick", err, again)
	}
	if sn.rekey {
		if d := kerneltest.Stat(t, "TlsRxRekeyOk") - rekeyed; d < 4 {
			t.Errorf("TlsRxRekeyOk went up by %d, want 4", d)
		}
	}
}

// readInSteps reads with a buffer of size bytes until Read fails, and
// returns what came, the error, and the most one Read returned.
func readInSteps(r io.Reader, size int) (got []byte, biggest int, err error) {
	buf := make([]byte, size)
	for {
		var n int
		n, err = r.Read(buf)
		got = append(got, buf[:n]...)
		biggest = max(biggest, n)
		if err != nil {
			return got, biggest, err
		}
	}
}

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
//	kernel-pad    as kernel, without TLS_RX_EXPECT_NO_PAD (Options.RXNoPad
//	              = Disabled): the kernel decrypts into its own memory,
//	              since the record could be padded, and copies out
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
		for _, v := range rxVariants {
			if k := v.conn(rec); conns[k] == nil {
				conns[k] = newRXConn(b, k)
			}
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
									benchRXRead(b, conns[v.conn(rec)], size, v)
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
	pad    bool // the kernel may not assume TLS 1.3 records are unpadded
	buf    int  // the small-read buffer: 0 for one record, -1 for none
}

var rxVariants = []rxVariant{
	{name: "kernel", kernel: true},
	{name: "kernel-64K", kernel: true, buf: 64 << 10},
	{name: "kernel-nobuf", kernel: true, buf: -1},
	{name: "kernel-pad", kernel: true, pad: true},
	{name: "tls"},
}

// conn says which of the benchmark's connections the variant reads.
func (v rxVariant) conn(rec int) rxConnKey {
	return rxConnKey{rec: rec, kernel: v.kernel, pad: v.pad}
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
		cpu0 := processCPU(b)
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
		cpu += int64(processCPU(b) - cpu0)
	}
	perGiB := float64(1<<30) / rxOpBytes
	b.ReportMetric(float64(cpu)/1e9/float64(b.N)*perGiB, "cpu-s/GiB")
	b.ReportMetric(best.Seconds()*perGiB, "best-s/GiB")
}

type rxConnKey struct {
	rec    int
	kernel bool
	pad    bool
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

func newRXConn(b *testing.B, k rxConnKey) *rxConn {
	_, scfg := ktlstest.TLS13.Configs()
	opts := &ktls.Options{TX: ktls.Required, RX: ktls.Required}
	if !k.kernel {
		opts.RX = ktls.Disabled
	}
	if k.pad {
		opts.RXNoPad = ktls.Disabled
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
	c := &rxConn{raw: raw, rec: make([]byte, k.rec)}
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
	if o.RX != k.kernel || k.kernel && o.RXNoPad == k.pad || o.CipherSuite != tls.TLS_AES_128_GCM_SHA256 {
		b.Fatalf("Offload() = %v, RXNoPad %v; want RX %v, RXNoPad %v, and AES-128-GCM", o, o.RXNoPad, k.kernel, k.kernel && !k.pad)
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
