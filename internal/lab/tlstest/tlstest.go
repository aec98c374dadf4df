// Package tlstest records what a crypto/tls client and server send each
// other over net.Pipe, with their key logs, for tests that check ktls's key
// derivation and record layer against crypto/tls.
package tlstest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/record"
)

// A Session is a crypto/tls client and server connected by a net.Pipe. The
// client's end of the pipe records the bytes that cross it both ways.
type Session struct {
	Client, Server *tls.Conn
	// Secrets receives the client's key log.
	Secrets *keylog.Secrets

	tap       *tap
	serverEnd net.Conn
	keyLog    bytes.Buffer // every key log line, forwarded by Secrets
}

// Handshake connects a crypto/tls client and server configured by client
// and server, and completes the handshake. The client's key log goes to the
// session's Secrets; client itself is not modified. The pipe is closed
// when the test ends.
func Handshake(t testing.TB, client, server *tls.Config) *Session {
	t.Helper()
	c, s := net.Pipe()
	sess := &Session{tap: newTap(c), serverEnd: s}
	sess.Secrets = keylog.NewSecrets(&sess.keyLog)
	client = client.Clone()
	client.KeyLogWriter = sess.Secrets
	sess.Client = tls.Client(sess.tap, client)
	sess.Server = tls.Server(s, server)
	t.Cleanup(func() { c.Close(); s.Close() })

	errc := make(chan error, 1)
	go func() { errc <- sess.Server.Handshake() }()
	if err := sess.Client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return sess
}

// HandshakeTLS12 is Handshake with a client and a server that allow only
// TLS 1.2 and suite s, the server having a testcert certificate with a key
// that s can use.
func HandshakeTLS12(t testing.TB, s *keyschedule.Suite) *Session {
	t.Helper()
	kind := testcert.ECDSA
	if !strings.Contains(s.Name, "ECDSA") {
		kind = testcert.RSA
	}
	b := testcert.Get(kind)
	client, server := b.ClientConfig(), b.ServerConfig()
	for _, c := range []*tls.Config{client, server} {
		c.MaxVersion = tls.VersionTLS12
		c.CipherSuites = []uint16{s.ID}
	}
	return Handshake(t, client, server)
}

// EachTLS12Suite runs f in a subtest for each TLS 1.2 suite keyschedule
// supports, on a session of HandshakeTLS12 that negotiated it.
func EachTLS12Suite(t *testing.T, f func(t *testing.T, s *keyschedule.Suite, sess *Session)) {
	for _, s := range keyschedule.Suites() {
		if s.Version != tls.VersionTLS12 {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			sess := HandshakeTLS12(t, s)
			if st := sess.Client.ConnectionState(); st.Version != tls.VersionTLS12 || st.CipherSuite != s.ID {
				t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
			}
			f(t, s, sess)
		})
	}
}

// HandshakeTLS13 is Handshake with a client and a server that negotiate
// TLS 1.3, the server having a testcert ECDSA certificate. The client has a
// session cache, so the server sends NewSessionTicket after the handshake.
func HandshakeTLS13(t testing.TB) *Session {
	t.Helper()
	b := testcert.Get(testcert.ECDSA)
	client := b.ClientConfig()
	client.MinVersion = tls.VersionTLS13
	client.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	return Handshake(t, client, b.ServerConfig())
}

// Exchange sends toServer from the client and toClient from the server in
// reply, through the crypto/tls connections, and checks that each arrives.
func (sess *Session) Exchange(t testing.TB, toServer, toClient string) {
	t.Helper()
	errc := sess.Reply(t, toServer, toClient)
	if _, err := sess.Client.Write([]byte(toServer)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(toClient))
	if _, err := io.ReadFull(sess.Client, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != toClient {
		t.Errorf("client read %q, want %q", buf, toClient)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Reply starts a goroutine in which the server reads len(request) bytes,
// reports an error to t if they are not request, and writes reply. The
// channel receives the error that ended the goroutine, or nil.
func (sess *Session) Reply(t testing.TB, request, reply string) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, len(request))
		if _, err := io.ReadFull(sess.Server, buf); err != nil {
			errc <- err
			return
		}
		if string(buf) != request {
			t.Errorf("server read %q, want %q", buf, request)
		}
		_, err := sess.Server.Write([]byte(reply))
		errc <- err
	}()
	return errc
}

// WriteRaw writes b to the server as if the client had sent it, bypassing
// Client, so that a test can take over the client's side of the
// connection. The bytes are recorded with the rest of what the client
// sends.
func (sess *Session) WriteRaw(b []byte) (int, error) {
	return sess.tap.Write(b)
}

// ServerSent returns what the server has sent so far.
func (sess *Session) ServerSent() []byte {
	sess.tap.mu.Lock()
	defer sess.tap.mu.Unlock()
	return bytes.Clone(sess.tap.in)
}

// Streams closes the server's end of the pipe and returns the bytes each
// side sent.
func (sess *Session) Streams() (clientToServer, serverToClient []byte) {
	sess.serverEnd.Close()
	<-sess.tap.done
	sess.tap.mu.Lock()
	defer sess.tap.mu.Unlock()
	return bytes.Clone(sess.tap.out), bytes.Clone(sess.tap.in)
}

// KeyLogSecret returns the secret that the client's key log holds under
// label, such as keylog.LabelServerHandshake, and fails the test if there
// is none.
func (sess *Session) KeyLogSecret(t testing.TB, label string) []byte {
	t.Helper()
	for line := range bytes.Lines(sess.keyLog.Bytes()) {
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

// Suite returns the cipher suite the client negotiated, and fails the test
// if keyschedule does not support it.
func (sess *Session) Suite(t testing.TB) *keyschedule.Suite {
	t.Helper()
	st := sess.Client.ConnectionState()
	s, ok := keyschedule.Lookup(st.Version, st.CipherSuite)
	if !ok {
		t.Fatalf("negotiated %#04x %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
	}
	return s
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

// SplitRecords cuts stream into whole records, headers included, and fails
// the test if it is not a sequence of whole records.
func SplitRecords(t testing.TB, stream []byte) [][]byte {
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

// HelloRandom returns the random of the ClientHello (msgType 1) or
// ServerHello (msgType 2) that starts stream, and fails the test if stream
// does not start with that message.
func HelloRandom(t testing.TB, stream []byte, msgType uint8) []byte {
	t.Helper()
	rec := SplitRecords(t, stream)[0]
	msgs, _, err := record.ParseHandshake(rec[record.HeaderLen:])
	if err != nil || len(msgs) == 0 || msgs[0].Type != msgType || len(msgs[0].Body) < 2+32 {
		t.Fatalf("stream does not start with handshake message %d", msgType)
	}
	// legacy_version (2 bytes), then random (RFC 5246, Section 7.4.1).
	return msgs[0].Body[2 : 2+32]
}

// AfterChangeCipherSpec returns the records of a TLS 1.2 stream that follow
// its ChangeCipherSpec, the ones protected with the key block's keys: first
// Finished, with sequence number 0. It returns nil if the stream has no
// ChangeCipherSpec.
func AfterChangeCipherSpec(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	recs := SplitRecords(t, stream)
	for i, rec := range recs {
		if rec[0] == record.TypeChangeCipherSpec {
			return recs[i+1:]
		}
	}
	return nil
}

// Protector returns the record protection of a TLS 1.3 traffic secret
// from sequence number seq on, and the secret, for KeyUpdates.
func Protector(t testing.TB, s *keyschedule.Suite, secret []byte, seq uint64) (*keyschedule.ApplicationSecret, *record.Protector) {
	t.Helper()
	a, err := keyschedule.NewApplicationSecret(s, secret)
	if err != nil {
		t.Fatal(err)
	}
	p, err := record.NewProtector(s, a.Keys(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return a, p
}

// A Record is the content type and plaintext of a protected record.
type Record struct {
	Type uint8
	Data []byte
}

// OpenTLS13 decrypts one direction of a TLS 1.3 connection as its receiver
// would: with the keys of handshakeSecret until Finished, then with those
// of appSecret, moving to the next generation after each KeyUpdate. It
// returns the records protected with application keys, in order.
//
// It fails the test if a record does not open, if a handshake record holds
// anything but whole handshake messages, if a record before Finished is not
// a handshake record, or if the stream has no Finished. crypto/tls ends
// each flight with Finished in a record of its own.
func OpenTLS13(t testing.TB, s *keyschedule.Suite, stream, handshakeSecret, appSecret []byte) []Record {
	t.Helper()
	// A handshake traffic secret expands exactly like an application one.
	_, p := Protector(t, s, handshakeSecret, 0)
	app, err := keyschedule.NewApplicationSecret(s, appSecret)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	inHandshake := true
	for _, rec := range SplitRecords(t, stream) {
		if rec[0] != record.TypeApplicationData {
			continue // ServerHello and the compatibility ChangeCipherSpec
		}
		typ, pt, err := p.Open(rec)
		if err != nil {
			t.Fatalf("record %d under %s keys: %v", p.Seq(), map[bool]string{true: "handshake", false: "application"}[inHandshake], err)
		}
		if inHandshake && typ != record.TypeHandshake {
			t.Fatalf("handshake record %d: type %d", p.Seq()-1, typ)
		}
		if !inHandshake {
			out = append(out, Record{typ, pt})
		}
		if typ != record.TypeHandshake {
			continue
		}
		msgs, rest, err := record.ParseHandshake(pt)
		if err != nil || len(rest) != 0 || len(msgs) == 0 {
			t.Fatalf("handshake record %d: %d messages, %d bytes left, %v", p.Seq()-1, len(msgs), len(rest), err)
		}
		if inHandshake {
			if msgs[len(msgs)-1].Type == 20 { // Finished
				inHandshake = false
				if p, err = record.NewProtector(s, app.Keys(), 0); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		for _, m := range msgs {
			if m.Type != record.MsgKeyUpdate {
				continue
			}
			if _, err := record.ParseKeyUpdate(m.Body); err != nil {
				t.Fatal(err)
			}
			app = app.Next()
			if p, err = record.NewProtector(s, app.Keys(), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if inHandshake {
		t.Fatal("stream has no Finished message")
	}
	return out
}
