//go:build linux

package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// FuzzPostHandshakeRecords feeds arbitrary records, as recvmsg returns
// them from a socket the kernel decrypts (a content type and a
// plaintext), through the kernel path's own handling of what follows the
// handshake: application data (empty records count as useless),
// alerts, handshake messages split across records (tickets, KeyUpdate,
// renegotiation attempts), and content types that have no business
// there. The connection's socket is one end of a socketpair, so the
// alerts and messages it sends back arrive at the other end, where the
// test reads them.
//
// Each outcome is checked against a model written from the RFCs and
// crypto/tls: whether reading goes on, the error (the peer's alert, ours,
// io.EOF, or a key update this kernel can't follow), the bytes sent to
// the peer, and that the error sticks on the read side and, after a
// fatal alert, on the write side.
//
// The input is a flag byte (bit 0: TLS 1.3, bit 1: a client) and a
// stream of records, each a content type, a big-endian 16-bit length and
// that many bytes (fewer at the end of the input).
func FuzzPostHandshakeRecords(f *testing.F) {
	for _, s := range postHandshakeSeeds() {
		f.Add(s.flags, s.stream)
	}
	f.Fuzz(func(t *testing.T, flags uint8, stream []byte) {
		tls13, isClient := flags&1 != 0, flags&2 != 0
		recs := splitRecords(stream)
		c, peer := fuzzConn(t, tls13, isClient)
		m := &phModel{tls13: tls13, isClient: isClient}

		var err error
		var want phOutcome
		for i, r := range recs {
			want = m.next(r.typ, r.body)
			err = fuzzDeliver(c, r.typ, r.body)
			if (err == nil) != (want.kind == phContinue) {
				t.Fatalf("record %d (type %d, %x): got %v, model says %v", i, r.typ, r.body, err, want)
			}
			if err != nil {
				break
			}
		}
		if err != nil {
			checkOutcome(t, c, err, want)
		}

		// What went to the peer: at most the one alert, and nothing else.
		c.NetConn().(*net.UnixConn).CloseWrite()
		sent, rerr := io.ReadAll(peer)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if !bytes.Equal(sent, want.sent) {
			t.Fatalf("sent %x to the peer, model says %x (after %v)", sent, want.sent, err)
		}
	})
}

type phRecord struct {
	typ  uint8
	body []byte
}

func splitRecords(stream []byte) []phRecord {
	var recs []phRecord
	for len(stream) >= 3 {
		typ, n := stream[0], int(stream[1])<<8|int(stream[2])
		stream = stream[3:]
		// The kernel never returns more than 2^14+1 bytes of one record.
		n = min(n, len(stream), record.MaxPlaintext+1)
		recs = append(recs, phRecord{typ, stream[:n:n]})
		stream = stream[n:]
	}
	return recs
}

// fuzzDeliver hands one record to the connection as readKernel does
// with what recvmsg returned.
func fuzzDeliver(c *Conn, typ uint8, body []byte) error {
	c.rx.Lock()
	defer c.rx.Unlock()
	_, err := c.rx.recordLocked(typ, body)
	return err
}

// fuzzConn makes a Conn in the state of one whose both directions the
// kernel took (newConnAfterHandoff), over one end of a socketpair; the
// other end is returned.
func fuzzConn(t *testing.T, tls13, isClient bool) (*Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conns[i].Close() })
	}
	conns[1].SetReadDeadline(time.Now().Add(10 * time.Second))

	version, id := uint16(tls.VersionTLS12), tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	if tls13 {
		version, id = tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256
	}
	suite, _ := keyschedule.Lookup(version, id)
	var txSecret, rxSecret *keyschedule.ApplicationSecret
	if tls13 {
		secret := bytes.Repeat([]byte{7}, 32)
		txSecret, _ = keyschedule.NewApplicationSecret(suite, secret)
		rxSecret, _ = keyschedule.NewApplicationSecret(suite, secret)
	}
	c := newConnAfterHandoff(conns[0], isClient, suite, txSecret, rxSecret)
	return c, conns[1]
}

// checkOutcome compares the error with the model's, and checks it sticks.
func checkOutcome(t *testing.T, c *Conn, err error, want phOutcome) {
	t.Helper()
	var oe *net.OpError
	var ae tls.AlertError
	isAlert := errors.As(err, &oe) && errors.As(err, &ae)
	switch want.kind {
	case phEOF:
		if err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	case phUnexpectedEOF:
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
	case phRemote:
		if !isAlert || oe.Op != "remote error" || uint8(ae) != want.alert {
			t.Fatalf("got %v, want the peer's alert %v", err, tls.AlertError(want.alert))
		}
	case phLocal:
		if !isAlert || oe.Op != "local error" || uint8(ae) != want.alert {
			t.Fatalf("got %v, want the local alert %v", err, tls.AlertError(want.alert))
		}
	case phKeyUpdate:
		// This kernel can't rekey (ErrKeyUpdateNotSupported), or it can
		// and a socketpair isn't a TLS socket: the connection ends either
		// way, with internal_error to the peer.
		if err == nil || isAlert {
			t.Fatalf("got %v, want the failure to follow a key update", err)
		}
	}
	if c.rx.err != err {
		t.Fatalf("the read side's sticky error is %v, not %v", c.rx.err, err)
	}
	if len(want.sent) == 2 && want.sent[0] == record.AlertLevelFatal && c.tx.err == nil {
		t.Fatalf("after sending a fatal alert, writes can still go on")
	}
}

type phKind int

const (
	phContinue phKind = iota
	phEOF
	phUnexpectedEOF
	phRemote
	phLocal
	phKeyUpdate
)

// phOutcome is what the model expects of one record.
type phOutcome struct {
	kind  phKind
	alert uint8  // phRemote, phLocal
	sent  []byte // what the peer receives
}

// phModel is the specification the fuzz target checks against, kept
// apart from the code under test: RFC 8446 and RFC 5246 as crypto/tls
// reads them, with ktls's choices where they differ (a TLS 1.2 server
// answers a ClientHello, as a HelloRequest, with no_renegotiation, as
// RFC 5246 asks; post-handshake messages don't count as useless records,
// so a peer may update its keys as often as it likes; a message is judged
// at its header, type and length, where crypto/tls buffers it first).
type phModel struct {
	tls13, isClient bool
	useless         int
	hs              []byte
}

func (m *phModel) local(alert uint8) phOutcome {
	level := record.AlertLevelFatal
	if alert == record.AlertNoRenegotiation {
		level = record.AlertLevelWarning
	}
	return phOutcome{kind: phLocal, alert: alert, sent: []byte{level, alert}}
}

// dropped counts a record that carries nothing; more than 16 in a row is
// unexpected_message, as in crypto/tls.
func (m *phModel) dropped() phOutcome {
	m.useless++
	if m.useless > 16 {
		return m.local(record.AlertUnexpectedMessage)
	}
	return phOutcome{}
}

func (m *phModel) next(typ uint8, p []byte) phOutcome {
	switch typ {
	case 0:
		// recvmsg without a record type: the end of the stream.
		return phOutcome{kind: phUnexpectedEOF}
	case record.TypeApplicationData:
		if len(p) == 0 {
			return m.dropped()
		}
		m.useless = 0
		return phOutcome{}
	case record.TypeAlert:
		if len(p) != 2 {
			return m.local(record.AlertUnexpectedMessage)
		}
		level, desc := p[0], p[1]
		switch {
		case desc == record.AlertCloseNotify:
			return phOutcome{kind: phEOF}
		case m.tls13 && desc == record.AlertUserCanceled:
			return m.dropped()
		case m.tls13:
			return phOutcome{kind: phRemote, alert: desc}
		case level == record.AlertLevelWarning:
			return m.dropped()
		case level == record.AlertLevelFatal:
			return phOutcome{kind: phRemote, alert: desc}
		}
		return m.local(record.AlertUnexpectedMessage)
	case record.TypeHandshake:
		if len(p) == 0 {
			return m.local(record.AlertUnexpectedMessage)
		}
		return m.handshake(p)
	}
	return m.local(record.AlertUnexpectedMessage)
}

func (m *phModel) handshake(p []byte) phOutcome {
	m.hs = append(m.hs, p...)
	for len(m.hs) >= 4 {
		typ, n := m.hs[0], int(m.hs[1])<<16|int(m.hs[2])<<8|int(m.hs[3])
		// Each message is judged at its header, before its body is
		// buffered: a length over 64 KiB, then its type.
		if n > 1<<16 {
			return m.local(record.AlertDecodeError)
		}
		if !m.tls13 {
			// TLS 1.2: the only handshake messages after the handshake
			// start a renegotiation, which is refused; a client takes a
			// HelloRequest, a server a ClientHello (or a HelloRequest, as
			// crypto/tls does).
			if typ == record.MsgHelloRequest || (!m.isClient && typ == 1) {
				return m.local(record.AlertNoRenegotiation)
			}
			return m.local(record.AlertUnexpectedMessage)
		}
		switch {
		case typ == record.MsgKeyUpdate:
			if n != 1 {
				return m.local(record.AlertDecodeError)
			}
		case typ == record.MsgNewSessionTicket && m.isClient:
		default:
			return m.local(record.AlertUnexpectedMessage)
		}
		if len(m.hs) < 4+n {
			break
		}
		body := m.hs[4 : 4+n]
		m.hs = m.hs[4+n:]
		if typ == record.MsgKeyUpdate {
			switch {
			case body[0] > 1:
				return m.local(record.AlertIllegalParameter)
			case len(m.hs) > 0:
				// It must end its record (RFC 8446, Section 5.1): what is
				// left came in the same record.
				return m.local(record.AlertUnexpectedMessage)
			}
			return phOutcome{kind: phKeyUpdate, sent: []byte{record.AlertLevelFatal, record.AlertInternalError}}
		}
		// A ticket, dropped.
	}
	m.hs = bytes.Clone(m.hs)
	return phOutcome{}
}

func (o phOutcome) String() string {
	names := map[phKind]string{phContinue: "go on", phEOF: "io.EOF", phUnexpectedEOF: "io.ErrUnexpectedEOF",
		phRemote: "the peer's alert", phLocal: "a local alert", phKeyUpdate: "a key update"}
	s := names[o.kind]
	if o.kind == phRemote || o.kind == phLocal {
		s += " " + tls.AlertError(o.alert).Error()
	}
	return s
}

type phSeed struct {
	name   string
	flags  uint8
	stream []byte
}

// rec encodes records for the fuzz input.
func rec(typ uint8, body ...byte) []byte {
	return append([]byte{typ, byte(len(body) >> 8), byte(len(body))}, body...)
}

func recs(rs ...[]byte) []byte { return bytes.Join(rs, nil) }

// postHandshakeSeeds are the seed corpus, also committed under
// testdata/fuzz/FuzzPostHandshakeRecords.
func postHandshakeSeeds() []phSeed {
	const v12server, v13server, v12client, v13client = 0, 1, 2, 3
	data := rec(record.TypeApplicationData, 'h', 'i')
	empty := rec(record.TypeApplicationData)
	closeNotify := rec(record.TypeAlert, 1, 0)
	userCanceled := rec(record.TypeAlert, 1, record.AlertUserCanceled)
	ticket := []byte{record.MsgNewSessionTicket, 0, 0, 5, 0, 0, 0, 1, 0}
	var seventeenEmpty, seventeenWarnings [][]byte
	for range 17 {
		seventeenEmpty = append(seventeenEmpty, empty)
		seventeenWarnings = append(seventeenWarnings, userCanceled)
	}
	return []phSeed{
		{"data_then_close_notify", v13server, recs(data, closeNotify)},
		{"fatal_alert", v13server, recs(data, rec(record.TypeAlert, 2, 40))},
		{"alert_of_3_bytes", v12server, rec(record.TypeAlert, 2, 40, 0)},
		{"tls12_warning_then_data", v12server, recs(rec(record.TypeAlert, 1, 100), data)},
		{"tls12_alert_level_3", v12client, rec(record.TypeAlert, 3, 40)},
		{"tls13_user_canceled", v13client, recs(userCanceled, data)},
		{"17_empty_records", v13server, recs(seventeenEmpty...)},
		{"17_user_canceled", v12server, recs(seventeenWarnings...)},
		{"ticket_to_client", v13client, recs(rec(record.TypeHandshake, ticket...), data)},
		{"ticket_split_across_records", v13client, recs(rec(record.TypeHandshake, ticket[:3]...), rec(record.TypeHandshake, ticket[3:]...), data)},
		{"ticket_to_server", v13server, rec(record.TypeHandshake, ticket...)},
		{"key_update_requested", v13server, rec(record.TypeHandshake, record.MarshalKeyUpdate(true)...)},
		{"key_update_not_last", v13client, rec(record.TypeHandshake, append(record.MarshalKeyUpdate(false), ticket...)...)},
		{"key_update_value_2", v13server, rec(record.TypeHandshake, record.MsgKeyUpdate, 0, 0, 1, 2)},
		{"key_update_long", v13server, rec(record.TypeHandshake, record.MsgKeyUpdate, 0, 0, 2, 0, 0)},
		{"handshake_over_64KiB", v13client, rec(record.TypeHandshake, record.MsgNewSessionTicket, 1, 0, 1)},
		{"ticket_header_split", v13client, recs(rec(record.TypeHandshake, record.MsgNewSessionTicket, 0), rec(record.TypeHandshake, 0, 2, 'a'), rec(record.TypeHandshake, 'b'), data)},
		{"certificate_request_refused_at_header", v13client, rec(record.TypeHandshake, 13, 0, 1, 0, 0)},
		{"key_update_split_across_records", v13server, recs(rec(record.TypeHandshake, record.MsgKeyUpdate, 0, 0), rec(record.TypeHandshake, 1, 1))},
		{"tls12_client_hello_refused_at_header", v12server, rec(record.TypeHandshake, 1, 0, 0x40)},
		{"zero_length_handshake", v13client, rec(record.TypeHandshake)},
		{"tls12_client_hello_to_server", v12server, rec(record.TypeHandshake, 1, 0, 0, 2, 3, 3)},
		{"tls12_hello_request_to_client", v12client, rec(record.TypeHandshake, record.MsgHelloRequest, 0, 0, 0)},
		{"tls12_key_update", v12server, rec(record.TypeHandshake, record.MarshalKeyUpdate(false)...)},
		{"change_cipher_spec", v13server, rec(record.TypeChangeCipherSpec, 1)},
		{"content_type_99", v12client, rec(99, 'x')},
		{"end_of_stream", v12server, recs(data, rec(0))},
	}
}
