package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// An rxHalf is the receiving side of a Conn, as crypto/tls's halfConn is
// one direction of a tls.Conn. It owns what that direction needs: who
// opens the records (crypto/tls, or the kernel from toKernel on), the TLS
// 1.3 read secret the kernel's key came from, the plaintext read but not
// yet returned, the sticky error, and the lock that readers hold.
//
// Until the kernel decrypts, crypto/tls reads, through rec. A TLS 1.3
// client with a session cache lets it read the server's tickets first:
// deferred follows the records it reads, so that the kernel can take
// over at the first application data (Conn.readDeferred). And once the
// kernel encrypts, what crypto/tls writes as it reads (an alert, a
// KeyUpdate) is opened with crypto/tls's own write state and sent again
// through the sending side (translateRecord). That state belongs here:
// after the handoff, crypto/tls writes only while it reads, under this
// lock.
//
// A read never waits for the sending side's lock, which a writer may hold
// for as long as the peer doesn't read: it only tries it, and leaves to
// the writer what it couldn't do (see txHalf.failed, txHalf.updateDue).
type rxHalf struct {
	sync.Mutex
	tx       *txHalf        // the sending side, which answers the peer
	rec      *recordio.Conn // what crypto/tls reads through
	isClient bool
	// kernel is set when the kernel decrypts: by the handoff, or by the
	// read that ends a deferral, which holds the lock. It never changes
	// after.
	kernel atomic.Bool

	pending []byte // plaintext read but not yet returned
	err     error  // sticky, except for timeouts

	// What only the handoff and the kernel's path need is allocated once
	// the kernel encrypts (kernelPart), and not at all for a connection
	// that stays on crypto/tls, which then costs little more than
	// crypto/tls's own (BenchmarkMemory).
	*rxKernel
}

// rxKernel is the part of an rxHalf that only a connection whose TX the
// kernel took uses.
type rxKernel struct {
	sock  socket
	suite *keyschedule.Suite
	// secret is the TLS 1.3 read secret, which the peer's KeyUpdate
	// needs. Close wipes it (zeroAfterClose).
	secret   *keyschedule.ApplicationSecret
	deferred *deferredRX // TLS 1.3 client, waiting for tickets

	// While crypto/tls still reads, the records it writes are opened with
	// its write state and sent again through the kernel.
	translate       *record.Protector
	translateSecret *keyschedule.ApplicationSecret // TLS 1.3

	buf recordBuf // while a read, or what pending holds, needs it

	// Once the kernel decrypts:
	oob     []byte                 // for the record type
	hs      record.HandshakeReader // post-handshake messages
	useless int                    // records in a row that carried nothing
}

// kernelPart allocates the part only the kernel's path needs, once the
// kernel encrypts: in the handoff, before any read can use it.
func (h *rxHalf) kernelPart() {
	if h.rxKernel == nil {
		h.rxKernel = &rxKernel{sock: h.tx.sock}
	}
}

// deferring reports whether crypto/tls reads until the first data, for
// the kernel to take over then (Conn.readDeferred). h is locked.
func (h *rxHalf) deferring() bool { return h.rxKernel != nil && h.deferred != nil }

// startTranslating gives the reader crypto/tls's write state, p and its
// TLS 1.3 secret, once the kernel encrypts: from then on, what crypto/tls
// writes goes to translateRecord.
func (h *rxHalf) startTranslating(suite *keyschedule.Suite, p *record.Protector, secret *keyschedule.ApplicationSecret) {
	h.kernelPart()
	h.tx.kernelPart() // the translator sends through it
	h.suite, h.translate, h.translateSecret = suite, p, secret
	h.rec.HandOffWrite(h.translateRecord)
}

// deferTo lets crypto/tls read until the first application data, with d
// following its records.
func (h *rxHalf) deferTo(d *deferredRX) {
	h.deferred = d
	h.rec.OnRead(d.see)
}

// endDeferral stops following crypto/tls's records, and returns the
// follower. h is locked.
func (h *rxHalf) endDeferral() *deferredRX {
	d := h.deferred
	h.deferred = nil
	h.rec.OnRead(nil)
	return d
}

// stayOnTLS leaves the receiving side to crypto/tls, for good. It has keys
// of its own and follows the peer's KeyUpdates itself, so the caller wipes
// ours: they would only wait in memory to be stolen.
func (h *rxHalf) stayOnTLS() {
	h.rec.ReadPassthrough()
}

// offload installs the read key, keys at sequence number seq, in the
// kernel; from then on the kernel decrypts, and crypto/tls neither reads
// nor writes the socket. secret is the TLS 1.3 read secret keys came
// from, which h keeps once the kernel has the key. With noPad, it asks
// for TLS_RX_EXPECT_NO_PAD, and returns why that is not in effect, for a
// TLS 1.3 connection.
func (h *rxHalf) offload(suite *keyschedule.Suite, keys keyschedule.TrafficKeys, seq uint64, secret *keyschedule.ApplicationSecret, noPad bool) (noPadReason, err error) {
	info := kernel.NewCryptoInfo(suite, keys, seq)
	defer info.Zero()
	if err := h.sock.install(kernel.RX, info, false); err != nil {
		return nil, err
	}
	if suite.Version == tls.VersionTLS13 {
		noPadReason = ErrDisabled
		if noPad {
			noPadReason = h.sock.setOption(kernel.FeatureRXExpectNoPad, kernel.SetRXExpectNoPad)
		}
	}
	h.rec.HandOffRead()
	h.rec.StopTranslating()
	h.translate = nil
	if h.translateSecret != nil {
		h.translateSecret.Zero()
		h.translateSecret = nil
	}
	h.toKernel(suite, secret)
	return noPadReason, nil
}

// toKernel records that the kernel now decrypts with suite; secret is the
// TLS 1.3 read secret it holds the key of (nil for TLS 1.2).
func (h *rxHalf) toKernel(suite *keyschedule.Suite, secret *keyschedule.ApplicationSecret) {
	h.kernelPart()
	h.suite, h.secret = suite, secret
	h.kernel.Store(true)
}

// zeroSecretsLocked wipes the read side's TLS 1.3 secrets. h is locked,
// or no read can run yet.
func (h *rxHalf) zeroSecretsLocked() {
	if h.rxKernel == nil {
		return // crypto/tls's own, where it reads and writes
	}
	for _, s := range []**keyschedule.ApplicationSecret{&h.secret, &h.translateSecret} {
		if *s != nil {
			(*s).Zero()
			*s = nil
		}
	}
	if d := h.deferred; d != nil && d.secret != nil {
		d.secret.Zero()
		d.secret = nil
		if d.err == nil {
			d.err = net.ErrClosed
		}
	}
}

// zeroAfterClose wipes the read side's TLS 1.3 secrets after Close,
// unless a read holds the lock; that read does it as it ends
// (Conn.unlockRX). Waiting for it could mean waiting for a relay blocked
// on another connection.
func (h *rxHalf) zeroAfterClose() {
	if !h.TryLock() {
		return
	}
	defer h.Unlock()
	if h.err == nil {
		// Reads after Close fail before they could need a secret.
		h.err = net.ErrClosed
	}
	h.zeroSecretsLocked()
}

// keepPendingLocked puts rest back for the next Read, before what Read
// keeps itself, which came after it. h is locked.
func (h *rxHalf) keepPendingLocked(rest []byte) {
	h.pending = append(rest, h.pending...)
}

// copyKeeping copies what read returns to w, in buf's size, until the
// stream ends. What w doesn't take of a chunk goes to keep, so that no
// byte read is lost.
func copyKeeping(w io.Writer, buf []byte, read func([]byte) (int, error), keep func(rest []byte)) (int64, error) {
	var written int64
	for {
		n, err := read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				keep(buf[m:n:n])
				return written, werr
			}
		}
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// maxUselessRecords bounds records that carry nothing (empty data,
// warning alerts) in a row, as crypto/tls does, so a peer can't keep a
// reader spinning.
const maxUselessRecords = 16

// readKernel reads from a socket the kernel decrypts. h is locked.
func (h *rxHalf) readKernel(b []byte) (int, error) {
	for {
		var lend *recordBuf
		if len(b) < record.MaxPlaintext {
			lend = h.smallReadBuf()
		}
		n, typ, buf, err := h.recvRecord(b, lend)
		if err != nil {
			return 0, h.readError(err)
		}
		data, err := h.recordLocked(typ, buf[:n])
		if err != nil {
			return 0, err
		}
		if !data {
			continue
		}
		if len(b) < len(buf) {
			m := copy(b, buf[:n])
			h.pending = buf[m:n]
			return m, nil
		}
		return n, nil
	}
}

// recvRecord reads one record's plaintext, and its type, into buf, or
// into the buffer lend lends (see socket.recvRecord); it returns the
// buffer it read into.
func (h *rxHalf) recvRecord(buf []byte, lend *recordBuf) (n int, typ uint8, used []byte, err error) {
	if h.oob == nil {
		h.oob = make([]byte, kernel.OOBSize)
	}
	return h.sock.recvRecord(buf, lend, h.oob)
}

// lendBuf returns h.buf, set to lend a buffer of size bytes. h is locked.
func (h *rxHalf) lendBuf(size int) *recordBuf {
	h.buf.size = size
	return &h.buf
}

// releaseBufLocked gives the record buffer back to the pool, unless
// plaintext waits to be read (h.pending, which may lie in it). h is
// locked.
func (h *rxHalf) releaseBufLocked() {
	if h.rxKernel == nil || len(h.pending) > 0 {
		return
	}
	// An empty pending may still point into the buffer.
	h.pending = nil
	h.buf.give()
}

// recordLocked acts on one record that recvmsg returned, and reports
// whether it is application data for the reader: an empty one counts as
// useless, anything else goes to controlRecordLocked. It returns nil
// when reading can go on. h is locked.
func (h *rxHalf) recordLocked(typ uint8, p []byte) (data bool, err error) {
	if typ != record.TypeApplicationData {
		return false, h.controlRecordLocked(typ, p)
	}
	if len(p) == 0 {
		return false, h.uselessRecord()
	}
	h.useless = 0
	return true, nil
}

// controlRecordLocked acts on what recvmsg returned that is not
// application data: the end of the stream (type 0), an alert or a
// handshake message. It returns nil when reading can go on. h is
// locked.
func (h *rxHalf) controlRecordLocked(typ uint8, p []byte) error {
	switch typ {
	case 0:
		// The TCP stream ended without a close_notify: the data may have
		// been cut short.
		h.err = io.ErrUnexpectedEOF
		return h.err
	case record.TypeAlert:
		return h.handleAlert(p)
	case record.TypeHandshake:
		return h.handleHandshake(p)
	}
	return h.fatal(record.AlertUnexpectedMessage)
}

func (h *rxHalf) uselessRecord() error {
	h.useless++
	if h.useless > maxUselessRecords {
		return h.fatal(record.AlertUnexpectedMessage)
	}
	return nil
}

// readError maps what recvmsg returned to what crypto/tls would have:
// EBADMSG is a record that failed authentication, EMSGSIZE one that is
// too long. Timeouts and Close are not sticky; the rest is.
func (h *rxHalf) readError(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
		return err
	case errors.Is(err, syscall.EBADMSG):
		return h.fatal(record.AlertBadRecordMAC)
	case errors.Is(err, syscall.EMSGSIZE):
		return h.fatal(record.AlertRecordOverflow)
	}
	h.err = h.sock.opError("read", err)
	return h.err
}

// handleAlert acts on an alert record. It returns nil for an alert that
// is ignored (a TLS 1.2 warning, a TLS 1.3 user_canceled), as crypto/tls
// does.
func (h *rxHalf) handleAlert(p []byte) error {
	if len(p) != 2 {
		return h.fatal(record.AlertUnexpectedMessage)
	}
	level, desc := p[0], p[1]
	tls12 := h.suite.Version == tls.VersionTLS12
	switch {
	case desc == record.AlertCloseNotify:
		h.err = io.EOF
	case tls12 && level == record.AlertLevelWarning,
		!tls12 && desc == record.AlertUserCanceled:
		return h.uselessRecord()
	case tls12 && level != record.AlertLevelFatal:
		return h.fatal(record.AlertUnexpectedMessage)
	default:
		h.err = remoteAlert(desc)
	}
	return h.err
}

// handleHandshake acts on post-handshake messages: session tickets, key
// updates, and attempts at renegotiation. Each message's type and length
// are judged at its header, before its body is buffered, and the body is
// buffered once: a peer gets no more work out of us than the bytes it
// sends, however it splits them into records.
func (h *rxHalf) handleHandshake(p []byte) error {
	if len(p) == 0 {
		// Handshake records are never empty (RFC 8446, Section 5.1).
		return h.fatal(record.AlertUnexpectedMessage)
	}
	hs := &h.hs
	if hs.Limit == nil {
		hs.Limit = h.postHandshakeLimit()
	}
	for len(p) > 0 {
		m, rest, ok, err := hs.Next(p)
		switch {
		case errors.Is(err, errRenegotiation):
			return h.refuseRenegotiation()
		case err != nil:
			return h.fatalErr(err)
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
				return h.fatalErr(err)
			}
			// A key change must end its record (RFC 8446, Section 5.1).
			if len(p) > 0 {
				return h.fatal(record.AlertUnexpectedMessage)
			}
			return h.receiveKeyUpdate(requested)
		default:
			// postHandshakeLimit let through no other type.
			return h.fatal(record.AlertInternalError)
		}
	}
	return nil
}

// errRenegotiation is postHandshakeLimit's verdict on a TLS 1.2 message
// that starts a renegotiation.
var errRenegotiation = errors.New("ktls: renegotiation is not supported")

// postHandshakeLimit says which handshake messages h takes once the
// kernel decrypts, and how long they may be.
func (h *rxHalf) postHandshakeLimit() func(typ uint8, n int) error {
	if h.suite.Version == tls.VersionTLS13 {
		return record.PostHandshakeTLS13(h.isClient)
	}
	isClient := h.isClient
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

func (h *rxHalf) refuseRenegotiation() error {
	h.tx.sendAlertBestEffort(record.AlertLevelWarning, record.AlertNoRenegotiation)
	h.err = localAlert(record.AlertNoRenegotiation)
	return h.err
}

// fatal sends a fatal alert and makes it the sticky error of both
// directions.
func (h *rxHalf) fatal(alert uint8) error {
	h.tx.sendAlertBestEffort(record.AlertLevelFatal, alert)
	h.err = localAlert(alert)
	return h.err
}

// fatalErr is fatal with the alert a record.Error carries.
func (h *rxHalf) fatalErr(err error) error {
	var re *record.Error
	if errors.As(err, &re) {
		return h.fatal(re.Alert)
	}
	return h.fatal(record.AlertInternalError)
}

// receiveKeyUpdate follows the peer to its next key (RFC 8446, Section
// 4.6.3). The kernel (6.14+) has paused decryption at the KeyUpdate until
// the new key is installed; reads in between fail with EKEYEXPIRED. h
// is locked.
func (h *rxHalf) receiveKeyUpdate(requested bool) error {
	if err := kernel.FeatureRekey.Check(); err != nil {
		// The records after this one are under a key this kernel can't
		// take: stop here, with everything before delivered.
		h.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		h.err = fmt.Errorf("%w (%v)", ErrKeyUpdateNotSupported, err)
		return h.err
	}
	next := h.secret.Next()
	keys := next.Keys()
	info := kernel.NewCryptoInfo(h.suite, keys, 0)
	keys.Zero()
	err := h.sock.install(kernel.RX, info, false)
	info.Zero()
	if err != nil {
		next.Zero()
		h.err = err
		h.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
		return err
	}
	h.secret.Zero()
	h.secret = next
	if requested {
		// Our KeyUpdate must go before our next application data
		// (RFC 8446, Section 4.6.3).
		return h.tx.updateSoon()
	}
	return nil
}

// translateRecord is where records crypto/tls writes after the kernel took
// over transmission go: an alert or KeyUpdate it sends while it still
// reads. The record is opened with crypto/tls's write state and sent again
// through the kernel.
func (h *rxHalf) translateRecord(rec []byte) error {
	typ, msg, err := h.translate.Open(rec)
	if err != nil {
		return err
	}
	switch typ {
	case record.TypeAlert:
		// crypto/tls sends alerts as it fails. Like the kernel path's
		// own, they don't wait for a Write in flight.
		if len(msg) == 2 {
			h.tx.sendAlertBestEffort(msg[0], msg[1])
		}
		return nil
	case record.TypeHandshake:
		return h.sendKeyUpdateFromTLS(msg)
	}
	return fmt.Errorf("ktls: internal error: crypto/tls wrote a record of type %d after the handoff", typ)
}

// sendKeyUpdateFromTLS handles a KeyUpdate crypto/tls sends, while it
// still reads, in answer to the peer's request.
func (h *rxHalf) sendKeyUpdateFromTLS(msg []byte) error {
	msgs, rest, err := record.ParseHandshake(msg)
	if err != nil || len(msgs) != 1 || len(rest) != 0 || msgs[0].Type != record.MsgKeyUpdate {
		return errors.New("ktls: internal error: crypto/tls wrote an unexpected handshake message after the handoff")
	}
	// crypto/tls moves to its next write key after this record; the
	// translator follows it. Ours follows as a requested update does.
	if err := h.advanceTranslator(); err != nil {
		return err
	}
	// crypto/tls drops an error from this; the next Write sees it.
	return h.tx.updateSoon()
}

// advanceTranslator moves the translator to crypto/tls's next write key.
func (h *rxHalf) advanceTranslator() error {
	if h.translateSecret == nil {
		return errors.New("ktls: internal error: no write secret to follow crypto/tls's KeyUpdate")
	}
	next := h.translateSecret.Next()
	keys := next.Keys()
	defer keys.Zero()
	p, err := record.NewProtector(h.suite, keys, 0)
	if err != nil {
		return err
	}
	h.translateSecret.Zero()
	h.translateSecret, h.translate = next, p
	return nil
}

// A read smaller than a record goes through the record buffer (h.buf,
// recordbuf.go), one record's plaintext, for two reasons: a control
// record must fit whole, and the kernel decrypts a record straight into
// the reader's memory only when the read can hold it. Reading 16 KiB
// records 4 KiB at a time, going straight to the caller's buffer instead
// took 1.15x to 1.2x the time, and a 64 KiB buffer gained nothing
// (BenchmarkRXRead, lab, 6.1 and 7.3).
//
// readKernel takes every record with recvmsg(2) and its control message.
// read(2) returns application data only, fails with EIO leaving a control
// record queued, and would need recvmsg only then; that was built and
// tested (commit bc72e58) but measured no faster, within 5%, so the one
// path stays.

// rxSmallReadBuf is the size of the buffer a read smaller than a record goes
// through, if more than one record's plaintext. Benchmarks set it, to
// measure whether a larger one pays, or, negative, whether the buffer pays
// at all: reads then go straight to the caller's buffer, where a control
// record larger than it would come in pieces, which readKernel does not
// expect. Benchmarks only.
var rxSmallReadBuf atomic.Int64

// smallReadBuf returns what lends the buffer a read smaller than a record
// goes through, or nil where the read goes to the caller's buffer
// (benchmarks only). h is locked.
func (h *rxHalf) smallReadBuf() *recordBuf {
	n := int(rxSmallReadBuf.Load())
	if n < 0 {
		return nil
	}
	return h.lendBuf(max(record.MaxPlaintext, n))
}
