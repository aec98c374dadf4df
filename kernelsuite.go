package ktls

import (
	"crypto/tls"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// kernelCipher maps a suite to the kernel's cipher.
func kernelCipher(s *keyschedule.Suite) kernel.Cipher {
	switch {
	case s.ID == tls.TLS_CHACHA20_POLY1305_SHA256 ||
		s.ID == tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 ||
		s.ID == tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
		return kernel.CipherChaCha20Poly1305
	case s.KeyLen == 32:
		return kernel.CipherAESGCM256
	}
	return kernel.CipherAESGCM128
}

func kernelVersion(s *keyschedule.Suite) uint16 {
	if s.Version == tls.VersionTLS13 {
		return kernel.VersionTLS13
	}
	return kernel.VersionTLS12
}

// cryptoInfo lays out keys as the kernel wants them.
func cryptoInfo(s *keyschedule.Suite, k keyschedule.TrafficKeys, seq uint64) *kernel.CryptoInfo {
	info := &kernel.CryptoInfo{
		Version: kernelVersion(s),
		Cipher:  kernelCipher(s),
		Key:     append([]byte(nil), k.Key...),
		RecSeq:  kernel.SeqBytes(seq),
	}
	switch {
	case info.Cipher == kernel.CipherChaCha20Poly1305:
		// The whole 12-byte nonce mask, XORed with the sequence number.
		info.IV = append([]byte(nil), k.IV...)
	case s.Version == tls.VersionTLS13:
		// The kernel keeps the 12-byte IV as a 4-byte salt and 8 bytes.
		info.Salt = append([]byte(nil), k.IV[:4]...)
		info.IV = append([]byte(nil), k.IV[4:12]...)
	default:
		// TLS 1.2 AES-GCM: the 4-byte implicit salt, and the explicit
		// nonce of the next record. The kernel sends IV as that nonce and
		// increments it per record. crypto/tls used the sequence number,
		// so continuing from it keeps nonces unique; starting at zero
		// would reuse the nonce of the Finished record, which breaks GCM.
		info.Salt = append([]byte(nil), k.IV...)
		s := kernel.SeqBytes(seq)
		info.IV = s[:]
	}
	return info
}
