package ktls

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/tlstest"
)

// realSession is a session as crypto/tls encodes it, with what the
// handshake that made it logged.
type realSession struct {
	name    string
	version uint16
	suite   uint16
	master  []byte // TLS 1.2: the master secret from the key log
	enc     []byte
}

// realSessions runs plain crypto/tls handshakes, TLS 1.2 and 1.3, and
// collects the sessions each side made: the server's from WrapSession, the
// client's from its cache.
func realSessions(tb testing.TB) []realSession {
	tb.Helper()
	var out []realSession
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		var mu sync.Mutex
		var master []byte
		var encs []struct {
			name string
			enc  []byte
		}
		add := func(name string, ss *tls.SessionState) {
			b, err := ss.Bytes()
			if err != nil {
				tb.Error(err)
				return
			}
			mu.Lock()
			encs = append(encs, struct {
				name string
				enc  []byte
			}{name, b})
			mu.Unlock()
		}
		keyLog := tlstest.KeyLogFunc(func(line []byte) {
			if e, err := keylog.ParseLine(line); err == nil && e.Label == keylog.LabelClientRandom {
				mu.Lock()
				master = e.Secret
				mu.Unlock()
			}
		})
		scfg := testcert.Get(testcert.ECDSA).ServerConfig()
		scfg.MaxVersion = v
		scfg.KeyLogWriter = keyLog
		scfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			add("server", ss)
			return scfg.EncryptTicket(cs, ss)
		}
		ccfg := testcert.Get(testcert.ECDSA).ClientConfig()
		cache := &tlstest.WatchedCache{ClientSessionCache: tls.NewLRUClientSessionCache(1), Watch: func(cs *tls.ClientSessionState) {
			if _, ss, err := cs.ResumptionState(); err == nil && ss != nil {
				add("client", ss)
			}
		}}
		ccfg.ClientSessionCache = cache
		a, b := net.Pipe()
		c, s := tls.Client(a, ccfg), tls.Server(b, scfg)
		done := make(chan error, 1)
		go func() {
			err := s.Handshake()
			if err == nil {
				_, err = s.Write([]byte{1})
			}
			done <- err
		}()
		if err := c.Handshake(); err != nil {
			tb.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != nil { // takes in a TLS 1.3 ticket
			tb.Fatal(err)
		}
		if err := <-done; err != nil {
			tb.Fatal(err)
		}
		suite := c.ConnectionState().CipherSuite
		// Close the pipe, not the TLS ends: a close_notify nobody reads
		// would block until its deadline.
		a.Close()
		b.Close()
		if len(encs) != 2 {
			tb.Fatalf("%s: %d sessions, want the server's and the client's", tls.VersionName(v), len(encs))
		}
		for _, e := range encs {
			r := realSession{name: e.name + "/" + tls.VersionName(v), version: v, suite: suite, enc: e.enc}
			if v == tls.VersionTLS12 {
				r.master = master
			}
			out = append(out, r)
		}
	}
	return out
}

// TestParseSessionSecret reads sessions that crypto/tls made: a TLS 1.2
// one gives the master secret the key log has.
func TestParseSessionSecret(t *testing.T) {
	for _, r := range realSessions(t) {
		t.Run(r.name, func(t *testing.T) {
			s, err := parseSessionSecret(r.enc)
			if err != nil {
				t.Fatal(err)
			}
			if s.version != r.version || s.suite != r.suite {
				t.Errorf("version %#x, suite %#x; want %#x, %#x", s.version, s.suite, r.version, r.suite)
			}
			if r.version == tls.VersionTLS12 {
				if len(r.master) != masterSecretLen {
					t.Fatalf("the key log gave a %d-byte master secret", len(r.master))
				}
				if !bytes.Equal(s.secret, r.master) {
					t.Errorf("secret %x, want the logged master secret %x", s.secret, r.master)
				}
			}
		})
	}
}

// TestParseSessionSecretShort: every cut of a real encoding that ends
// inside the secret, or before it, is refused; so are a bad session type
// and an empty secret.
func TestParseSessionSecretShort(t *testing.T) {
	for _, r := range realSessions(t) {
		n := int(r.enc[13])
		for i := range 14 + n {
			if _, err := parseSessionSecret(r.enc[:i]); err == nil {
				t.Errorf("%s cut to %d bytes: parsed, want an error", r.name, i)
			}
		}
		if _, err := parseSessionSecret(r.enc[:14+n]); err != nil {
			t.Errorf("%s cut after the secret: %v", r.name, err)
		}
		for _, typ := range []byte{0, 3, 255} {
			b := bytes.Clone(r.enc)
			b[2] = typ
			if _, err := parseSessionSecret(b); err == nil {
				t.Errorf("%s with session type %d: parsed, want an error", r.name, typ)
			}
		}
		b := bytes.Clone(r.enc)
		b[13] = 0
		if _, err := parseSessionSecret(b); err == nil {
			t.Errorf("%s with an empty secret: parsed, want an error", r.name)
		}
	}
}

// FuzzParseSessionSecret: whatever the bytes, the parser doesn't panic,
// and what it returns lies where the layout says. Where crypto/tls parses
// the bytes as a session, ktls parses them too, and reads the same from
// crypto/tls's own encoding of that session.
func FuzzParseSessionSecret(f *testing.F) {
	for _, r := range realSessions(f) {
		f.Add(r.enc)
	}
	f.Add([]byte{})
	f.Add([]byte{3, 3, 1, 0xc0, 0x2b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xaa})
	f.Add([]byte{3, 3, 2, 0xc0, 0x2b, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0xaa})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSessionSecret(b)
		if err == nil {
			n := len(s.secret)
			if len(b) < 14+n || n == 0 || int(b[13]) != n || (b[2] != 1 && b[2] != 2) {
				t.Fatalf("parsed %d input bytes with type %d and a %d-byte secret", len(b), b[2], n)
			}
			if s.version != binary.BigEndian.Uint16(b) || s.suite != binary.BigEndian.Uint16(b[3:]) || !bytes.Equal(s.secret, b[14:14+n]) {
				t.Fatalf("fields %+v don't match the input %x", s, b)
			}
			if cap(s.secret) != n {
				t.Fatalf("the secret's capacity reaches past it")
			}
		}
		ss, terr := tls.ParseSessionState(b)
		if terr != nil {
			return
		}
		if err != nil {
			t.Fatalf("crypto/tls parses the session, ktls doesn't: %v", err)
		}
		enc, berr := ss.Bytes()
		if berr != nil {
			return
		}
		s2, err := parseSessionSecret(enc)
		if err != nil {
			t.Fatalf("crypto/tls's own encoding of the session: %v", err)
		}
		if s2.version != s.version || s2.suite != s.suite || !bytes.Equal(s2.secret, s.secret) {
			t.Fatalf("crypto/tls's encoding reads %+v, the input %+v", s2, s)
		}
	})
}
