package ktls

import (
	"net"

	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// newConnAfterHandoff returns a Conn over raw in the state the handoff
// leaves when the kernel took both directions with suite; the TLS 1.3
// secrets are those the kernel's keys came from (nil for TLS 1.2).
// Nothing is installed in the kernel, so raw can be any socket (one end
// of a socketpair, say): tests of the record layer's own logic use it,
// through the same calls the handoff makes, instead of setting fields.
func newConnAfterHandoff(raw net.Conn, isClient bool, suite *keyschedule.Suite, txSecret, rxSecret *keyschedule.ApplicationSecret) *Conn {
	c := newConn(raw, nil, nil, isClient)
	c.offload = Offload{TX: true, RX: true, Version: suite.Version, CipherSuite: suite.ID}
	c.tx.toKernel(suite, txSecret)
	c.rx.toKernel(suite, rxSecret)
	c.handshakeDone.Store(true)
	return c
}

// SendAlert sends an alert record through the kernel, without the
// consequences a real one has here: tests use it to make a peer that sends
// alerts in mid-stream.
func (c *Conn) SendAlert(level, desc uint8) error {
	c.tx.Lock()
	defer c.tx.Unlock()
	_, err := c.tx.sock.sendRecord(21, []byte{level, desc})
	return err
}

// SetKeyUpdateLimit lowers the number of records after which the write key
// is updated, so tests can reach it.
func SetKeyUpdateLimit(o *Options, records uint64) { o.keyUpdateLimit = records }

// RXSecretHeld reports whether c still holds a receive traffic secret,
// for the kernel or for the follower of a deferred RX.
func (c *Conn) RXSecretHeld() bool {
	c.rx.Lock()
	defer c.rx.Unlock()
	return c.rx.secret != nil || c.rx.deferred != nil && c.rx.deferred.secret != nil
}

// TrafficSecrets returns the TLS 1.3 traffic secrets c holds, by role, so
// tests can check that Close wipes them.
func (c *Conn) TrafficSecrets() map[string]*keyschedule.ApplicationSecret {
	m := map[string]*keyschedule.ApplicationSecret{}
	add := func(name string, s *keyschedule.ApplicationSecret) {
		if s != nil {
			m[name] = s
		}
	}
	c.tx.Lock()
	add("tx", c.tx.secret)
	c.tx.Unlock()
	c.rx.Lock()
	add("rx", c.rx.secret)
	add("translate", c.rx.translateSecret)
	if c.rx.deferred != nil {
		add("deferred rx", c.rx.deferred.secret)
	}
	c.rx.Unlock()
	return m
}

// HandshakeSecretsHeld names the handshake secrets c still holds: those
// its key log collected, and the session it may have resumed, which holds
// that session's secret.
func (c *Conn) HandshakeSecretsHeld() []string {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	var held []string
	if c.hc == nil {
		return nil // crypto/tls's from the start: nothing was captured
	}
	if s := c.hc.secrets; s != nil {
		for _, f := range []struct {
			name string
			get  func() ([]byte, bool)
		}{
			{"master", s.MasterSecret},
			{"client traffic", s.ClientTrafficSecret},
			{"server traffic", s.ServerTrafficSecret},
			{"client handshake", s.ClientHandshakeTrafficSecret},
			{"server handshake", s.ServerHandshakeTrafficSecret},
		} {
			if b, ok := f.get(); ok {
				clear(b)
				held = append(held, f.name)
			}
		}
	}
	if c.hc.resumed != nil {
		held = append(held, "resumed session")
	}
	return held
}
