package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"

	"github.com/ktlsgo/ktls/internal/keylog"
)

// The secrets come from tls.Config.KeyLogWriter, so every handshake runs
// on a clone of the user's config whose KeyLogWriter belongs to its
// connection; every line still reaches the user's writer.
//
// crypto/tls logs nothing when a TLS 1.2 session is resumed, and the master
// secret it reuses sits in the session state, opaque. So ktls keeps its own
// copy of it in the session's Extra field, which crypto/tls carries but
// ignores: in the ticket a server issues (WrapSession), and in the client's
// session cache. The ticket and the cache hold that secret already.

// extraMasterSecret prefixes the SessionState.Extra entry that holds a TLS
// 1.2 master secret.
var extraMasterSecret = []byte("ktls: TLS 1.2 master secret\x00")

func clientConfig(user *tls.Config, hc *handshakeConn) *tls.Config {
	cfg := &tls.Config{}
	if user != nil {
		cfg = user.Clone()
	}
	hc.secrets = keylog.NewSecrets(cfg.KeyLogWriter)
	cfg.KeyLogWriter = hc.secrets
	if cfg.ClientSessionCache != nil {
		cfg.ClientSessionCache = &sessionCache{inner: cfg.ClientSessionCache, hc: hc}
	}
	return cfg
}

func serverConfig(user *tls.Config, hc *handshakeConn) *tls.Config {
	if user == nil {
		user = &tls.Config{}
	}
	cfg := connConfig(user, user, hc)
	if user.GetConfigForClient != nil {
		cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := user.GetConfigForClient(chi)
			if err != nil || c == nil {
				return nil, err
			}
			return connConfig(user, c, hc), nil
		}
	}
	return cfg
}

// connConfig is the config of one server handshake: base (the user's, or
// what their GetConfigForClient returned) with this connection's key log
// and session hooks. Tickets are sealed with the ticket keys of user, the
// config the application passed in, as crypto/tls does for a config from
// GetConfigForClient that sets no keys of its own; so ktls and crypto/tls
// servers sharing a config accept each other's tickets.
func connConfig(user, base *tls.Config, hc *handshakeConn) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	hc.secrets = keylog.NewSecrets(base.KeyLogWriter)
	cfg.KeyLogWriter = hc.secrets
	wrap, unwrap := base.WrapSession, base.UnwrapSession
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if cs.Version == tls.VersionTLS12 {
			master, ok := hc.masterSecret()
			if !ok {
				return nil, errors.New("ktls: no master secret for the session ticket")
			}
			ss.Extra = append(ss.Extra, append(bytes.Clone(extraMasterSecret), master...))
			clear(master)
		}
		if wrap != nil {
			return wrap(cs, ss)
		}
		return user.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		var ss *tls.SessionState
		var err error
		if unwrap != nil {
			ss, err = unwrap(identity, cs)
		} else {
			ss, err = user.DecryptTicket(identity, cs)
		}
		if ss != nil {
			hc.takeResumedMaster(ss, true)
		}
		return ss, err
	}
	return cfg
}

// sessionCache wraps a client's session cache, to keep the TLS 1.2 master
// secret with each session.
type sessionCache struct {
	inner tls.ClientSessionCache
	hc    *handshakeConn
}

func (s *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := s.inner.Get(key)
	if ok && cs != nil {
		if _, ss, err := cs.ResumptionState(); err == nil && ss != nil {
			// The session stays in the cache for later connections: leave
			// its Extra as it is.
			s.hc.takeResumedMaster(ss, false)
		}
	}
	return cs, ok
}

func (s *sessionCache) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		// Only a TLS 1.2 handshake logs a master secret.
		if master, ok := s.hc.masterSecret(); ok {
			ticket, ss, err := cs.ResumptionState()
			if err == nil && ss != nil {
				ss.Extra = append(ss.Extra, append(bytes.Clone(extraMasterSecret), master...))
				if ncs, err := tls.NewResumptionState(ticket, ss); err == nil {
					cs = ncs
				}
			}
			clear(master)
		}
	}
	s.inner.Put(key, cs)
}

// masterSecret is the TLS 1.2 master secret of the current handshake: from
// the key log after a full handshake, else from the resumed session.
func (hc *handshakeConn) masterSecret() ([]byte, bool) {
	if m, ok := hc.secrets.MasterSecret(); ok {
		return m, true
	}
	if hc.resumedMaster != nil {
		return bytes.Clone(hc.resumedMaster), true
	}
	return nil, false
}

// takeResumedMaster keeps the master secret ktls stored in a session, for
// the case where the handshake resumes it. With strip, the entry is taken
// out of the session, which a server re-issues from.
func (hc *handshakeConn) takeResumedMaster(ss *tls.SessionState, strip bool) {
	for i, e := range ss.Extra {
		if m, ok := bytes.CutPrefix(e, extraMasterSecret); ok {
			clear(hc.resumedMaster)
			hc.resumedMaster = bytes.Clone(m)
			if strip {
				ss.Extra = append(ss.Extra[:i:i], ss.Extra[i+1:]...)
			}
			return
		}
	}
}
