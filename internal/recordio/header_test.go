package recordio_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// errStarved is what a scripted peer's Read returns once it has sent all
// it will: where a real peer would leave the reader waiting, the test
// sees at once that the reader wanted more.
var errStarved = errors.New("the peer sends nothing more")

// scripted is a net.Conn whose peer sends the bytes in, then nothing. It
// keeps each Write, and counts the Reads made after in ran out.
type scripted struct {
	in      []byte
	writes  [][]byte
	starved int
}

func (s *scripted) Read(b []byte) (int, error) {
	if len(s.in) == 0 {
		s.starved++
		return 0, errStarved
	}
	n := copy(b, s.in)
	s.in = s.in[n:]
	return n, nil
}

func (s *scripted) Write(b []byte) (int, error) {
	s.writes = append(s.writes, bytes.Clone(b))
	return len(b), nil
}

func (s *scripted) Close() error                     { return nil }
func (s *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scripted) SetDeadline(time.Time) error      { return nil }
func (s *scripted) SetReadDeadline(time.Time) error  { return nil }
func (s *scripted) SetWriteDeadline(time.Time) error { return nil }

// TestPlainHTTPRejectedAtHeader: the first five bytes of a plain HTTP
// request read as a record header announcing 8239 bytes. crypto/tls
// refuses it on the header alone, and net/http's answer, the 400 for an
// HTTP request to an HTTPS server, depends on that RecordHeaderError. The
// peer here sends the five bytes and nothing more: the handshake must fail
// without another read of the socket.
func TestPlainHTTPRejectedAtHeader(t *testing.T) {
	peer := &scripted{in: []byte("GET /")}
	err := tls.Server(recordio.NewConn(peer, false), testcert.Get(testcert.ECDSA).ServerConfig()).Handshake()
	var re tls.RecordHeaderError
	if !errors.As(err, &re) {
		t.Fatalf("Handshake = %v; want a tls.RecordHeaderError, without waiting for the record's body", err)
	}
	if string(re.RecordHeader[:]) != "GET /" || re.Conn == nil {
		t.Errorf("RecordHeaderError has header %q and Conn %v; want \"GET /\" and the connection, for the 400", re.RecordHeader[:], re.Conn)
	}
	if peer.starved != 0 {
		t.Errorf("the socket was read %d times after the header", peer.starved)
	}
}

// headerCase is a record header crypto/tls sees, after what comes before.
type headerCase struct {
	name string
	in   []byte
}

// firstRecords are what may come first from a peer that is not a TLS
// peer, or a broken one: each header crypto/tls checks before reading a
// body, plus a few it accepts, whose bodies never come.
var firstRecords = []headerCase{
	{"GET", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
	{"GET header only", []byte("GET /")},
	{"HEAD", []byte("HEAD / HTTP/1.1\r\n\r\n")},
	{"POST", []byte("POST /form HTTP/1.1\r\n")},
	{"PUT", []byte("PUT /x HTTP/1.1\r\n")},
	{"OPTIONS", []byte("OPTIONS * HTTP/1.1\r\n")},
	{"CONNECT", []byte("CONNECT example.com:443 HTTP/1.1\r\n")},
	{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
	{"HTTP response", []byte("HTTP/1.1 400 Bad Request\r\n\r\n")},
	{"SMTP banner", []byte("220 mail.example.com ESMTP\r\n")},
	{"SSLv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}},
	{"application data first", []byte{23, 3, 3, 0x10, 0x00}},
	{"change cipher spec first", []byte{20, 3, 3, 0, 1}},
	{"type 0", []byte{0, 3, 3, 0x40, 0x00}},
	{"version 0x1000", []byte{22, 0x10, 0x00, 0x00, 0x40}},
	{"version 0xffff", []byte{22, 0xff, 0xff, 0x00, 0x40}},
	{"oversized by one", []byte{22, 3, 1, 0x48, 0x01}},
	{"oversized", []byte{22, 3, 1, 0xff, 0xff}},
	{"longest, body never sent", []byte{22, 3, 1, 0x48, 0x00}},
	{"alert, body never sent", []byte{21, 3, 1, 0, 2}},
	{"alert", []byte{21, 3, 1, 0, 2, 2, 40}},
	{"empty handshake record", []byte{22, 3, 1, 0, 0}},
	{"garbage handshake message", []byte{22, 3, 1, 0, 4, 99, 0, 0, 0}},
	{"version 0x0200", []byte{22, 2, 0, 0, 4, 1, 0, 0, 0}},
}

// afterHello are headers that follow a ClientHello: crypto/tls knows the
// version by then, and checks it.
var afterHello = []headerCase{
	{"version 0x0301", []byte{22, 3, 1, 0, 5}},
	{"version 0x0304", []byte{22, 3, 4, 0, 5}},
	{"version 0x0300", []byte{21, 3, 0, 0, 2}},
	{"SSLv2 type", []byte{0x80, 3, 3, 0, 5}},
	{"GET", []byte("GET / HTTP/1.1\r\n")},
	{"TLS 1.3 limit plus one", []byte{22, 3, 3, 0x41, 0x01}},
	{"TLS 1.3 limit", []byte{22, 3, 3, 0x41, 0x00}},
	{"TLS 1.2 limit plus one", []byte{23, 3, 3, 0x48, 0x01}},
	{"oversized", []byte{23, 3, 3, 0xff, 0xff}},
	{"unknown type", []byte{99, 3, 3, 0, 5}},
}

// outcome is what crypto/tls did with a peer's bytes.
type outcome struct {
	err      string
	header   bool // the error is a tls.RecordHeaderError
	headerOf string
	withConn bool // its Conn is set, for a plaintext answer
	replies  [][]byte
	starved  int
}

func (o outcome) String() string {
	return fmt.Sprintf("error %q (RecordHeaderError %v of %q, with Conn %v), replies %x, reads after the input %d",
		o.err, o.header, o.headerOf, o.withConn, o.replies, o.starved)
}

// handshake runs a crypto/tls handshake against a peer that sends in,
// directly on the connection or through a recordio.Conn. skip leaves out
// the first replies, which differ from run to run (randoms, keys).
func handshake(t *testing.T, in []byte, isClient, viaHandoff bool, cfg *tls.Config, skip int) outcome {
	t.Helper()
	peer := &scripted{in: bytes.Clone(in)}
	var conn net.Conn = peer
	if viaHandoff {
		conn = recordio.NewConn(peer, isClient)
	}
	var err error
	if isClient {
		err = tls.Client(conn, cfg).Handshake()
	} else {
		err = tls.Server(conn, cfg).Handshake()
	}
	if err == nil {
		t.Fatal("the handshake succeeded")
	}
	o := outcome{err: err.Error(), starved: peer.starved}
	var re tls.RecordHeaderError
	if errors.As(err, &re) {
		o.header, o.headerOf, o.withConn = true, string(re.RecordHeader[:]), re.Conn != nil
	}
	if len(peer.writes) < skip {
		t.Fatalf("%d replies, want at least %d", len(peer.writes), skip)
	}
	for _, w := range peer.writes[skip:] {
		if len(w) > 0 && w[0] == 23 {
			// An alert under handshake keys: its length is what is
			// comparable.
			w = w[:5]
		}
		o.replies = append(o.replies, w)
	}
	return o
}

// clientHello returns a ClientHello record from a crypto/tls client of
// at most version max.
func clientHello(t *testing.T, max uint16) []byte {
	t.Helper()
	peer := &scripted{}
	cfg := testcert.Get(testcert.ECDSA).ClientConfig()
	cfg.MaxVersion = max
	tls.Client(peer, cfg).Handshake()
	if len(peer.writes) != 1 {
		t.Fatalf("the client wrote %d times before reading", len(peer.writes))
	}
	return peer.writes[0]
}

// TestHeaderLikeCryptoTLS feeds crypto/tls the same bytes straight from
// the socket and through a recordio.Conn, and wants the same outcome: the
// same error, the same alert, and no more reads of the socket.
func TestHeaderLikeCryptoTLS(t *testing.T) {
	b := testcert.Get(testcert.ECDSA)
	compare := func(t *testing.T, in []byte, isClient bool, cfg *tls.Config, skip int) {
		want := handshake(t, in, isClient, false, cfg, skip)
		got := handshake(t, in, isClient, true, cfg, skip)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("through the handoff: %v\ncrypto/tls alone: %v", got, want)
		}
	}
	for _, c := range firstRecords {
		t.Run("server/first/"+c.name, func(t *testing.T) {
			compare(t, c.in, false, b.ServerConfig(), 0)
		})
		t.Run("client/first/"+c.name, func(t *testing.T) {
			// The client's ClientHello differs each time.
			compare(t, c.in, true, b.ClientConfig(), 1)
		})
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		hello := clientHello(t, v)
		for _, c := range afterHello {
			t.Run(fmt.Sprintf("server/%s/%s", tls.VersionName(v), c.name), func(t *testing.T) {
				// The server's first flight differs each time.
				compare(t, append(bytes.Clone(hello), c.in...), false, b.ServerConfig(), 1)
			})
		}
	}
}
