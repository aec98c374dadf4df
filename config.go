package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// The secrets come from tls.Config.KeyLogWriter, so every handshake runs
// on a clone of the user's config whose KeyLogWriter belongs to its
// connection; every line still reaches the user's writer.
//
// Session tickets and resumption stay crypto/tls's own: ktls never
// chooses ticket keys, nor changes a session. Every field that governs
// them (the ticket keys, SessionTicketsDisabled, WrapSession and
// UnwrapSession, ClientSessionCache, VerifyConnection) reaches crypto/tls
// as the user set it, on the config they set it on, so a session resumes
// under ktls exactly where it would under crypto/tls, tenant by tenant.
//
// That leaves one secret ktls can't always see. crypto/tls logs nothing
// when it resumes a TLS 1.2 session: the master secret it reuses is inside
// the session. ktls reads it from the session where the session passes
// through a hook anyway: the client's ClientSessionCache, a server's own
// UnwrapSession, and, for a server config with neither hook, crypto/tls's
// own DecryptTicket set as the outer config's UnwrapSession (see
// serverConfig). A config from GetConfigForClient without its own
// UnwrapSession keeps a resumed TLS 1.2 connection on crypto/tls
// (ErrResumedTLS12). Earlier versions of ktls kept the master secret in
// the session's Extra instead; that carried it into every later session
// made from the same cache entry or ticket, past the session's own expiry,
// and is gone.

// ErrResumedTLS12 is the offload reason of a TLS 1.2 server connection
// that resumed a session whose master secret ktls can't read: the config
// GetConfigForClient returned has no UnwrapSession of its own, so
// crypto/tls opened the ticket with keys it chose itself (the config's
// own, or the outer config's). crypto/tls logs no secret when it resumes a
// TLS 1.2 session, and ktls doesn't open tickets with keys it would have to
// guess, so that ticket keys, and which config's keys apply, stay exactly
// crypto/tls's. The connection works on crypto/tls. To offload such
// connections, set WrapSession and UnwrapSession on the configs
// GetConfigForClient returns (their EncryptTicket and DecryptTicket are
// the usual way to write them): ktls then reads the master secret from the
// session UnwrapSession returns. Servers with one config, TLS 1.3
// resumption, full handshakes and clients offload either way.
var ErrResumedTLS12 = errors.New("ktls: the master secret of the resumed TLS 1.2 session is sealed in a session ticket that crypto/tls opened itself; an UnwrapSession on the config from GetConfigForClient would make it visible")

// handshakeConn is what crypto/tls runs over: the record reader
// (recordio.Conn), plus the secrets of this connection's handshake, which
// the handoff takes. A server's
// GetConfigForClient finds it as ClientHelloInfo.Conn.
type handshakeConn struct {
	*recordio.Conn
	secrets *keylog.Secrets
	// resumed is the session the handshake may resume, as the client's
	// cache or the server's UnwrapSession gave it to crypto/tls; ktls
	// only reads it (masterSecret).
	resumed *tls.SessionState
	// recordSizingOff is the handshake's config's
	// DynamicRecordSizingDisabled: GetConfigForClient's, where it gave one.
	recordSizingOff bool
}

// testHookResumedMaster, if set, sees (and may change) the master secret
// read from a resumed session, before any key is derived from it: tests
// use it to check that a wrong one never reaches the kernel.
var testHookResumedMaster func(master []byte)

func clientConfig(user *tls.Config, hc *handshakeConn) *tls.Config {
	cfg := &tls.Config{}
	if user != nil {
		cfg = user.Clone()
	}
	hc.secrets = keylog.NewSecrets(cfg.KeyLogWriter)
	cfg.KeyLogWriter = hc.secrets
	hc.recordSizingOff = cfg.DynamicRecordSizingDisabled
	if cfg.ClientSessionCache != nil {
		cfg.ClientSessionCache = &sessionCache{ClientSessionCache: cfg.ClientSessionCache, hc: hc}
	}
	return cfg
}

func serverConfig(user *tls.Config, hc *handshakeConn) *tls.Config {
	if user == nil {
		user = &tls.Config{}
	}
	// crypto/tls makes a config's automatic ticket keys on first use, and
	// rotates them, in that config. The handshake runs on a clone, which
	// would make and keep its own: ask the user's config for its keys
	// first (decrypting nothing), so the clone carries the same ones and
	// tickets resume across connections as they do with crypto/tls.
	user.DecryptTicket(nil, tls.ConnectionState{})
	cfg := connConfig(user, hc)
	if user.WrapSession == nil && user.UnwrapSession == nil {
		// Where the outer config's hooks apply (no GetConfigForClient, or
		// one that returned nil), crypto/tls seals with this config's
		// keys, which are user's; EncryptTicket and DecryptTicket are
		// crypto/tls's own sealing with those keys, in the form its docs
		// offer for WrapSession and UnwrapSession. So the tickets are the
		// same, and ktls sees the session a TLS 1.2 resumption needs.
		// A config from GetConfigForClient gets no such hooks: which keys
		// crypto/tls would take for it (its own or the outer config's)
		// can't be told from outside.
		cfg.WrapSession = user.EncryptTicket
		cfg.UnwrapSession = hc.watchUnwrap(user.DecryptTicket)
	}
	if user.GetConfigForClient != nil {
		cfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := user.GetConfigForClient(chi)
			if err != nil || c == nil {
				return nil, err
			}
			// A clone keeps the keys the config set itself
			// (SetSessionTicketKeys, SessionTicketKey), and only those
			// count in crypto/tls's choice between this config's keys and
			// the outer config's.
			return connConfig(c, hc), nil
		}
	}
	return cfg
}

// connConfig is the config of one server handshake: base (the user's, or
// what their GetConfigForClient returned) with this connection's key log.
// The session hooks are base's: an UnwrapSession is only watched, for the
// session it returns, which the handshake may resume.
func connConfig(base *tls.Config, hc *handshakeConn) *tls.Config {
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	hc.secrets = keylog.NewSecrets(base.KeyLogWriter)
	cfg.KeyLogWriter = hc.secrets
	hc.recordSizingOff = base.DynamicRecordSizingDisabled
	if base.UnwrapSession != nil {
		cfg.UnwrapSession = hc.watchUnwrap(base.UnwrapSession)
	}
	return cfg
}

// watchUnwrap returns unwrap, noting the session it returns: the one the
// handshake may resume.
func (hc *handshakeConn) watchUnwrap(unwrap func([]byte, tls.ConnectionState) (*tls.SessionState, error)) func([]byte, tls.ConnectionState) (*tls.SessionState, error) {
	return func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := unwrap(identity, cs)
		if err == nil && ss != nil {
			hc.resumed = ss
		}
		return ss, err
	}
}

// sessionCache wraps a client's session cache to see the session the
// handshake may resume. It changes nothing: the session stays in the
// cache, shared with other connections, and is only read.
type sessionCache struct {
	tls.ClientSessionCache
	hc *handshakeConn
}

func (s *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := s.ClientSessionCache.Get(key)
	if ok && cs != nil {
		if _, ss, err := cs.ResumptionState(); err == nil && ss != nil {
			s.hc.resumed = ss
		}
	}
	return cs, ok
}

// masterSecret returns the TLS 1.2 master secret of the handshake that
// just finished, for a suite with the given ID: from the key log after a
// full handshake, else from the session it resumed. The caller zeroes it.
//
// A secret read from a session is not trusted to be right: the keys
// derived from it must open the Finished that crypto/tls wrote before they
// go to the kernel (deriveKeys).
func (hc *handshakeConn) masterSecret(suite uint16) ([]byte, error) {
	if m, ok := hc.secrets.MasterSecret(); ok {
		return m, nil
	}
	// crypto/tls logs the master secret on every full TLS 1.2 handshake,
	// so this one resumed a session.
	ss := hc.resumed
	hc.resumed = nil
	if ss == nil {
		return nil, ErrResumedTLS12
	}
	enc, err := ss.Bytes()
	defer clear(enc)
	if err != nil {
		return nil, fmt.Errorf("ktls: encoding the resumed session: %w", err)
	}
	s, err := parseSessionSecret(enc)
	if err != nil {
		return nil, err
	}
	if s.version != tls.VersionTLS12 || s.suite != suite {
		return nil, fmt.Errorf("ktls: the resumed session is %s with %s, not TLS 1.2 with %s",
			tls.VersionName(s.version), tls.CipherSuiteName(s.suite), tls.CipherSuiteName(suite))
	}
	if len(s.secret) != masterSecretLen {
		return nil, fmt.Errorf("ktls: the resumed TLS 1.2 session has a %d-byte master secret, want %d", len(s.secret), masterSecretLen)
	}
	master := append([]byte(nil), s.secret...)
	if testHookResumedMaster != nil {
		testHookResumedMaster(master)
	}
	return master, nil
}

// offloadRuledOut reports whether the handoff is sure to leave both
// directions to crypto/tls, from what is known before the handshake: TX
// is disabled (RX needs it), or this process has already had the
// kernel's answer that it has no tls ULP. The probe is not run here, and
// an inconclusive one is no answer: until the kernel has said no, every
// connection is watched, and its handoff probes.
func offloadRuledOut(opts *Options) bool {
	if !opts.tx() {
		return true
	}
	known, err := kernel.FeatureULP.Known()
	return known && err != nil
}

// transport returns what crypto/tls runs over: the handshakeConn, whose
// reader watches the records for the handoff, or, where offloadRuledOut,
// the socket itself, as crypto/tls reads and writes it (plainTransport).
func (c *Conn) transport() net.Conn {
	if c.hc != nil {
		return c.hc
	}
	return (*plainTransport)(c)
}

// handshakeConfig returns the config crypto/tls runs the handshake on:
// from watched (clientConfig or serverConfig) where the reader watches
// the records, as it does unless offloadRuledOut. Where offloadRuledOut,
// the connection needs none of the handoff's bookkeeping: the key log
// capture, which needs a clone of the config per connection, and the
// record-boundary reader and the copy of what crypto/tls writes, which
// prove the sequence numbers. Together they cost a handshake 5 to 7% of
// crypto/tls's CPU on a host without kernel TLS
// (BenchmarkHandshakeInterleaved; the largest part is the reader's two
// read(2) calls per record, where crypto/tls reads about once per
// flight), and memory for the life of the connection (BenchmarkMemory).
// So such a connection is crypto/tls's from the start: the handshake runs
// on the user's config, over the socket (plainTransport), and the handoff
// only says why the kernel took nothing.
func (c *Conn) handshakeConfig(user *tls.Config, watched func(*tls.Config, *handshakeConn) *tls.Config) *tls.Config {
	if c.hc != nil {
		return watched(user, c.hc)
	}
	if user == nil {
		return &tls.Config{}
	}
	return user
}

// A plainTransport is a Conn as crypto/tls's transport where
// offloadRuledOut: the socket, as crypto/tls would read and write it, and
// whether a read reached its end (Conn.sawEOF). It is the Conn itself, so
// such a connection allocates nothing for it.
type plainTransport Conn

func (p *plainTransport) Read(b []byte) (int, error) {
	n, err := p.raw.Read(b)
	if err == io.EOF {
		p.eof.Store(true)
	}
	return n, err
}

func (p *plainTransport) Write(b []byte) (int, error)        { return p.raw.Write(b) }
func (p *plainTransport) Close() error                       { return p.raw.Close() }
func (p *plainTransport) LocalAddr() net.Addr                { return p.raw.LocalAddr() }
func (p *plainTransport) RemoteAddr() net.Addr               { return p.raw.RemoteAddr() }
func (p *plainTransport) SetDeadline(t time.Time) error      { return p.raw.SetDeadline(t) }
func (p *plainTransport) SetReadDeadline(t time.Time) error  { return p.raw.SetReadDeadline(t) }
func (p *plainTransport) SetWriteDeadline(t time.Time) error { return p.raw.SetWriteDeadline(t) }
