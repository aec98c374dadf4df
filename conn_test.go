package ktls_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// suiteCase is one version and cipher suite, and how to make crypto/tls
// negotiate it.
type suiteCase struct {
	name    string
	version uint16
	suite   uint16
	kind    testcert.Kind
}

var suiteCases = []suiteCase{
	{"TLS1.3/AES_128_GCM", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, testcert.ECDSA},
	{"TLS1.3/CHACHA20_POLY1305", tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_AES_128_GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_AES_256_GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_CHACHA20_POLY1305", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_RSA_AES_128_GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, testcert.RSA},
	{"TLS1.2/ECDHE_RSA_AES_256_GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, testcert.RSA},
	{"TLS1.2/ECDHE_RSA_CHACHA20_POLY1305", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, testcert.RSA},
}

// configs returns client and server configs that negotiate the case.
func (sc suiteCase) configs() (client, server *tls.Config) {
	client, server = clientConfig(sc.kind), serverConfig(sc.kind)
	if sc.version == tls.VersionTLS12 {
		client.MaxVersion = tls.VersionTLS12
		client.CipherSuites = []uint16{sc.suite}
		return client, server
	}
	if sc.suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		// crypto/tls has no knob for TLS 1.3 suites, but a server prefers
		// ChaCha20-Poly1305 when the client lists a ChaCha20 suite first;
		// the TLS 1.2 list comes first in a Go ClientHello.
		client.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	}
	return client, server
}

// TestOffload runs every version and suite between ktls and crypto/tls,
// each as client and as server, and between two ktls ends: both
// directions offloaded, data both ways checked by SHA-256.
func TestOffload(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	size := int64(1 << 20)
	for _, sc := range suiteCases {
		for _, roles := range []struct {
			name           string
			client, server bool
		}{{"ktls-server", false, true}, {"ktls-client", true, false}, {"ktls-both", true, true}} {
			t.Run(sc.name+"/"+roles.name, func(t *testing.T) {
				ccfg, scfg := sc.configs()
				warmProbes(t)
				txBefore, rxBefore := tlsStat(t, "TlsTxSw"), tlsStat(t, "TlsRxSw")
				c, s := connect(t, endpoint{ktls: roles.client, config: ccfg}, endpoint{ktls: roles.server, config: scfg})
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
					if o.Version != sc.version || o.CipherSuite != sc.suite {
						t.Fatalf("negotiated %s %s, want %s %s", tls.VersionName(o.Version), tls.CipherSuiteName(o.CipherSuite),
							tls.VersionName(sc.version), tls.CipherSuiteName(sc.suite))
					}
				}
				exchange(t, c, s, size)
				if d := tlsStat(t, "TlsTxSw") - txBefore; d != uint64(want) {
					t.Errorf("TlsTxSw went up by %d, want %d", d, want)
				}
				if d := tlsStat(t, "TlsRxSw") - rxBefore; d != uint64(want) {
					t.Errorf("TlsRxSw went up by %d, want %d", d, want)
				}
				closeBoth(t, c, s)
			})
		}
	}
}

// TestBulk moves 64 MiB each way through a ktls server, one TLS 1.2 and
// one TLS 1.3 suite.
func TestBulk(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	if testing.Short() {
		t.Skip("64 MiB each way; -short skips it (the lab runs it)")
	}
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		t.Run(sc.name, func(t *testing.T) {
			ccfg, scfg := sc.configs()
			c, s := connect(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg})
			exchange(t, c, s, 64<<20)
			closeBoth(t, c, s)
		})
	}
}

// closeBoth closes each end's writing side with close_notify, and checks
// that the other end reads io.EOF.
func closeBoth(t *testing.T, c, s net.Conn) {
	t.Helper()
	for _, pair := range [][2]net.Conn{{c, s}, {s, c}} {
		w, r := pair[0], pair[1]
		if err := w.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the peer's close_notify = %d, %v; want 0, io.EOF", n, err)
		}
	}
}

// TestFallback: where the kernel can't take the connection, it stays on
// crypto/tls, works, and says why.
func TestFallback(t *testing.T) {
	t.Run("no-ULP-or-disabled", func(t *testing.T) {
		opts := &ktls.Options{}
		if kernel.FeatureULP.Check() == nil {
			// With kernel TLS here, fall back by choice instead.
			opts.TX = ktls.Disabled
		}
		ccfg, scfg := suiteCases[0].configs()
		c, s := connect(t, endpoint{ktls: true, config: ccfg, opts: opts}, endpoint{ktls: true, config: scfg, opts: opts})
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
		exchange(t, c, s, 1<<20)
		closeBoth(t, c, s)
	})
	t.Run("CBC-suite", func(t *testing.T) {
		ccfg, scfg := clientConfig(testcert.ECDSA), serverConfig(testcert.ECDSA)
		ccfg.MaxVersion = tls.VersionTLS12
		ccfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		scfg.CipherSuites = ccfg.CipherSuites
		c, s := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
		o := s.(*ktls.Conn).Offload()
		if o.TX || o.RX || !errors.Is(o.TXReason, ktls.ErrNotSupported) {
			t.Fatalf("Offload() = %+v, want none, for a reason that matches ErrNotSupported", o)
		}
		exchange(t, c, s, 1<<20)
		closeBoth(t, c, s)
	})
	t.Run("RX-disabled", func(t *testing.T) {
		kerneltest.Require(t, kernel.FeatureULP)
		ccfg, scfg := suiteCases[0].configs()
		opts := &ktls.Options{RX: ktls.Disabled}
		c, s := connect(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg, opts: opts})
		o := s.(*ktls.Conn).Offload()
		if !o.TX || o.RX {
			t.Fatalf("Offload() = %v, want TX only", o)
		}
		exchange(t, c, s, 1<<20)
		closeBoth(t, c, s)
	})
}

// TestUnexpectedEOF: a peer that closes TCP without close_notify may have
// been cut short; Read says so.
func TestUnexpectedEOF(t *testing.T) {
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		t.Run(sc.name, func(t *testing.T) {
			ccfg, scfg := sc.configs()
			c, s := connect(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg})
			if _, err := c.Write([]byte("partial")); err != nil {
				t.Fatal(err)
			}
			c.(*tls.Conn).NetConn().Close()
			got, err := readAll(s)
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
	kerneltest.Require(t, kernel.FeatureULP)
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		t.Run(sc.name, func(t *testing.T) {
			ccfg, scfg := sc.configs()
			// The server is ktls; the proxy flips a bit in the first
			// record the server sends after the handshake.
			c, s := connectThroughProxy(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg})
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
	kerneltest.Require(t, kernel.FeatureULP)
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		for _, rx := range []ktls.Mode{ktls.Enabled, ktls.Disabled} {
			name := sc.name + "/RX-kernel"
			if rx == ktls.Disabled {
				name = sc.name + "/RX-crypto-tls"
			}
			t.Run(name, func(t *testing.T) {
				ccfg, scfg := sc.configs()
				opts := &ktls.Options{RX: rx}
				c, s := connectThroughProxy(t, endpoint{ktls: true, config: ccfg, opts: opts}, endpoint{config: scfg})
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
	kerneltest.Require(t, kernel.FeatureULP)
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		for _, server := range []string{"one-config", "UnwrapSession", "GetConfigForClient"} {
			t.Run(sc.name+"/"+server, func(t *testing.T) {
				ccfg, scfg := sc.configs()
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				switch server {
				case "UnwrapSession":
					scfg.WrapSession, scfg.UnwrapSession = scfg.EncryptTicket, scfg.DecryptTicket
				case "GetConfigForClient":
					tenant := scfg.Clone()
					scfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return tenant, nil }
				}
				for i, wantResume := range []bool{false, true, true} {
					c, s := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
					kc, ks := c.(*ktls.Conn), s.(*ktls.Conn)
					if got := kc.ConnectionState().DidResume; got != wantResume {
						t.Fatalf("connection %d: DidResume = %v, want %v", i, got, wantResume)
					}
					exchange(t, c, s, 64<<10)
					if o := kc.Offload(); !o.TX || !o.RX {
						t.Errorf("connection %d: client Offload() after data = %v, want TX and RX", i, o)
					}
					o := ks.Offload()
					if sc.version == tls.VersionTLS12 && wantResume && server == "GetConfigForClient" {
						if o.TX || o.RX || !errors.Is(o.TXReason, ktls.ErrResumedTLS12) {
							t.Errorf("connection %d: server Offload() = %v, want none, for ErrResumedTLS12", i, o)
						}
					} else if !o.TX || !o.RX {
						t.Errorf("connection %d: server Offload() = %v, want TX and RX", i, o)
					}
					closeBoth(t, c, s)
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
	kerneltest.Require(t, kernel.FeatureULP)
	ccfg, scfg := suiteCases[2].configs()
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	scfg.WrapSession, scfg.UnwrapSession = scfg.EncryptTicket, scfg.DecryptTicket
	c, s := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
	exchange(t, c, s, 1024)
	closeBoth(t, c, s)

	var seen atomic.Int32 // the two ends hand off at once
	ktls.SetResumedMasterHook(t, func(master []byte) {
		seen.Add(1)
		master[len(master)-1] ^= 1
	})
	c, s = connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
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
	exchange(t, c, s, 64<<10)
	closeBoth(t, c, s)
}

// TestCloseUnblocksRead: Close from another goroutine ends a blocked Read.
func TestCloseUnblocksRead(t *testing.T) {
	ccfg, scfg := suiteCases[0].configs()
	c, s := connect(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg})
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
	ccfg, scfg := suiteCases[0].configs()
	c, s := connect(t, endpoint{config: ccfg}, endpoint{ktls: true, config: scfg})
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := s.Read(make([]byte, 10))
	if !isTimeout(err) {
		t.Fatalf("Read past the deadline = %v, want a timeout", err)
	}
	s.SetReadDeadline(time.Time{})
	exchange(t, c, s, 4096)
}
