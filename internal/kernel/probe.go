package kernel

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// A Feature is a kernel capability that ktls can use, found by probing the
// running kernel rather than by reading its version: distributions
// backport features, and configurations leave them out.
type Feature struct {
	Name string
	// MinKernel is the first upstream release with the feature. Tests in
	// the lab use it to tell a missing feature from a broken probe.
	MinKernel string

	probe func() error
	mu    sync.Mutex               // serializes probes
	known atomic.Pointer[definite] // set once the kernel has answered
}

// definite is a probe's answer from the kernel itself: nil, or an error
// matching ErrNotSupported.
type definite struct{ err error }

// Check probes the kernel and returns nil when the feature works, an error
// matching ErrNotSupported when the kernel lacks it, or another error when
// the probe itself could not run (EMFILE, ENOMEM, EPERM on the socket...).
//
// Only the kernel's answer is cached, for the life of the process, as
// cilium/ebpf's feature probes do: an inconclusive probe says nothing about
// the kernel, and caching it would turn a moment of file descriptor
// exhaustion into "unsupported" until restart. The next Check probes again.
func (f *Feature) Check() error {
	if d := f.known.Load(); d != nil {
		return d.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.known.Load(); d != nil {
		return d.err
	}
	err := f.probe()
	if err != nil && !errors.Is(err, ErrNotSupported) {
		return fmt.Errorf("kernel: could not probe for %s: %w", f.Name, err)
	}
	f.known.Store(&definite{err})
	return err
}

// Known returns the kernel's answer to an earlier Check, without probing:
// known is false until a Check got one (an inconclusive probe is none).
func (f *Feature) Known() (known bool, err error) {
	if d := f.known.Load(); d != nil {
		return true, d.err
	}
	return false, nil
}

func (f *Feature) unsupported(reason string) error {
	return &UnsupportedError{Feature: f.Name, MinKernel: f.MinKernel, Release: release(), Reason: reason}
}

// release is the running kernel's, as uname -r prints it.
var release = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Features of the kernel's TLS layer.
var (
	// FeatureULP is the "tls" upper layer protocol on TCP sockets (Linux 4.13,
	// CONFIG_TLS).
	FeatureULP = &Feature{Name: "kernel TLS (the tls ULP)", MinKernel: "4.13"}
	// FeatureTXZerocopyRO is TLS_TX_ZEROCOPY_RO (Linux 5.19).
	FeatureTXZerocopyRO = &Feature{Name: "TLS_TX_ZEROCOPY_RO", MinKernel: "5.19"}
	// FeatureRXExpectNoPad is TLS_RX_EXPECT_NO_PAD (Linux 6.0).
	FeatureRXExpectNoPad = &Feature{Name: "TLS_RX_EXPECT_NO_PAD", MinKernel: "6.0"}
	// FeatureRekey is installing new TLS 1.3 keys on a socket that has some, for
	// KeyUpdate (Linux 6.14).
	FeatureRekey = &Feature{Name: "TLS 1.3 rekey (KeyUpdate)", MinKernel: "6.14"}
)

func init() {
	FeatureULP.probe = probeULP
	FeatureTXZerocopyRO.probe = probeTXZerocopyRO
	FeatureRXExpectNoPad.probe = probeRXExpectNoPad
	FeatureRekey.probe = probeRekey
}

var (
	cipherFeaturesMu sync.Mutex
	cipherFeatures   = map[[3]uint16]*Feature{}
)

// CipherFeature is the feature of installing keys for one protocol
// version and cipher in one direction.
func CipherFeature(version uint16, c Cipher, dir Direction) *Feature {
	cipherFeaturesMu.Lock()
	defer cipherFeaturesMu.Unlock()
	key := [3]uint16{version, uint16(c), uint16(dir)}
	if f, ok := cipherFeatures[key]; ok {
		return f
	}
	f := &Feature{
		Name:      fmt.Sprintf("%s %v %v", tls.VersionName(version), c, dir),
		MinKernel: cipherMinKernel(version, c, dir),
	}
	f.probe = func() error { return probeCipher(f, version, c, dir) }
	cipherFeatures[key] = f
	return f
}

// cipherMinKernel is the first release with every part of the combination:
// TX in 4.13, RX in 4.17, AES-256-GCM and TLS 1.3 in 5.1, AES-128-CCM in
// 5.2, ChaCha20-Poly1305 in 5.11, SM4 in 5.16, ARIA in 6.1.
func cipherMinKernel(version uint16, c Cipher, dir Direction) string {
	v := "4.13"
	if dir == RX {
		v = "4.17"
	}
	if version == VersionTLS13 || c == CipherAESGCM256 {
		v = "5.1"
	}
	switch c {
	case CipherAESCCM128:
		v = maxRelease(v, "5.2")
	case CipherChaCha20Poly1305:
		v = "5.11"
	case CipherSM4GCM, CipherSM4CCM:
		v = "5.16"
	case CipherARIAGCM128, CipherARIAGCM256:
		v = "6.1"
	}
	return v
}

func maxRelease(a, b string) string {
	if CompareRelease(a, b) >= 0 {
		return a
	}
	return b
}

// CompareRelease compares two kernel releases such as "6.1.0-56-amd64" and
// "6.14" by their numeric major.minor.patch prefix.
func CompareRelease(a, b string) int {
	pa, pb := releaseNumbers(a), releaseNumbers(b)
	for i := range pa {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func releaseNumbers(r string) [3]int {
	var out [3]int
	i := 0
	for _, c := range r {
		switch {
		case c >= '0' && c <= '9':
			out[i] = out[i]*10 + int(c-'0')
		case c == '.' && i < 2:
			i++
		default:
			return out
		}
	}
	return out
}
