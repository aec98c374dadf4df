package record

import (
	"crypto/cipher"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ktlsgo/ktls/internal/keyschedule"
)

const (
	// recordVersion is the legacy_record_version of every protected record,
	// in TLS 1.2 and TLS 1.3 alike (RFC 8446, Section 5.1).
	recordVersion = tls.VersionTLS12
	// explicitNonceLen is the per-record part of the TLS 1.2 AES-GCM nonce
	// (RFC 5288, Section 3).
	explicitNonceLen = 8
	nonceLen         = 12
)

// A Protector seals or opens the records of one direction of a connection
// with one set of traffic keys, tracking the implicit 64-bit sequence
// number. A connection needs two: one with the keys it writes with and one
// with the keys it reads with.
//
// A Protector is not safe for concurrent use.
type Protector struct {
	version uint16
	aead    cipher.AEAD
	// iv is the full 12-byte IV that the sequence number is XORed into
	// (TLS 1.3, and TLS 1.2 ChaCha20-Poly1305), or the 4-byte salt that
	// precedes the explicit nonce (TLS 1.2 AES-GCM).
	iv        []byte
	explicit  bool
	seq       uint64
	exhausted bool
}

// NewProtector returns a Protector for suite s using keys, whose next record
// has sequence number seq. The IV is copied; the AEAD keeps its own expanded
// key schedule, so the caller may zero keys afterwards.
func NewProtector(s *keyschedule.Suite, keys keyschedule.TrafficKeys, seq uint64) (*Protector, error) {
	if s == nil {
		return nil, errors.New("record: nil suite")
	}
	if len(keys.IV) != s.FixedIVLen {
		return nil, fmt.Errorf("record: %s needs a %d-byte IV, got %d bytes", s.Name, s.FixedIVLen, len(keys.IV))
	}
	aead, err := s.NewAEAD(keys.Key)
	if err != nil {
		return nil, err
	}
	p := &Protector{
		version: s.Version,
		aead:    aead,
		iv:      append([]byte(nil), keys.IV...),
		seq:     seq,
	}
	switch {
	case aead.NonceSize() != nonceLen:
		return nil, fmt.Errorf("record: %s has a %d-byte nonce, want %d", s.Name, aead.NonceSize(), nonceLen)
	case s.Version == tls.VersionTLS12 && len(p.iv) == nonceLen-explicitNonceLen:
		p.explicit = true
	case len(p.iv) != nonceLen:
		return nil, fmt.Errorf("record: %s has an unsupported %d-byte IV", s.Name, len(p.iv))
	}
	return p, nil
}

// Seq returns the sequence number of the next record to be sealed or opened.
func (p *Protector) Seq() uint64 { return p.seq }

// Seal protects plaintext as one record of the given content type and
// returns the complete record, header included, in a new slice. It advances
// the sequence number.
//
// In TLS 1.3 the content type travels inside the encryption: the outer
// header says application_data, version 0x0303 (RFC 8446, Section 5.2).
// In TLS 1.2 with AES-GCM the explicit nonce is the sequence number, as
// crypto/tls and the Linux kernel send it.
//
// Seal does not enforce MaxPlaintext, so that tests can build the oversized
// records a hostile peer would send; callers producing real traffic must
// fragment. It panics if the record cannot be represented at all, or if the
// sequence number is exhausted: reusing a nonce would be far worse.
func (p *Protector) Seal(contentType uint8, plaintext []byte) []byte {
	return p.SealPadded(contentType, plaintext, 0)
}

// SealPadded is like Seal but, in TLS 1.3, appends padLen zero bytes after
// the inner content type (RFC 8446, Section 5.4). It panics if padLen is
// not zero for TLS 1.2, which has no padding for AEAD ciphers.
func (p *Protector) SealPadded(contentType uint8, plaintext []byte, padLen int) []byte {
	if padLen < 0 || padLen > 0 && p.version != tls.VersionTLS13 {
		panic("record: invalid padding length")
	}
	if p.exhausted {
		panic("record: sequence number exhausted")
	}

	prefix := HeaderLen
	if p.explicit {
		prefix += explicitNonceLen
	}
	inner := len(plaintext)
	if p.version == tls.VersionTLS13 {
		inner += 1 + padLen
	}
	payloadLen := prefix - HeaderLen + inner + p.aead.Overhead()
	if payloadLen > 0xffff {
		panic("record: record too long for its length field")
	}

	out := make([]byte, prefix, prefix+inner+p.aead.Overhead())
	outerType := contentType
	if p.version == tls.VersionTLS13 {
		outerType = TypeApplicationData
	}
	Header{Type: outerType, Version: recordVersion, Length: payloadLen}.Marshal(out)

	nonce := p.nonce()
	var aad []byte
	if p.version == tls.VersionTLS13 {
		// The AAD is the record header itself (RFC 8446, Section 5.2).
		aad = out[:HeaderLen]
	} else {
		copy(out[HeaderLen:], nonce[len(p.iv):])
		aad = p.additionalData(contentType, len(plaintext))
	}

	out = append(out, plaintext...)
	if p.version == tls.VersionTLS13 {
		out = append(out, contentType)
		out = append(out, make([]byte, padLen)...)
	}
	// Seal in place: the plaintext starts exactly where the ciphertext goes.
	out = p.aead.Seal(out[:prefix], nonce[:], out[prefix:], aad)
	p.advance()
	return out
}

// Open verifies and decrypts record, a complete record with its header,
// and returns its content type and plaintext. In TLS 1.3 the real content
// type is recovered from the end of the decrypted data, after the zero
// padding (RFC 8446, Section 5.4). The plaintext is a new slice; record is
// not modified.
//
// Open advances the sequence number only on success. Any error is fatal to
// the connection, since an unauthenticated record cannot be skipped; errors
// are of type *Error and name the alert to send.
func (p *Protector) Open(record []byte) (contentType uint8, plaintext []byte, err error) {
	if p.exhausted {
		return 0, nil, errorf(AlertInternalError, "sequence number exhausted")
	}
	h, err := ParseHeader(record)
	if err != nil {
		return 0, nil, err
	}
	if len(record) != HeaderLen+h.Length {
		return 0, nil, errorf(AlertDecodeError, "record is %d bytes, header says %d", len(record), HeaderLen+h.Length)
	}
	if h.Version != recordVersion {
		return 0, nil, errorf(AlertProtocolVersion, "protected record has version %#04x", h.Version)
	}
	if p.version == tls.VersionTLS13 {
		// The outer type of a protected TLS 1.3 record is always
		// application_data; a stray change_cipher_spec is the caller's
		// to drop before calling Open.
		if h.Type != TypeApplicationData {
			return 0, nil, errorf(AlertUnexpectedMessage, "TLS 1.3 record with outer content type %d", h.Type)
		}
		if h.Length > MaxCiphertextTLS13 {
			return 0, nil, errorf(AlertRecordOverflow, "record length %d exceeds %d", h.Length, MaxCiphertextTLS13)
		}
	} else if h.Type == TypeChangeCipherSpec {
		// ChangeCipherSpec is never protected with the keys it activates.
		return 0, nil, errorf(AlertUnexpectedMessage, "protected change_cipher_spec record")
	}

	payload := record[HeaderLen:]
	nonce := p.nonce()
	var aad []byte
	if p.version == tls.VersionTLS13 {
		aad = record[:HeaderLen]
	} else {
		n := len(payload) - p.aead.Overhead()
		if p.explicit {
			n -= explicitNonceLen
		}
		if n < 0 {
			return 0, nil, errorf(AlertBadRecordMAC, "record too short for its cipher")
		}
		if p.explicit {
			copy(nonce[len(p.iv):], payload[:explicitNonceLen])
			payload = payload[explicitNonceLen:]
		}
		aad = p.additionalData(h.Type, n)
	}
	if len(payload) < p.aead.Overhead() {
		return 0, nil, errorf(AlertBadRecordMAC, "record too short for its cipher")
	}

	plaintext, err = p.aead.Open(nil, nonce[:], payload, aad)
	if err != nil {
		// Say nothing more specific: RFC 8446, Section 5.2 and RFC 5246,
		// Section 7.2.2 give one alert for every decryption failure.
		return 0, nil, errorf(AlertBadRecordMAC, "record authentication failed")
	}

	contentType = h.Type
	if p.version == tls.VersionTLS13 {
		if len(plaintext) > MaxPlaintext+1 {
			return 0, nil, errorf(AlertRecordOverflow, "inner plaintext of %d bytes exceeds %d", len(plaintext), MaxPlaintext+1)
		}
		i := len(plaintext) - 1
		for i >= 0 && plaintext[i] == 0 {
			i--
		}
		if i < 0 {
			return 0, nil, errorf(AlertUnexpectedMessage, "record has no inner content type")
		}
		contentType, plaintext = plaintext[i], plaintext[:i]
		switch contentType {
		case TypeAlert, TypeHandshake, TypeApplicationData:
		default:
			return 0, nil, errorf(AlertUnexpectedMessage, "invalid inner content type %d", contentType)
		}
	}
	if len(plaintext) > MaxPlaintext {
		return 0, nil, errorf(AlertRecordOverflow, "plaintext of %d bytes exceeds %d", len(plaintext), MaxPlaintext)
	}
	p.advance()
	return contentType, plaintext, nil
}

// nonce returns the per-record nonce. For TLS 1.3 and TLS 1.2
// ChaCha20-Poly1305 it is the IV XORed with the left-padded sequence number
// (RFC 8446, Section 5.3; RFC 7905, Section 2). For TLS 1.2 AES-GCM it is
// the salt followed by the sequence number as explicit nonce; Open
// overwrites the latter with the nonce the record carries.
func (p *Protector) nonce() [nonceLen]byte {
	var n [nonceLen]byte
	copy(n[:], p.iv)
	if p.explicit {
		binary.BigEndian.PutUint64(n[len(p.iv):], p.seq)
		return n
	}
	x := binary.BigEndian.Uint64(n[nonceLen-8:]) ^ p.seq
	binary.BigEndian.PutUint64(n[nonceLen-8:], x)
	return n
}

// additionalData returns the TLS 1.2 AEAD additional data:
// seq_num + type + version + length of the plaintext (RFC 5246, Section 6.2.3.3).
func (p *Protector) additionalData(contentType uint8, plaintextLen int) []byte {
	var ad [13]byte
	binary.BigEndian.PutUint64(ad[:8], p.seq)
	ad[8] = contentType
	binary.BigEndian.PutUint16(ad[9:], recordVersion)
	binary.BigEndian.PutUint16(ad[11:], uint16(plaintextLen))
	return ad[:]
}

// advance moves to the next sequence number. Sequence numbers must not wrap
// (RFC 8446, Section 5.3; RFC 5246, Section 6.1), so after the last one the
// Protector refuses to work.
func (p *Protector) advance() {
	p.seq++
	if p.seq == 0 {
		p.exhausted = true
	}
}
