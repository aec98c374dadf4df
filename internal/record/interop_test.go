package record_test

// Interoperability with crypto/tls: records written by a real crypto/tls
// connection must open, and records sealed here must be accepted by one.

import (
	"bytes"
	"crypto/tls"
	"io"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/tlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

func tls13Session(t *testing.T) (*tlstest.Session, *keyschedule.Suite) {
	t.Helper()
	// The server sends NewSessionTicket, for TestTLS13OpenInterop.
	sess := tlstest.HandshakeTLS13(t)
	return sess, sess.Suite(t)
}

func TestTLS13OpenInterop(t *testing.T) {
	sess, s := tls13Session(t)
	t.Logf("negotiated %s", s.Name)
	sess.Exchange(t, "written by a crypto/tls client", "written by a crypto/tls server")
	c2s, s2c := sess.Streams()
	cs, _ := sess.Secrets.ClientTrafficSecret()
	ss, _ := sess.Secrets.ServerTrafficSecret()

	fromClient := tlstest.OpenTLS13(t, s, c2s, sess.KeyLogSecret(t, keylog.LabelClientHandshake), cs)
	if len(fromClient) != 1 || fromClient[0].Type != record.TypeApplicationData || string(fromClient[0].Data) != "written by a crypto/tls client" {
		t.Errorf("client records: %q", fromClient)
	}

	fromServer := tlstest.OpenTLS13(t, s, s2c, sess.KeyLogSecret(t, keylog.LabelServerHandshake), ss)
	if len(fromServer) < 2 {
		t.Fatalf("server records: %q", fromServer)
	}
	// Session tickets first, then the data.
	for _, r := range fromServer[:len(fromServer)-1] {
		msgs, rest, err := record.ParseHandshake(r.Data)
		if r.Type != record.TypeHandshake || err != nil || len(rest) != 0 || len(msgs) == 0 {
			t.Fatalf("server record before the data: type %d, %v", r.Type, err)
		}
		for _, m := range msgs {
			if m.Type != record.MsgNewSessionTicket {
				t.Errorf("unexpected post-handshake message %d", m.Type)
			}
		}
	}
	if last := fromServer[len(fromServer)-1]; last.Type != record.TypeApplicationData || string(last.Data) != "written by a crypto/tls server" {
		t.Errorf("server data record: %d, %q", last.Type, last.Data)
	}
}

// clientProtector makes a TLS 1.3 session and returns the protection of
// the client's application records from sequence number seq on.
func clientProtector(t *testing.T, seq uint64) (*tlstest.Session, *record.Protector) {
	t.Helper()
	sess, s := tls13Session(t)
	cs, _ := sess.Secrets.ClientTrafficSecret()
	_, p := tlstest.Protector(t, s, cs, seq)
	return sess, p
}

// serveAll reads everything the crypto/tls server receives until EOF.
func serveAll(c *tls.Conn) <-chan []any {
	ch := make(chan []any, 1)
	go func() {
		data, err := io.ReadAll(c)
		ch <- []any{data, err}
	}()
	return ch
}

func TestTLS13SealInterop(t *testing.T) {
	// The client has written nothing under its application keys yet.
	sess, p := clientProtector(t, 0)

	result := serveAll(sess.Server)
	for _, rec := range [][]byte{
		p.Seal(record.TypeApplicationData, []byte("plain record, ")),
		p.SealPadded(record.TypeApplicationData, []byte("padded record, "), 200),
		p.SealPadded(record.TypeApplicationData, nil, 16), // empty data is allowed
		p.Seal(record.TypeApplicationData, bytes.Repeat([]byte{'m'}, record.MaxPlaintext)),
		p.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify}),
	} {
		if _, err := sess.WriteRaw(rec); err != nil {
			t.Fatal(err)
		}
	}
	r := <-result
	want := "plain record, padded record, " + strings.Repeat("m", record.MaxPlaintext)
	if data, err := r[0].([]byte), r[1]; err != nil || string(data) != want {
		t.Errorf("crypto/tls read %d bytes, %v; want %d bytes then close_notify", len(data), err, len(want))
	}
}

func TestTLS13SealInteropWrongSeq(t *testing.T) {
	// The negative control: one sequence number off and crypto/tls must
	// refuse the record, so the acceptance above means something.
	sess, p := clientProtector(t, 1)
	result := serveAll(sess.Server)
	go sess.WriteRaw(p.Seal(record.TypeApplicationData, []byte("replayed?")))
	r := <-result
	// crypto/tls reports the alert it sends as a net.OpError around an
	// unexported type, so only the text identifies it.
	if err, _ := r[1].(error); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Errorf("crypto/tls read %q, %v; want a bad_record_mac error", r[0], r[1])
	}
}

func TestTLS12Interop(t *testing.T) {
	tlstest.EachTLS12Suite(t, func(t *testing.T, s *keyschedule.Suite, sess *tlstest.Session) {
		master, _ := sess.Secrets.MasterSecret()
		clientRandom, _ := sess.Secrets.ClientRandom()
		serverRandom := tlstest.HelloRandom(t, sess.ServerSent(), 2)
		client, server, err := keyschedule.KeyBlock(s, master, clientRandom[:], serverRandom)
		if err != nil {
			t.Fatal(err)
		}

		// The client's Finished took sequence number 0.
		p, err := record.NewProtector(s, client, 1)
		if err != nil {
			t.Fatal(err)
		}
		const request, reply = "sealed by package record", "written by crypto/tls"
		errc := sess.Reply(t, request, reply)
		for _, rec := range [][]byte{
			p.Seal(record.TypeApplicationData, []byte(request[:7])),
			p.Seal(record.TypeApplicationData, []byte(request[7:])),
		} {
			if _, err := sess.WriteRaw(rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-errc; err != nil {
			t.Fatalf("crypto/tls server: %v", err)
		}
		// Then close_notify, and crypto/tls must read nothing more.
		result := serveAll(sess.Server)
		if _, err := sess.WriteRaw(p.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify})); err != nil {
			t.Fatal(err)
		}
		r := <-result
		if err, _ := r[1].(error); err != nil {
			t.Fatalf("crypto/tls server: %v", err)
		}
		if rest := r[0].([]byte); len(rest) != 0 {
			t.Errorf("crypto/tls read %q after the request", rest)
		}

		// And the other way: the server's Finished, then its reply.
		_, s2c := sess.Streams()
		recs := tlstest.AfterChangeCipherSpec(t, s2c)
		if len(recs) < 2 {
			t.Fatal("server sent too few protected records")
		}
		p, err = record.NewProtector(s, server, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j, want := range []tlstest.Record{{Type: record.TypeHandshake}, {Type: record.TypeApplicationData, Data: []byte(reply)}} {
			typ, pt, err := p.Open(recs[j])
			if err != nil || typ != want.Type || want.Data != nil && !bytes.Equal(pt, want.Data) {
				t.Errorf("server record %d: %d, %q, %v", j, typ, pt, err)
			}
		}
	})
}
