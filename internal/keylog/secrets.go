package keylog

import (
	"errors"
	"io"
	"sync"
)

// Secrets collects, from the key log of one handshake, the secrets needed to
// take over record protection after the handshake: the TLS 1.2 master secret
// or the two TLS 1.3 application traffic secrets, plus the two TLS 1.3
// handshake traffic secrets, with which the records crypto/tls wrote and
// read during the handshake are accounted for. Other labels are checked and
// forwarded but not kept.
//
// Secrets implements io.Writer so that it can be set as
// tls.Config.KeyLogWriter. crypto/tls writes exactly one complete line per
// Write call, and Secrets relies on that. A Secrets belongs to a single
// connection: a line carrying a different client random is rejected.
//
// A Secrets is safe for concurrent use.
type Secrets struct {
	mu            sync.Mutex
	forward       io.Writer
	clientRandom  [32]byte
	haveRandom    bool
	master        []byte
	clientTraffic []byte
	serverTraffic []byte
	clientHS      []byte
	serverHS      []byte
}

// NewSecrets returns an empty collector. If forward is not nil, every line
// is also written to it unchanged, so an application's own key log keeps
// working.
func NewSecrets(forward io.Writer) *Secrets {
	return &Secrets{forward: forward}
}

// Write parses line, stores its secret if the label is one Secrets keeps,
// and forwards line. crypto/tls aborts the handshake if Write fails, which
// is the intent for every error here: a malformed line means crypto/tls and
// this package disagree on the format, a changed client random means the
// collector is shared between connections, and a failed forward would abort
// the handshake without Secrets in the way too.
func (s *Secrets) Write(line []byte) (int, error) {
	e, err := ParseLine(line)
	if err != nil && !errors.Is(err, ErrComment) {
		return 0, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	if err == nil {
		if s.haveRandom && e.ClientRandom != s.clientRandom {
			clear(e.Secret)
			return 0, errors.New("keylog: line from a second handshake; use one Secrets per connection")
		}
		s.clientRandom, s.haveRandom = e.ClientRandom, true
		if slot := s.slot(e.Label); slot != nil {
			clear(*slot)
			*slot = e.Secret
		} else {
			clear(e.Secret)
		}
	}

	if s.forward != nil {
		// Forwarding under the lock keeps the user's writer from seeing
		// lines concurrently or out of order.
		n, err := s.forward.Write(line)
		if err != nil {
			return 0, err
		}
		if n != len(line) {
			return 0, io.ErrShortWrite
		}
	}
	return len(line), nil
}

// slot returns the field that keeps secrets with the given label, or nil.
func (s *Secrets) slot(label string) *[]byte {
	switch label {
	case LabelClientRandom:
		return &s.master
	case LabelClientTraffic0:
		return &s.clientTraffic
	case LabelServerTraffic0:
		return &s.serverTraffic
	case LabelClientHandshake:
		return &s.clientHS
	case LabelServerHandshake:
		return &s.serverHS
	}
	return nil
}

// get returns a copy of a stored secret, so that the caller can wipe it
// independently of s.
func (s *Secrets) get(field *[]byte) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *field == nil {
		return nil, false
	}
	return append([]byte(nil), *field...), true
}

// MasterSecret returns a copy of the TLS 1.2 master secret, logged with
// label CLIENT_RANDOM.
func (s *Secrets) MasterSecret() ([]byte, bool) { return s.get(&s.master) }

// ClientTrafficSecret returns a copy of client_application_traffic_secret_0,
// logged with label CLIENT_TRAFFIC_SECRET_0.
func (s *Secrets) ClientTrafficSecret() ([]byte, bool) { return s.get(&s.clientTraffic) }

// ServerTrafficSecret returns a copy of server_application_traffic_secret_0,
// logged with label SERVER_TRAFFIC_SECRET_0.
func (s *Secrets) ServerTrafficSecret() ([]byte, bool) { return s.get(&s.serverTraffic) }

// ClientHandshakeTrafficSecret returns a copy of
// client_handshake_traffic_secret, logged with label
// CLIENT_HANDSHAKE_TRAFFIC_SECRET.
func (s *Secrets) ClientHandshakeTrafficSecret() ([]byte, bool) { return s.get(&s.clientHS) }

// ServerHandshakeTrafficSecret returns a copy of
// server_handshake_traffic_secret, logged with label
// SERVER_HANDSHAKE_TRAFFIC_SECRET.
func (s *Secrets) ServerHandshakeTrafficSecret() ([]byte, bool) { return s.get(&s.serverHS) }

// ClientRandom returns the ClientHello.random shared by the logged lines.
// It is not secret, and Zero leaves it in place.
func (s *Secrets) ClientRandom() ([32]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientRandom, s.haveRandom
}

// Zero overwrites every stored secret with zeros and forgets it; the
// accessors report false afterwards. Copies handed out earlier are the
// caller's to wipe.
func (s *Secrets) Zero() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range []*[]byte{&s.master, &s.clientTraffic, &s.serverTraffic, &s.clientHS, &s.serverHS} {
		clear(*p)
		*p = nil
	}
}
