package ktls_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestOffload runs every version and suite between ktls and crypto/tls,
// each as client and as server, and between two ktls ends: both
// directions offloaded, data both ways checked by SHA-256.
func TestOffload(t *testing.T) {
	kerneltest.RequireULP(t)
	size := int64(1 << 20)
	for _, sc := range ktlstest.SuiteCases {
		for _, roles := range []struct {
			name           string
			client, server bool
		}{{"ktls-server", false, true}, {"ktls-client", true, false}, {"ktls-both", true, true}} {
			t.Run(sc.Name+"/"+roles.name, func(t *testing.T) {
				ccfg, scfg := sc.Configs()
				ktlstest.WarmProbes(t)
				txBefore, rxBefore := kerneltest.Stat(t, "TlsTxSw"), kerneltest.Stat(t, "TlsRxSw")
				c, s := ktlstest.Connect(t, ktlstest.Endpoint{KTLS: roles.client, Config: ccfg}, ktlstest.Endpoint{KTLS: roles.server, Config: scfg})
				want := 0
				for _, conn := range []net.Conn{c, s} {
					kc, ok := conn.(*ktls.Conn)
					if !ok {
						continue
					}
					want++
					o := kc.Offload()
					if !o.TX || !o.RX {
						t.Fatalf("Offload() = %v, want TX and RX", o)
					}
					if o.Version != sc.Version || o.CipherSuite != sc.Suite {
						t.Fatalf("negotiated %s %s, want %s %s", tls.VersionName(o.Version), tls.CipherSuiteName(o.CipherSuite),
							tls.VersionName(sc.Version), tls.CipherSuiteName(sc.Suite))
					}
				}
				wiretest.Exchange(t, c, s, size)
				if d := kerneltest.Stat(t, "TlsTxSw") - txBefore; d != uint64(want) {
					t.Errorf("TlsTxSw went up by %d, want %d", d, want)
				}
				if d := kerneltest.Stat(t, "TlsRxSw") - rxBefore; d != uint64(want) {
					t.Errorf("TlsRxSw went up by %d, want %d", d, want)
				}
				ktlstest.CloseBoth(t, c, s)
			})
		}
	}
}

// TestBulk moves 64 MiB each way through a ktls server, one TLS 1.2 and
// one TLS 1.3 suite.
func TestBulk(t *testing.T) {
	kerneltest.RequireULP(t)
	if testing.Short() {
		t.Skip("64 MiB each way; -short skips it (the lab runs it)")
	}
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLS(scfg))
			wiretest.Exchange(t, c, s, 64<<20)
			ktlstest.CloseBoth(t, c, s)
		})
	}
}

// TestFallback: where the kernel can't take the connection, it stays on
// crypto/tls, works, and says why.
func TestFallback(t *testing.T) {
	t.Run("no-ULP-or-disabled", func(t *testing.T) {
		opts := &ktls.Options{}
		if kerneltest.HaveULP() {
			// With kernel TLS here, fall back by choice instead.
			opts.TX = ktls.Disabled
		}
		ccfg, scfg := ktlstest.TLS13.Configs()
		c, s := ktlstest.Connect(t, ktlstest.KTLSWith(ccfg, opts), ktlstest.KTLSWith(scfg, opts))
		for _, conn := range []net.Conn{c, s} {
			o := conn.(*ktls.Conn).Offload()
			if o.TX || o.RX || o.TXReason == nil || o.RXReason == nil {
				t.Fatalf("Offload() = %+v, want neither direction, with reasons", o)
			}
			t.Logf("Offload: %v", o)
		}
		if opts.TX == ktls.Auto && !errors.Is(c.(*ktls.Conn).Offload().TXReason, ktls.ErrNotSupported) {
			t.Errorf("TXReason %v does not match ErrNotSupported", c.(*ktls.Conn).Offload().TXReason)
		}
		wiretest.Exchange(t, c, s, 1<<20)
		ktlstest.CloseBoth(t, c, s)
	})
	t.Run("CBC-suite", func(t *testing.T) {
		ccfg, scfg := cbcConfigs()
		c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
		o := s.(*ktls.Conn).Offload()
		if o.TX || o.RX || !errors.Is(o.TXReason, ktls.ErrNotSupported) {
			t.Fatalf("Offload() = %+v, want none, for a reason that matches ErrNotSupported", o)
		}
		wiretest.Exchange(t, c, s, 1<<20)
		ktlstest.CloseBoth(t, c, s)
	})
	t.Run("RX-disabled", func(t *testing.T) {
		kerneltest.RequireULP(t)
		ccfg, scfg := ktlstest.TLS13.Configs()
		opts := &ktls.Options{RX: ktls.Disabled}
		c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLSWith(scfg, opts))
		o := s.(*ktls.Conn).Offload()
		if !o.TX || o.RX {
			t.Fatalf("Offload() = %v, want TX only", o)
		}
		wiretest.Exchange(t, c, s, 1<<20)
		ktlstest.CloseBoth(t, c, s)
	})
}

// TestUnexpectedEOF: a peer that closes TCP without close_notify may have
// been cut short; Read says so.
func TestUnexpectedEOF(t *testing.T) {
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLS(scfg))
			if _, err := c.Write([]byte("partial")); err != nil {
				t.Fatal(err)
			}
			c.(*tls.Conn).NetConn().Close()
			got, err := wiretest.ReadAll(s)
			if string(got) != "partial" || err != io.ErrUnexpectedEOF {
				t.Fatalf("read %q, %v; want %q, io.ErrUnexpectedEOF", got, err, "partial")
			}
		})
	}
}

// TestPeerAlert: a fatal alert from the peer is an error that matches
// tls.AlertError. crypto/tls sends one when a record fails to decrypt, so
// corrupt one on the way.
func TestPeerAlert(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			// The server is ktls; the proxy flips a bit in the first
			// record the server sends after the handshake.
			c, s := connectThroughProxy(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLS(scfg))
			if _, err := s.Write([]byte("this record is corrupted on the way")); err != nil {
				t.Fatal(err)
			}
			_, cerr := c.Read(make([]byte, 100))
			if cerr == nil {
				t.Fatal("crypto/tls read a corrupted record without error")
			}
			// crypto/tls sent bad_record_mac; the kernel decrypts it.
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := s.Read(make([]byte, 100))
			var alert tls.AlertError
			if !errors.As(err, &alert) || alert != 20 {
				t.Fatalf("server Read = %v, want the peer's bad_record_mac as a tls.AlertError", err)
			}
		})
	}
}

// TestBadRecordMAC: a record corrupted on the way fails authentication;
// Read returns bad_record_mac and sends it to the peer. With RX offloaded
// the kernel reports EBADMSG; with RX on crypto/tls and TX in the kernel,
// crypto/tls's alert is translated into a record the kernel sends.
func TestBadRecordMAC(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		for _, rx := range []ktls.Mode{ktls.Enabled, ktls.Disabled} {
			name := sc.Name + "/RX-kernel"
			if rx == ktls.Disabled {
				name = sc.Name + "/RX-crypto-tls"
			}
			t.Run(name, func(t *testing.T) {
				ccfg, scfg := sc.Configs()
				opts := &ktls.Options{RX: rx}
				c, s := connectThroughProxy(t, ktlstest.KTLSWith(ccfg, opts), ktlstest.CryptoTLS(scfg))
				if o := c.(*ktls.Conn).Offload(); !o.TX || o.RX != (rx == ktls.Enabled) {
					t.Fatalf("Offload() = %v", o)
				}
				if _, err := s.Write([]byte("this record is corrupted on the way")); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := c.Read(make([]byte, 100))
				var alert tls.AlertError
				if !errors.As(err, &alert) || alert != 20 {
					t.Fatalf("ktls Read = %v, want bad_record_mac", err)
				}
				// The peer hears about it. (crypto/tls's own alert errors
				// are not tls.AlertError; only their text is the same.)
				s.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = s.Read(make([]byte, 100))
				if err == nil || err.Error() != "remote error: "+tls.AlertError(20).Error() {
					t.Fatalf("crypto/tls Read = %v, want the bad_record_mac alert", err)
				}
				// And the error sticks.
				if _, err2 := c.Read(make([]byte, 100)); !errors.As(err2, &alert) {
					t.Errorf("second Read = %v, want the same error", err2)
				}
			})
		}
	}
}

// TestResumption: a client with a session cache resumes across offloaded
// connections. In TLS 1.3 the tickets arrive after the handshake, so the
// client's RX offload waits for the first data. A resumed TLS 1.2 server
// offloads where ktls sees the session's master secret: with one config,
// or an UnwrapSession of its own; a config from GetConfigForClient without
// one stays on crypto/tls, and says why (ErrResumedTLS12).
func TestResumption(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		for _, server := range []string{"one-config", "UnwrapSession", "GetConfigForClient"} {
			t.Run(sc.Name+"/"+server, func(t *testing.T) {
				ccfg, scfg := sc.Configs()
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				switch server {
				case "UnwrapSession":
					scfg.WrapSession, scfg.UnwrapSession = scfg.EncryptTicket, scfg.DecryptTicket
				case "GetConfigForClient":
					tenant := scfg.Clone()
					scfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return tenant, nil }
				}
				for i, wantResume := range []bool{false, true, true} {
					c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
					kc, ks := c.(*ktls.Conn), s.(*ktls.Conn)
					if got := kc.ConnectionState().DidResume; got != wantResume {
						t.Fatalf("connection %d: DidResume = %v, want %v", i, got, wantResume)
					}
					wiretest.Exchange(t, c, s, 64<<10)
					if o := kc.Offload(); !o.TX || !o.RX {
						t.Errorf("connection %d: client Offload() after data = %v, want TX and RX", i, o)
					}
					o := ks.Offload()
					if sc.Version == tls.VersionTLS12 && wantResume && server == "GetConfigForClient" {
						if o.TX || o.RX || !errors.Is(o.TXReason, ktls.ErrResumedTLS12) {
							t.Errorf("connection %d: server Offload() = %v, want none, for ErrResumedTLS12", i, o)
						}
					} else if !o.TX || !o.RX {
						t.Errorf("connection %d: server Offload() = %v, want TX and RX", i, o)
					}
					ktlstest.CloseBoth(t, c, s)
				}
			})
		}
	}
}

// TestResumedMasterChecked: a master secret read from a resumed TLS 1.2
// session never reaches the kernel unless the keys derived from it open
// the Finished crypto/tls sent. With a wrong one (one bit flipped) both
// ends stay on crypto/tls, and the connection works.
func TestResumedMasterChecked(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS12.Configs()
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	scfg.WrapSession, scfg.UnwrapSession = scfg.EncryptTicket, scfg.DecryptTicket
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	wiretest.Exchange(t, c, s, 1024)
	ktlstest.CloseBoth(t, c, s)

	var seen atomic.Int32 // the two ends hand off at once
	ktls.SetResumedMasterHook(t, func(master []byte) {
		seen.Add(1)
		master[len(master)-1] ^= 1
	})
	c, s = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	if !c.(*ktls.Conn).ConnectionState().DidResume {
		t.Fatal("the second connection did not resume")
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the hook saw %d resumed master secrets, want the client's and the server's", n)
	}
	for _, end := range []struct {
		name string
		conn net.Conn
	}{{"client", c}, {"server", s}} {
		o := end.conn.(*ktls.Conn).Offload()
		if o.TX || o.RX || o.TXReason == nil || errors.Is(o.TXReason, ktls.ErrNotSupported) || errors.Is(o.TXReason, ktls.ErrResumedTLS12) {
			t.Errorf("%s: Offload() = %v, want none, because the derived key does not open the Finished", end.name, o)
		}
	}
	wiretest.Exchange(t, c, s, 64<<10)
	ktlstest.CloseBoth(t, c, s)
}

// TestCloseUnblocksRead: Close from another goroutine ends a blocked Read.
func TestCloseUnblocksRead(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLS(scfg))
	_ = c
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

// TestReadDeadline: a read deadline times out, and the connection still
// works after it is lifted.
func TestReadDeadline(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLS(scfg))
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Read(make([]byte, 10))
	if !wiretest.IsTimeout(err) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	wiretest.Exchange(t, c, s, 4096)
}

// TestFatalAlertStopsWriters: a record that fails authentication ends
// both directions. A Write in flight, blocked on a peer that doesn't
// read, stops with the alert's error, and so do later ones.
func TestFatalAlertStopsWriters(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
			kc := s.(*ktls.Conn)
			if o := kc.Offload(); !o.TX || !o.RX {
				t.Fatalf("Offload() = %v, want TX and RX", o)
			}
			deadline := time.Now().Add(time.Minute)
			kc.SetDeadline(deadline)
			p.Conn.SetDeadline(deadline)

			// The peer doesn't read: the Write fills the socket and
			// blocks, holding the write lock.
			wrote := make(chan error, 1)
			go func() {
				_, err := kc.Write(make([]byte, 64<<20))
				wrote <- err
			}()
			time.Sleep(500 * time.Millisecond) // let it get there; the test holds either way
			read := make(chan error, 1)
			go func() {
				_, err := kc.Read(make([]byte, 100))
				read <- err
			}()
			rec := p.Out.Seal(record.TypeApplicationData, []byte("one bit of this record is flipped"))
			rec[len(rec)-3] ^= 0x10
			if _, err := p.Conn.Write(rec); err != nil {
				t.Fatal(err)
			}

			isBadMAC := func(err error) bool {
				var ae tls.AlertError
				return errors.As(err, &ae) && uint8(ae) == record.AlertBadRecordMAC
			}
			select {
			case err := <-read:
				if !isBadMAC(err) {
					t.Fatalf("Read = %v, want bad_record_mac", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Read did not see the bad record")
			}
			select {
			case err := <-wrote:
				if !isBadMAC(err) {
					t.Errorf("the Write in flight ended with %v, want the bad_record_mac alert's error", err)
				}
			case <-time.After(promptly):
				t.Fatalf("the Write in flight went on %v after the read side failed with bad_record_mac", promptly)
			}
			for range 2 {
				if _, err := kc.Write([]byte("after")); !isBadMAC(err) {
					t.Errorf("Write after bad_record_mac = %v, want the alert's error", err)
				}
			}
		})
	}
}

// TestCloseZeroesSecrets: Close wipes the TLS 1.3 traffic secrets kept for
// KeyUpdate and for following crypto/tls, when idle, and when a Read or a
// Write is in flight (they wipe theirs as they end).
func TestCloseZeroesSecrets(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	// A session cache keeps the client's RX deferred, with its own copy
	// of the secret, and a translator for crypto/tls's writes.
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	kc, ks := c.(*ktls.Conn), s.(*ktls.Conn)

	type held struct {
		name  string
		bytes []byte // the secret's own backing array
	}
	secrets := func(who string, k *ktls.Conn, want ...string) []held {
		t.Helper()
		var hs []held
		m := k.TrafficSecrets()
		for _, name := range want {
			sec, ok := m[name]
			if !ok {
				t.Fatalf("%s holds no %s secret before Close (it holds %v)", who, name, m)
			}
			b := reflect.ValueOf(sec).Elem().FieldByName("secret").Bytes()
			if len(b) == 0 || bytes.Count(b, []byte{0}) == len(b) {
				t.Fatalf("%s's %s secret is empty before Close", who, name)
			}
			hs = append(hs, held{who + " " + name, b})
		}
		return hs
	}
	client := secrets("client", kc, "tx", "deferred rx", "translate")
	server := secrets("server", ks, "tx", "rx")
	wantZero := func(hs []held) {
		t.Helper()
		for _, h := range hs {
			if bytes.Count(h.bytes, []byte{0}) != len(h.bytes) {
				t.Errorf("the %s secret is not zeroed after Close", h.name)
			}
		}
	}

	// The server Closes during a Read, and a Write that the client
	// doesn't read.
	deadline := time.Now().Add(time.Minute)
	ks.SetDeadline(deadline)
	kc.SetDeadline(deadline)
	read, wrote := make(chan error, 1), make(chan error, 1)
	go func() { _, err := ks.Read(make([]byte, 10)); read <- err }()
	go func() { _, err := ks.Write(make([]byte, 64<<20)); wrote <- err }()
	time.Sleep(500 * time.Millisecond) // let them get there; the test holds either way
	closed := make(chan error, 1)
	go func() { closed <- ks.Close() }()
	for _, ch := range []chan error{closed, read, wrote} {
		select {
		case <-ch:
		case <-time.After(promptly):
			t.Fatalf("Close, or the Read or Write it should end, did not return within %v", promptly)
		}
	}
	wantZero(server)

	// The client Closes idle, with its RX still deferred.
	if err := kc.Close(); err != nil {
		t.Logf("client Close: %v", err)
	}
	wantZero(client)
}

// TestNetConn runs x/net's net.Conn conformance suite on a pair of
// offloaded ktls connections. crypto/tls itself can't pass it: after a
// Write times out, its record state is lost and every later Write fails.
// With the kernel framing records, a timed-out write leaves the stream
// whole, as on plain TCP.
func TestNetConn(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				ccfg, scfg := sc.Configs()
				c, s := ktlstest.ConnectRaw(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
				for _, conn := range []net.Conn{c, s} {
					if o := conn.(*ktls.Conn).Offload(); !o.TX || !o.RX {
						t.Fatalf("Offload() = %v, want TX and RX", o)
					}
				}
				return c, s, func() { c.Close(); s.Close() }, nil
			})
		})
	}
}

// A proxy relays a TCP connection and can corrupt one record of the
// server's stream, to show what a receiver does with a record that fails
// authentication.
type proxy struct {
	armed atomic.Bool // corrupt the next application_data record
	done  atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

// connectThroughProxy is connect with a proxy between the two ends. The
// proxy is armed once the handshake is over: the next application_data
// record from the server has a bit flipped.
func connectThroughProxy(t testing.TB, client, server ktlstest.Endpoint) (c, s net.Conn) {
	t.Helper()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		down, err := front.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			down.Close()
			return
		}
		p.track(down, up)
		var relay sync.WaitGroup
		relay.Add(2)
		go func() { defer relay.Done(); io.Copy(up, down); up.(*net.TCPConn).CloseWrite() }()
		go func() { defer relay.Done(); p.serverToClient(down, up); down.(*net.TCPConn).CloseWrite() }()
		relay.Wait()
	}()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		p.closeAll()
		wg.Wait()
	})
	c, s = ktlstest.ConnectVia(t, client, server, back, front.Addr().String())
	t.Cleanup(func() { c.Close(); s.Close() })
	p.armed.Store(true)
	return c, s
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, cs...)
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// serverToClient relays records, flipping the last bit of the tag of the
// first application_data record after the proxy is armed.
func (p *proxy) serverToClient(down, up net.Conn) {
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(up, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
		if _, err := io.ReadFull(up, body); err != nil {
			return
		}
		if hdr[0] == 23 && len(body) > 0 && p.armed.Load() && !p.done.Swap(true) {
			body[len(body)-1] ^= 0x01
		}
		if _, err := down.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}
