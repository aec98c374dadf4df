package keyschedule

import (
	"crypto"
	"crypto/hkdf"
	"crypto/tls"
	"errors"
	"fmt"
)

// ExpandLabel implements HKDF-Expand-Label from RFC 8446, Section 7.1,
// returning length bytes derived from secret with hash h. The "tls13 "
// prefix is added to label here; callers pass the bare label, such as "key".
//
// ExpandLabel panics if label or context do not fit their length-prefixed
// fields or if length exceeds what HKDF-Expand can produce, since those are
// programming errors rather than properties of the peer's input.
func ExpandLabel(h crypto.Hash, secret []byte, label string, context []byte, length int) []byte {
	const prefix = "tls13 "
	// RFC 8446 declares the label as opaque label<7..255>, so the prefix
	// alone is not a valid label.
	if len(label) == 0 || len(prefix)+len(label) > 255 {
		panic("keyschedule: invalid HKDF-Expand-Label label length")
	}
	if len(context) > 255 {
		panic("keyschedule: invalid HKDF-Expand-Label context length")
	}
	if length < 0 || length > 0xffff {
		panic("keyschedule: invalid HKDF-Expand-Label output length")
	}

	// struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
	info := make([]byte, 0, 2+1+len(prefix)+len(label)+1+len(context))
	info = append(info, byte(length>>8), byte(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)

	out, err := hkdf.Expand(h.New, secret, string(info), length)
	if err != nil {
		panic("keyschedule: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// HandshakeKeys derives the record protection key and IV from a TLS 1.3
// handshake traffic secret, client_handshake_traffic_secret or
// server_handshake_traffic_secret, as logged under
// CLIENT_HANDSHAKE_TRAFFIC_SECRET and SERVER_HANDSHAKE_TRAFFIC_SECRET. The
// derivation is that of every traffic secret (RFC 8446, Section 7.3).
func HandshakeKeys(s *Suite, secret []byte) (TrafficKeys, error) {
	hs, err := NewApplicationSecret(s, secret)
	if err != nil {
		return TrafficKeys{}, err
	}
	defer hs.Zero()
	return hs.Keys(), nil
}

// An ApplicationSecret is one generation of a TLS 1.3 application traffic
// secret for one direction of a connection: client_application_traffic_secret_N
// or server_application_traffic_secret_N (RFC 8446, Section 7.1).
//
// The zero value is not usable; create one with NewApplicationSecret.
type ApplicationSecret struct {
	suite  *Suite
	secret []byte
}

// NewApplicationSecret returns the application traffic secret stage for
// suite s, starting from secret, typically the CLIENT_TRAFFIC_SECRET_0 or
// SERVER_TRAFFIC_SECRET_0 value from the key log. The secret is copied, so
// the caller may zero its own copy afterwards.
func NewApplicationSecret(s *Suite, secret []byte) (*ApplicationSecret, error) {
	if s == nil {
		return nil, errors.New("keyschedule: nil suite")
	}
	if s.Version != tls.VersionTLS13 {
		return nil, fmt.Errorf("keyschedule: %s is not a TLS 1.3 suite", s.Name)
	}
	if len(secret) != s.Hash.Size() {
		return nil, fmt.Errorf("keyschedule: %s traffic secret must be %d bytes, got %d",
			s.Name, s.Hash.Size(), len(secret))
	}
	return &ApplicationSecret{suite: s, secret: append([]byte(nil), secret...)}, nil
}

// Keys derives the record protection key and IV for this generation
// (RFC 8446, Section 7.3). Each call returns freshly allocated slices.
func (a *ApplicationSecret) Keys() TrafficKeys {
	a.mustBeLive()
	return TrafficKeys{
		Key: ExpandLabel(a.suite.Hash, a.secret, "key", nil, a.suite.KeyLen),
		IV:  ExpandLabel(a.suite.Hash, a.secret, "iv", nil, a.suite.FixedIVLen),
	}
}

// Next returns the following generation,
// application_traffic_secret_N+1 = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length),
// which both peers switch to after a KeyUpdate message (RFC 8446, Section 7.2).
//
// The receiver is left intact: records already in flight may still need it.
// Call Zero on it once it is no longer needed.
func (a *ApplicationSecret) Next() *ApplicationSecret {
	a.mustBeLive()
	return &ApplicationSecret{
		suite:  a.suite,
		secret: ExpandLabel(a.suite.Hash, a.secret, "traffic upd", nil, a.suite.Hash.Size()),
	}
}

// Zero overwrites the secret with zeros. Keys and Next panic afterwards:
// keys derived from a wiped secret would only surface later, as a puzzling
// bad_record_mac alert from the peer.
func (a *ApplicationSecret) Zero() {
	clear(a.secret)
	a.secret = nil
}

func (a *ApplicationSecret) mustBeLive() {
	if a.secret == nil {
		panic("keyschedule: use of zeroed ApplicationSecret")
	}
}
