package ktls_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// plainHTTP400 is what net/http answers an HTTP request to an HTTPS
// server with.
const plainHTTP400 = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// notTLSDeadline only keeps a broken test from hanging: the errors
// these tests want come at once, and a timeout is a failure.
const notTLSDeadline = 10 * time.Second

// TestHandshakePlainHTTP: a plain HTTP request to a ktls server ends the
// handshake at the record header, as on crypto/tls, with a
// tls.RecordHeaderError whose Conn is the socket, where the server can
// write net/http's 400 in plain text.
func TestHandshakePlainHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// A whole request, far shorter than the 8239 bytes its first five
	// bytes announce as a record.
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	raw.SetDeadline(time.Now().Add(notTLSDeadline))
	err = ktls.Server(raw, serverConfig(testcert.ECDSA)).Handshake()
	// net/http checks for the bare type, not with errors.As.
	re, ok := err.(tls.RecordHeaderError)
	if !ok {
		t.Fatalf("Handshake = %v (%T); want a tls.RecordHeaderError at once", err, err)
	}
	if re.Msg != "first record does not look like a TLS handshake" || string(re.RecordHeader[:]) != "GET /" {
		t.Errorf("RecordHeaderError = %q, header %q", re.Msg, re.RecordHeader[:])
	}
	if re.Conn != raw {
		t.Fatalf("RecordHeaderError.Conn is %T, want the socket the Conn was made on", re.Conn)
	}
	// As net/http does. The rest of the request is read, as crypto/tls
	// would have read it: unread, it would turn the close into a reset,
	// which can discard the answer.
	if _, err := io.WriteString(re.Conn, plainHTTP400); err != nil {
		t.Fatal(err)
	}
	re.Conn.Close()
	client.SetReadDeadline(time.Now().Add(notTLSDeadline))
	got, err := io.ReadAll(client)
	if err != nil || string(got) != plainHTTP400 {
		t.Errorf("the client read %q, %v; want %q and the end of the stream", got, err, plainHTTP400)
	}
}

// TestHandshakeWithNotTLSServer: a ktls client that reaches a server
// speaking something else, which sends a line and waits, fails at the
// line's first five bytes, as crypto/tls does, instead of waiting for the
// thousands of bytes they announce as a record.
func TestHandshakeWithNotTLSServer(t *testing.T) {
	for _, greeting := range []string{
		"SSH-2.0-OpenSSH_9.6\r\n",          // announces 11570 bytes
		"220 mail.example.com ESMTP\r\n",   // 8301
		"HTTP/1.1 400 Bad Request\r\n\r\n", // 20527, over the limit
	} {
		t.Run(greeting[:4], func(t *testing.T) {
			for _, useKTLS := range []bool{false, true} {
				raw, stop := notTLSServer(t, greeting)
				raw.SetDeadline(time.Now().Add(notTLSDeadline))
				var c interface{ Handshake() error } = tls.Client(raw, clientConfig(testcert.ECDSA))
				if useKTLS {
					c = ktls.Client(raw, clientConfig(testcert.ECDSA))
				}
				err := c.Handshake()
				raw.Close()
				stop()
				var re tls.RecordHeaderError
				if !errors.As(err, &re) || re.Msg != "first record does not look like a TLS handshake" || re.Conn != raw {
					t.Errorf("ktls %v: Handshake = %v (%T); want a tls.RecordHeaderError with the socket, at once", useKTLS, err, err)
				}
			}
		})
	}
}

// notTLSServer returns a connection to a server that sends greeting and
// keeps the connection until stop.
func notTLSServer(t *testing.T, greeting string) (c net.Conn, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(s, greeting); err != nil {
		t.Fatal(err)
	}
	return c, func() { s.Close() }
}
