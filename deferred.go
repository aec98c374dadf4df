package ktls

import (
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
