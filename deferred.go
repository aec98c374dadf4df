package ktls

import (
	"fmt"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// deferredRX follows a TLS 1.3 client's receive direction while crypto/tls
// still reads it, so that the kernel can take over later at the right key
// and sequence number. It opens a copy of every record crypto/tls is given
// (session tickets, mostly), and follows a KeyUpdate if one comes.
type deferredRX struct {
	suite  *keyschedule.Suite
	secret *keyschedule.ApplicationSecret
	prot   *record.Protector
	hs     record.HandshakeReader
	err    error // set when the records could not be followed
}

func newDeferredRX(s *keyschedule.Suite, secret *keyschedule.ApplicationSecret, seq uint64) (*deferredRX, error) {
	keys := secret.Keys()
	defer keys.Zero()
	p, err := record.NewProtector(s, keys, seq)
	if err != nil {
		return nil, err
	}
	return &deferredRX{suite: s, secret: secret, prot: p}, nil
}

// see is called with each record before crypto/tls reads it.
func (d *deferredRX) see(rec []byte) {
	if d.err != nil {
		return
	}
	if rec[0] == record.TypeChangeCipherSpec {
		// crypto/tls drops these in TLS 1.3, and they have no sequence
		// number.
		return
	}
	typ, msg, err := d.prot.Open(rec)
	if err != nil {
		d.err = err
		return
	}
	if typ != record.TypeHandshake {
		return
	}
	if d.hs.Limit == nil {
		// crypto/tls, which reads these records too, acts on them;
		// this only follows its keys.
		d.hs.Limit = record.PostHandshakeTLS13(true)
	}
	for len(msg) > 0 {
		m, rest, ok, err := d.hs.Next(msg)
		if err != nil {
			d.err = err
			return
		}
		if !ok {
			return
		}
		msg = rest
		if m.Type != record.MsgKeyUpdate {
			continue
		}
		// crypto/tls switches to the next key after this record; so do we.
		next := d.secret.Next()
		keys := next.Keys()
		p, err := record.NewProtector(d.suite, keys, 0)
		keys.Zero()
		if err != nil {
			d.err = err
			return
		}
		d.secret.Zero()
		d.secret, d.prot = next, p
	}
}

// readDeferred reads through crypto/tls until the first application data,
// then hands the receive direction to the kernel. c.in is locked.
func (c *Conn) readDeferred(b []byte) (int, error) {
	if cap(c.in.buf) < record.MaxCiphertextTLS12 {
		c.in.buf = make([]byte, record.MaxCiphertextTLS12)
	}
	// A buffer larger than any record's plaintext: crypto/tls returns the
	// whole record, so it holds nothing back when the kernel takes over.
	buf := c.in.buf[:record.MaxCiphertextTLS12]
	n, err := c.readTLS(buf)
	if n == 0 {
		return 0, err
	}
	d := c.deferred
	c.deferred = nil
	c.hc.OnRead(nil)

	var reason, noPadReason error
	switch {
	case d.err != nil:
		reason = withCode(CodeHandoff, fmt.Errorf("ktls: could not follow the peer's records before RX handoff: %w", d.err))
	case d.hs.Pending():
		reason = withCode(CodeHandoff, fmt.Errorf("ktls: a handshake message spans the RX handoff"))
	default:
		c.rxSecret = d.secret
		keys := d.secret.Keys()
		noPadReason, reason = c.installRX(keys, d.prot.Seq())
		keys.Zero()
		if reason != nil {
			reason = withCode(CodeKernelRefused, reason)
		}
	}
	if reason != nil {
		// crypto/tls keeps reading, at full speed, and follows the peer's
		// keys itself: ours are of no more use.
		c.hc.ReadPassthrough()
		d.secret.Zero()
		c.rxSecret = nil
		if c.opts.rxRequired() {
			// The data read stays unread: the connection fails here, as
			// the handshake would have if RX had not waited.
			c.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
			c.in.err = &RequiredError{Direction: "RX", Reason: reason}
			c.handshakeMu.Lock()
			c.offload.RXReason = reason
			c.handshakeMu.Unlock()
			return 0, c.in.err
		}
	}
	c.handshakeMu.Lock()
	c.offload.RX, c.offload.RXReason = reason == nil, reason
	if reason == nil {
		c.offload.RXNoPad, c.offload.RXNoPadReason = noPadReason == nil, noPadReason
	}
	c.handshakeMu.Unlock()

	m := copy(b, buf[:n])
	c.in.pending = buf[m:n]
	return m, err
}
