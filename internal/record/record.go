// Package record implements the TLS record layer: the record header, AEAD
// record protection for TLS 1.2 (RFC 5246, Section 6.2; RFC 5288; RFC 7905)
// and TLS 1.3 (RFC 8446, Section 5), and the few post-handshake messages a
// kernel TLS connection has to handle in user space.
//
// The package performs no I/O. It works on whole records held in memory.
package record

import (
	"crypto/tls"
	"fmt"
)

// Content types (RFC 8446, Section 5.1).
const (
	TypeChangeCipherSpec uint8 = 20
	TypeAlert            uint8 = 21
	TypeHandshake        uint8 = 22
	TypeApplicationData  uint8 = 23
)

// Record size limits.
const (
	// HeaderLen is the length of the record header.
	HeaderLen = 5
	// MaxPlaintext is the largest plaintext fragment, 2^14 bytes
	// (RFC 8446, Section 5.1; RFC 5246, Section 6.2.1).
	MaxPlaintext = 1 << 14
	// MaxCiphertextTLS13 is the largest TLS 1.3 record payload
	// (RFC 8446, Section 5.2).
	MaxCiphertextTLS13 = 1<<14 + 256
	// MaxCiphertextTLS12 is the largest TLS 1.2 record payload
	// (RFC 5246, Section 6.2.3).
	MaxCiphertextTLS12 = 1<<14 + 2048
)

// Alert levels (RFC 5246, Section 7.2). TLS 1.3 ignores the level and
// treats every alert but close_notify and user_canceled as fatal.
const (
	AlertLevelWarning uint8 = 1
	AlertLevelFatal   uint8 = 2
)

// Alert descriptions (RFC 8446, Section 6) used by this module. The
// matching error values are tls.AlertError(description).
const (
	AlertCloseNotify       uint8 = 0
	AlertUnexpectedMessage uint8 = 10
	AlertBadRecordMAC      uint8 = 20
	AlertRecordOverflow    uint8 = 22
	AlertIllegalParameter  uint8 = 47
	AlertDecodeError       uint8 = 50
	AlertProtocolVersion   uint8 = 70
	AlertInternalError     uint8 = 80
	AlertUserCanceled      uint8 = 90
	AlertNoRenegotiation   uint8 = 100
)

// An Error reports input that a TLS receiver must reject, together with the
// alert it should send before closing the connection.
//
// Error unwraps to tls.AlertError(Alert), so callers can test for a specific
// alert with errors.Is and obtain it with errors.As.
type Error struct {
	Alert  uint8  // alert description, such as AlertBadRecordMAC
	Reason string // what was wrong, without any of the data
}

func (e *Error) Error() string { return "record: " + e.Reason }

// Unwrap returns the alert as a tls.AlertError.
func (e *Error) Unwrap() error { return tls.AlertError(e.Alert) }

func errorf(alert uint8, format string, args ...any) error {
	return &Error{Alert: alert, Reason: fmt.Sprintf(format, args...)}
}

// A Header is a parsed record header (RFC 8446, Section 5.1).
type Header struct {
	Type    uint8  // content type, such as TypeApplicationData
	Version uint16 // legacy_record_version; 0x0303 for protected records
	Length  int    // length of the payload that follows the header
}

// ParseHeader parses the header at the start of b, which must hold at least
// HeaderLen bytes. It rejects headers that no peer may send in any state: an
// unknown content type (unexpected_message), a major version other than 3
// (protocol_version) or a length above MaxCiphertextTLS12 (record_overflow).
// Limits that depend on the protocol version are left to Protector.Open.
// Errors are of type *Error.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errorf(AlertDecodeError, "short record header: %d bytes", len(b))
	}
	h := Header{
		Type:    b[0],
		Version: uint16(b[1])<<8 | uint16(b[2]),
		Length:  int(b[3])<<8 | int(b[4]),
	}
	switch h.Type {
	case TypeChangeCipherSpec, TypeAlert, TypeHandshake, TypeApplicationData:
	default:
		return Header{}, errorf(AlertUnexpectedMessage, "unknown content type %d", h.Type)
	}
	if h.Version>>8 != 3 {
		return Header{}, errorf(AlertProtocolVersion, "record version %#04x is not TLS", h.Version)
	}
	if h.Length > MaxCiphertextTLS12 {
		return Header{}, errorf(AlertRecordOverflow, "record length %d exceeds %d", h.Length, MaxCiphertextTLS12)
	}
	return h, nil
}

// Marshal writes the header into the first HeaderLen bytes of b. It panics
// if b is too short or Length does not fit the 16-bit length field.
func (h Header) Marshal(b []byte) {
	if h.Length < 0 || h.Length > 0xffff {
		panic("record: header length out of range")
	}
	_ = b[HeaderLen-1] // one bounds check for the five stores below
	b[0] = h.Type
	b[1] = byte(h.Version >> 8)
	b[2] = byte(h.Version)
	b[3] = byte(h.Length >> 8)
	b[4] = byte(h.Length)
}
