package kernel_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// TestSuiteTable checks keyschedule's table against the kernel's ABI:
// its versions are the kernel's, its KernelCipher numbers name ciphers
// whose struct takes the suite's key and IV, and NewCryptoInfo lays each
// suite's keys out as the kernel wants them.
func TestSuiteTable(t *testing.T) {
	if kernel.VersionTLS12 != tls.VersionTLS12 || kernel.VersionTLS13 != tls.VersionTLS13 {
		t.Fatalf("the kernel's versions %#x, %#x are not the wire versions", kernel.VersionTLS12, kernel.VersionTLS13)
	}
	// The kernel's cipher, from the suite's IANA name.
	wantCipher := map[string]kernel.Cipher{
		"_AES_128_GCM_": kernel.CipherAESGCM128, "_AES_256_GCM_": kernel.CipherAESGCM256,
		"_CHACHA20_POLY1305_": kernel.CipherChaCha20Poly1305,
	}
	for _, s := range keyschedule.Suites() {
		t.Run(s.Name, func(t *testing.T) {
			c := kernel.Cipher(s.KernelCipher)
			for part, want := range wantCipher {
				if strings.Contains(s.Name, part) && c != want {
					t.Fatalf("KernelCipher %d is %v, want %v", s.KernelCipher, c, want)
				}
			}
			k := keyschedule.TrafficKeys{Key: bytes.Repeat([]byte{0xee}, s.KeyLen), IV: make([]byte, s.FixedIVLen)}
			for i := range k.IV {
				k.IV[i] = byte(i + 1)
			}
			const seq = 0x0102030405060708
			info := kernel.NewCryptoInfo(s, k, seq)
			if _, err := info.MarshalTo(make([]byte, kernel.MaxCryptoInfoLen)); err != nil {
				t.Fatalf("the kernel's struct doesn't take the suite's keys: %v", err)
			}
			if info.Version != s.Version || info.Cipher != c || !bytes.Equal(info.Key, k.Key) || info.RecSeq != kernel.SeqBytes(seq) {
				t.Errorf("NewCryptoInfo = %+v", info)
			}
			// The nonce: salt and IV, as the kernel builds it from them.
			nonce := append(bytes.Clone(info.Salt), info.IV...)
			switch {
			case s.Version == tls.VersionTLS12 && c != kernel.CipherChaCha20Poly1305:
				// The explicit nonce continues crypto/tls's, which is the
				// sequence number: from zero, it would repeat one.
				want := append(bytes.Clone(k.IV), info.RecSeq[:]...)
				if !bytes.Equal(nonce, want) {
					t.Errorf("salt+IV = %x, want the implicit part and the next sequence number %x", nonce, want)
				}
			default:
				if !bytes.Equal(nonce, k.IV) {
					t.Errorf("salt+IV = %x, want the 12-byte nonce mask %x", nonce, k.IV)
				}
			}
			info.Key[0] ^= 1
			if k.Key[0] != 0xee {
				t.Error("NewCryptoInfo shares the caller's key: zeroing one would zero the other")
			}
		})
	}
}

// TestOffloadable: the one answer to "can this kernel offload this suite
// this way", from the feature probes, in order, with the feature that said
// no; a probe that could not run is no "not supported".
func TestOffloadable(t *testing.T) {
	aes13RX := kernel.CipherFeature(kernel.VersionTLS13, kernel.CipherAESGCM128, kernel.RX)
	busy := os.NewSyscallError("socket", unix.EMFILE)
	for _, tc := range []struct {
		name        string
		version     uint16
		suite       uint16
		dir         kernel.Direction
		errs        map[*kernel.Feature]error
		wantFeature *kernel.Feature
		wantNotSupp bool
		wantProbed  int
	}{
		{name: "offloadable", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.RX,
			wantProbed: 2},
		{name: "no ULP", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.RX,
			errs:        map[*kernel.Feature]error{kernel.FeatureULP: kernel.FeatureULP.Unsupported("no tls module")},
			wantFeature: kernel.FeatureULP, wantNotSupp: true, wantProbed: 1},
		{name: "ULP probe failed", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.RX,
			errs:        map[*kernel.Feature]error{kernel.FeatureULP: busy},
			wantFeature: kernel.FeatureULP, wantProbed: 1},
		{name: "CBC", version: tls.VersionTLS12, suite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, dir: kernel.TX,
			wantNotSupp: true, wantProbed: 1},
		{name: "version and suite don't belong together", version: tls.VersionTLS12, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.TX,
			wantNotSupp: true, wantProbed: 1},
		{name: "no cipher this way", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.RX,
			errs:        map[*kernel.Feature]error{aes13RX: aes13RX.Unsupported("setsockopt TLS_RX: invalid argument")},
			wantFeature: aes13RX, wantNotSupp: true, wantProbed: 2},
		{name: "the other way works", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.TX,
			errs:       map[*kernel.Feature]error{aes13RX: aes13RX.Unsupported("setsockopt TLS_RX: invalid argument")},
			wantProbed: 2},
		{name: "cipher probe failed", version: tls.VersionTLS13, suite: tls.TLS_AES_128_GCM_SHA256, dir: kernel.RX,
			errs:        map[*kernel.Feature]error{aes13RX: busy},
			wantFeature: aes13RX, wantProbed: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var probed []*kernel.Feature
			err := kernel.Probe(func(f *kernel.Feature) error {
				probed = append(probed, f)
				return tc.errs[f]
			}).Offloadable(tc.version, tc.suite, tc.dir)
			if len(probed) != tc.wantProbed {
				t.Errorf("probed %d features, want %d", len(probed), tc.wantProbed)
			}
			want := tc.wantNotSupp || tc.wantFeature != nil
			if (err != nil) != want {
				t.Fatalf("Offloadable = %v, want an error: %v", err, want)
			}
			if err == nil {
				return
			}
			var oe *kernel.OffloadError
			if !errors.As(err, &oe) || oe.Feature != tc.wantFeature {
				t.Errorf("Offloadable = %#v, want an *OffloadError for feature %v", err, tc.wantFeature)
			}
			if errors.Is(err, kernel.ErrNotSupported) != tc.wantNotSupp {
				t.Errorf("Offloadable = %v: matches ErrNotSupported %v, want %v", err, !tc.wantNotSupp, tc.wantNotSupp)
			}
			if !tc.wantNotSupp && !errors.Is(err, unix.EMFILE) {
				t.Errorf("Offloadable = %v, want the probe's own error", err)
			}
		})
	}
}
