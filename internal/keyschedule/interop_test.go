package keyschedule_test

// End-to-end checks against crypto/tls: run real handshakes over an
// in-memory pipe, capture the key log and the bytes on the wire, derive the
// keys with this package and decrypt what crypto/tls sent.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

const serverName = "ktls.test"

// testCert returns a self-signed certificate for serverName with an ECDSA
// or an RSA key, and a pool that trusts it. Keys are generated once per
// test binary: RSA key generation is slow under the race detector.
func testCert(t testing.TB, rsaKey bool) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c := &ecdsaCert
	if rsaKey {
		c = &rsaCert
	}
	c.once.Do(func() { c.cert, c.pool, c.err = newCert(rsaKey) })
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.cert, c.pool
}

var ecdsaCert, rsaCert struct {
	once sync.Once
	cert tls.Certificate
	pool *x509.CertPool
	err  error
}

func newCert(rsaKey bool) (tls.Certificate, *x509.CertPool, error) {
	var priv any
	var pub any
	if rsaKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		priv, pub = k, &k.PublicKey
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		priv, pub = k, &k.PublicKey
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool, nil
}

// tap is the client's end of a net.Pipe. It records the bytes in both
// directions, and a goroutine drains the pipe at all times: net.Pipe has no
// buffer, and crypto/tls writes (session tickets, KeyUpdate replies) at
// moments when nobody would otherwise be reading.
type tap struct {
	net.Conn
	mu   sync.Mutex
	cond sync.Cond
	in   []byte // everything the server sent
	off  int    // how much of in Read has returned
	out  []byte // everything written to the server
	err  error  // what stopped the drain
	done chan struct{}
}

func newTap(c net.Conn) *tap {
	t := &tap{Conn: c, done: make(chan struct{})}
	t.cond.L = &t.mu
	go func() {
		defer close(t.done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			t.mu.Lock()
			t.in = append(t.in, buf[:n]...)
			if err != nil {
				t.err = err
			}
			t.cond.Broadcast()
			t.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return t
}

func (t *tap) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.off == len(t.in) && t.err == nil {
		t.cond.Wait()
	}
	if t.off < len(t.in) {
		n := copy(p, t.in[t.off:])
		t.off += n
		return n, nil
	}
	return 0, t.err
}

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.out = append(t.out, p...)
	t.mu.Unlock()
	return t.Conn.Write(p)
}

// received waits until the server's end is closed and returns everything
// the server sent.
func (t *tap) received() []byte {
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.in...)
}

func (t *tap) sent() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.out...)
}

type session struct {
	client, server *tls.Conn
	tap            *tap
	serverRaw      net.Conn
	secrets        *keylog.Secrets
	keyLog         *bytes.Buffer // every key log line, forwarded by secrets
}

// handshake connects a crypto/tls client and server, with the client's key
// log going to a keylog.Secrets.
func handshake(t *testing.T, client, server *tls.Config) *session {
	t.Helper()
	c, s := net.Pipe()
	ct := newTap(c)
	sess := &session{tap: ct, serverRaw: s, keyLog: new(bytes.Buffer)}
	sess.secrets = keylog.NewSecrets(sess.keyLog)
	client = client.Clone()
	client.KeyLogWriter = sess.secrets
	sess.client = tls.Client(ct, client)
	sess.server = tls.Server(s, server)
	t.Cleanup(func() { c.Close(); s.Close() })

	errc := make(chan error, 1)
	go func() { errc <- sess.server.Handshake() }()
	if err := sess.client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return sess
}

// exchange sends one message each way through the crypto/tls connections.
func (sess *session) exchange(t *testing.T, toServer, toClient string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(toServer))
		if _, err := io.ReadFull(sess.server, buf); err != nil {
			errc <- err
			return
		}
		if string(buf) != toServer {
			t.Errorf("server read %q, want %q", buf, toServer)
		}
		_, err := sess.server.Write([]byte(toClient))
		errc <- err
	}()
	if _, err := sess.client.Write([]byte(toServer)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(toClient))
	if _, err := io.ReadFull(sess.client, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != toClient {
		t.Errorf("client read %q, want %q", buf, toClient)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// streams ends the session and returns the raw bytes sent by each side.
func (sess *session) streams() (clientToServer, serverToClient []byte) {
	sess.serverRaw.Close()
	return sess.tap.sent(), sess.tap.received()
}

// splitRecords cuts a byte stream into whole records.
func splitRecords(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(stream) > 0 {
		h, err := record.ParseHeader(stream)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if len(stream) < record.HeaderLen+h.Length {
			t.Fatalf("stream ends inside a record")
		}
		recs = append(recs, stream[:record.HeaderLen+h.Length])
		stream = stream[record.HeaderLen+h.Length:]
	}
	return recs
}

// helloRandom returns the random of the ClientHello or ServerHello that
// starts a plaintext handshake stream.
func helloRandom(t *testing.T, stream []byte, msgType uint8) []byte {
	t.Helper()
	rec := splitRecords(t, stream)[0]
	msgs, _, err := record.ParseHandshake(rec[record.HeaderLen:])
	if err != nil || len(msgs) == 0 || msgs[0].Type != msgType || len(msgs[0].Body) < 2+32 {
		t.Fatalf("stream does not start with handshake message %d", msgType)
	}
	// legacy_version (2 bytes), then random (RFC 5246, Section 7.4.1).
	return msgs[0].Body[2 : 2+32]
}

func TestTLS12Interop(t *testing.T) {
	for _, s := range keyschedule.Suites() {
		if s.Version != tls.VersionTLS12 {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			cert, pool := testCert(t, !strings.Contains(s.Name, "ECDSA"))
			sess := handshake(t,
				&tls.Config{RootCAs: pool, ServerName: serverName, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s.ID}},
				&tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{s.ID}})
			if st := sess.client.ConnectionState(); st.Version != tls.VersionTLS12 || st.CipherSuite != s.ID {
				t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
			sess.exchange(t, "ping from the client", "pong from the server")
			c2s, s2c := sess.streams()

			master, ok := sess.secrets.MasterSecret()
			if !ok {
				t.Fatal("no CLIENT_RANDOM line in the key log")
			}
			loggedRandom, _ := sess.secrets.ClientRandom()
			clientRandom := helloRandom(t, c2s, 1)
			if !bytes.Equal(clientRandom, loggedRandom[:]) {
				t.Fatalf("logged client random %x, ClientHello has %x", loggedRandom, clientRandom)
			}
			serverRandom := helloRandom(t, s2c, 2)

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
	recs := splitRecords(t, stream)
	i := 0
	for i < len(recs) && recs[i][0] != record.TypeChangeCipherSpec {
		i++
	}
	if i+2 >= len(recs) {
		t.Fatalf("no protected records after ChangeCipherSpec")
	}
	p, err := record.NewProtector(s, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	typ, pt, err := p.Open(recs[i+1])
	if err != nil {
		t.Fatalf("opening Finished: %v", err)
	}
	// Finished: type 20, 12 bytes of verify_data (RFC 5246, Section 7.4.9).
	if typ != record.TypeHandshake || len(pt) != 4+12 || pt[0] != 20 {
		t.Fatalf("Finished record opened to type %d, %x", typ, pt)
	}
	typ, pt, err = p.Open(recs[i+2])
	if err != nil {
		t.Fatalf("opening application data: %v", err)
	}
	if typ != record.TypeApplicationData || string(pt) != appData {
		t.Fatalf("application record opened to type %d, %q", typ, pt)
	}
}

// keyLogSecret returns the secret logged under label.
func keyLogSecret(t *testing.T, log []byte, label string) []byte {
	t.Helper()
	for line := range bytes.Lines(log) {
		e, err := keylog.ParseLine(line)
		if err != nil {
			t.Fatalf("key log: %v", err)
		}
		if e.Label == label {
			return e.Secret
		}
	}
	t.Fatalf("no %s in the key log", label)
	return nil
}

// TestKeyUpdateInterop checks Next against crypto/tls in both directions.
// The test takes over the client's side of the connection after the
// handshake and sends a KeyUpdate asking for one in return, then data under
// client_application_traffic_secret_1: crypto/tls can only read it if Next
// is right. crypto/tls answers with its own KeyUpdate and switches to
// server_application_traffic_secret_1 for its reply, which the test decrypts.
func TestKeyUpdateInterop(t *testing.T) {
	cert, pool := testCert(t, false)
	sess := handshake(t,
		// A session cache makes the server send NewSessionTicket first,
		// so its KeyUpdate does not go out with sequence number 0.
		&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13,
			ClientSessionCache: tls.NewLRUClientSessionCache(1)},
		&tls.Config{Certificates: []tls.Certificate{cert}})
	st := sess.client.ConnectionState()
	suite, ok := keyschedule.Lookup(st.Version, st.CipherSuite)
	if !ok {
		t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
	clientSecret, ok1 := sess.secrets.ClientTrafficSecret()
	serverSecret, ok2 := sess.secrets.ServerTrafficSecret()
	if !ok1 || !ok2 {
		t.Fatal("traffic secrets missing from the key log")
	}
	client0, err := keyschedule.NewApplicationSecret(suite, clientSecret)
	if err != nil {
		t.Fatal(err)
	}

	const request, reply = "sent under client secret 1", "sent under server secret 1"
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(request))
		if _, err := io.ReadFull(sess.server, buf); err != nil {
			errc <- err
			return
		}
		if string(buf) != request {
			t.Errorf("server read %q, want %q", buf, request)
		}
		_, err := sess.server.Write([]byte(reply))
		errc <- err
	}()

	// The client has sent nothing under its application keys yet.
	p0, err := record.NewProtector(suite, client0.Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := record.NewProtector(suite, client0.Next().Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.tap.Write(p0.Seal(record.TypeHandshake, record.MarshalKeyUpdate(true))); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.tap.Write(p1.Seal(record.TypeApplicationData, []byte(request))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("crypto/tls server: %v", err)
	}

	_, s2c := sess.streams()
	hs := keyLogSecret(t, sess.keyLog.Bytes(), keylog.LabelServerHandshake)
	got := openTLS13(t, suite, s2c, hs, serverSecret)
	if len(got.updates) != 1 || got.updates[0] {
		t.Fatalf("server sent KeyUpdates %v, want one with update_not_requested", got.updates)
	}
	if len(got.appData) != 1 || got.appData[0] != reply {
		t.Fatalf("server application data %q, want [%q]", got.appData, reply)
	}
}

type tls13Stream struct {
	updates []bool   // request_update of each KeyUpdate received
	appData []string // application data records, in order
}

// openTLS13 decrypts one direction of a TLS 1.3 connection as its receiver
// would: handshake keys until Finished, then application keys, moving to
// the next generation after each KeyUpdate.
func openTLS13(t *testing.T, s *keyschedule.Suite, stream, handshakeSecret, appSecret []byte) tls13Stream {
	t.Helper()
	var out tls13Stream
	// A handshake traffic secret expands exactly like an application one.
	hs, err := keyschedule.NewApplicationSecret(s, handshakeSecret)
	if err != nil {
		t.Fatal(err)
	}
	app, err := keyschedule.NewApplicationSecret(s, appSecret)
	if err != nil {
		t.Fatal(err)
	}
	p, err := record.NewProtector(s, hs.Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	inHandshake := true
	var pending []byte
	for _, rec := range splitRecords(t, stream) {
		if rec[0] != record.TypeApplicationData {
			continue // ServerHello and the compatibility ChangeCipherSpec
		}
		typ, pt, err := p.Open(rec)
		if err != nil {
			t.Fatalf("record %d under %s keys: %v", p.Seq(), map[bool]string{true: "handshake", false: "application"}[inHandshake], err)
		}
		switch typ {
		case record.TypeApplicationData:
			out.appData = append(out.appData, string(pt))
			continue
		case record.TypeAlert:
			continue
		}
		var msgs []record.HandshakeMsg
		msgs, pending, err = record.ParseHandshake(append(pending, pt...))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch {
			case inHandshake && m.Type == 20: // Finished
				inHandshake = false
				if p, err = record.NewProtector(s, app.Keys(), 0); err != nil {
					t.Fatal(err)
				}
			case !inHandshake && m.Type == record.MsgKeyUpdate:
				requested, err := record.ParseKeyUpdate(m.Body)
				if err != nil {
					t.Fatal(err)
				}
				out.updates = append(out.updates, requested)
				app = app.Next()
				if p, err = record.NewProtector(s, app.Keys(), 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if inHandshake {
		t.Fatal("stream has no Finished message")
	}
	return out
}
