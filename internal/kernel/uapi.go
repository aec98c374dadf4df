package kernel

import (
	"encoding/binary"
	"fmt"
)

// Values from include/uapi/linux/tls.h and include/uapi/linux/tcp.h. They
// are fixed ABI; x/sys/unix has SOL_TLS and TCP_ULP but not the rest.
const (
	solTLS = 282 // SOL_TLS
	tcpULP = 31  // TCP_ULP

	optTX            = 1 // TLS_TX
	optRX            = 2 // TLS_RX
	optTXZerocopyRO  = 3 // TLS_TX_ZEROCOPY_RO, Linux 5.19
	optRXExpectNoPad = 4 // TLS_RX_EXPECT_NO_PAD, Linux 6.0
	optTXMaxPayload  = 5 // TLS_TX_MAX_PAYLOAD_LEN, Linux 6.19

	cmsgSetRecordType = 1 // TLS_SET_RECORD_TYPE
	cmsgGetRecordType = 2 // TLS_GET_RECORD_TYPE
)

// Protocol versions, as the kernel encodes them.
const (
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// A Cipher is one of the kernel's TLS_CIPHER_* values.
type Cipher uint16

// The ciphers the kernel knows. crypto/tls negotiates only the AES-GCM and
// ChaCha20-Poly1305 ones.
const (
	CipherAESGCM128        Cipher = 51
	CipherAESGCM256        Cipher = 52
	CipherAESCCM128        Cipher = 53
	CipherChaCha20Poly1305 Cipher = 54
	CipherSM4GCM           Cipher = 55
	CipherSM4CCM           Cipher = 56
	CipherARIAGCM128       Cipher = 57
	CipherARIAGCM256       Cipher = 58
)

// cipherSizes are the field sizes of each tls12_crypto_info_* struct.
var cipherSizes = map[Cipher]struct{ iv, key, salt, recSeq int }{
	CipherAESGCM128:        {8, 16, 4, 8},
	CipherAESGCM256:        {8, 32, 4, 8},
	CipherAESCCM128:        {8, 16, 4, 8},
	CipherChaCha20Poly1305: {12, 32, 0, 8},
	CipherSM4GCM:           {8, 16, 4, 8},
	CipherSM4CCM:           {8, 16, 4, 8},
	CipherARIAGCM128:       {8, 16, 4, 8},
	CipherARIAGCM256:       {8, 32, 4, 8},
}

func (c Cipher) String() string {
	switch c {
	case CipherAESGCM128:
		return "AES-128-GCM"
	case CipherAESGCM256:
		return "AES-256-GCM"
	case CipherAESCCM128:
		return "AES-128-CCM"
	case CipherChaCha20Poly1305:
		return "ChaCha20-Poly1305"
	case CipherSM4GCM:
		return "SM4-GCM"
	case CipherSM4CCM:
		return "SM4-CCM"
	case CipherARIAGCM128:
		return "ARIA-128-GCM"
	case CipherARIAGCM256:
		return "ARIA-256-GCM"
	}
	return fmt.Sprintf("cipher(%d)", uint16(c))
}

// A Direction is TX (records we send) or RX (records we receive).
type Direction int

const (
	TX Direction = optTX
	RX Direction = optRX
)

func (d Direction) String() string {
	if d == TX {
		return "TX"
	}
	return "RX"
}

// CryptoInfo is the key material for one direction, laid out by MarshalTo
// as the kernel's struct tls12_crypto_info_* (used for TLS 1.3 too).
// NewCryptoInfo fills it from a suite's traffic keys, and says what goes
// in each field; RecSeq is the sequence number of the next record,
// big-endian.
type CryptoInfo struct {
	Version uint16
	Cipher  Cipher
	IV      []byte
	Key     []byte
	Salt    []byte
	RecSeq  [8]byte
}

// MaxCryptoInfoLen is the size of the largest tls12_crypto_info_* struct
// (AES-256-GCM and ChaCha20-Poly1305).
const MaxCryptoInfoLen = 4 + 12 + 32 + 4 + 8

// MarshalTo writes the struct the kernel expects into b, which must hold
// MaxCryptoInfoLen bytes, and returns its length. It writes nowhere else:
// the caller owns the only copy of the keys it makes, and zeroes it once
// the kernel has them.
func (c *CryptoInfo) MarshalTo(b []byte) (int, error) {
	sz, ok := cipherSizes[c.Cipher]
	if !ok {
		return 0, fmt.Errorf("kernel: unknown cipher %v", c.Cipher)
	}
	if len(c.IV) != sz.iv || len(c.Key) != sz.key || len(c.Salt) != sz.salt {
		return 0, fmt.Errorf("kernel: %v takes a %d-byte IV, %d-byte key and %d-byte salt, not %d, %d and %d",
			c.Cipher, sz.iv, sz.key, sz.salt, len(c.IV), len(c.Key), len(c.Salt))
	}
	n := 4 + sz.iv + sz.key + sz.salt + sz.recSeq
	if len(b) < n {
		return 0, fmt.Errorf("kernel: a %d-byte buffer for a %d-byte %v crypto info", len(b), n, c.Cipher)
	}
	binary.NativeEndian.PutUint16(b[0:], c.Version)
	binary.NativeEndian.PutUint16(b[2:], uint16(c.Cipher))
	i := 4
	i += copy(b[i:], c.IV)
	i += copy(b[i:], c.Key)
	i += copy(b[i:], c.Salt)
	i += copy(b[i:], c.RecSeq[:])
	return i, nil
}

// Zero overwrites the key material and clears every field, so that what
// is left can't be installed by mistake.
func (c *CryptoInfo) Zero() {
	clear(c.IV)
	clear(c.Key)
	clear(c.Salt)
	*c = CryptoInfo{}
}

// SeqBytes encodes a record sequence number as the kernel stores it.
func SeqBytes(seq uint64) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b
}
