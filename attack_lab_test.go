package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// Attacks on the memory-per-idle-connection change (memport): the pooled
// record buffer, the release of crypto/tls's Conn, and the state kept in
// its place.

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
	for _, tt := range []struct {
		name    string
		sc      ktlstest.SuiteCase
		tickets bool
	}{
		{"TLS 1.3", ktlstest.TLS13, false},
		{"TLS 1.3 tickets", ktlstest.TLS13, true},
		{"TLS 1.2", ktlstest.TLS12, false},
		{"TLS 1.2 tickets", ktlstest.TLS12, true},
	} {
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
