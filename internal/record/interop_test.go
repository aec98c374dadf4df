package record_test

// Interoperability with crypto/tls: records written by a real crypto/tls
// connection must open, and records sealed here must be accepted by one.
//
// The connection helpers mirror those in keyschedule's tests; test code
// cannot be shared between packages without creating one.

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

// receivedSoFar returns what the server has sent until now.
func (t *tap) receivedSoFar() []byte {
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

type opened struct {
	typ  uint8
	data []byte
}

// openTLS13 decrypts one direction of a TLS 1.3 connection as its receiver
// would, handshake keys until Finished and application keys afterwards,
// and returns the records protected with the application keys.
func openTLS13(t *testing.T, s *keyschedule.Suite, stream, handshakeSecret, appSecret []byte) []opened {
	t.Helper()
	keys := func(secret []byte) keyschedule.TrafficKeys {
		// A handshake traffic secret expands exactly like an application one.
		a, err := keyschedule.NewApplicationSecret(s, secret)
		if err != nil {
			t.Fatal(err)
		}
		return a.Keys()
	}
	p, err := record.NewProtector(s, keys(handshakeSecret), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []opened
	inHandshake := true
	for _, rec := range splitRecords(t, stream) {
		if rec[0] != record.TypeApplicationData {
			continue // ServerHello and the compatibility ChangeCipherSpec
		}
		typ, pt, err := p.Open(rec)
		if err != nil {
			t.Fatalf("record %d: %v", p.Seq(), err)
		}
		if !inHandshake {
			out = append(out, opened{typ, pt})
			continue
		}
		// crypto/tls ends each flight with Finished in a record of its own.
		msgs, rest, err := record.ParseHandshake(pt)
		if err != nil || len(rest) != 0 || typ != record.TypeHandshake {
			t.Fatalf("handshake record %d: type %d, %v", p.Seq()-1, typ, err)
		}
		if msgs[len(msgs)-1].Type == 20 { // Finished
			inHandshake = false
			if p, err = record.NewProtector(s, keys(appSecret), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if inHandshake {
		t.Fatal("stream has no Finished message")
	}
	return out
}

func tls13Session(t *testing.T) (*session, *keyschedule.Suite) {
	t.Helper()
	cert, pool := testCert(t, false)
	sess := handshake(t,
		// A session cache makes the server send NewSessionTicket.
		&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS13,
			ClientSessionCache: tls.NewLRUClientSessionCache(1)},
		&tls.Config{Certificates: []tls.Certificate{cert}})
	st := sess.client.ConnectionState()
	s, ok := keyschedule.Lookup(st.Version, st.CipherSuite)
	if !ok {
		t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
	return sess, s
}

func TestTLS13OpenInterop(t *testing.T) {
	sess, s := tls13Session(t)
	t.Logf("negotiated %s", s.Name)
	sess.exchange(t, "written by a crypto/tls client", "written by a crypto/tls server")
	c2s, s2c := sess.streams()
	log := sess.keyLog.Bytes()
	cs, _ := sess.secrets.ClientTrafficSecret()
	ss, _ := sess.secrets.ServerTrafficSecret()

	fromClient := openTLS13(t, s, c2s, keyLogSecret(t, log, keylog.LabelClientHandshake), cs)
	if len(fromClient) != 1 || fromClient[0].typ != record.TypeApplicationData || string(fromClient[0].data) != "written by a crypto/tls client" {
		t.Errorf("client records: %q", fromClient)
	}

	fromServer := openTLS13(t, s, s2c, keyLogSecret(t, log, keylog.LabelServerHandshake), ss)
	if len(fromServer) < 2 {
		t.Fatalf("server records: %q", fromServer)
	}
	// Session tickets first, then the data.
	for _, r := range fromServer[:len(fromServer)-1] {
		msgs, rest, err := record.ParseHandshake(r.data)
		if r.typ != record.TypeHandshake || err != nil || len(rest) != 0 || len(msgs) == 0 {
			t.Fatalf("server record before the data: type %d, %v", r.typ, err)
		}
		for _, m := range msgs {
			if m.Type != record.MsgNewSessionTicket {
				t.Errorf("unexpected post-handshake message %d", m.Type)
			}
		}
	}
	if last := fromServer[len(fromServer)-1]; last.typ != record.TypeApplicationData || string(last.data) != "written by a crypto/tls server" {
		t.Errorf("server data record: %d, %q", last.typ, last.data)
	}
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
	sess, s := tls13Session(t)
	cs, _ := sess.secrets.ClientTrafficSecret()
	secret, err := keyschedule.NewApplicationSecret(s, cs)
	if err != nil {
		t.Fatal(err)
	}
	// The client has written nothing under its application keys yet.
	p, err := record.NewProtector(s, secret.Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}

	result := serveAll(sess.server)
	for _, rec := range [][]byte{
		p.Seal(record.TypeApplicationData, []byte("plain record, ")),
		p.SealPadded(record.TypeApplicationData, []byte("padded record, "), 200),
		p.SealPadded(record.TypeApplicationData, nil, 16), // empty data is allowed
		p.Seal(record.TypeApplicationData, bytes.Repeat([]byte{'m'}, record.MaxPlaintext)),
		p.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify}),
	} {
		if _, err := sess.tap.Write(rec); err != nil {
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
	sess, s := tls13Session(t)
	cs, _ := sess.secrets.ClientTrafficSecret()
	secret, err := keyschedule.NewApplicationSecret(s, cs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := record.NewProtector(s, secret.Keys(), 1)
	if err != nil {
		t.Fatal(err)
	}
	result := serveAll(sess.server)
	go sess.tap.Write(p.Seal(record.TypeApplicationData, []byte("replayed?")))
	r := <-result
	// crypto/tls reports the alert it sends as a net.OpError around an
	// unexported type, so only the text identifies it.
	if err, _ := r[1].(error); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Errorf("crypto/tls read %q, %v; want a bad_record_mac error", r[0], r[1])
	}
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
			if st := sess.client.ConnectionState(); st.CipherSuite != s.ID {
				t.Fatalf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
			}
			master, _ := sess.secrets.MasterSecret()
			clientRandom, _ := sess.secrets.ClientRandom()
			serverRandom := helloRandom(t, sess.tap.receivedSoFar(), 2)
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
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, len(request))
				if _, err := io.ReadFull(sess.server, buf); err != nil {
					errc <- err
					return
				}
				if string(buf) != request {
					t.Errorf("crypto/tls read %q, want %q", buf, request)
				}
				if _, err := sess.server.Write([]byte(reply)); err != nil {
					errc <- err
					return
				}
				rest, err := io.ReadAll(sess.server)
				if err == nil && len(rest) != 0 {
					t.Errorf("crypto/tls read %q after the request", rest)
				}
				errc <- err
			}()
			for _, rec := range [][]byte{
				p.Seal(record.TypeApplicationData, []byte(request[:7])),
				p.Seal(record.TypeApplicationData, []byte(request[7:])),
				p.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify}),
			} {
				if _, err := sess.tap.Write(rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("crypto/tls server: %v", err)
			}

			// And the other way: the server's Finished, then its reply.
			_, s2c := sess.streams()
			recs := splitRecords(t, s2c)
			i := 0
			for i < len(recs) && recs[i][0] != record.TypeChangeCipherSpec {
				i++
			}
			if i+2 >= len(recs) {
				t.Fatal("server sent too few protected records")
			}
			p, err = record.NewProtector(s, server, 0)
			if err != nil {
				t.Fatal(err)
			}
			for j, want := range []opened{{record.TypeHandshake, nil}, {record.TypeApplicationData, []byte(reply)}} {
				typ, pt, err := p.Open(recs[i+1+j])
				if err != nil || typ != want.typ || want.data != nil && !bytes.Equal(pt, want.data) {
					t.Errorf("server record %d: %d, %q, %v", j, typ, pt, err)
				}
			}
		})
	}
}
