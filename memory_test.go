package ktls_test

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// What an idle connection holds: these tests check it from inside, and
// BenchmarkMemory measures it.

// idlePair makes a loopback pair of ktls Conns, gives each to track as it
// is made, runs the handshake and exchanges 4 KiB
// each way, read in reads smaller than a record.
func idlePair(t *testing.T, ccfg, scfg *tls.Config, opts *ktls.Options, track func(*ktls.Conn)) (c, s *ktls.Conn) {
	t.Helper()
	craw, sraw := wiretest.TCPPair(t, "tcp")
	c, s = ktls.ClientWithOptions(craw, ccfg, opts), ktls.ServerWithOptions(sraw, scfg, opts)
	t.Cleanup(func() { c.Close(); s.Close() })
	track(c)
	track(s)
	if cerr, serr := wiretest.Handshake(c, s); cerr != nil || serr != nil {
		t.Fatalf("handshake: client: %v, server: %v", cerr, serr)
	}
	wiretest.Exchange(t, c, s, 4<<10)
	return c, s
}

// TestReleasedAfterOffload: once the kernel has both directions, a Conn
// holds neither crypto/tls's Conn nor the key log collector, nor a record
// buffer, crypto/tls's Conn is collected, and the Conn still answers for
// the handshake as crypto/tls did: ConnectionState (keying material export
// and TLSUnique included), OCSPResponse and VerifyHostname, errors
// included. Before, all of crypto/tls stayed, and the record buffer after
// the first small read: an offloaded idle connection held three times
// what a crypto/tls one does. The TLS 1.2 case fails if the state kept
// refers into crypto/tls's Conn (TLSUnique is a slice of an array in it).
// Where RX stays on crypto/tls, crypto/tls stays.
func TestReleasedAfterOffload(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	for _, tt := range []struct {
		name    string
		sc      ktlstest.SuiteCase
		tickets bool // the client defers its RX handoff
		opts    *ktls.Options
	}{
		{name: "TLS 1.3", sc: ktlstest.TLS13},
		{name: "TLS 1.3, RX deferred until the first data", sc: ktlstest.TLS13, tickets: true},
		{name: "TLS 1.2", sc: ktlstest.TLS12},
		{name: "RX on crypto/tls", sc: ktlstest.TLS13, opts: &ktls.Options{RX: ktls.Disabled}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ccfg, scfg := tt.sc.Configs()
			ccfg.NextProtos, scfg.NextProtos = []string{"x"}, []string{"x"}
			if tt.tickets {
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			var collected atomic.Int32
			c, s := idlePair(t, ccfg, scfg, tt.opts, func(c *ktls.Conn) {
				runtime.AddCleanup(c.CryptoTLS(), func(n *atomic.Int32) { n.Add(1) }, &collected)
			})
			keep := tt.opts != nil
			for _, conn := range []*ktls.Conn{c, s} {
				if o := conn.Offload(); !o.TX || o.RX == keep {
					t.Fatalf("Offload() = %v", o)
				}
				if tc, kl := conn.CryptoTLS(), conn.KeyLogCaptured(); (tc != nil) != keep || kl && !keep {
					t.Errorf("still held: crypto/tls %v (want %v), key log collector %v", tc != nil, keep, kl)
				}
				if held, _ := conn.RecordBufHeld(); held {
					t.Error("a record buffer is held with nothing in it to read")
				}
			}
			want := int32(2)
			if keep {
				want = 0
			}
			for i := 0; i < 100 && collected.Load() < want; i++ {
				runtime.GC()
				time.Sleep(10 * time.Millisecond)
			}
			if n := collected.Load(); n != want {
				t.Errorf("%d crypto/tls Conns were collected, want %d", n, want)
			}
			checkStateAfterRelease(t, c, s, tt.sc.Version)
		})
	}
}

// checkStateAfterRelease checks what c and s say of their handshake.
func checkStateAfterRelease(t *testing.T, c, s *ktls.Conn, version uint16) {
	t.Helper()
	cs, ss := c.ConnectionState(), s.ConnectionState()
	if !cs.HandshakeComplete || cs.Version != version || cs.NegotiatedProtocol != "x" ||
		cs.ServerName != "localhost" || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		t.Errorf("client's ConnectionState: %+v", cs)
	}
	if ss.ServerName != "localhost" || ss.NegotiatedProtocol != "x" || ss.CipherSuite != cs.CipherSuite {
		t.Errorf("server's ConnectionState: %+v", ss)
	}
	if version == tls.VersionTLS12 && (len(cs.TLSUnique) != 12 || !bytes.Equal(cs.TLSUnique, ss.TLSUnique)) {
		t.Errorf("TLSUnique: client %x, server %x", cs.TLSUnique, ss.TLSUnique)
	}
	ck, err1 := cs.ExportKeyingMaterial("EXPERIMENTAL memory", nil, 32)
	sk, err2 := ss.ExportKeyingMaterial("EXPERIMENTAL memory", nil, 32)
	if err1 != nil || err2 != nil || !bytes.Equal(ck, sk) {
		t.Errorf("keying material: %x, %v; %x, %v", ck, err1, sk, err2)
	}
	if c.OCSPResponse() != nil {
		t.Error("an OCSP response appeared")
	}
	// The errors are crypto/tls's, word for word.
	if err := c.VerifyHostname("localhost"); err != nil {
		t.Errorf("VerifyHostname(localhost) = %v", err)
	}
	want := cs.PeerCertificates[0].VerifyHostname("example.com")
	if err := c.VerifyHostname("example.com"); err == nil || err.Error() != want.Error() {
		t.Errorf("VerifyHostname(example.com) = %v, want %v", err, want)
	}
	if err := s.VerifyHostname("localhost"); err == nil || err.Error() != "tls: VerifyHostname called on TLS server connection" {
		t.Errorf("server's VerifyHostname = %v", err)
	}
	// What the kernel still does after crypto/tls is gone: a clean end.
	ktlstest.CloseBoth(t, c, s)
}

// TestRecordBufferOnlyWhilePending: the record buffer, which takes a
// record's plaintext when the caller's buffer is smaller, is held only
// while some of that plaintext waits to be read. Before, a Conn kept one
// from its first small read on, for good.
func TestRecordBufferOnlyWhilePending(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := idlePair(t, ccfg, scfg, nil, func(*ktls.Conn) {})
	ktlstest.WantOffload(t, c, s)
	if _, err := s.Write(make([]byte, 3000)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ read, pending int }{{1000, 2000}, {2000, 0}} {
		if _, err := io.ReadFull(c, make([]byte, step.read)); err != nil {
			t.Fatal(err)
		}
		if held, pending := c.RecordBufHeld(); held != (step.pending > 0) || pending != step.pending {
			t.Errorf("buffer held %v, %d bytes pending; want %d pending, and the buffer only then", held, pending, step.pending)
		}
	}
}

// BenchmarkMemory reports what an idle connection costs, in the Go heap
// and in the kernel, for ktls and for crypto/tls: memoryPairs connection
// pairs over loopback TCP, both ends the same implementation, each having
// exchanged 4 KiB each way (read in reads smaller than a record), then
// held with no read or write in progress. Each iteration measures
// crypto/tls and ktls once each, in alternating order (from one iteration,
// or -count run, to the next), so that both see the same machine: run it
// with -benchtime=1x and -count for samples.
//
// The metrics, per pair (two connections):
//   - tls-heap-B/pair, ktls-heap-B/pair, and ktls/tls, their ratio:
//     HeapInuse after runtime.GC, less the same before the pairs were made;
//   - tls-alloc-B/pair, ktls-alloc-B/pair: the same of HeapAlloc, which
//     counts the live objects without their spans' slack, and so varies
//     less from run to run;
//   - tls-kern-B/pair, ktls-kern-B/pair: the kernel's slab memory
//     (/proc/slabinfo where it can be read, which needs root, else
//     /proc/meminfo's Slab) plus the TCP sockets' buffer memory
//     (/proc/net/sockstat), measured the same way: what the sockets, their
//     TLS contexts and the kernel's ciphers hold. The slab is the whole
//     machine's, so this is noisy on a busy host; the log names the slab
//     caches that grew most;
//   - offloaded: the share of ktls connections whose TX and RX the kernel
//     took.
//
// In the lab, whose kernels have TLS, every ktls connection must be
// offloaded both ways, or the benchmark fails; elsewhere every one must
// have fallen back, and the numbers are the fallback's:
//
//	go run ./cmd/ktls-lab test -k 7 --memory 2048 --run '^$' --bench Memory --benchtime 1x -count 3 .
func BenchmarkMemory(b *testing.B) {
	for _, mc := range []struct {
		name string
		sc   ktlstest.SuiteCase
		// tickets: the client has a session cache, gets the server's
		// tickets, and ktls defers its RX handoff until the first data.
		tickets bool
	}{
		{"TLS13", ktlstest.TLS13, false},
		{"TLS13-tickets", ktlstest.TLS13, true},
		{"TLS12", ktlstest.TLS12, false},
	} {
		b.Run(mc.name, func(b *testing.B) {
			offload := inLab()
			if offload {
				kerneltest.Require(b, kernel.FeatureULP)
			}
			var sum [2]memorySample // crypto/tls, ktls
			for range b.N {
				memoryRuns++
				for j := range 2 {
					// Alternate which goes first, across -count runs too.
					impl := (memoryRuns + j) % 2
					ccfg, scfg := mc.sc.Configs()
					if mc.tickets {
						ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
					}
					sum[impl].add(measureIdle(b, ccfg, scfg, impl == 1, offload))
				}
			}
			tlsS, ktlsS := sum[0].div(b.N), sum[1].div(b.N)
			b.ReportMetric(tlsS.heap, "tls-heap-B/pair")
			b.ReportMetric(ktlsS.heap, "ktls-heap-B/pair")
			b.ReportMetric(ktlsS.heap/tlsS.heap, "ktls/tls")
			b.ReportMetric(tlsS.alloc, "tls-alloc-B/pair")
			b.ReportMetric(ktlsS.alloc, "ktls-alloc-B/pair")
			if tlsS.kernelOK && ktlsS.kernelOK {
				b.ReportMetric(tlsS.kernel, "tls-kern-B/pair")
				b.ReportMetric(ktlsS.kernel, "ktls-kern-B/pair")
			}
			b.ReportMetric(ktlsS.offloaded, "offloaded")
			b.Logf("crypto/tls: %s\nktls: %s", tlsS.detail, ktlsS.detail)
		})
	}
}

// memoryRuns counts BenchmarkMemory's iterations, over all its runs.
var memoryRuns int

// memoryPairs is how many connection pairs a measurement holds: enough
// that the heap's own granularity (spans, size classes) averages out.
const memoryPairs = 500

// memorySample is what one measurement of memoryPairs pairs found, per
// pair, or the sum of several.
type memorySample struct {
	heap, alloc, kernel float64 // bytes
	kernelOK            bool
	offloaded           float64 // share of the ktls connections offloaded both ways
	detail              string  // the last measurement's
}

func (s *memorySample) add(o memorySample) {
	s.heap += o.heap
	s.alloc += o.alloc
	s.kernel += o.kernel
	s.kernelOK = o.kernelOK
	s.offloaded += o.offloaded
	s.detail = o.detail
}

func (s memorySample) div(n int) memorySample {
	s.heap /= float64(n)
	s.alloc /= float64(n)
	s.kernel /= float64(n)
	s.offloaded /= float64(n)
	return s
}

// measureIdle makes memoryPairs idle pairs and returns what they hold.
// With useKTLS, both ends are ktls Conns, which must be offloaded both
// ways if offload is set, and must have fallen back if not.
func measureIdle(b *testing.B, ccfg, scfg *tls.Config, useKTLS, offload bool) memorySample {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, server := ktlstest.CryptoTLS(ccfg), ktlstest.CryptoTLS(scfg)
	if useKTLS {
		client, server = ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg)
	}
	conns := make([]net.Conn, 0, 2*memoryPairs)
	defer func() {
		for _, c := range conns {
			// No TIME_WAIT sockets left over for the next measurement's
			// kernel figures.
			c.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	buf := make([]byte, 4<<10)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kBefore := readKernelMemory()
	for range memoryPairs {
		c, s := ktlstest.ConnectVia(b, client, server, ln, ln.Addr().String())
		conns = append(conns, c, s)
		// 4 KiB fits the sockets' buffers: no need to read while writing.
		for _, pair := range [][2]net.Conn{{c, s}, {s, c}} {
			if _, err := pair[0].Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(pair[1], buf[:1000]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(pair[1], buf[1000:]); err != nil {
				b.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	kAfter := readKernelMemory()

	s := memorySample{
		heap:     float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / memoryPairs,
		alloc:    float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / memoryPairs,
		kernel:   float64(kAfter.total()-kBefore.total()) / memoryPairs,
		kernelOK: kBefore.ok && kAfter.ok,
		detail: fmt.Sprintf("heap %.1f KiB/pair, %.1f objects/pair; kernel: TCP buffers %+.2f KiB/pair, slab (%s) %s",
			float64(int64(after.HeapInuse)-int64(before.HeapInuse))/memoryPairs/1024,
			float64(int64(after.HeapObjects)-int64(before.HeapObjects))/memoryPairs,
			float64(kAfter.tcp-kBefore.tcp)/memoryPairs/1024, kAfter.source, slabGrowth(kBefore, kAfter)),
	}
	if useKTLS {
		n := 0
		for _, c := range conns {
			o := c.(*ktls.Conn).Offload()
			switch {
			case offload && !(o.TX && o.RX):
				b.Fatalf("in the lab, a connection was not offloaded both ways: %v", o)
			case !offload && o.TX:
				b.Fatalf("outside the lab, a connection was offloaded: %v", o)
			case o.TX && o.RX:
				n++
			}
		}
		s.offloaded = float64(n) / float64(len(conns))
	}
	runtime.KeepAlive(conns)
	return s
}

// kernelMemory is what the kernel holds: its slab caches' bytes, and the
// TCP sockets' buffer memory.
type kernelMemory struct {
	slab   map[string]int64
	tcp    int64
	source string // of slab
	ok     bool
}

func (k kernelMemory) total() int64 {
	n := k.tcp
	for _, v := range k.slab {
		n += v
	}
	return n
}

// readKernelMemory reads the bytes of active objects of each slab cache
// from /proc/slabinfo, which only root can read, else the whole of
// /proc/meminfo's Slab, and the TCP memory from /proc/net/sockstat.
func readKernelMemory() kernelMemory {
	k := kernelMemory{slab: map[string]int64{}, source: "/proc/slabinfo"}
	data, err := os.ReadFile("/proc/slabinfo")
	for line := range strings.Lines(string(data)) {
		// name <active_objs> <num_objs> <objsize> ...
		f := strings.Fields(line)
		if len(f) < 4 || f[0] == "slabinfo" || strings.HasPrefix(f[0], "#") {
			continue
		}
		active, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 == nil && err2 == nil {
			k.slab[f[0]] += active * size
		}
	}
	if err != nil || len(k.slab) == 0 {
		k.source = "/proc/meminfo Slab"
		kb, ok := procField("/proc/meminfo", "Slab:", 1)
		k.slab["Slab"] = kb << 10
		k.ok = ok
	} else {
		k.ok = true
	}
	pages, ok := procField("/proc/net/sockstat", "TCP:", 0)
	k.tcp = pages * int64(os.Getpagesize())
	k.ok = k.ok && ok
	return k
}

// procField returns the number in the line of file that starts with key:
// the one after the field "mem" where after is 0, else the after-th field.
func procField(file, key string, after int) (int64, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != key {
			continue
		}
		i := after
		if after == 0 {
			i = slices.Index(f, "mem") + 1
		}
		if i <= 0 || i >= len(f) {
			return 0, false
		}
		n, err := strconv.ParseInt(f[i], 10, 64)
		return n, err == nil
	}
	return 0, false
}

// slabGrowth names the slab caches that grew most, with their growth per
// pair.
func slabGrowth(before, after kernelMemory) string {
	names := slices.Collect(maps.Keys(after.slab))
	grew := func(name string) int64 { return after.slab[name] - before.slab[name] }
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(grew(b), grew(a)) })
	var parts []string
	for _, name := range names[:min(len(names), 6)] {
		if grew(name) > 0 {
			parts = append(parts, fmt.Sprintf("%s %+.2f", name, float64(grew(name))/memoryPairs/1024))
		}
	}
	return strings.Join(parts, ", ") + " KiB/pair"
}
