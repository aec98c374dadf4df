package record

// Handshake message types that can arrive after the handshake
// (RFC 8446, Section 4; RFC 5246, Section 7.4).
const (
	// MsgHelloRequest is the TLS 1.2 server's renegotiation request.
	MsgHelloRequest uint8 = 0
	// MsgClientHello after the handshake is a TLS 1.2 client's attempt
	// to renegotiate.
	MsgClientHello uint8 = 1
	// MsgNewSessionTicket carries a TLS 1.3 resumption ticket
	// (RFC 8446, Section 4.6.1).
	MsgNewSessionTicket uint8 = 4
	// MsgKeyUpdate announces a TLS 1.3 key change (RFC 8446, Section 4.6.3).
	MsgKeyUpdate uint8 = 24
)

const (
	handshakeHeaderLen = 4
	// maxHandshake bounds the body length a peer can make us buffer. It is
	// the limit crypto/tls applies, so nothing that crypto/tls would have
	// accepted during the handshake is refused afterwards.
	maxHandshake = 1 << 16
)

// A HandshakeMsg is one handshake message, without its 4-byte header.
type HandshakeMsg struct {
	Type uint8
	Body []byte
}

// ParseHandshake splits b, the concatenated plaintext of one or more
// handshake records, into complete messages. Handshake messages may be
// split across records and records may hold several messages, so the bytes
// of a trailing incomplete message are returned in rest, to be prefixed to
// the next record's plaintext.
//
// Message bodies alias b. A declared length over 64 KiB is an error of type
// *Error, so that a peer cannot make the caller buffer without limit.
func ParseHandshake(b []byte) (msgs []HandshakeMsg, rest []byte, err error) {
	for len(b) >= handshakeHeaderLen {
		n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if n > maxHandshake {
			return msgs, b, errorf(AlertDecodeError, "handshake message of %d bytes exceeds %d", n, maxHandshake)
		}
		if len(b) < handshakeHeaderLen+n {
			break
		}
		msgs = append(msgs, HandshakeMsg{Type: b[0], Body: b[handshakeHeaderLen : handshakeHeaderLen+n : handshakeHeaderLen+n]})
		b = b[handshakeHeaderLen+n:]
	}
	return msgs, b, nil
}

// KeyUpdateRequest values (RFC 8446, Section 4.6.3).
const (
	keyUpdateNotRequested = 0
	keyUpdateRequested    = 1
)

// ParseKeyUpdate parses the body of a KeyUpdate message and reports whether
// the peer asked for a KeyUpdate in return. A body that is not exactly one
// byte is a decode_error; a byte other than 0 or 1 is an illegal_parameter
// (RFC 8446, Section 4.6.3). Errors are of type *Error.
func ParseKeyUpdate(body []byte) (updateRequested bool, err error) {
	if len(body) != 1 {
		return false, errorf(AlertDecodeError, "KeyUpdate body of %d bytes, want 1", len(body))
	}
	switch body[0] {
	case keyUpdateNotRequested:
		return false, nil
	case keyUpdateRequested:
		return true, nil
	}
	return false, errorf(AlertIllegalParameter, "KeyUpdate request_update value %d", body[0])
}

// MarshalKeyUpdate returns a complete KeyUpdate handshake message, header
// included, ready to be sealed as a handshake record.
func MarshalKeyUpdate(requested bool) []byte {
	msg := []byte{MsgKeyUpdate, 0, 0, 1, keyUpdateNotRequested}
	if requested {
		msg[4] = keyUpdateRequested
	}
	return msg
}
