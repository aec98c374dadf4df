package ktls_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// offloadPair runs a handshake between a ktls client (Auto) and a ktls
// server with opts over a connection of the given network ("tcp" or
// "unix"), and returns both ends' handshake errors, with both Conns. The
// client is ktls because crypto/tls reads a connection cut at a record
// boundary as a clean io.EOF, and the tests must tell the two apart.
func offloadPair(t *testing.T, network string, ccfg, scfg *tls.Config, opts *ktls.Options) (cerr, serr error, s, c *ktls.Conn) {
	t.Helper()
	cerr, serr = handshakeOver(t, network,
		func(raw net.Conn) ktlstest.Handshaker { c = ktls.Client(raw, ccfg); return c },
		func(raw net.Conn) ktlstest.Handshaker { s = ktls.ServerWithOptions(raw, scfg, opts); return s })
	return cerr, serr, s, c
}

// cbcConfigs makes a TLS 1.2 connection with a CBC suite, which the
// kernel can't offload.
func cbcConfigs() (ccfg, scfg *tls.Config) {
	ccfg, scfg = clientConfig(testcert.ECDSA), serverConfig(testcert.ECDSA)
	ccfg.MaxVersion = tls.VersionTLS12
	ccfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
	scfg.CipherSuites = ccfg.CipherSuites
	return ccfg, scfg
}

// TestReasonCodes: each reason for staying on crypto/tls has its code.
func TestReasonCodes(t *testing.T) {
	ulp := kerneltest.HaveULP()
	for _, tc := range []struct {
		name         string
		network      string
		configs      func() (*tls.Config, *tls.Config)
		opts         *ktls.Options
		wantTX       string
		wantRX       string
		onlyWithULP  bool // the code is the kernel's answer, so only where the kernel has TLS
		onlyNoULP    bool
		wantOffload  bool
		wantTXReason error
	}{
		{name: "disabled", network: "tcp", configs: ktlstest.TLS13.Configs, opts: &ktls.Options{TX: ktls.Disabled, RX: ktls.Disabled},
			wantTX: ktls.CodeDisabled, wantRX: ktls.CodeDisabled},
		{name: "rx needs tx", network: "tcp", configs: ktlstest.TLS13.Configs, opts: &ktls.Options{TX: ktls.Disabled},
			wantTX: ktls.CodeDisabled, wantRX: ktls.CodeRXNeedsTX},
		{name: "unix socket", network: "unix", configs: ktlstest.TLS13.Configs,
			wantTX: ktls.CodeNotTCP, wantRX: ktls.CodeRXNeedsTX},
		{name: "TLS 1.2 CBC", network: "tcp", configs: cbcConfigs, onlyWithULP: true,
			wantTX: ktls.CodeCipher, wantRX: ktls.CodeRXNeedsTX},
		{name: "no ULP", network: "tcp", configs: ktlstest.TLS13.Configs, onlyNoULP: true,
			wantTX: ktls.CodeNoULP, wantRX: ktls.CodeRXNeedsTX, wantTXReason: kernel.ErrNotSupported},
		{name: "offloaded", network: "tcp", configs: ktlstest.TLS13.Configs, onlyWithULP: true, wantOffload: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.onlyWithULP {
				kerneltest.RequireULP(t)
			}
			if tc.onlyNoULP && ulp {
				t.Skip("this kernel has the tls ULP: the case is for a host without it")
			}
			ccfg, scfg := tc.configs()
			cerr, serr, s, _ := offloadPair(t, tc.network, ccfg, scfg, tc.opts)
			if cerr != nil || serr != nil {
				t.Fatalf("handshake: client %v, server %v", cerr, serr)
			}
			o := s.Offload()
			if o.TXCode() != tc.wantTX || o.RXCode() != tc.wantRX {
				t.Errorf("codes TX %q RX %q, want %q %q (%v)", o.TXCode(), o.RXCode(), tc.wantTX, tc.wantRX, o)
			}
			if tc.wantOffload != (o.TX && o.RX) {
				t.Errorf("Offload() = %v", o)
			}
			if tc.wantTXReason != nil && !errors.Is(o.TXReason, tc.wantTXReason) {
				t.Errorf("TXReason %v does not match %v", o.TXReason, tc.wantTXReason)
			}
		})
	}
}

// TestRequired: a Required direction the kernel doesn't take fails the
// handshake with a *RequiredError that says why, and the peer sees the
// connection end without close_notify; one it takes works as Auto does.
func TestRequired(t *testing.T) {
	ulp := kerneltest.HaveULP()
	for _, tc := range []struct {
		name     string
		network  string
		configs  func() (*tls.Config, *tls.Config)
		opts     *ktls.Options
		wantDir  string // "" for success
		wantCode string
	}{
		{"rx required, tx disabled", "tcp", ktlstest.TLS13.Configs, &ktls.Options{TX: ktls.Disabled, RX: ktls.Required}, "RX", ktls.CodeRXNeedsTX},
		{"tx required, unix socket", "unix", ktlstest.TLS13.Configs, &ktls.Options{TX: ktls.Required}, "TX", ktls.CodeNotTCP},
		{"tx required", "tcp", ktlstest.TLS13.Configs, &ktls.Options{TX: ktls.Required, RX: ktls.Required}, map[bool]string{true: "", false: "TX"}[ulp], map[bool]string{true: "", false: ktls.CodeNoULP}[ulp]},
		{"tx required, TLS 1.2 CBC", "tcp", cbcConfigs, &ktls.Options{TX: ktls.Required}, "TX", map[bool]string{true: ktls.CodeCipher, false: ktls.CodeNoULP}[ulp]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := tc.configs()
			cerr, serr, s, c := offloadPair(t, tc.network, ccfg, scfg, tc.opts)
			if cerr != nil {
				t.Fatalf("client handshake: %v", cerr)
			}
			if tc.wantDir == "" {
				if serr != nil {
					t.Fatalf("server handshake: %v", serr)
				}
				if o := s.Offload(); !o.TX || !o.RX {
					t.Fatalf("Offload() = %v, want TX+RX", o)
				}
				go func() { s.Write([]byte("hello")); s.Close() }()
				if got, err := io.ReadAll(c); string(got) != "hello" || err != nil {
					t.Fatalf("read %q, %v", got, err)
				}
				return
			}
			var re *ktls.RequiredError
			if !errors.As(serr, &re) || re.Direction != tc.wantDir || ktls.ReasonCode(re.Reason) != tc.wantCode {
				t.Fatalf("server handshake error %v, want a RequiredError for %s with code %s", serr, tc.wantDir, tc.wantCode)
			}
			if _, err := s.Write([]byte("x")); !errors.As(err, &re) {
				t.Errorf("Write after the failed handshake: %v, want the RequiredError", err)
			}
			// The peer must not take the end for a clean one.
			if _, err := c.Read(make([]byte, 1)); err == nil || err == io.EOF {
				t.Errorf("client read %v, want an error other than a clean EOF", err)
			}
		})
	}
}
