// Package keyschedule derives TLS record protection keys from the secrets
// that crypto/tls reports through Config.KeyLogWriter.
//
// For TLS 1.3 the input is an application traffic secret and the derivation
// is HKDF-Expand-Label (RFC 8446, Section 7). For TLS 1.2 the input is the
// master secret plus both hello randoms and the derivation is the PRF key
// expansion (RFC 5246, Section 6.3).
//
// The package performs no I/O and keeps no state beyond the values it is
// handed; it only covers the AEAD cipher suites that both crypto/tls can
// negotiate and the Linux kernel TLS implementation can offload.
package keyschedule

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/tls"
	"errors"
	"fmt"

	// Register the hash functions referenced by Suite.Hash, so that
	// crypto.Hash.New does not panic for them.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"golang.org/x/crypto/chacha20poly1305"
)

// A Suite describes the record protection parameters of one cipher suite at
// one protocol version.
//
// Suites are obtained from Lookup or Suites and must not be modified.
type Suite struct {
	// ID is the cipher suite identifier, as in crypto/tls.
	ID uint16
	// Name is the IANA name of the suite, as returned by tls.CipherSuiteName.
	Name string
	// Version is tls.VersionTLS12 or tls.VersionTLS13. It is also the
	// version the Linux kernel's struct tls_crypto_info takes
	// (TLS_1_2_VERSION and TLS_1_3_VERSION are the wire versions).
	Version uint16
	// KeyLen is the length in bytes of the AEAD key.
	KeyLen int
	// FixedIVLen is the length in bytes of the per-direction IV produced by
	// the key schedule. It is 12 for every TLS 1.3 suite and for the TLS 1.2
	// ChaCha20-Poly1305 suites, whose nonce is that IV XORed with the
	// sequence number (RFC 8446, Section 5.3; RFC 7905, Section 2). It is 4
	// for the TLS 1.2 AES-GCM suites, where it is only the implicit salt and
	// the remaining 8 nonce bytes travel explicitly in each record
	// (RFC 5288, Section 3).
	FixedIVLen int
	// Hash is the hash function of the suite: the HKDF hash for TLS 1.3,
	// the PRF hash for TLS 1.2 (RFC 5246, Section 5).
	Hash crypto.Hash
	// KernelCipher is the Linux kernel's TLS_CIPHER_* value for the
	// suite's AEAD and key length (include/uapi/linux/tls.h): with
	// Version, what the kernel must support to take the suite's records.
	KernelCipher uint16

	aead func(key []byte) (cipher.AEAD, error)
}

// NewAEAD returns the suite's AEAD keyed with key, which must be KeyLen bytes
// long. The AEAD takes the full 12-byte nonce; building that nonce from the
// IV and the sequence number is the caller's job, because it differs between
// TLS 1.2 and TLS 1.3.
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if s.aead == nil {
		return nil, errors.New("keyschedule: suite was not obtained from Lookup")
	}
	if len(key) != s.KeyLen {
		return nil, fmt.Errorf("keyschedule: %s needs a %d-byte key, got %d bytes", s.Name, s.KeyLen, len(key))
	}
	return s.aead(key)
}

func newAESGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func newChaCha20Poly1305(key []byte) (cipher.AEAD, error) {
	return chacha20poly1305.New(key)
}

// The kernel's TLS_CIPHER_* values for the suites below. They are fixed
// ABI, and numbers here rather than kernel.Cipher on purpose: this
// package is pure (no I/O, no system calls), so the dependency runs the
// other way. The kernel package, a thin syscall layer, imports this one
// to lay a suite's keys out as the kernel takes them; a test there checks
// that these numbers are its Cipher constants.
const (
	kernelAESGCM128        = 51 // TLS_CIPHER_AES_GCM_128
	kernelAESGCM256        = 52 // TLS_CIPHER_AES_GCM_256
	kernelChaCha20Poly1305 = 54 // TLS_CIPHER_CHACHA20_POLY1305
)

func tls13Suite(id uint16, keyLen int, h crypto.Hash, aead func([]byte) (cipher.AEAD, error), kc uint16) *Suite {
	return &Suite{ID: id, Name: tls.CipherSuiteName(id), Version: tls.VersionTLS13,
		KeyLen: keyLen, FixedIVLen: 12, Hash: h, KernelCipher: kc, aead: aead}
}

func tls12Suite(id uint16, keyLen, ivLen int, h crypto.Hash, aead func([]byte) (cipher.AEAD, error), kc uint16) *Suite {
	return &Suite{ID: id, Name: tls.CipherSuiteName(id), Version: tls.VersionTLS12,
		KeyLen: keyLen, FixedIVLen: ivLen, Hash: h, KernelCipher: kc, aead: aead}
}

// suites is the intersection of what crypto/tls negotiates and what the
// kernel's TLS ULP accepts: the one table of what ktls can offload, and
// with which of the kernel's ciphers. CBC suites are left out on purpose:
// kernel TLS does not implement MAC-then-encrypt.
var suites = []*Suite{
	tls13Suite(tls.TLS_AES_128_GCM_SHA256, 16, crypto.SHA256, newAESGCM, kernelAESGCM128),
	tls13Suite(tls.TLS_AES_256_GCM_SHA384, 32, crypto.SHA384, newAESGCM, kernelAESGCM256),
	tls13Suite(tls.TLS_CHACHA20_POLY1305_SHA256, 32, crypto.SHA256, newChaCha20Poly1305, kernelChaCha20Poly1305),

	tls12Suite(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256, newAESGCM, kernelAESGCM128),
	tls12Suite(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256, newAESGCM, kernelAESGCM128),
	tls12Suite(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384, newAESGCM, kernelAESGCM256),
	tls12Suite(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384, newAESGCM, kernelAESGCM256),
	tls12Suite(tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 32, 12, crypto.SHA256, newChaCha20Poly1305, kernelChaCha20Poly1305),
	tls12Suite(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, 32, 12, crypto.SHA256, newChaCha20Poly1305, kernelChaCha20Poly1305),
	tls12Suite(tls.TLS_RSA_WITH_AES_128_GCM_SHA256, 16, 4, crypto.SHA256, newAESGCM, kernelAESGCM128),
	tls12Suite(tls.TLS_RSA_WITH_AES_256_GCM_SHA384, 32, 4, crypto.SHA384, newAESGCM, kernelAESGCM256),
}

// Lookup returns the suite with the given protocol version and cipher suite
// ID, as reported by tls.ConnectionState. It reports false for suites that
// cannot be offloaded, such as the CBC suites, and for version and ID pairs
// that do not belong together.
func Lookup(version, id uint16) (*Suite, bool) {
	for _, s := range suites {
		if s.Version == version && s.ID == id {
			return s, true
		}
	}
	return nil, false
}

// Suites returns every suite that Lookup knows, TLS 1.3 suites first.
// The returned slice is a fresh copy and may be modified; the suites it
// points to may not.
func Suites() []*Suite {
	return append([]*Suite(nil), suites...)
}

// TrafficKeys holds the record protection key and IV of one direction of a
// connection.
type TrafficKeys struct {
	Key []byte
	IV  []byte
}

// Zero overwrites the key and IV with zeros. The slices keep their length,
// so that a stale copy is visibly wrong rather than silently shorter.
func (k TrafficKeys) Zero() {
	clear(k.Key)
	clear(k.IV)
}
