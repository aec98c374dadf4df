package ktls_test

import (
	"errors"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestRXSecretDroppedWhenRXStaysOnTLS is issue 13's finding 8 (the RX
// secret): when the kernel takes TX but RX stays on crypto/tls, crypto/tls
// has keys of its own and follows the peer's KeyUpdates itself, so ktls
// must not keep the receive traffic secret in memory. With RX on the
// kernel it is kept: a KeyUpdate from the peer needs it.
func TestRXSecretDroppedWhenRXStaysOnTLS(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
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
				kerneltest.Require(t, kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESGCM128, kernel.RX))
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
