package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

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

// install attaches the ULP if asked and installs one direction's key.
func (c *Conn) install(rc syscall.RawConn, dir kernel.Direction, info *kernel.CryptoInfo, attach bool) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if attach {
			if serr = kernel.AttachULP(int(fd)); serr != nil {
				return
			}
		}
		serr = kernel.SetCryptoInfo(int(fd), dir, info)
	})
	if err != nil {
		return fmt.Errorf("ktls: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("ktls: installing the %v key: %w", dir, serr)
	}
	return nil
}

// opError wraps err as net does for a Read or Write on c.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		// The poller's errors come as "raw-read" and "raw-write".
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.raw.LocalAddr(), Addr: c.raw.RemoteAddr(), Err: err}
}

// recvRecord reads plaintext of one content type into buf, waiting in the
// poller for data, so deadlines and Close work as for any net.Conn.
func (c *Conn) recvRecord(buf []byte) (n int, typ uint8, err error) {
	if c.in.sys.oob == nil {
		c.in.sys.oob = make([]byte, kernel.OOBSize)
	}
	var serr error
	err = c.rawConn().Read(func(fd uintptr) bool {
		for {
			n, typ, serr = kernel.RecvRecord(int(fd), buf, c.in.sys.oob, 0)
			if errors.Is(serr, unix.EINTR) {
				continue
			}
			return !errors.Is(serr, unix.EAGAIN)
		}
	})
	if err != nil {
		return 0, 0, c.opError("read", err)
	}
	return n, typ, serr
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
		n, typ, err := c.recvRecord(buf)
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
	c.in.err = c.opError("read", err)
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
	c.sendAlertBestEffort(record.AlertLevelWarning, record.AlertNoRenegotiation)
	c.in.err = localAlert(record.AlertNoRenegotiation)
	return c.in.err
}

// fatal sends a fatal alert and makes it the sticky error of both
// directions.
func (c *Conn) fatal(alert uint8) error {
	c.sendAlertBestEffort(record.AlertLevelFatal, alert)
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

// sendAlertBestEffort sends an alert from the read side. It doesn't wait
// for a write in flight: the connection is failing, and a peer that
// doesn't read must not block the reader's error. A fatal alert ends the
// writing side too, whether or not it could be sent: writers in flight
// stop at their next chunk, or at once if the peer doesn't read (see
// writeFailed), and later ones fail with the alert's error.
func (c *Conn) sendAlertBestEffort(level, alert uint8) {
	if level == record.AlertLevelFatal {
		c.failWrites(localAlert(alert))
	}
	if !c.out.TryLock() {
		if level == record.AlertLevelFatal {
			// The writer holding c.out may be blocked on a full socket.
			// Shutting the socket for writing makes its call fail, and
			// it reports the alert's error. The alert itself can't go
			// out in the middle of the writer's data; the peer sees the
			// stream end without close_notify, which is an error to it.
			c.shutdownWrite()
		}
		return
	}
	defer c.out.Unlock()
	// c.out.err may be the alert's own error, set by a writer that saw it
	// (writeErrorLocked) before the alert was sent.
	if c.out.closing || c.out.err != nil && c.out.err != c.writeFailure() {
		return
	}
	c.sendAlertLocked(level, alert)
}

// shutdownWrite shuts the socket for writing, so that a write blocked on
// it returns.
func (c *Conn) shutdownWrite() {
	c.rawConn().Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
}

// writeErrorLocked makes the error of a write on the socket sticky,
// except a timeout, after which the stream is still whole. When the read
// side has failed, its error is the one reported: the failure a writer
// sees (EPIPE after shutdownWrite, or EBADMSG) is only its consequence.
// c.out is locked.
func (c *Conn) writeErrorLocked(err error) error {
	if errors.Is(err, unix.EBADMSG) {
		// The kernel refuses to send while a received record that failed
		// authentication is pending (see sendRecord): the read side is
		// failing with bad_record_mac, and may not know it yet.
		c.failWrites(localAlert(record.AlertBadRecordMAC))
	}
	if f := c.writeFailure(); f != nil {
		err = f
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	c.out.err = err
	return err
}

// sendAlertLocked sends an alert through the kernel. After a fatal one,
// writes fail with the same error. c.out is locked.
func (c *Conn) sendAlertLocked(level, alert uint8) error {
	_, err := c.sendRecord(record.TypeAlert, []byte{level, alert})
	if level == record.AlertLevelFatal {
		c.out.err = localAlert(alert)
	}
	return err
}

// sendRecord sends one record of the given content type. c.out is locked.
func (c *Conn) sendRecord(typ uint8, p []byte) (int, error) {
	var (
		n    int
		serr error
	)
	retried := false
	err := c.rawConn().Write(func(fd uintptr) bool {
		for {
			n, serr = kernel.SendRecord(int(fd), typ, p, 0)
			switch {
			case errors.Is(serr, unix.EINTR):
				continue
			case errors.Is(serr, unix.EBADMSG) && !retried:
				// When a received record fails authentication, the kernel
				// leaves EBADMSG as the socket's pending error, and its
				// TLS layer refuses to send while one is pending. Reading
				// SO_ERROR takes it: recvmsg has told us already, and the
				// bad_record_mac alert must still go out.
				retried = true
				unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
				continue
			}
			return !errors.Is(serr, unix.EAGAIN)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// aesGCMRecordLimit is how many full-size records one AES-GCM key may
// protect in TLS 1.3: 2^24.5 (RFC 8446, Section 5.5). ChaCha20-Poly1305's
// limit is out of reach.
const aesGCMRecordLimit = 23726566

// recordLimit returns the number of records after which the write key
// must be updated, or 0 for none.
func (c *Conn) recordLimit() uint64 {
	if c.opts.keyUpdateLimit != 0 {
		return c.opts.keyUpdateLimit
	}
	if c.suite.Version == tls.VersionTLS13 && kernelCipher(c.suite) != kernel.CipherChaCha20Poly1305 {
		return aesGCMRecordLimit
	}
	return 0
}

// recordMargin is how far before the record limit the key is updated: a
// write that starts inside the limit less the margin, and makes no more
// records than the margin, stays inside the limit.
func (c *Conn) recordMargin() uint64 {
	return min(1<<20, c.recordLimit()/2)
}

// writeChunk bounds one write while a record limit applies, so the count
// is checked between chunks: at most 4097 records of 256 bytes, or 65
// full ones.
const writeChunk = 1 << 20

// afterWrite counts the records n bytes of plaintext became, and updates
// the write key before the record limit. The kernel doesn't say how many
// records a write made, so the count is an upper bound (a record per 4
// KiB, the smallest a spliced page makes, plus one), and the exact number
// comes from getsockopt when the bound gets close. c.out is locked.
func (c *Conn) afterWrite(n int64) error {
	return c.afterRecords(uint64(n)/4096 + 1)
}

// afterRecords is afterWrite for a write that made at most records
// records. c.out is locked.
func (c *Conn) afterRecords(records uint64) error {
	limit := c.recordLimit()
	if limit == 0 {
		return nil
	}
	c.out.estimated += records
	if c.out.counted+c.out.estimated < limit-c.recordMargin() {
		return nil
	}
	var seq uint64
	var serr error
	if err := c.rawConn().Control(func(fd uintptr) { seq, serr = kernel.RecSeq(int(fd), kernel.TX) }); err != nil {
		return err
	}
	if serr != nil {
		return serr
	}
	c.out.counted, c.out.estimated = seq, 0
	if seq < limit-c.recordMargin() {
		return nil
	}
	if err := c.updateTXLocked(false); err != nil {
		c.out.err = fmt.Errorf("ktls: %d records under one key near the AEAD limit of %d (RFC 8446, Section 5.5), and the key can't be updated: %w", seq, limit, err)
		return c.out.err
	}
	return nil
}

// writeKernel writes plaintext; the kernel frames and encrypts it. In TLS
// 1.3 it writes in chunks, to check between them for a key update that is
// due. c.out is locked.
func (c *Conn) writeKernel(b []byte) (int, error) {
	if c.suite.Version != tls.VersionTLS13 {
		return c.writeKernelChunk(b)
	}
	var written int
	for written < len(b) {
		if err := c.writeFailure(); err != nil {
			return written, err
		}
		if err := c.pendingUpdateLocked(); err != nil {
			return written, err
		}
		n, err := c.writeKernelChunk(b[written:min(len(b), written+writeChunk)])
		written += n
		if err == nil {
			err = c.afterWrite(int64(n))
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (c *Conn) writeKernelChunk(b []byte) (int, error) {
	var (
		written int
		werr    error
	)
	err := c.rawConn().Write(func(fd uintptr) bool {
		for written < len(b) {
			n, err := unix.Write(int(fd), b[written:written+int(c.out.sizing.room(int64(len(b)-written)))])
			if n > 0 {
				written += n
				c.sentRecords(int(fd), int64(n))
			}
			switch {
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				return false
			case err != nil:
				werr = os.NewSyscallError("write", err)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return written, c.writeErrorLocked(c.opError("write", err))
	}
	return written, nil
}

// receiveKeyUpdate follows the peer to its next key (RFC 8446, Section
// 4.6.3). The kernel (6.14+) has paused decryption at the KeyUpdate until
// the new key is installed; reads in between fail with EKEYEXPIRED. c.in
// is locked.
func (c *Conn) receiveKeyUpdate(requested bool) error {
	if err := kernel.FeatureRekey.Check(); err != nil {
		// The records after this one are under a key this kernel can't
		// take: stop here, with everything before delivered.
		c.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		c.in.err = fmt.Errorf("%w (%v)", ErrKeyUpdateNotSupported, err)
		return c.in.err
	}
	next := c.rxSecret.Next()
	keys := next.Keys()
	info := cryptoInfo(c.suite, keys, 0)
	keys.Zero()
	err := c.install(c.rawConn(), kernel.RX, info, false)
	info.Zero()
	if err != nil {
		next.Zero()
		c.in.err = err
		c.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		return err
	}
	c.rxSecret.Zero()
	c.rxSecret = next
	if requested {
		// Our KeyUpdate must go before our next application data
		// (RFC 8446, Section 4.6.3): now if no write is under way, else
		// by the writer before its next chunk.
		c.updateTX.Store(true)
		if c.out.TryLock() {
			err := c.pendingUpdateLocked()
			c.out.Unlock()
			return err
		}
	}
	return nil
}

// pendingUpdateLocked sends the KeyUpdate the peer asked for, if one is
// due. c.out is locked.
func (c *Conn) pendingUpdateLocked() error {
	if !c.updateTX.Swap(false) || c.out.err != nil || c.out.closing {
		return nil
	}
	return c.updateTXLocked(false)
}

// updateTXLocked sends a KeyUpdate through the kernel and installs the
// next write key. c.out is locked.
func (c *Conn) updateTXLocked(requestPeer bool) error {
	if c.suite.Version != tls.VersionTLS13 {
		return errors.New("ktls: KeyUpdate is a TLS 1.3 message")
	}
	if err := kernel.FeatureRekey.Check(); err != nil {
		return fmt.Errorf("%w (%v)", ErrKeyUpdateNotSupported, err)
	}
	if c.txSecret == nil {
		return net.ErrClosed // wiped: nothing more is written (zeroTXLocked)
	}
	next := c.txSecret.Next()
	keys := next.Keys()
	info := cryptoInfo(c.suite, keys, 0)
	keys.Zero()
	defer info.Zero()
	if _, err := c.sendRecord(record.TypeHandshake, record.MarshalKeyUpdate(requestPeer)); err != nil {
		next.Zero()
		c.out.err = err
		return err
	}
	if err := c.install(c.rawConn(), kernel.TX, info, false); err != nil {
		// The peer now expects the new key; nothing more can be sent.
		next.Zero()
		c.out.err = err
		return err
	}
	c.txSecret.Zero()
	c.txSecret = next
	c.out.counted, c.out.estimated = 0, 0
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
	c.updateTX.Store(true)
	if c.out.TryLock() {
		err := c.pendingUpdateLocked()
		c.out.Unlock()
		if err != nil {
			// crypto/tls drops this error; the next Write sees it.
			return err
		}
	}
	return nil
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
