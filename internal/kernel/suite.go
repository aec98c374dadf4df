package kernel

import (
	"crypto/tls"
	"fmt"

	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// This file is where the suite table (keyschedule.Suites) meets the
// kernel: how a suite's keys are laid out for it, and whether this kernel
// takes them. The dependency runs from here to keyschedule, which is pure
// and knows the kernel only by its fixed uapi numbers (Suite.Version and
// Suite.KernelCipher).

// NewCryptoInfo lays out one direction's traffic keys of suite s as the
// kernel takes them, for a first record with sequence number seq. The
// keys are copied: the caller zeroes the result once the kernel has them.
//
//   - ChaCha20-Poly1305, TLS 1.2 and 1.3: IV is the whole 12-byte nonce
//     mask, which the kernel XORs with the sequence number; no salt.
//   - AES-GCM, TLS 1.3: the same 12-byte mask, which the kernel keeps as
//     a 4-byte salt and 8 bytes of IV.
//   - AES-GCM, TLS 1.2: Salt is the 4-byte implicit part of the nonce, and
//     IV the explicit part of the next record's nonce, which the kernel
//     sends in the record and increments after each one. crypto/tls uses
//     the sequence number there, so continuing from it keeps every nonce
//     unique; starting at zero would reuse the nonce of the Finished
//     record under the same key, which breaks GCM.
func NewCryptoInfo(s *keyschedule.Suite, k keyschedule.TrafficKeys, seq uint64) *CryptoInfo {
	info := &CryptoInfo{
		Version: s.Version,
		Cipher:  Cipher(s.KernelCipher),
		Key:     append([]byte(nil), k.Key...),
		RecSeq:  SeqBytes(seq),
	}
	switch {
	case info.Cipher == CipherChaCha20Poly1305:
		info.IV = append([]byte(nil), k.IV...)
	case s.Version == VersionTLS13:
		info.Salt = append([]byte(nil), k.IV[:4]...)
		info.IV = append([]byte(nil), k.IV[4:12]...)
	default:
		info.Salt = append([]byte(nil), k.IV...)
		info.IV = append([]byte(nil), info.RecSeq[:]...)
	}
	return info
}

// Offloadable answers whether this kernel can take over, in direction
// dir, the records of a connection whose handshake negotiated version and
// cipherSuite (as tls.ConnectionState has them), and if not, why. It asks,
// in this order: the tls ULP (FeatureULP); whether the suite is one kernel
// TLS takes at all (keyschedule.Lookup); and the suite's version and
// cipher in that direction (CipherFeature). Probes are cached as
// Feature.Check caches them.
//
// It returns nil, or an *OffloadError: one that matches ErrNotSupported
// where the kernel (or kernel TLS) can't, and one that doesn't where a
// probe could not run, which says nothing about the kernel.
//
// The options of a connection don't enter into it: the optional socket
// options (FeatureTXZerocopyRO, FeatureRXExpectNoPad) are set where the
// kernel has them and never decide whether a direction is offloaded.
func Offloadable(version, cipherSuite uint16, dir Direction) error {
	return Probe((*Feature).Check).Offloadable(version, cipherSuite, dir)
}

// A Probe answers for a feature as Feature.Check does. Offloadable asks
// Check; a program that reports on a kernel of its own invention (a test's
// stand-in) asks its own Probe.
type Probe func(*Feature) error

// Offloadable is Offloadable, with each feature's answer from p.
func (p Probe) Offloadable(version, cipherSuite uint16, dir Direction) error {
	if err := p(FeatureULP); err != nil {
		return &OffloadError{Feature: FeatureULP, Err: err}
	}
	s, ok := keyschedule.Lookup(version, cipherSuite)
	if !ok {
		return &OffloadError{Err: fmt.Errorf("kernel: %s with %s: %w",
			tls.VersionName(version), tls.CipherSuiteName(cipherSuite), ErrNotSupported)}
	}
	f := CipherFeature(s.Version, Cipher(s.KernelCipher), dir)
	if err := p(f); err != nil {
		return &OffloadError{Feature: f, Err: err}
	}
	return nil
}

// An OffloadError is why the kernel can't offload a suite in one
// direction: Err, the answer of the feature that failed.
type OffloadError struct {
	// Feature is FeatureULP or the suite's CipherFeature; nil for a suite
	// that kernel TLS doesn't take (a CBC suite, say).
	Feature *Feature
	// Err is the probe's error: one matching ErrNotSupported, or why the
	// probe could not run.
	Err error
}

func (e *OffloadError) Error() string { return e.Err.Error() }
func (e *OffloadError) Unwrap() error { return e.Err }
