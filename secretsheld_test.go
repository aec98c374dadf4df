package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// labelLog is a KeyLogWriter that keeps only the labels crypto/tls logged:
// proof that the collector saw those secrets.
type labelLog struct {
	mu     sync.Mutex
	labels []string
}

func (l *labelLog) Write(line []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	label, _, _ := bytes.Cut(line, []byte(" "))
	l.labels = append(l.labels, string(label))
	return len(line), nil
}

func (l *labelLog) has(label string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.labels {
		if x == label {
			return true
		}
	}
	return false
}

// handshakePair runs one handshake over loopback TCP and returns both
// ends' errors; the ends are closed when the test ends.
func handshakePair(t *testing.T, client, server handshakeEnd) (cerr, serr error) {
	t.Helper()
	return handshakeOver(t, "tcp", client, server)
}

// handshakeOver is handshakePair over a connection of the given network,
// "tcp" or "unix".
func handshakeOver(t *testing.T, network string, client, server handshakeEnd) (cerr, serr error) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := wiretest.Go(func() error {
		raw, err := ln.Accept()
		if err != nil {
			return err
		}
		s := server(raw)
		t.Cleanup(func() { s.Close() })
		return s.Handshake()
	})
	raw, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := client(raw)
	t.Cleanup(func() { c.Close() })
	cerr = c.Handshake()
	if cerr != nil {
		// The server may be waiting for the rest of the client's flight.
		raw.Close()
	}
	return cerr, <-done
}

type handshakeEnd func(net.Conn) ktlstest.Handshaker

// TestSecretsDroppedWhenHandshakeFails: a peer that makes the handshake
// fail after crypto/tls logged the traffic secrets (here, by sending no
// certificate, or by a VerifyConnection that refuses) must not leave them
// in the Conn. The handoff, which wipes them otherwise, never runs, and
// Close of a Conn whose handshake failed wiped nothing: the secrets of
// every failed handshake stayed in the heap for as long as the
// application kept the Conn.
//
// The same goes for a session the handshake resumed, which holds its
// master (or resumption) secret: a connection the kernel doesn't take
// kept it for its lifetime.
func TestSecretsDroppedWhenHandshakeFails(t *testing.T) {
	t.Run("TLS1.3/server/no-client-cert", func(t *testing.T) {
		log := &labelLog{}
		scfg := serverConfig(testcert.ECDSA)
		scfg.ClientAuth = tls.RequireAnyClientCert
		scfg.KeyLogWriter = log
		var ks *ktls.Conn
		cerr, serr := handshakePair(t,
			func(raw net.Conn) ktlstest.Handshaker { return tls.Client(raw, clientConfig(testcert.ECDSA)) },
			func(raw net.Conn) ktlstest.Handshaker { ks = ktls.Server(raw, scfg); return ks })
		if serr == nil {
			t.Fatalf("the server's handshake succeeded without a client certificate (client: %v)", cerr)
		}
		if !log.has("SERVER_TRAFFIC_SECRET_0") {
			t.Fatalf("the handshake failed before the traffic secrets were logged (%v): the test proves nothing", log.labels)
		}
		if held := ks.HandshakeSecretsHeld(); len(held) != 0 {
			t.Errorf("after a failed handshake (%v), the server still holds the %q secrets", serr, held)
		}
		ks.Close()
		if held := ks.HandshakeSecretsHeld(); len(held) != 0 {
			t.Errorf("after Close, the server still holds the %q secrets", held)
		}
	})
	t.Run("TLS1.3/client/verify-refuses", func(t *testing.T) {
		log := &labelLog{}
		ccfg := clientConfig(testcert.ECDSA)
		ccfg.KeyLogWriter = log
		refused := errors.New("refused")
		ccfg.VerifyConnection = func(tls.ConnectionState) error { return refused }
		var kc *ktls.Conn
		cerr, _ := handshakePair(t,
			func(raw net.Conn) ktlstest.Handshaker { kc = ktls.Client(raw, ccfg); return kc },
			func(raw net.Conn) ktlstest.Handshaker { return tls.Server(raw, serverConfig(testcert.ECDSA)) })
		if !errors.Is(cerr, refused) {
			t.Fatalf("client handshake: %v, want the VerifyConnection error", cerr)
		}
		if !log.has("SERVER_HANDSHAKE_TRAFFIC_SECRET") {
			t.Fatalf("the handshake failed before the handshake secrets were logged (%v): the test proves nothing", log.labels)
		}
		if held := kc.HandshakeSecretsHeld(); len(held) != 0 {
			t.Errorf("after a failed handshake, the client still holds the %q secrets", held)
		}
	})
	t.Run("TLS1.2/server/resumed-not-offloaded", func(t *testing.T) {
		// One server config, so ktls sees the session through its own
		// UnwrapSession; TX disabled, so the handoff stops before it
		// derives a key (on a host without kernel TLS it stops there
		// anyway).
		scfg := serverConfig(testcert.ECDSA)
		scfg.MaxVersion = tls.VersionTLS12
		ccfg := clientConfig(testcert.ECDSA)
		ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		opts := &ktls.Options{TX: ktls.Disabled}
		var ks *ktls.Conn
		for i := range 2 {
			cerr, serr := handshakePair(t,
				func(raw net.Conn) ktlstest.Handshaker { return tls.Client(raw, ccfg) },
				func(raw net.Conn) ktlstest.Handshaker { ks = ktls.ServerWithOptions(raw, scfg, opts); return ks })
			if cerr != nil || serr != nil {
				t.Fatalf("handshake %d: client: %v, server: %v", i, cerr, serr)
			}
		}
		if !ks.ConnectionState().DidResume {
			t.Fatal("the second handshake did not resume: the test proves nothing")
		}
		if held := ks.HandshakeSecretsHeld(); len(held) != 0 {
			t.Errorf("a resumed connection the kernel didn't take still holds the %q", held)
		}
	})
}

// TestCloseDuringHandoffZeroesSecrets: a Close that comes while the
// handoff runs (a server shutting down as a handshake ends, say) sees no
// finished handshake, so it leaves the secrets to the handoff; the
// handoff, which installed TX before the socket closed, must then wipe the
// TLS 1.3 traffic secrets it kept for KeyUpdates, since nothing else will.
func TestCloseDuringHandoffZeroesSecrets(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	var closed atomic.Bool
	ktls.SetAfterTXHook(t, func(c *ktls.Conn) {
		if c.ConnectionState().DidResume || closed.Swap(true) {
			return
		}
		c.Close()
	})
	var ks *ktls.Conn
	cerr, serr := handshakePair(t,
		func(raw net.Conn) ktlstest.Handshaker { return tls.Client(raw, ccfg) },
		func(raw net.Conn) ktlstest.Handshaker { ks = ktls.Server(raw, scfg); return ks })
	if !closed.Load() {
		t.Fatalf("the handoff never reached the hook (client: %v, server: %v): the test proves nothing", cerr, serr)
	}
	if o := ks.Offload(); !o.TX {
		t.Fatalf("server Offload() = %v, want TX: the test proves nothing", o)
	}
	if held := ks.TrafficSecrets(); len(held) != 0 {
		t.Errorf("after a Close during the handoff, the server still holds the %v traffic secrets", slices.Sorted(maps.Keys(held)))
	}
}

// TestRXSecretDroppedWhenRXStaysOnTLS is issue 13's finding 8 (the RX
// secret): when the kernel takes TX but RX stays on crypto/tls, crypto/tls
// has keys of its own and follows the peer's KeyUpdates itself, so ktls
// must not keep the receive traffic secret in memory. With RX on the
// kernel it is kept: a KeyUpdate from the peer needs it.
func TestRXSecretDroppedWhenRXStaysOnTLS(t *testing.T) {
	kerneltest.RequireULP(t)
	sc := ktlstest.TLS13 // TLS 1.3: its secrets outlive the handoff
	for _, tc := range []struct {
		name     string
		rx       ktls.Mode
		wantRX   bool
		wantHeld bool
	}{
		{"RX-disabled", ktls.Disabled, false, false},
		{"RX-kernel", ktls.Auto, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wantRX {
				sc.RequireRX(t)
			}
			ccfg, scfg := sc.Configs()
			c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.KTLSWith(scfg, &ktls.Options{RX: tc.rx}))
			k := s.(*ktls.Conn)
			o := k.Offload()
			if !o.TX || o.RX != tc.wantRX {
				t.Fatalf("Offload() = %+v, want TX, and RX %v", o, tc.wantRX)
			}
			if !tc.wantRX && !errors.Is(o.RXReason, ktls.ErrDisabled) {
				t.Fatalf("RXReason = %v, want ErrDisabled", o.RXReason)
			}
			if held := k.RXSecretHeld(); held != tc.wantHeld {
				t.Errorf("RX secret held after the handoff: %v, want %v", held, tc.wantHeld)
			}
			wiretest.Exchange(t, c, s, 64<<10)
			ktlstest.CloseBoth(t, c, s)
		})
	}
}
