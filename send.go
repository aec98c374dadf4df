package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// A txHalf is the sending side of a Conn, as crypto/tls's halfConn is one
// direction of a tls.Conn. Until the handoff, crypto/tls writes, and none
// of this is used. Once the kernel encrypts (toKernel), txHalf owns what
// that direction needs: the TLS 1.3 write secret, for KeyUpdate; the
// records sent under the current key; the sticky error; and the lock
// that writers hold.
//
// The lock is held by whoever writes through the kernel: Write, ReadFrom,
// UpdateKeys, CloseWrite, Close's close_notify, and a relay from another
// Conn's WriteTo into this one, which may hold it for as long as the peer
// doesn't read. The reading side therefore never waits for it: it only
// tries it (sendAlertBestEffort, updateSoon), and leaves what it couldn't
// do to the writer (failed, updateDue).
type txHalf struct {
	sync.Mutex
	sock socket

	// kernel is set by the handoff, before the handshake is reported
	// done, when the kernel encrypts; it never changes after.
	kernel bool
	// secret is the TLS 1.3 write secret, which only a KeyUpdate needs.
	// It is wiped once nothing more can be written (zeroSecretLocked).
	secret *keyschedule.ApplicationSecret
	err    error // sticky

	// What only the kernel's path needs is allocated by the handoff
	// (toKernel), and not at all for a connection that stays on
	// crypto/tls, which then costs little more than crypto/tls's own
	// (BenchmarkMemory). Nothing reads it before the kernel encrypts.
	*txKernel
}

// txKernel is the part of a txHalf that only a sending side the kernel
// took uses.
type txKernel struct {
	suite *keyschedule.Suite
	// keyUpdateLimit, if non-zero, replaces recordLimit (Options, for
	// tests).
	keyUpdateLimit uint64

	closing bool // close_notify sent
	// Records under the current write key: counted exactly at the last
	// check, and at most estimated since. See afterWrite.
	counted, estimated uint64
	// sizing is the cap on the kernel's records (recordsize.go).
	sizing recordSizing

	// updateDue is set when the peer asked for a key update while a write
	// held the lock: the update then happens before the next chunk of
	// data. Waiting for the lock in the reader could deadlock two ends
	// whose writers each wait for the other's reader.
	updateDue atomic.Bool
	// failed is the fatal alert the read side sent, or would have sent
	// had a writer not held the lock. A fatal error ends both directions
	// (RFC 8446, Section 6.2), but the reader can't wait for the lock: a
	// writer may hold it for as long as the peer doesn't read. So the
	// reader records the error here, without the lock, and shuts the
	// socket for writing to end a blocked call; writers check it between
	// chunks and report it in place of the error the shutdown gave them.
	failed atomic.Pointer[error]

	// state is crypto/tls's state at the end of the handshake, which
	// answers for it once it is let go of (releaseTLS).
	state *tls.ConnectionState
}

// toKernel records that the kernel now encrypts with suite; secret is the
// TLS 1.3 write secret it holds the key of (nil for TLS 1.2).
func (h *txHalf) toKernel(suite *keyschedule.Suite, secret *keyschedule.ApplicationSecret) {
	h.kernelPart()
	h.suite = suite
	h.secret, h.kernel = secret, true
}

// kernelPart allocates the part only the kernel's path needs, once the
// kernel encrypts: by the time crypto/tls's writes are translated
// (rxHalf.startTranslating), which comes before toKernel in the handoff.
// A close_notify from crypto/tls's Close, concurrent with the handoff,
// may be translated and sent through h in between.
func (h *txHalf) kernelPart() {
	if h.txKernel == nil {
		h.txKernel = &txKernel{}
	}
}

// failure returns the error that ended the writing side from the read
// side (see failed), or nil.
func (h *txHalf) failure() error {
	if p := h.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the end of the writing side, unless an error is
// there already, and returns the one that stays.
func (h *txHalf) fail(err error) error {
	h.failed.CompareAndSwap(nil, &err)
	return h.failure()
}

// lockWrite locks the sending side of an offloaded connection, or says
// why nothing more can be written.
func (h *txHalf) lockWrite() error {
	h.Lock()
	if err := h.failure(); err != nil && h.err == nil {
		h.err = err
	}
	switch {
	case h.err != nil:
		err := h.err
		h.Unlock()
		return err
	case h.closing:
		h.Unlock()
		return errShutdown
	}
	return nil
}

// closeNotifyTimeout bounds the close_notify, as in crypto/tls, so Close
// never hangs on a peer that doesn't read.
const closeNotifyTimeout = 5 * time.Second

// closeNotify sends close_notify through the kernel. Nothing is written
// after it, not even a KeyUpdate, so the write secret is wiped.
func (h *txHalf) closeNotify() error {
	h.Lock()
	defer h.Unlock()
	if h.closing {
		return nil
	}
	h.closing = true
	defer h.zeroSecretLocked()
	if h.failure() != nil {
		// A fatal alert went first, or the socket is shut for writing.
		return nil
	}
	h.sock.conn.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	err := h.sendAlertLocked(record.AlertLevelWarning, record.AlertCloseNotify, true)
	h.sock.conn.SetWriteDeadline(time.Time{})
	return err
}

// zeroSecretLocked wipes the TLS 1.3 write secret, which only a KeyUpdate
// needs, once nothing more can be written. h is locked.
func (h *txHalf) zeroSecretLocked() {
	if h.secret != nil {
		h.secret.Zero()
		h.secret = nil
	}
}

// sendAlertBestEffort sends an alert from the read side. It doesn't wait
// for a write in flight: the connection is failing, and a peer that
// doesn't read must not block the reader's error. A fatal alert ends the
// writing side too, whether or not it could be sent: writers in flight
// stop at their next chunk, or at once if the peer doesn't read (see
// failed), and later ones fail with the alert's error.
func (h *txHalf) sendAlertBestEffort(level, alert uint8) {
	if level == record.AlertLevelFatal {
		h.fail(localAlert(alert))
	}
	if !h.TryLock() {
		if level == record.AlertLevelFatal {
			// The writer holding the lock may be blocked on a full
			// socket. Shutting the socket for writing makes its call
			// fail, and it reports the alert's error. The alert itself
			// can't go out in the middle of the writer's data; the peer
			// sees the stream end without close_notify, which is an
			// error to it.
			h.sock.shutdownWrite()
		}
		return
	}
	defer h.Unlock()
	// h.err may be the alert's own error, set by a writer that saw it
	// (writeErrorLocked) before the alert was sent.
	if h.closing || h.err != nil && h.err != h.failure() {
		return
	}
	// Holding the lock doesn't mean the socket has room: a writer that
	// filled it may have just returned (the kernel failed its write when
	// the bad record arrived). So the alert goes out only if it fits now;
	// a peer that doesn't read must not hold the reader's error for as
	// long as it likes. A fatal alert that can't go, for want of room or
	// otherwise, shuts the socket for writing, as above (records the
	// kernel still queues are then lost: the connection is failing).
	if err := h.sendAlertLocked(level, alert, false); err != nil && level == record.AlertLevelFatal {
		h.sock.shutdownWrite()
	}
}

// writeErrorLocked makes the error of a write on the socket sticky,
// except a timeout, after which the stream is still whole. When the read
// side has failed, its error is the one reported: the failure a writer
// sees (EPIPE after shutdownWrite, or EBADMSG) is only its consequence.
// h is locked.
func (h *txHalf) writeErrorLocked(err error) error {
	if errors.Is(err, syscall.EBADMSG) {
		// The kernel refuses to send while a received record that failed
		// authentication is pending (see socket.sendRecord): the read
		// side is failing with bad_record_mac, and may not know it yet.
		h.fail(localAlert(record.AlertBadRecordMAC))
	}
	if f := h.failure(); f != nil {
		err = f
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	h.err = err
	return err
}

// sendAlertLocked sends an alert through the kernel, waiting for room in
// the socket if wait is set, else failing at once where there is none.
// After a fatal one, sent or not, writes fail with the same error. h is
// locked.
func (h *txHalf) sendAlertLocked(level, alert uint8, wait bool) error {
	send := h.sock.trySendRecord
	if wait {
		send = h.sock.sendRecord
	}
	_, err := send(record.TypeAlert, []byte{level, alert})
	if level == record.AlertLevelFatal {
		h.err = localAlert(alert)
	}
	return err
}

// aesGCMRecordLimit is how many full-size records one AES-GCM key may
// protect in TLS 1.3: 2^24.5 (RFC 8446, Section 5.5). ChaCha20-Poly1305's
// limit is out of reach.
const aesGCMRecordLimit = 23726566

// recordLimit returns the number of records after which the write key
// must be updated, or 0 for none.
func (h *txHalf) recordLimit() uint64 {
	if h.keyUpdateLimit != 0 {
		return h.keyUpdateLimit
	}
	if h.suite.Version == tls.VersionTLS13 && kernel.Cipher(h.suite.KernelCipher) != kernel.CipherChaCha20Poly1305 {
		return aesGCMRecordLimit
	}
	return 0
}

// recordMargin is how far before the record limit the key is updated: a
// write that starts inside the limit less the margin, and makes no more
// records than the margin, stays inside the limit.
func (h *txHalf) recordMargin() uint64 {
	return min(1<<20, h.recordLimit()/2)
}

// writeChunk bounds one write while a record limit applies, so the count
// is checked between chunks: at most 4097 records of 256 bytes, or 65
// full ones.
const writeChunk = 1 << 20

// afterWrite counts the records n bytes of plaintext became, and updates
// the write key before the record limit. The kernel doesn't say how many
// records a write made, so the count is an upper bound (a record per 4
// KiB, the smallest a spliced page makes, plus one), and the exact number
// comes from getsockopt when the bound gets close. h is locked.
func (h *txHalf) afterWrite(n int64) error {
	return h.afterRecords(uint64(n)/4096 + 1)
}

// afterRecords is afterWrite for a write that made at most records
// records. h is locked.
func (h *txHalf) afterRecords(records uint64) error {
	limit := h.recordLimit()
	if limit == 0 {
		return nil
	}
	h.estimated += records
	if h.counted+h.estimated < limit-h.recordMargin() {
		return nil
	}
	seq, err := h.sock.recSeq(kernel.TX)
	if err != nil {
		return err
	}
	h.counted, h.estimated = seq, 0
	if seq < limit-h.recordMargin() {
		return nil
	}
	if err := h.updateKeyLocked(false); err != nil {
		h.err = fmt.Errorf("ktls: %d records under one key near the AEAD limit of %d (RFC 8446, Section 5.5), and the key can't be updated: %w", seq, limit, err)
		return h.err
	}
	return nil
}

// writeKernel writes plaintext; the kernel frames and encrypts it. In TLS
// 1.3 it writes in chunks, to check between them for a key update that is
// due. h is locked.
func (h *txHalf) writeKernel(b []byte) (int, error) {
	if h.suite.Version != tls.VersionTLS13 {
		return h.writeChunkLocked(b)
	}
	var written int
	for written < len(b) {
		if err := h.failure(); err != nil {
			return written, err
		}
		if err := h.pendingUpdateLocked(); err != nil {
			return written, err
		}
		n, err := h.writeChunkLocked(b[written:min(len(b), written+writeChunk)])
		written += n
		if err == nil {
			err = h.afterWrite(int64(n))
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (h *txHalf) writeChunkLocked(b []byte) (int, error) {
	var written int
	for written < len(b) {
		// A write that crosses the record-size threshold stops there, so
		// that the cap is lifted at it (recordsize.go).
		room := int(h.sizing.room(int64(len(b) - written)))
		n, err := h.sock.write(b[written : written+room])
		written += n
		h.sentRecordsConn(int64(n))
		if err != nil {
			return written, h.writeErrorLocked(err)
		}
	}
	return written, nil
}

// updateSoon makes the write key's KeyUpdate due, for the peer asked for
// one (RFC 8446, Section 4.6.3), or crypto/tls sent one: it is sent now
// if no write is under way, else by the writer before its next chunk.
func (h *txHalf) updateSoon() error {
	h.updateDue.Store(true)
	if h.TryLock() {
		err := h.pendingUpdateLocked()
		h.Unlock()
		return err
	}
	return nil
}

// pendingUpdateLocked sends the KeyUpdate updateSoon asked for, if one is
// due. h is locked.
func (h *txHalf) pendingUpdateLocked() error {
	if !h.updateDue.Swap(false) || h.err != nil || h.closing {
		return nil
	}
	return h.updateKeyLocked(false)
}

// updateKeyLocked sends a KeyUpdate through the kernel and installs the
// next write key. h is locked.
func (h *txHalf) updateKeyLocked(requestPeer bool) error {
	if h.suite.Version != tls.VersionTLS13 {
		return errors.New("ktls: KeyUpdate is a TLS 1.3 message")
	}
	if err := kernel.FeatureRekey.Check(); err != nil {
		return fmt.Errorf("%w (%v)", ErrKeyUpdateNotSupported, err)
	}
	if h.secret == nil {
		return net.ErrClosed // wiped: nothing more is written (zeroSecretLocked)
	}
	next := h.secret.Next()
	keys := next.Keys()
	info := kernel.NewCryptoInfo(h.suite, keys, 0)
	keys.Zero()
	defer info.Zero()
	if _, err := h.sock.sendRecord(record.TypeHandshake, record.MarshalKeyUpdate(requestPeer)); err != nil {
		next.Zero()
		h.err = err
		return err
	}
	if err := h.sock.install(kernel.TX, info, false); err != nil {
		// The peer now expects the new key; nothing more can be sent.
		next.Zero()
		h.err = err
		return err
	}
	h.secret.Zero()
	h.secret = next
	h.counted, h.estimated = 0, 0
	return nil
}

// startRecordSizing caps the kernel's records, right after TLS_TX was
// installed, and returns Offload's RecordSizing and RecordSizingReason.
// It never fails the connection: without the cap, records are 16 KiB.
// off is the config's DynamicRecordSizingDisabled.
func (h *txHalf) startRecordSizing(off bool) (bool, error) {
	if off {
		return false, errRecordSizingOff
	}
	small := smallRecordPayload(h.suite)
	err := h.sock.setOption(kernel.FeatureTXMaxPayloadLen, func(fd int) error {
		return kernel.SetTXMaxPayloadLen(fd, uint16(small))
	})
	if err != nil {
		return false, fmt.Errorf("ktls: the kernel sends 16 KiB records from the first byte: %w", err)
	}
	h.sizing = recordSizing{small: int64(small), left: recordSizeBoostThreshold}
	return true, nil
}

// sentRecords counts n bytes of application data the kernel took on fd,
// and lifts the cap once recordSizeBoostThreshold have gone out. h is
// locked.
//
// While the cap is in force, the records are smaller than the one per 4
// KiB that afterWrite counts, so their number, n/small+1 at most, is added
// to the estimate too: afterWrite's count must stay an upper bound, or the
// key would be updated after the AEAD limit rather than before.
func (h *txHalf) sentRecords(fd int, n int64) {
	s := &h.sizing
	if s.small == 0 || n <= 0 {
		return
	}
	h.estimated += uint64(n/s.small + 1)
	if s.left -= n; s.left > 0 {
		return
	}
	// Any error leaves the cap in force and counted, and is tried again
	// after the next write: small records cost speed only. The kernel
	// took this option moments ago, so EBUSY is the one expected.
	if kernel.SetTXMaxPayloadLen(fd, kernel.MaxTXMaxPayloadLen) == nil {
		s.small = 0
	}
}

// sentRecordsConn is sentRecords for a path that has no fd at hand: net's
// sendfile and splice, and the relay's. ReadFrom stops its steps at the
// threshold (room); the relay into a Conn doesn't, so the splice that
// crosses it, one record of the source's at most (tls_sw_splice_read
// moves one at a time), still goes in small records. h is locked.
// Where the fd can't be had, the Conn is closed, and nothing more is
// written.
func (h *txHalf) sentRecordsConn(n int64) {
	if h.sizing.small == 0 || n <= 0 {
		return
	}
	h.sock.rawConn().Control(func(fd uintptr) { h.sentRecords(int(fd), n) })
}
