package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/record"
)

// maxUselessRecords bounds records that carry nothing (empty data,
// warning alerts) in a row, as crypto/tls does, so a peer can't keep a
// reader spinning.
const maxUselessRecords = 16

// kernelReadState is the receive side's state once the kernel decrypts.
type kernelReadState struct {
	oob     []byte
	hs      record.HandshakeReader // post-handshake messages
	useless int
}

// readKernel reads from a socket the kernel decrypts. c.in is locked.
func (c *Conn) readKernel(b []byte) (int, error) {
	for {
		buf := b
		if len(buf) < record.MaxPlaintext {
			// A control record must fit whole.
			if cap(c.in.buf) < record.MaxPlaintext {
				c.in.buf = make([]byte, record.MaxCiphertextTLS12)
			}
			buf = c.in.buf[:record.MaxPlaintext]
		}
		if c.in.sys.oob == nil {
			c.in.sys.oob = make([]byte, kernel.OOBSize)
		}
		n, typ, err := c.tx.sock.recvRecord(buf, c.in.sys.oob)
		if err != nil {
			return 0, c.readError(err)
		}
		if typ != record.TypeApplicationData {
			if err := c.controlRecordLocked(typ, buf[:n]); err != nil {
				return 0, err
			}
			continue
		}
		if n == 0 {
			if err := c.uselessRecord(); err != nil {
				return 0, err
			}
			continue
		}
		c.in.sys.useless = 0
		if len(b) < len(buf) {
			m := copy(b, buf[:n])
			c.in.pending = buf[m:n]
			return m, nil
		}
		return n, nil
	}
}

// controlRecordLocked acts on what recvmsg returned that is not
// application data: the end of the stream (type 0), an alert or a
// handshake message. It returns nil when reading can go on. c.in is
// locked.
func (c *Conn) controlRecordLocked(typ uint8, p []byte) error {
	switch typ {
	case 0:
		// The TCP stream ended without a close_notify: the data may have
		// been cut short.
		c.in.err = io.ErrUnexpectedEOF
		return c.in.err
	case record.TypeAlert:
		return c.handleAlert(p)
	case record.TypeHandshake:
		return c.handleHandshake(p)
	}
	return c.fatal(record.AlertUnexpectedMessage)
}

func (c *Conn) uselessRecord() error {
	c.in.sys.useless++
	if c.in.sys.useless > maxUselessRecords {
		return c.fatal(record.AlertUnexpectedMessage)
	}
	return nil
}

// readError maps what recvmsg returned to what crypto/tls would have:
// EBADMSG is a record that failed authentication, EMSGSIZE one that is
// too long. Timeouts and Close are not sticky; the rest is.
func (c *Conn) readError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		return err
	case errors.Is(err, unix.EBADMSG):
		return c.fatal(record.AlertBadRecordMAC)
	case errors.Is(err, unix.EMSGSIZE):
		return c.fatal(record.AlertRecordOverflow)
	}
	c.in.err = c.tx.sock.opError("read", err)
	return c.in.err
}

// handleAlert acts on an alert record. It returns nil for an alert that
// is ignored (a TLS 1.2 warning, a TLS 1.3 user_canceled), as crypto/tls
// does.
func (c *Conn) handleAlert(p []byte) error {
	if len(p) != 2 {
		return c.fatal(record.AlertUnexpectedMessage)
	}
	level, desc := p[0], p[1]
	tls12 := c.suite.Version == tls.VersionTLS12
	switch {
	case desc == record.AlertCloseNotify:
		c.in.err = io.EOF
	case tls12 && level == record.AlertLevelWarning,
		!tls12 && desc == record.AlertUserCanceled:
		return c.uselessRecord()
	case tls12 && level != record.AlertLevelFatal:
		return c.fatal(record.AlertUnexpectedMessage)
	default:
		c.in.err = remoteAlert(desc)
	}
	return c.in.err
}

// handleHandshake acts on post-handshake messages: session tickets, key
// updates, and attempts at renegotiation. Each message's type and length
// are judged at its header, before its body is buffered, and the body is
// buffered once: a peer gets no more work out of us than the bytes it
// sends, however it splits them into records.
func (c *Conn) handleHandshake(p []byte) error {
	if len(p) == 0 {
		// Handshake records are never empty (RFC 8446, Section 5.1).
		return c.fatal(record.AlertUnexpectedMessage)
	}
	hs := &c.in.sys.hs
	if hs.Limit == nil {
		hs.Limit = c.postHandshakeLimit()
	}
	for len(p) > 0 {
		m, rest, ok, err := hs.Next(p)
		switch {
		case errors.Is(err, errRenegotiation):
			return c.refuseRenegotiation()
		case err != nil:
			return c.fatalErr(err)
		case !ok:
			return nil
		}
		p = rest
		switch m.Type {
		case record.MsgNewSessionTicket:
			// Only crypto/tls can turn a ticket into a session, and it no
			// longer reads. Tickets that come before the first data are
			// read by crypto/tls (see Options.RX); later ones are dropped.
		case record.MsgKeyUpdate:
			requested, err := record.ParseKeyUpdate(m.Body)
			if err != nil {
				return c.fatalErr(err)
			}
			// A key change must end its record (RFC 8446, Section 5.1).
			if len(p) > 0 {
				return c.fatal(record.AlertUnexpectedMessage)
			}
			return c.receiveKeyUpdate(requested)
		default:
			// postHandshakeLimit let through no other type.
			return c.fatal(record.AlertInternalError)
		}
	}
	return nil
}

// errRenegotiation is postHandshakeLimit's verdict on a TLS 1.2 message
// that starts a renegotiation.
var errRenegotiation = errors.New("ktls: renegotiation is not supported")

// postHandshakeLimit says which handshake messages c takes once the
// kernel decrypts, and how long they may be.
func (c *Conn) postHandshakeLimit() func(typ uint8, n int) error {
	if c.suite.Version == tls.VersionTLS13 {
		return record.PostHandshakeTLS13(c.isClient)
	}
	isClient := c.isClient
	return func(typ uint8, n int) error {
		// TLS 1.2 has nothing after the handshake but renegotiation, which
		// gets no_renegotiation (RFC 5246, Section 7.2.2): a HelloRequest
		// to a client, a ClientHello to a server, or a HelloRequest to a
		// server, which crypto/tls refuses so too. Anything else is
		// unexpected_message. Either way, at the header.
		if typ == record.MsgHelloRequest || !isClient && typ == record.MsgClientHello {
			return errRenegotiation
		}
		return &record.Error{Alert: record.AlertUnexpectedMessage, Reason: fmt.Sprintf("unexpected handshake message of type %d after a TLS 1.2 handshake", typ)}
	}
}

func (c *Conn) refuseRenegotiation() error {
	c.tx.sendAlertBestEffort(record.AlertLevelWarning, record.AlertNoRenegotiation)
	c.in.err = localAlert(record.AlertNoRenegotiation)
	return c.in.err
}

// fatal sends a fatal alert and makes it the sticky error of both
// directions.
func (c *Conn) fatal(alert uint8) error {
	c.tx.sendAlertBestEffort(record.AlertLevelFatal, alert)
	c.in.err = localAlert(alert)
	return c.in.err
}

// fatalErr is fatal with the alert a record.Error carries.
func (c *Conn) fatalErr(err error) error {
	var re *record.Error
	if errors.As(err, &re) {
		return c.fatal(re.Alert)
	}
	return c.fatal(record.AlertInternalError)
}

// receiveKeyUpdate follows the peer to its next key (RFC 8446, Section
// 4.6.3). The kernel (6.14+) has paused decryption at the KeyUpdate until
// the new key is installed; reads in between fail with EKEYEXPIRED. c.in
// is locked.
func (c *Conn) receiveKeyUpdate(requested bool) error {
	if err := kernel.FeatureRekey.Check(); err != nil {
		// The records after this one are under a key this kernel can't
		// take: stop here, with everything before delivered.
		c.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		c.in.err = fmt.Errorf("%w (%v)", ErrKeyUpdateNotSupported, err)
		return c.in.err
	}
	next := c.rxSecret.Next()
	keys := next.Keys()
	info := cryptoInfo(c.suite, keys, 0)
	keys.Zero()
	err := c.tx.sock.install(kernel.RX, info, false)
	info.Zero()
	if err != nil {
		next.Zero()
		c.in.err = err
		c.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		return err
	}
	c.rxSecret.Zero()
	c.rxSecret = next
	if requested {
		// Our KeyUpdate must go before our next application data
		// (RFC 8446, Section 4.6.3).
		return c.tx.updateSoon()
	}
	return nil
}

// sendKeyUpdateFromTLS handles a KeyUpdate crypto/tls sends, while it
// still reads, in answer to the peer's request.
func (c *Conn) sendKeyUpdateFromTLS(msg []byte) error {
	msgs, rest, err := record.ParseHandshake(msg)
	if err != nil || len(msgs) != 1 || len(rest) != 0 || msgs[0].Type != record.MsgKeyUpdate {
		return errors.New("ktls: internal error: crypto/tls wrote an unexpected handshake message after the handoff")
	}
	// crypto/tls moves to its next write key after this record; the
	// translator follows it. Ours follows as a requested update does.
	if err := c.advanceTranslator(); err != nil {
		return err
	}
	// crypto/tls drops an error from this; the next Write sees it.
	return c.tx.updateSoon()
}

// advanceTranslator moves the translator to crypto/tls's next write key.
func (c *Conn) advanceTranslator() error {
	if c.translateSecret == nil {
		return errors.New("ktls: internal error: no write secret to follow crypto/tls's KeyUpdate")
	}
	next := c.translateSecret.Next()
	keys := next.Keys()
	defer keys.Zero()
	p, err := record.NewProtector(c.suite, keys, 0)
	if err != nil {
		return err
	}
	c.translateSecret.Zero()
	c.translateSecret, c.translate = next, p
	return nil
}
