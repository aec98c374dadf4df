package e2e_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// The hostile peer completes a real handshake with a ktls server, which
// hands both directions to the kernel, and then breaks the record layer
// on purpose, by hand, one way per test. Each case checks what TLS says
// the receiver must do: the error Read returns, the alert the peer gets
// back (read by the peer itself, under the server's key), that the data
// sent before the fault arrived intact, that the error sticks, and that
// the connection leaves no goroutine and no file descriptor behind.
//
// Where TLS wants no alert (the peer is gone, or ended the stream), the
// server writes after the error and the peer reads that record first:
// nothing was sent before it.

// hostile is one case's connection: the raw peer, and the ktls server it
// talks to.
type hostile struct {
	*ktlstest.RawPeer
	t       *testing.T
	s       *ktls.Conn
	version uint16
	before  []byte // sent before the fault
}

// hostileCase is one way to misbehave. run sends h.before (or not), the
// fault, and checks the outcome.
type hostileCase struct {
	name string
	run  func(h *hostile)
}

var hostileCases = []hostileCase{
	{"truncated-record-then-FIN", func(h *hostile) {
		// Half a record, then the end of the stream: the data may have
		// been cut short, and there is no one to send an alert to.
		h.sendBefore()
		rec := h.Out.Seal(record.TypeApplicationData, []byte("this record is cut in half"))
		h.write(rec[:len(rec)/2])
		h.closeWrite()
		err := h.readToError()
		h.wantErrorIs(err, io.ErrUnexpectedEOF)
		h.wantNoAlert()
	}},
	{"truncated-header-then-FIN", func(h *hostile) {
		h.sendBefore()
		h.write([]byte{record.TypeApplicationData, 3, 3})
		h.closeWrite()
		err := h.readToError()
		h.wantErrorIs(err, io.ErrUnexpectedEOF)
		h.wantNoAlert()
	}},
	{"record-over-2^14+256", func(h *hostile) {
		// The largest TLS 1.3 ciphertext is 2^14+256 bytes (RFC 8446,
		// Section 5.2); an AEAD record in TLS 1.2 can't be longer and
		// hold at most 2^14 bytes of plaintext either. The header alone
		// condemns it: record_overflow.
		h.sendBefore()
		n := record.MaxCiphertextTLS13 + 1
		h.write(append([]byte{record.TypeApplicationData, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...))
		h.wantLocalAlert(h.readToError(), record.AlertRecordOverflow)
	}},
	{"plaintext-over-2^14", func(h *hostile) {
		// An authentic record whose plaintext is one byte over 2^14
		// (RFC 8446, Section 5.1; RFC 5246, Section 6.2.1).
		h.sendBefore()
		h.write(h.Out.Seal(record.TypeApplicationData, make([]byte, record.MaxPlaintext+1)))
		h.wantLocalAlert(h.readToError(), record.AlertRecordOverflow)
	}},
	{"bad-tag", func(h *hostile) {
		// One bit of the authentication tag flipped: bad_record_mac
		// (RFC 8446, Section 5.2).
		h.sendBefore()
		rec := h.Out.Seal(record.TypeApplicationData, []byte("tampered with"))
		rec[len(rec)-1] ^= 1
		h.write(rec)
		h.wantLocalAlert(h.readToError(), record.AlertBadRecordMAC)
	}},
	{"unprotected-record", func(h *hostile) {
		// A plaintext alert after the handshake: too short to carry a
		// tag, it can't be authentic. (With TLS 1.2 AES-GCM the kernel
		// reads the header together with the 8-byte explicit nonce, so
		// it judges the record once 13 bytes are in: the peer's next
		// record follows.)
		h.sendBefore()
		h.write([]byte{record.TypeAlert, 3, 3, 0, 2, record.AlertLevelFatal, 40})
		h.send(record.TypeApplicationData, []byte("never read"), 0)
		h.wantLocalAlert(h.readToError(), record.AlertBadRecordMAC)
	}},
	{"outer-content-type-99", func(h *hostile) {
		// An unknown content type in the header, authenticated by the
		// sender. In TLS 1.2 the kernel passes the type up, and ktls
		// answers unexpected_message (RFC 5246, Section 6). In TLS 1.3
		// the outer type is always application_data (RFC 8446, Section
		// 5.2), and the kernel authenticates the header as if it said
		// so: the record fails its tag, bad_record_mac. Fatal either
		// way.
		h.sendBefore()
		h.write(h.sealOuterType(99, record.TypeApplicationData, []byte("type 99")))
		want := record.AlertUnexpectedMessage
		if h.version == tls.VersionTLS13 {
			want = record.AlertBadRecordMAC
		}
		h.wantLocalAlert(h.readToError(), want)
	}},
	{"inner-content-type-99", func(h *hostile) {
		// TLS 1.3 hides the type inside the encryption; in TLS 1.2 the
		// header's type is the one authenticated. Either way the
		// record is authentic, and its type unknown.
		h.sendBefore()
		h.write(h.Out.Seal(99, []byte("type 99")))
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"protected-change-cipher-spec", func(h *hostile) {
		// change_cipher_spec is never protected, and never follows the
		// handshake.
		h.sendBefore()
		h.write(h.Out.Seal(record.TypeChangeCipherSpec, []byte{1}))
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"no-inner-content-type", func(h *hostile) {
		// TLS 1.3: the decrypted record is all zeros, no content type.
		// RFC 8446, Section 5.4 asks for unexpected_message; the kernel
		// reports it as it reports a failed tag (EBADMSG), so ktls can
		// only say bad_record_mac. Either way the connection ends with a
		// fatal alert.
		h.sendBefore()
		h.write(h.Out.SealPadded(0, nil, 16))
		h.wantLocalAlert(h.readToError(), record.AlertBadRecordMAC)
	}},
	{"zero-length-records", func(h *hostile) {
		// Empty application_data records are allowed, as long as they
		// aren't endless: 16 between two pieces of data change nothing.
		h.sendBefore()
		for range 16 {
			h.send(record.TypeApplicationData, nil, 0)
		}
		h.endWithData()
		h.wantIntactToEnd()
	}},
	{"zero-length-records-1000", func(h *hostile) {
		// crypto/tls stops after 16 records in a row that carry
		// nothing. The kernel drops empty application_data records
		// inside recvmsg, where ktls never sees them: a long run of
		// them costs the kernel a decryption each, never a return to
		// user space, and the data after it arrives.
		h.sendBefore()
		var run []byte
		for range 1000 {
			run = append(run, h.Out.Seal(record.TypeApplicationData, nil)...)
		}
		h.write(run)
		h.endWithData()
		h.wantIntactToEnd()
	}},
	{"ignored-alerts-16", func(h *hostile) {
		// Alerts that are dropped (TLS 1.2 warnings, TLS 1.3
		// user_canceled) are useless records too: 16 in a row are
		// tolerated.
		h.sendBefore()
		h.sendIgnoredAlerts(16)
		h.endWithData()
		h.wantIntactToEnd()
	}},
	{"ignored-alerts-17", func(h *hostile) {
		// The 17th is one too many, as in crypto/tls:
		// unexpected_message.
		h.sendBefore()
		h.sendIgnoredAlerts(17)
		h.send(record.TypeApplicationData, []byte("never read"), 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"zero-length-handshake-record", func(h *hostile) {
		// Handshake records are never empty (RFC 8446, Section 5.1;
		// RFC 5246, Section 6.2.1).
		h.sendBefore()
		h.send(record.TypeHandshake, nil, 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"zero-length-alert-record", func(h *hostile) {
		h.sendBefore()
		h.send(record.TypeAlert, nil, 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"alert-of-3-bytes", func(h *hostile) {
		h.sendBefore()
		h.send(record.TypeAlert, []byte{record.AlertLevelFatal, 40, 0}, 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"fatal-alert-mid-stream", func(h *hostile) {
		// The peer gives up: its alert is the error, and nothing goes
		// back to it.
		h.sendBefore()
		h.sendAlert(record.AlertLevelFatal, 40) // handshake_failure
		h.send(record.TypeApplicationData, []byte("never read"), 0)
		err := h.readToError()
		h.wantRemoteAlert(err, 40)
		h.wantNoAlert()
	}},
	{"warning-alert-mid-stream", func(h *hostile) {
		// TLS 1.2 drops warning alerts, TLS 1.3 only user_canceled: the
		// data after it arrives.
		h.sendBefore()
		h.sendAlert(record.AlertLevelWarning, record.AlertUserCanceled)
		h.endWithData()
		h.wantIntactToEnd()
	}},
	{"warning-level-error-alert", func(h *hostile) {
		// TLS 1.3 has no warning level: every alert but close_notify
		// and user_canceled ends the connection, whatever its level
		// says (RFC 8446, Section 6). TLS 1.2 drops warnings.
		h.sendBefore()
		h.sendAlert(record.AlertLevelWarning, 40)
		h.endWithData()
		if h.version == tls.VersionTLS13 {
			h.wantRemoteAlert(h.readToError(), 40)
			h.wantNoAlert()
		} else {
			h.wantIntactToEnd()
		}
	}},
	{"TCP-RST-mid-record", func(h *hostile) {
		// Half a record, then a reset: no alert can reach a peer that
		// is gone. The data before the reset is read first, since a
		// reset may overtake data the kernel hasn't parsed yet.
		h.sendBefore()
		got := make([]byte, len(h.before))
		if _, err := io.ReadFull(h.s, got); err != nil || !bytes.Equal(got, h.before) {
			h.t.Fatalf("read %d bytes before the reset, %v", len(got), err)
		}
		h.before = nil
		rec := h.Out.Seal(record.TypeApplicationData, []byte("this record is cut short by a reset"))
		h.write(rec[:len(rec)/2])
		h.Conn.(*net.TCPConn).SetLinger(0)
		h.Conn.Close()
		err := h.readToError()
		h.wantErrorIs(err, syscall.ECONNRESET)
	}},
	{"KeyUpdate-storm", func(h *hostile) {
		// Many KeyUpdates in a row, every tenth asking for one back. A
		// kernel that can rekey follows each, and the data after them
		// arrives; one that can't ends the connection at the first,
		// after the data before it (the policy of ErrKeyUpdateNotSupported).
		// TLS 1.2 has no KeyUpdate: unexpected_message.
		h.sendBefore()
		const updates = 500
		requested := 0
		for i := range updates {
			if h.version == tls.VersionTLS12 {
				h.send(record.TypeHandshake, record.MarshalKeyUpdate(false), 0)
				break
			}
			if err := h.UpdateKeys(i%10 == 0); err != nil {
				h.t.Fatal(err)
			}
			if i%10 == 0 {
				requested++
			}
		}
		h.send(record.TypeApplicationData, []byte("after the storm"), 0)
		switch {
		case h.version == tls.VersionTLS12:
			h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
		case kernel.FeatureRekey.Check() != nil:
			err := h.readToError()
			if !errors.Is(err, ktls.ErrKeyUpdateNotSupported) {
				h.t.Fatalf("Read = %v, want ErrKeyUpdateNotSupported", err)
			}
			h.wantPeerAlert(record.AlertLevelFatal, record.AlertInternalError)
		default:
			want := append(h.before, "after the storm"...)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(h.s, got); err != nil || !bytes.Equal(got, want) {
				h.t.Fatalf("read %d bytes, %v; want the data before and after the storm", len(got), err)
			}
			if _, err := h.s.Write([]byte("reply")); err != nil {
				h.t.Fatal(err)
			}
			for range requested {
				typ, m, err := h.Recv()
				if err != nil || typ != record.TypeHandshake || !bytes.Equal(m, record.MarshalKeyUpdate(false)) {
					h.t.Fatalf("got record %d %x, %v; want the server's KeyUpdate", typ, m, err)
				}
				if err := h.FollowKeyUpdate(); err != nil {
					h.t.Fatal(err)
				}
			}
			if data, err := h.RecvData(5); err != nil || string(data) != "reply" {
				h.t.Fatalf("reply %q, %v", data, err)
			}
		}
	}},
	{"KeyUpdate-not-ending-its-record", func(h *hostile) {
		// A key change must end its record (RFC 8446, Section 5.1).
		// TLS 1.2 has no KeyUpdate.
		h.sendBefore()
		msg := append(record.MarshalKeyUpdate(false), record.MarshalKeyUpdate(false)[:2]...)
		h.send(record.TypeHandshake, msg, 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"KeyUpdate-bad-request-value", func(h *hostile) {
		// request_update is 0 or 1 (RFC 8446, Section 4.6.3).
		h.sendBefore()
		h.send(record.TypeHandshake, []byte{record.MsgKeyUpdate, 0, 0, 1, 2}, 0)
		h.wantLocalAlert(h.readToError(), record.AlertIllegalParameter)
	}},
	{"handshake-message-over-64KiB", func(h *hostile) {
		// A message header that asks the reader to buffer more than
		// crypto/tls ever would: decode_error, before anything is
		// buffered.
		h.sendBefore()
		h.send(record.TypeHandshake, []byte{record.MsgNewSessionTicket, 1, 0, 1}, 0)
		h.wantLocalAlert(h.readToError(), record.AlertDecodeError)
	}},
	{"NewSessionTicket-to-server", func(h *hostile) {
		// Only servers send tickets.
		h.sendBefore()
		h.send(record.TypeHandshake, []byte{record.MsgNewSessionTicket, 0, 0, 0}, 0)
		h.wantLocalAlert(h.readToError(), record.AlertUnexpectedMessage)
	}},
	{"renegotiation-ClientHello", func(h *hostile) {
		h.sendBefore()
		h.send(record.TypeHandshake, clientHello(), 0)
		h.wantRenegotiationRefused(h.readToError())
	}},
	{"renegotiation-HelloRequest", func(h *hostile) {
		// HelloRequest goes from server to client; a server refuses it
		// as it refuses renegotiation.
		h.sendBefore()
		h.send(record.TypeHandshake, []byte{record.MsgHelloRequest, 0, 0, 0}, 0)
		h.wantRenegotiationRefused(h.readToError())
	}},
	{"close_notify-then-data", func(h *hostile) {
		// After close_notify, nothing more is read (RFC 8446, Section
		// 6.1): the data after it is not delivered, io.EOF sticks, and
		// this side may still write (a half-close).
		h.sendBefore()
		h.sendAlert(record.AlertLevelWarning, record.AlertCloseNotify)
		h.send(record.TypeApplicationData, []byte("after close_notify"), 0)
		h.send(record.TypeApplicationData, []byte("and more"), 0)
		h.wantErrorIs(h.readToError(), io.EOF)
		h.wantNoAlert()
	}},
}

// tls13Only are the cases that only exist in TLS 1.3, and why: they are
// not run on TLS 1.2, rather than run and skipped.
var tls13Only = map[string]string{
	"no-inner-content-type":       "TLS 1.2 has no inner content type",
	"KeyUpdate-bad-request-value": "TLS 1.2 has no KeyUpdate",
	"NewSessionTicket-to-server":  "TLS 1.2 sends tickets in the handshake",
}

// TestHostilePeer runs every case on TLS 1.3, and those that apply to it
// on TLS 1.2.
func TestHostilePeer(t *testing.T) {
	kerneltest.RequireULP(t)
	ktlstest.WarmProbes(t)
	for name := range tls13Only {
		if !slices.ContainsFunc(hostileCases, func(hc hostileCase) bool { return hc.name == name }) {
			t.Errorf("tls13Only names %q, which is no case", name)
		}
	}
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			for _, hc := range hostileCases {
				if _, ok := tls13Only[hc.name]; ok && sc.Version != tls.VersionTLS13 {
					continue
				}
				t.Run(hc.name, func(t *testing.T) { runHostile(t, sc, hc) })
			}
		})
	}
}

func runHostile(t *testing.T, sc ktlstest.SuiteCase, hc hostileCase) {
	// Registered first, so it runs last: after the connections are
	// closed.
	fds := wiretest.OpenFDs(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
		wiretest.CheckFDs(t, fds)
	})

	ccfg, scfg := sc.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	kc := s.(*ktls.Conn)
	if o := kc.Offload(); !o.TX || !o.RX {
		t.Fatalf("Offload() = %v, want TX and RX", o)
	}
	deadline := time.Now().Add(30 * time.Second)
	kc.SetDeadline(deadline)
	p.Conn.SetDeadline(deadline)
	before := make([]byte, 20000)
	rand.NewChaCha8([32]byte{9}).Read(before)
	hc.run(&hostile{RawPeer: p, t: t, s: kc, version: sc.Version, before: before})
}

// sendBefore sends h.before as application data, in two records.
func (h *hostile) sendBefore() {
	h.t.Helper()
	for b := h.before; len(b) > 0; {
		n := min(len(b), record.MaxPlaintext)
		h.send(record.TypeApplicationData, b[:n], 0)
		b = b[n:]
	}
}

func (h *hostile) send(typ uint8, data []byte, pad int) {
	h.t.Helper()
	if err := h.RawPeer.Send(typ, data, pad); err != nil {
		h.t.Fatalf("raw peer: %v", err)
	}
}

func (h *hostile) sendAlert(level, desc uint8) {
	h.t.Helper()
	h.send(record.TypeAlert, []byte{level, desc}, 0)
}

// sendIgnoredAlerts sends n user_canceled warnings, alerts that both
// versions drop.
func (h *hostile) sendIgnoredAlerts(n int) {
	h.t.Helper()
	for range n {
		h.sendAlert(record.AlertLevelWarning, record.AlertUserCanceled)
	}
}

func (h *hostile) write(b []byte) {
	h.t.Helper()
	if _, err := h.Conn.Write(b); err != nil {
		h.t.Fatalf("raw peer: %v", err)
	}
}

func (h *hostile) closeWrite() {
	h.t.Helper()
	if err := h.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		h.t.Fatal(err)
	}
}

// sealOuterType returns an authentic record whose header says outer.
// In TLS 1.2 the header's type is the record's type; in TLS 1.3 it is
// authenticated as part of the header, and inner is the real type.
func (h *hostile) sealOuterType(outer, inner uint8, data []byte) []byte {
	h.t.Helper()
	if h.version == tls.VersionTLS12 {
		return h.Out.Seal(outer, data)
	}
	keys := h.OutSecret.Keys()
	aead, err := h.Suite.NewAEAD(keys.Key)
	if err != nil {
		h.t.Fatal(err)
	}
	seq := h.Out.Seq()
	nonce := bytes.Clone(keys.IV)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(seq >> (8 * i))
	}
	inner1 := append(bytes.Clone(data), inner)
	n := len(inner1) + aead.Overhead()
	hdr := []byte{outer, 3, 3, byte(n >> 8), byte(n)}
	rec := aead.Seal(bytes.Clone(hdr), nonce, inner1, hdr)
	h.Out.Seal(record.TypeApplicationData, nil) // the sequence number moves on
	return rec
}

// endWithData sends more data after a fault the receiver must
// tolerate, then close_notify.
func (h *hostile) endWithData() {
	h.t.Helper()
	h.send(record.TypeApplicationData, []byte("after"), 0)
	h.sendAlert(record.AlertLevelWarning, record.AlertCloseNotify)
}

// wantIntactToEnd checks what follows endWithData when the fault was
// tolerated: the data on both sides of it, then io.EOF, and no alert.
func (h *hostile) wantIntactToEnd() {
	h.t.Helper()
	h.before = append(h.before, "after"...)
	h.wantErrorIs(h.readToError(), io.EOF)
	h.wantNoAlert()
}

// readToError reads until Read fails, checks that what came first is
// exactly h.before, and that the error sticks.
func (h *hostile) readToError() error {
	h.t.Helper()
	got, err := wiretest.ReadAll(h.s)
	if !bytes.Equal(got, h.before) {
		h.t.Fatalf("read %d bytes before the error (%v), want the %d sent before the fault, intact", len(got), err, len(h.before))
	}
	if wiretest.IsTimeout(err) {
		h.t.Fatalf("Read timed out: the fault went unnoticed")
	}
	_, again := h.s.Read(make([]byte, 10))
	if again == nil || again.Error() != err.Error() {
		h.t.Errorf("Read after %v = %v: the error doesn't stick", err, again)
	}
	h.t.Logf("Read: %v", err)
	return err
}

func (h *hostile) wantErrorIs(err, target error) {
	h.t.Helper()
	if !errors.Is(err, target) {
		h.t.Fatalf("Read = %v, want %v", err, target)
	}
}

// wantLocalAlert checks that Read failed with the alert this side sent,
// that the peer received it, and, for a fatal one, that writing fails
// too.
func (h *hostile) wantLocalAlert(err error, desc uint8) {
	h.t.Helper()
	var oe *net.OpError
	var ae tls.AlertError
	if !errors.As(err, &oe) || oe.Op != "local error" || !errors.As(err, &ae) || uint8(ae) != desc {
		h.t.Fatalf("Read = %v, want the local alert %v", err, tls.AlertError(desc))
	}
	level := record.AlertLevelFatal
	if desc == record.AlertNoRenegotiation {
		level = record.AlertLevelWarning
	}
	h.wantPeerAlert(level, desc)
	if level == record.AlertLevelFatal {
		if _, werr := h.s.Write([]byte("after a fatal alert")); !errors.As(werr, &ae) || uint8(ae) != desc {
			h.t.Errorf("Write after sending %v = %v, want the same alert", tls.AlertError(desc), werr)
		}
	}
}

// wantRenegotiationRefused checks that Read failed with the answer to a
// renegotiation. A TLS 1.2 server that doesn't renegotiate answers a new
// handshake with a no_renegotiation warning (RFC 5246, Section 7.2.2).
// TLS 1.3 has no renegotiation: the message is unexpected.
func (h *hostile) wantRenegotiationRefused(err error) {
	h.t.Helper()
	if h.version == tls.VersionTLS13 {
		h.wantLocalAlert(err, record.AlertUnexpectedMessage)
		return
	}
	h.wantLocalAlert(err, record.AlertNoRenegotiation)
}

// wantRemoteAlert checks that Read failed with the peer's alert.
func (h *hostile) wantRemoteAlert(err error, desc uint8) {
	h.t.Helper()
	var oe *net.OpError
	var ae tls.AlertError
	if !errors.As(err, &oe) || oe.Op != "remote error" || !errors.As(err, &ae) || uint8(ae) != desc {
		h.t.Fatalf("Read = %v, want the peer's alert %v", err, tls.AlertError(desc))
	}
}

// wantPeerAlert reads the next record at the peer: it must be the alert.
func (h *hostile) wantPeerAlert(level, desc uint8) {
	h.t.Helper()
	typ, msg, err := h.Recv()
	if err != nil || typ != record.TypeAlert || !bytes.Equal(msg, []byte{level, desc}) {
		h.t.Fatalf("the peer got record %d %x, %v; want the alert %d %v", typ, msg, err, level, tls.AlertError(desc))
	}
}

// wantNoAlert writes from the server and checks that the peer reads that
// record first: no alert went out before it.
func (h *hostile) wantNoAlert() {
	h.t.Helper()
	msg := []byte("still writing")
	if _, err := h.s.Write(msg); err != nil {
		h.t.Fatalf("Write after the read error: %v", err)
	}
	typ, got, err := h.Recv()
	if err != nil || typ != record.TypeApplicationData || !bytes.Equal(got, msg) {
		h.t.Fatalf("the peer got record %d %q, %v; want the data written after the error, and no alert before it", typ, got, err)
	}
}

// clientHello is a minimal TLS 1.2 ClientHello message, header included.
func clientHello() []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session_id
	body = append(body, 0, 2, 0xc0, 0x2b)    // cipher_suites
	body = append(body, 1, 0)                // compression_methods
	n := len(body)
	return append([]byte{1, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}
