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

// keyUpdateLen is the length of a KeyUpdate's body (RFC 8446, Section
// 4.6.3).
const keyUpdateLen = 1

// MaxNewSessionTicket is the longest ticket message buffered: 64 KiB, as
// crypto/tls buffers for any handshake message, though the syntax allows
// twice that (RFC 8446, Section 4.6.1).
const MaxNewSessionTicket = maxHandshake

// PostHandshakeTLS13 is the HandshakeReader.Limit of a TLS 1.3 endpoint
// once the handshake is over (RFC 8446, Section 4.6): a client takes
// NewSessionTicket and KeyUpdate, a server only KeyUpdate; anything else
// is an unexpected_message. A KeyUpdate whose body isn't one byte is a
// decode_error. Tickets are bounded by the reader's 64 KiB.
func PostHandshakeTLS13(isClient bool) func(typ uint8, n int) error {
	return func(typ uint8, n int) error {
		switch {
		case typ == MsgKeyUpdate:
			if n != keyUpdateLen {
				return errorf(AlertDecodeError, "KeyUpdate body of %d bytes, want 1", n)
			}
			return nil
		case typ == MsgNewSessionTicket && isClient:
			return nil
		}
		return errorf(AlertUnexpectedMessage, "unexpected handshake message of type %d after the handshake", typ)
	}
}

// A HandshakeReader reassembles post-handshake messages from the
// plaintext of successive handshake records, in time and memory linear in
// what it is given, as crypto/tls does: it reads a message's 4-byte
// header, asks Limit whether that type and length are acceptable, and only
// then takes the body, up to the length announced. A body that lies whole
// in one record is returned in place; one that spans records is copied,
// once, into a buffer that grows as it arrives, never past the length
// Limit accepted.
//
// The first error is sticky.
type HandshakeReader struct {
	// Limit is called once per message, as soon as its header is
	// complete and before any of its body is buffered, with the type and
	// the body length announced. A non-nil error refuses the message.
	// A body over 64 KiB is a decode_error before Limit is asked, as in
	// ParseHandshake: no type is buffered past what crypto/tls buffers.
	Limit func(typ uint8, n int) error

	hdr    [handshakeHeaderLen]byte
	nhdr   int    // bytes of hdr read
	want   int    // body length announced, once nhdr == 4
	body   []byte // the body so far, while it spans records
	err    error
	copied int
}

// Next takes p, the rest of a handshake record's plaintext. When p
// completes a message, Next returns it, with ok, and the bytes of p after
// it, for the next call. Otherwise it keeps what p holds of an unfinished
// message and returns !ok with nothing left. The body aliases p or the
// reader's buffer, and is valid until the next call.
func (r *HandshakeReader) Next(p []byte) (msg HandshakeMsg, rest []byte, ok bool, err error) {
	if r.err != nil {
		return HandshakeMsg{}, nil, false, r.err
	}
	if r.nhdr < handshakeHeaderLen {
		k := copy(r.hdr[r.nhdr:], p)
		r.nhdr += k
		r.copied += k
		p = p[k:]
		if r.nhdr < handshakeHeaderLen {
			return HandshakeMsg{}, nil, false, nil
		}
		r.want = int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
		if r.want > maxHandshake {
			// Whatever its type, as ParseHandshake has it.
			r.err = errorf(AlertDecodeError, "handshake message of %d bytes exceeds %d", r.want, maxHandshake)
		} else if r.Limit != nil {
			r.err = r.Limit(r.hdr[0], r.want)
		}
		if r.err != nil {
			return HandshakeMsg{}, nil, false, r.err
		}
	}
	typ := r.hdr[0]
	if r.body == nil && len(p) >= r.want {
		// The whole body is in this record: no copy.
		r.nhdr = 0
		return HandshakeMsg{Type: typ, Body: p[:r.want:r.want]}, p[r.want:], true, nil
	}
	k := min(r.want-len(r.body), len(p))
	if need := len(r.body) + k; need > cap(r.body) {
		// Grow geometrically, so the copies add up to less than twice
		// the body, but never past the length announced.
		b := make([]byte, len(r.body), min(r.want, max(need, 2*cap(r.body), 512)))
		r.copied += copy(b, r.body)
		r.body = b
	}
	r.body = append(r.body, p[:k]...)
	r.copied += k
	if len(r.body) < r.want {
		return HandshakeMsg{}, nil, false, nil
	}
	body := r.body[:r.want:r.want]
	r.body, r.nhdr = nil, 0
	return HandshakeMsg{Type: typ, Body: body}, p[k:], true, nil
}

// Pending reports whether part of a message has been read.
func (r *HandshakeReader) Pending() bool { return r.nhdr > 0 }

// Buffered returns how many bytes of an unfinished message it holds.
func (r *HandshakeReader) Buffered() int { return r.nhdr + len(r.body) }

// Copied returns how many bytes the reader has copied so far, into its
// own buffers or from one to the next as a body grows: less than three
// times the bytes it was given.
func (r *HandshakeReader) Copied() int { return r.copied }

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
