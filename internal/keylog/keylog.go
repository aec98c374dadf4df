// Package keylog parses the NSS key log format that crypto/tls writes to
// tls.Config.KeyLogWriter, and collects the secrets that kernel TLS needs.
//
// Each line has the form
//
//	<label> <client_random> <secret>
//
// where client_random is the 32-byte ClientHello.random and both values are
// hex encoded. Lines starting with '#' are comments. The format comes from
// NSS and is specified in draft-ietf-tls-keylogfile.
package keylog

import (
	"bytes"
	"encoding/hex"
	"errors"
)

// Labels written by crypto/tls.
const (
	// LabelClientRandom is the TLS 1.2 master secret (RFC 5246, Section 8.1).
	LabelClientRandom = "CLIENT_RANDOM"
	// LabelClientHandshake is client_handshake_traffic_secret (RFC 8446, Section 7.1).
	LabelClientHandshake = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
	// LabelServerHandshake is server_handshake_traffic_secret (RFC 8446, Section 7.1).
	LabelServerHandshake = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
	// LabelClientTraffic0 is client_application_traffic_secret_0 (RFC 8446, Section 7.1).
	LabelClientTraffic0 = "CLIENT_TRAFFIC_SECRET_0"
	// LabelServerTraffic0 is server_application_traffic_secret_0 (RFC 8446, Section 7.1).
	LabelServerTraffic0 = "SERVER_TRAFFIC_SECRET_0"
)

const (
	randomLen = 32
	// maxSecretLen bounds the secret field. The largest secret crypto/tls
	// logs is a SHA-384 traffic secret (48 bytes); 64 leaves room for
	// SHA-512 without letting a bogus line allocate without limit.
	maxSecretLen = 64
)

// ErrComment is returned by ParseLine for comment lines, which start with '#'.
var ErrComment = errors.New("keylog: comment line")

var sep = []byte{' '}

// An Entry is one parsed key log line.
type Entry struct {
	Label        string
	ClientRandom [32]byte
	Secret       []byte
}

// ParseLine parses one key log line, with or without its trailing newline.
//
// Parsing is strict, since the only expected writer is crypto/tls: exactly
// three fields separated by single spaces, a label of upper-case letters,
// digits and underscores, a client random of exactly 64 lower-case hex
// digits, and a non-empty secret of at most 64 bytes in lower-case hex.
// Whatever ParseLine accepts, AppendLine writes back byte for byte.
// Errors never quote the line, because it may hold a secret.
func ParseLine(line []byte) (Entry, error) {
	if len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
	}
	if len(line) > 0 && line[0] == '#' {
		return Entry{}, ErrComment
	}

	label, rest, ok := bytes.Cut(line, sep)
	if !ok {
		return Entry{}, errors.New("keylog: malformed line: want three space-separated fields")
	}
	random, secret, ok := bytes.Cut(rest, sep)
	if !ok {
		return Entry{}, errors.New("keylog: malformed line: want three space-separated fields")
	}
	if !validLabel(label) {
		return Entry{}, errors.New("keylog: malformed line: invalid label")
	}

	var e Entry
	e.Label = string(label)
	if len(random) != 2*randomLen || !validHex(random) {
		return Entry{}, errors.New("keylog: malformed line: client random is not 64 lower-case hex digits")
	}
	hex.Decode(e.ClientRandom[:], random)

	// validHex also rejects the separators, so a fourth field lands here.
	if len(secret) == 0 || len(secret)%2 != 0 || len(secret) > 2*maxSecretLen || !validHex(secret) {
		return Entry{}, errors.New("keylog: malformed line: secret is not 1 to 64 bytes of lower-case hex")
	}
	e.Secret = make([]byte, len(secret)/2)
	hex.Decode(e.Secret, secret)
	return e, nil
}

// AppendLine appends e to b in the canonical form that crypto/tls writes:
// lower-case hex and a trailing newline.
func (e Entry) AppendLine(b []byte) []byte {
	b = append(b, e.Label...)
	b = append(b, ' ')
	b = hex.AppendEncode(b, e.ClientRandom[:])
	b = append(b, ' ')
	b = hex.AppendEncode(b, e.Secret)
	return append(b, '\n')
}

func validLabel(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validHex reports whether b is made only of lower-case hex digits, the
// form crypto/tls writes. Checking up front also keeps hex.Decode's errors,
// which quote the offending byte, away from the caller.
func validHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
