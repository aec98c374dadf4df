package keyschedule_test

// End-to-end checks against crypto/tls: run real handshakes over an
// in-memory pipe, capture the key log and the bytes on the wire, derive the
// keys with this package and decrypt what crypto/tls sent.

import (
	"bytes"
	"crypto/tls"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/tlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

func TestTLS12Interop(t *testing.T) {
	for _, s := range keyschedule.Suites() {
		if s.Version != tls.VersionTLS12 {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			sess := tlstest.HandshakeTLS12(t, s)
			if st := sess.Client.ConnectionState(); st.Version != tls.VersionTLS12 || st.CipherSuite != s.ID {
				t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
			sess.Exchange(t, "ping from the client", "pong from the server")
			c2s, s2c := sess.Streams()

			master, ok := sess.Secrets.MasterSecret()
			if !ok {
				t.Fatal("no CLIENT_RANDOM line in the key log")
			}
			loggedRandom, _ := sess.Secrets.ClientRandom()
			clientRandom := tlstest.HelloRandom(t, c2s, 1)
			if !bytes.Equal(clientRandom, loggedRandom[:]) {
				t.Fatalf("logged client random %x, ClientHello has %x", loggedRandom, clientRandom)
			}
			serverRandom := tlstest.HelloRandom(t, s2c, 2)

			client, server, err := keyschedule.KeyBlock(s, master, clientRandom, serverRandom)
			if err != nil {
				t.Fatal(err)
			}
			checkTLS12Flight(t, s, client, c2s, "ping from the client")
			checkTLS12Flight(t, s, server, s2c, "pong from the server")
		})
	}
}

// checkTLS12Flight decrypts one direction of a TLS 1.2 connection: the
// Finished message that follows ChangeCipherSpec (sequence number 0), then
// one application data record.
func checkTLS12Flight(t *testing.T, s *keyschedule.Suite, keys keyschedule.TrafficKeys, stream []byte, appData string) {
	t.Helper()
	recs := tlstest.AfterChangeCipherSpec(t, stream)
	if len(recs) < 2 {
		t.Fatalf("no protected records after ChangeCipherSpec")
	}
	p, err := record.NewProtector(s, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	typ, pt, err := p.Open(recs[0])
	if err != nil {
		t.Fatalf("opening Finished: %v", err)
	}
	// Finished: type 20, 12 bytes of verify_data (RFC 5246, Section 7.4.9).
	if typ != record.TypeHandshake || len(pt) != 4+12 || pt[0] != 20 {
		t.Fatalf("Finished record opened to type %d, %x", typ, pt)
	}
	typ, pt, err = p.Open(recs[1])
	if err != nil {
		t.Fatalf("opening application data: %v", err)
	}
	if typ != record.TypeApplicationData || string(pt) != appData {
		t.Fatalf("application record opened to type %d, %q", typ, pt)
	}
}

// TestKeyUpdateInterop checks Next against crypto/tls in both directions.
// The test takes over the client's side of the connection after the
// handshake and sends a KeyUpdate asking for one in return, then data under
// client_application_traffic_secret_1: crypto/tls can only read it if Next
// is right. crypto/tls answers with its own KeyUpdate and switches to
// server_application_traffic_secret_1 for its reply, which the test decrypts.
func TestKeyUpdateInterop(t *testing.T) {
	// The server sends NewSessionTicket first, so its KeyUpdate does not go
	// out with sequence number 0.
	sess := tlstest.HandshakeTLS13(t)
	suite := sess.Suite(t)
	clientSecret, ok1 := sess.Secrets.ClientTrafficSecret()
	serverSecret, ok2 := sess.Secrets.ServerTrafficSecret()
	if !ok1 || !ok2 {
		t.Fatal("traffic secrets missing from the key log")
	}
	client0, err := keyschedule.NewApplicationSecret(suite, clientSecret)
	if err != nil {
		t.Fatal(err)
	}

	const request, reply = "sent under client secret 1", "sent under server secret 1"
	errc := sess.Reply(t, request, reply)

	// The client has sent nothing under its application keys yet.
	p0, err := record.NewProtector(suite, client0.Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := record.NewProtector(suite, client0.Next().Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.WriteRaw(p0.Seal(record.TypeHandshake, record.MarshalKeyUpdate(true))); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.WriteRaw(p1.Seal(record.TypeApplicationData, []byte(request))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("crypto/tls server: %v", err)
	}

	_, s2c := sess.Streams()
	hs := sess.KeyLogSecret(t, keylog.LabelServerHandshake)
	var updates []bool   // request_update of each KeyUpdate received
	var appData []string // application data records, in order
	for _, r := range tlstest.OpenTLS13(t, suite, s2c, hs, serverSecret) {
		switch r.Type {
		case record.TypeApplicationData:
			appData = append(appData, string(r.Data))
		case record.TypeHandshake:
			msgs, _, err := record.ParseHandshake(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if m.Type != record.MsgKeyUpdate {
					continue
				}
				requested, err := record.ParseKeyUpdate(m.Body)
				if err != nil {
					t.Fatal(err)
				}
				updates = append(updates, requested)
			}
		}
	}
	if len(updates) != 1 || updates[0] {
		t.Fatalf("server sent KeyUpdates %v, want one with update_not_requested", updates)
	}
	if len(appData) != 1 || appData[0] != reply {
		t.Fatalf("server application data %q, want [%q]", appData, reply)
	}
}
