// Package ktlstest connects ktls and crypto/tls ends to each other over
// loopback TCP for tests: every version and suite the kernel takes, a
// handshake on both ends at once, and a raw peer that writes and reads
// records itself, to misbehave in ways crypto/tls never would. The root
// package's tests and the end-to-end tests (internal/lab/e2e) share it.
package ktlstest

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// A SuiteCase is one version and cipher suite, and how to make crypto/tls
// negotiate it.
type SuiteCase struct {
	Name    string
	Version uint16
	Suite   uint16
	Kind    testcert.Kind
}

// SuiteCases are every version and AEAD suite the kernel can take that
// crypto/tls negotiates with itself.
var SuiteCases = []SuiteCase{
	{"TLS1.3/AES_128_GCM", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, testcert.ECDSA},
	{"TLS1.3/CHACHA20_POLY1305", tls.VersionTLS13, tls.TLS_CHACHA20_POLY1305_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_AES_128_GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_AES_256_GCM", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, testcert.ECDSA},
	{"TLS1.2/ECDHE_ECDSA_CHACHA20_POLY1305", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, testcert.ECDSA},
	{"TLS1.2/ECDHE_RSA_AES_128_GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, testcert.RSA},
	{"TLS1.2/ECDHE_RSA_AES_256_GCM", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, testcert.RSA},
	{"TLS1.2/ECDHE_RSA_CHACHA20_POLY1305", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, testcert.RSA},
}

// TLS13 and TLS12 are the first case of each version: AES-128-GCM, with
// an ECDSA certificate.
var (
	TLS13 = SuiteCases[0]
	TLS12 = SuiteCases[2]
)

// OnePerVersion is TLS13 and TLS12, for tests whose subject is not the
// suite.
var OnePerVersion = []SuiteCase{TLS13, TLS12}

// RequireTX skips or fails t, as kerneltest.Require does, unless the
// kernel can encrypt sc's records: the tls ULP, and sc's version and
// cipher in TX.
func (sc SuiteCase) RequireTX(t testing.TB) {
	t.Helper()
	kerneltest.Require(t, kernel.FeatureULP, sc.kernelFeature(kernel.TX))
}

// RequireRX is RequireTX for decrypting sc's records in the kernel.
func (sc SuiteCase) RequireRX(t testing.TB) {
	t.Helper()
	kerneltest.Require(t, kernel.FeatureULP, sc.kernelFeature(kernel.RX))
}

// kernelFeature is the kernel feature for sc's version and cipher in
// direction d, as kernel.Offloadable looks it up.
func (sc SuiteCase) kernelFeature(d kernel.Direction) *kernel.Feature {
	s, ok := keyschedule.Lookup(sc.Version, sc.Suite)
	if !ok {
		panic("ktlstest: kernel TLS takes no " + sc.Name)
	}
	return kernel.CipherFeature(s.Version, kernel.Cipher(s.KernelCipher), d)
}

// Configs returns client and server configs that negotiate the case.
func (sc SuiteCase) Configs() (client, server *tls.Config) {
	b := testcert.Get(sc.Kind)
	client, server = b.ClientConfig(), b.ServerConfig()
	if sc.Version == tls.VersionTLS12 {
		client.MaxVersion = tls.VersionTLS12
		client.CipherSuites = []uint16{sc.Suite}
		return client, server
	}
	if sc.Suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		// crypto/tls has no knob for TLS 1.3 suites, but a server prefers
		// ChaCha20-Poly1305 when the client lists a ChaCha20 suite first;
		// the TLS 1.2 list comes first in a Go ClientHello.
		client.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	}
	return client, server
}

// An Endpoint says how one end of a test connection runs.
type Endpoint struct {
	KTLS   bool // a *ktls.Conn, else a *tls.Conn
	Config *tls.Config
	Opts   *ktls.Options // for a ktls end
}

// KTLS is a ktls end with the default options.
func KTLS(cfg *tls.Config) Endpoint { return Endpoint{KTLS: true, Config: cfg} }

// KTLSWith is a ktls end with opts.
func KTLSWith(cfg *tls.Config, opts *ktls.Options) Endpoint {
	return Endpoint{KTLS: true, Config: cfg, Opts: opts}
}

// CryptoTLS is a crypto/tls end.
func CryptoTLS(cfg *tls.Config) Endpoint { return Endpoint{Config: cfg} }

// A Handshaker is either end's connection: a *ktls.Conn or a *tls.Conn.
type Handshaker interface {
	net.Conn
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// Client makes the client end on raw.
func (e Endpoint) Client(raw net.Conn) Handshaker {
	if e.KTLS {
		return ktls.ClientWithOptions(raw, e.Config, e.Opts)
	}
	return tls.Client(raw, e.Config)
}

// Server makes the server end on raw.
func (e Endpoint) Server(raw net.Conn) Handshaker {
	if e.KTLS {
		return ktls.ServerWithOptions(raw, e.Config, e.Opts)
	}
	return tls.Server(raw, e.Config)
}

// accept accepts one connection on ln in a goroutine and runs the
// handshake of this end, the server, on it.
func (e Endpoint) accept(ln net.Listener) <-chan wiretest.Result[Handshaker] {
	return wiretest.Async(func() (Handshaker, error) {
		raw, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		conn := e.Server(raw)
		return conn, conn.Handshake()
	})
}

// Connect makes a loopback TCP connection and runs the handshake on both
// ends at once. Both ends are closed when t ends.
func Connect(t testing.TB, client, server Endpoint) (c, s net.Conn) {
	t.Helper()
	c, s = ConnectRaw(t, client, server)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// ConnectRaw is Connect, leaving the closing to the caller.
func ConnectRaw(t testing.TB, client, server Endpoint) (c, s net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ConnectVia(t, client, server, ln, ln.Addr().String())
}

// ConnectVia is ConnectRaw where the server accepts on ln and the client
// dials addr, which may be a relay in front of ln.
func ConnectVia(t testing.TB, client, server Endpoint, ln net.Listener, addr string) (c, s net.Conn) {
	t.Helper()
	done := server.accept(ln)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc := client.Client(raw)
	cerr := cc.Handshake()
	r := <-done
	if cerr != nil || r.Err != nil {
		raw.Close()
		if r.V != nil {
			r.V.Close()
		}
		t.Fatalf("handshake: client: %v, server: %v", cerr, r.Err)
	}
	return cc, r.V
}

// CloseBoth closes each end's writing side with close_notify, and checks
// that the other end reads io.EOF.
func CloseBoth(t testing.TB, c, s net.Conn) {
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

// WantOffload fails t unless every one of conns is a *ktls.Conn with both
// directions in the kernel.
func WantOffload(t testing.TB, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		kc, ok := c.(*ktls.Conn)
		if !ok {
			t.Fatalf("%T is not a *ktls.Conn", c)
		}
		if o := kc.Offload(); !o.TX || !o.RX {
			t.Fatalf("Offload() = %v, want TX and RX", o)
		}
	}
}

// WarmProbes runs the kernel feature probes ktls uses, which install keys
// on throwaway sockets, so that they don't show in the counters a test
// reads.
func WarmProbes(t testing.TB) {
	for _, v := range []uint16{kernel.VersionTLS12, kernel.VersionTLS13} {
		for _, c := range []kernel.Cipher{kernel.CipherAESGCM128, kernel.CipherAESGCM256, kernel.CipherChaCha20Poly1305} {
			for _, d := range []kernel.Direction{kernel.TX, kernel.RX} {
				kernel.CipherFeature(v, c, d).Check()
			}
		}
	}
	kernel.FeatureRekey.Check()
	kernel.FeatureRXExpectNoPad.Check()
	kernel.FeatureTXZerocopyRO.Check()
	// Its probe installs a TX key too, whether or not the kernel has it.
	kernel.FeatureTXMaxPayloadLen.Check()
}
