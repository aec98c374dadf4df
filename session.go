package ktls

import (
	"encoding/binary"
	"errors"
)

// masterSecretLen is the length of a TLS 1.2 master secret (RFC 5246,
// Section 8.1).
const masterSecretLen = 48

// sessionSecret is what ktls reads from an encoded tls.SessionState: the
// version and cipher suite of the session, and its secret (the master
// secret of a TLS 1.2 session).
type sessionSecret struct {
	version, suite uint16
	secret         []byte // aliases the encoding
}

var errSessionEncoding = errors.New("ktls: the resumed session's encoding is not one ktls can read")

// parseSessionSecret reads the secret from the start of a session as
// tls.SessionState.Bytes encodes it. crypto/tls calls that encoding opaque
// and free to change between Go versions, so only the fixed fields before
// the secret are read, and every length is checked against the input;
// whatever comes after the secret is not looked at. The result is a claim,
// not a fact: keys derived from it are checked against the records
// crypto/tls wrote before they are used.
//
// The layout, in the notation of RFC 8446, Section 3 (from the comment on
// tls.SessionState, Go 1.21 to 1.26):
//
//	uint16 version;
//	uint8  type;            /* 1 server, 2 client */
//	uint16 cipher_suite;
//	uint64 created_at;
//	opaque secret<1..2^8-1>;
//	...
func parseSessionSecret(b []byte) (sessionSecret, error) {
	const fixed = 2 + 1 + 2 + 8
	if len(b) < fixed+1 {
		return sessionSecret{}, errSessionEncoding
	}
	s := sessionSecret{
		version: binary.BigEndian.Uint16(b[0:2]),
		suite:   binary.BigEndian.Uint16(b[3:5]),
	}
	if typ := b[2]; typ != 1 && typ != 2 {
		return sessionSecret{}, errSessionEncoding
	}
	n := int(b[fixed])
	rest := b[fixed+1:]
	if n == 0 || n > len(rest) {
		return sessionSecret{}, errSessionEncoding
	}
	s.secret = rest[:n:n]
	return s, nil
}
