package ktls_test

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// What an idle connection holds: these tests check it from inside, and
// releaseCases are the handshakes after which a connection lets go of
// crypto/tls at different times: each version, with and without tickets
// (the client has a session cache and gets the server's tickets, so
// ktls defers its RX handoff until the first data).
var releaseCases = []struct {
	name    string
	sc      ktlstest.SuiteCase
	tickets bool
}{
	{"TLS13", ktlstest.TLS13, false},
	{"TLS13-tickets", ktlstest.TLS13, true},
	{"TLS12", ktlstest.TLS12, false},
	{"TLS12-tickets", ktlstest.TLS12, true},
}

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
//     took (TX alone in TLS13-rxoff, where ktls leaves RX to crypto/tls).
//
// In the lab, whose kernels have TLS, every ktls connection must be
// offloaded both ways (TX alone in TLS13-rxoff), or the benchmark fails;
// elsewhere every one must have fallen back, and the numbers are the
// fallback's:
//
//	go run ./cmd/ktls-lab test -k 7 --memory 2048 --run '^$' --bench Memory --benchtime 1x -count 3 .
func BenchmarkMemory(b *testing.B) {
	type memoryCase struct {
		name    string
		sc      ktlstest.SuiteCase
		tickets bool
		opts    *ktls.Options // ktls's
	}
	var cases []memoryCase
	for _, rc := range releaseCases {
		cases = append(cases, memoryCase{rc.name, rc.sc, rc.tickets, nil})
	}
	// RX left to crypto/tls, which then keeps its Conn: what a server
	// that turns kernel RX off pays for it in memory.
	cases = append(cases, memoryCase{"TLS13-rxoff", ktlstest.TLS13, false, &ktls.Options{RX: ktls.Disabled}})
	for _, mc := range cases {
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
					sum[impl].add(measureIdle(b, ccfg, scfg, impl == 1, offload, mc.opts))
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
	offloaded           float64 // share of the ktls connections offloaded as asked
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
// With useKTLS, both ends are ktls Conns with opts, which must be
// offloaded as opts allow (both ways, or TX alone where opts disable RX)
// if offload is set, and must have fallen back if not.
func measureIdle(b *testing.B, ccfg, scfg *tls.Config, useKTLS, offload bool, opts *ktls.Options) memorySample {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, server := ktlstest.CryptoTLS(ccfg), ktlstest.CryptoTLS(scfg)
	if useKTLS {
		client, server = ktlstest.KTLSWith(ccfg, opts), ktlstest.KTLSWith(scfg, opts)
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
		wantRX := opts == nil || opts.RX != ktls.Disabled
		n := 0
		for _, c := range conns {
			o := c.(*ktls.Conn).Offload()
			switch {
			case offload && !(o.TX && o.RX == wantRX):
				b.Fatalf("in the lab, a connection was not offloaded as asked (RX %v): %v", wantRX, o)
			case !offload && o.TX:
				b.Fatalf("outside the lab, a connection was offloaded: %v", o)
			case o.TX && o.RX == wantRX:
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

// What a connection keeps once it lets go of crypto/tls's Conn and lends
// its record buffer back to the pool (SECURITY.md, section 8): the state
// it answers from in crypto/tls's place, and buffers that no tenant, close,
// deadline or hostile peer can make it share, lose or keep.

// TestStateSameAfterRelease: what ConnectionState, OCSPResponse and
// VerifyHostname answer once crypto/tls's Conn is let go of is, field by
// field, what that Conn answered at the handoff: with an OCSP staple and
// SCTs, after resumption, and where the client defers its RX handoff
// (checked both before and after the first data releases crypto/tls).
func TestStateSameAfterRelease(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	type kept struct {
		cs tls.ConnectionState
		tc *tls.Conn
	}
	var mu sync.Mutex
	at := map[*ktls.Conn]kept{}
	ktls.SetAfterTXHook(t, func(c *ktls.Conn) {
		tc := c.CryptoTLS()
		mu.Lock()
		at[c] = kept{tc.ConnectionState(), tc}
		mu.Unlock()
	})
	compare := func(t *testing.T, who string, c *ktls.Conn) {
		t.Helper()
		mu.Lock()
		k, ok := at[c]
		mu.Unlock()
		if !ok {
			t.Fatalf("%s: the handoff hook never ran", who)
		}
		got := c.ConnectionState()
		gv, wv := reflect.ValueOf(got), reflect.ValueOf(k.cs)
		for i := range gv.NumField() {
			f := gv.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
				t.Errorf("%s: ConnectionState().%s = %v, crypto/tls's %v", who, f.Name, gv.Field(i).Interface(), wv.Field(i).Interface())
			}
		}
		for _, ctx := range [][]byte{nil, []byte("ctx")} {
			a, err1 := got.ExportKeyingMaterial("EXPERIMENTAL attack", ctx, 40)
			b, err2 := k.cs.ExportKeyingMaterial("EXPERIMENTAL attack", ctx, 40)
			if !bytes.Equal(a, b) || (err1 == nil) != (err2 == nil) {
				t.Errorf("%s: keying material %x, %v; crypto/tls's %x, %v", who, a, err1, b, err2)
			}
		}
		if !bytes.Equal(c.OCSPResponse(), k.tc.OCSPResponse()) {
			t.Errorf("%s: OCSPResponse %q, crypto/tls's %q", who, c.OCSPResponse(), k.tc.OCSPResponse())
		}
		for _, host := range []string{"localhost", "example.com", "127.0.0.1", ""} {
			e1, e2 := c.VerifyHostname(host), k.tc.VerifyHostname(host)
			if (e1 == nil) != (e2 == nil) || e1 != nil && e1.Error() != e2.Error() {
				t.Errorf("%s: VerifyHostname(%q) = %v, crypto/tls's %v", who, host, e1, e2)
			}
		}
	}
	for _, tt := range releaseCases {
		t.Run(tt.name, func(t *testing.T) {
			ccfg, scfg := tt.sc.Configs()
			certs := append([]tls.Certificate(nil), scfg.Certificates...)
			certs[0].OCSPStaple = []byte("staple")
			certs[0].SignedCertificateTimestamps = [][]byte{[]byte("sct")}
			scfg.Certificates = certs
			ccfg.NextProtos, scfg.NextProtos = []string{"x"}, []string{"x"}
			if tt.tickets {
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			}
			rounds := 1
			if tt.tickets {
				rounds = 2 // the second resumes
			}
			for round := range rounds {
				craw, sraw := wiretest.TCPPair(t, "tcp")
				c, s := ktls.Client(craw, ccfg), ktls.Server(sraw, scfg)
				if cerr, serr := wiretest.Handshake(c, s); cerr != nil || serr != nil {
					t.Fatalf("handshake: %v, %v", cerr, serr)
				}
				if !tt.tickets || round == 1 {
					ktlstest.WantOffload(t, s)
				}
				if !c.Offload().TX {
					t.Fatalf("client: %v", c.Offload())
				}
				compare(t, "client before data", c)
				compare(t, "server before data", s)
				wiretest.Exchange(t, c, s, 4<<10)
				if c.CryptoTLS() != nil || s.CryptoTLS() != nil {
					t.Errorf("round %d: crypto/tls still held: client %v, server %v", round, c.CryptoTLS() != nil, s.CryptoTLS() != nil)
				}
				if cs := c.ConnectionState(); round == 1 && !cs.DidResume {
					t.Errorf("round %d: no resumption", round)
				}
				compare(t, "client after release", c)
				compare(t, "server after release", s)
				ktlstest.CloseBoth(t, c, s)
			}
		})
	}
}

// failAfter takes n bytes, then fails: what a Read or WriteTo gave it is
// in got.
type failAfter struct {
	n   int
	got *[]byte
}

var errWriterFull = errors.New("writer full")

func (w *failAfter) Write(p []byte) (int, error) {
	m := min(len(p), w.n)
	*w.got = append(*w.got, p[:m]...)
	w.n -= m
	if m < len(p) {
		return m, errWriterFull
	}
	return m, nil
}

// TestPooledBufferTenants: connections that share the record buffer pool,
// read at once in reads of every size, with read deadlines firing mid-read,
// WriteTo into a writer that fails, and a splice to a pipe, while their
// peers update keys, never lose, duplicate or swap a byte, and hold no
// buffer once nothing waits to be read.
func TestPooledBufferTenants(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	const pairs, size = 8, 256 << 10
	rekey := kernel.FeatureRekey.Check() == nil // else no KeyUpdates
	var wg sync.WaitGroup
	for i := range pairs {
		sc := ktlstest.OnePerVersion[i%2]
		ccfg, scfg := sc.Configs()
		if i%4 == 0 {
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1) // RX deferred
		}
		craw, sraw := wiretest.TCPPair(t, "tcp")
		c, s := ktls.Client(craw, ccfg), ktls.Server(sraw, scfg)
		t.Cleanup(func() { c.Close(); s.Close() })
		if cerr, serr := wiretest.Handshake(c, s); cerr != nil || serr != nil {
			t.Fatalf("handshake: %v, %v", cerr, serr)
		}
		data := wiretest.RandomBytes(size, byte(i+1))
		done := make(chan struct{})
		wg.Add(3)
		go func() { // the peer
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for off, k := 0, 0; off < size; k++ {
				n := min(size-off, 1+rng.IntN(40000))
				if _, err := s.Write(data[off : off+n]); err != nil {
					t.Errorf("pair %d: server write: %v", i, err)
					s.Close()
					return
				}
				off += n
				if rekey && sc.Version == tls.VersionTLS13 && k%3 == 0 {
					if err := s.UpdateKeys(k%2 == 0); err != nil {
						t.Errorf("pair %d: UpdateKeys: %v", i, err)
						s.Close()
						return
					}
				}
			}
			if err := s.CloseWrite(); err != nil {
				t.Errorf("pair %d: CloseWrite: %v", i, err)
			}
		}()
		go func() { // the state, asked all along
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if cs := c.ConnectionState(); !cs.HandshakeComplete {
					t.Errorf("pair %d: ConnectionState incomplete", i)
					return
				}
				s.ConnectionState()
				c.VerifyHostname("localhost")
				time.Sleep(time.Millisecond)
			}
		}()
		go func() { // the reader
			defer wg.Done()
			defer close(done)
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			var got []byte
			splice := i%2 == 1
			for {
				if splice && len(got) > size/2 {
					pr, pw, err := os.Pipe()
					if err != nil {
						t.Error(err)
						return
					}
					rest := make(chan []byte, 1)
					go func() { b, _ := io.ReadAll(pr); rest <- b }()
					_, err = c.WriteTo(pw)
					pw.Close()
					got = append(got, <-rest...)
					pr.Close()
					if err != nil {
						t.Errorf("pair %d: WriteTo(pipe): %v", i, err)
						return
					}
					break
				}
				var err error
				switch mode := rng.IntN(10); {
				case mode == 0:
					c.SetReadDeadline(time.Now().Add(time.Duration(rng.IntN(300)) * time.Microsecond))
					b := make([]byte, 1+rng.IntN(17000))
					var n int
					n, err = c.Read(b)
					got = append(got, b[:n]...)
					c.SetReadDeadline(time.Time{})
					if wiretest.IsTimeout(err) {
						err = nil
					}
				case mode == 2:
					// Splice into a socket whose reader is slow, until
					// the write deadline: what reached it is read back.
					dw, dr := wiretest.TCPPair(t, "tcp")
					back := make(chan []byte, 1)
					go func() {
						var b []byte
						buf := make([]byte, 8<<10)
						for {
							time.Sleep(time.Millisecond)
							n, err := dr.Read(buf)
							b = append(b, buf[:n]...)
							if err != nil {
								back <- b
								return
							}
						}
					}()
					dw.SetWriteDeadline(time.Now().Add(time.Duration(1+rng.IntN(20)) * time.Millisecond))
					var n int64
					n, err = c.WriteTo(dw)
					dw.Close()
					b := <-back
					dr.Close()
					if int64(len(b)) != n {
						t.Errorf("pair %d: WriteTo reported %d bytes, the socket got %d", i, n, len(b))
					}
					got = append(got, b...)
					if wiretest.IsTimeout(err) {
						err = nil
					} else if err == nil {
						err = io.EOF
					}
				case mode == 1:
					_, err = c.WriteTo(&failAfter{n: rng.IntN(30000), got: &got})
					if errors.Is(err, errWriterFull) {
						err = nil
					} else if err == nil {
						err = io.EOF
					}
				default:
					b := make([]byte, 1+rng.IntN(17000))
					var n int
					n, err = c.Read(b)
					if n == 0 && err == nil {
						t.Errorf("pair %d: Read returned 0, nil", i)
					}
					got = append(got, b[:n]...)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Errorf("pair %d: read: %v", i, err)
					return
				}
			}
			if !bytes.Equal(got, data) {
				j := 0
				for j < min(len(got), len(data)) && got[j] == data[j] {
					j++
				}
				t.Errorf("pair %d: read %d bytes, want %d; first difference at %d", i, len(got), len(data), j)
			}
			if held, pending := c.RecordBufHeld(); held || pending != 0 {
				t.Errorf("pair %d: at the end, buffer held %v, %d pending", i, held, pending)
			}
		}()
	}
	wg.Wait()
}

// TestCloseDuringSmallReads: Close, at any moment during reads smaller
// than a record, ends them without a panic or a hang, and leaves no record
// buffer held.
func TestCloseDuringSmallReads(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	for i := range 24 {
		ccfg, scfg := ktlstest.OnePerVersion[i%2].Configs()
		if i%3 == 0 {
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		}
		craw, sraw := wiretest.TCPPair(t, "tcp")
		c, s := ktls.Client(craw, ccfg), ktls.Server(sraw, scfg)
		if cerr, serr := wiretest.Handshake(c, s); cerr != nil || serr != nil {
			t.Fatalf("handshake: %v, %v", cerr, serr)
		}
		go func() {
			b := make([]byte, 20000)
			for {
				if _, err := s.Write(b); err != nil {
					return
				}
			}
		}()
		readers := make(chan struct{})
		go func() {
			defer close(readers)
			b := make([]byte, 1+i*300)
			for {
				if _, err := c.Read(b); err != nil {
					return
				}
			}
		}()
		time.Sleep(time.Duration(i%6) * time.Millisecond)
		c.Close()
		select {
		case <-readers:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: a Read did not end after Close", i)
		}
		s.Close()
		if held, pending := c.RecordBufHeld(); held && pending == 0 {
			t.Errorf("round %d: a record buffer is held after Close with nothing pending", i)
		}
	}
}

// TestRecordsSplitAtEveryByte: a peer that writes its records one byte at
// a time, with empty and padded records and (where the kernel can rekey) a
// KeyUpdate among them, and then ends the stream in the middle of a
// record, gets everything before that record read whole through the
// record buffer, then an error, never io.EOF nor any byte of the cut
// record.
func TestRecordsSplitAtEveryByte(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	ccfg, scfg := ktlstest.TLS13.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	ktlstest.WantOffload(t, s)
	var wire, want []byte
	seal := func(typ uint8, b []byte, pad int) {
		wire = append(wire, p.Out.SealPadded(typ, b, pad)...)
		if typ == record.TypeApplicationData {
			want = append(want, b...)
		}
	}
	seal(record.TypeApplicationData, wiretest.RandomBytes(1, 1), 0)
	seal(record.TypeApplicationData, wiretest.RandomBytes(5000, 2), 3000)
	seal(record.TypeApplicationData, nil, 0)
	seal(record.TypeApplicationData, wiretest.RandomBytes(record.MaxPlaintext, 3), 0)
	if kernel.FeatureRekey.Check() == nil {
		seal(record.TypeHandshake, record.MarshalKeyUpdate(false), 0)
		p.OutSecret = p.OutSecret.Next()
		var err error
		if p.Out, err = record.NewProtector(p.Suite, p.OutSecret.Keys(), 0); err != nil {
			t.Fatal(err)
		}
	}
	seal(record.TypeApplicationData, wiretest.RandomBytes(700, 4), 0)
	cut := p.Out.SealPadded(record.TypeApplicationData, wiretest.RandomBytes(4000, 5), 0)
	wire = append(wire, cut[:len(cut)/2]...)
	go func() {
		for i := range wire {
			if _, err := p.Conn.Write(wire[i : i+1]); err != nil {
				return
			}
		}
		p.Conn.(interface{ CloseWrite() error }).CloseWrite()
	}()
	var got []byte
	b := make([]byte, 7)
	for {
		n, err := s.Read(b)
		got = append(got, b[:n]...)
		if err != nil {
			if err == io.EOF {
				t.Error("the cut stream ended with io.EOF")
			}
			break
		}
		if n == 0 {
			t.Fatal("Read returned 0, nil")
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want %d (or different bytes)", len(got), len(want))
	}
	if held, _ := s.(*ktls.Conn).RecordBufHeld(); held {
		t.Error("a record buffer is held after the stream failed")
	}
}

// TestClientHelloConnClosed: a server's GetConfigForClient that closes
// ClientHelloInfo.Conn (crypto/tls's transport: the record reader, or,
// where the kernel can take nothing, the Conn itself, plainTransport)
// fails the handshake at once, as with crypto/tls over the bare socket.
// (Reading or writing it corrupts the stream as it does with crypto/tls,
// whose ClientHelloInfo.Conn is the socket.)
func TestClientHelloConnClosed(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	scfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		hello.Conn.Close()
		return nil, nil
	}
	craw, sraw := wiretest.TCPPair(t, "tcp")
	c, s := tls.Client(craw, ccfg), ktls.Server(sraw, scfg)
	defer c.Close()
	defer s.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	cerr, serr := wiretest.Handshake(c, s)
	if wiretest.IsTimeout(cerr) || wiretest.IsTimeout(serr) {
		t.Fatalf("the handshake hung: client %v, server %v", cerr, serr)
	}
	if serr == nil {
		t.Fatal("the server's handshake succeeded over a closed transport")
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Error("a Read after the failed handshake succeeded")
	}
}

// TestStateDuringHandshakeAndClose: ConnectionState, OCSPResponse and
// VerifyHostname, called all along from other goroutines, during the
// handshake, the handoff, reads, writes and Close, race with nothing (run
// with -race) and never report a handshake the Conn has not finished.
func TestStateDuringHandshakeAndClose(t *testing.T) {
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			for range 20 {
				ccfg, scfg := sc.Configs()
				craw, sraw := wiretest.TCPPair(t, "tcp")
				c, s := ktls.Client(craw, ccfg), ktls.Server(sraw, scfg)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for _, conn := range []*ktls.Conn{c, s} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							cs := conn.ConnectionState()
							if cs.HandshakeComplete && cs.Version == 0 {
								t.Error("a complete handshake of no version")
							}
							conn.OCSPResponse()
							conn.VerifyHostname("localhost")
						}
					}()
				}
				go func() { c.Write([]byte("x")); c.Read(make([]byte, 1)) }()
				go func() { s.Read(make([]byte, 1)); s.Write([]byte("y")) }()
				time.Sleep(2 * time.Millisecond)
				var cw sync.WaitGroup
				cw.Add(2)
				go func() { defer cw.Done(); c.Close() }()
				go func() { defer cw.Done(); s.Close() }()
				cw.Wait()
				close(stop)
				wg.Wait()
				if _, err := c.Read(make([]byte, 1)); err == nil {
					t.Error("a Read after Close succeeded")
				}
			}
		})
	}
}
