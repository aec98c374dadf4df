package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// The tests in this file are about what comes with the handshake and
// right after it: handshake flights of any size, a session ticket in the
// smallest records, and peers that don't speak TLS at all.

// TestLargeTicketInTinyRecords is issue 13's finding 7 in the lab: once
// the kernel decrypts, a server sends a NewSessionTicket in 1-byte
// records. The largest that crypto/tls would take, 64 KiB, is reassembled
// and dropped, and the data after it arrives; one byte more is refused at
// its header with decode_error, without waiting for (or buffering) the
// body. The ticket's first and last KiB come in 1-byte records and the
// middle in full ones: under the lab's emulated CPU every record costs
// the kernel about half a millisecond to decrypt, whatever ktls does with
// it. TestPostHandshakeReassemblyLinear counts the work on the host.
func TestLargeTicketInTinyRecords(t *testing.T) {
	ktlstest.TLS13.RequireRX(t)
	for _, tc := range []struct {
		name  string
		size  int
		alert int // the client's alert, -1 for none
	}{
		{"64KiB", record.MaxNewSessionTicket, -1},
		{"64KiB+1", record.MaxNewSessionTicket + 1, int(record.AlertDecodeError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := ktlstest.TLS13.Configs()
			ccfg.ClientSessionCache = nil // RX goes to the kernel at once
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			deadline := time.Now().Add(60 * time.Second)
			peerErr := make(chan error, 1)
			go func() {
				peerErr <- func() error {
					conn, err := ln.Accept()
					if err != nil {
						return err
					}
					defer conn.Close()
					conn.SetDeadline(deadline)
					p, err := ktlstest.AcceptRawTLS13(conn, scfg)
					if err != nil {
						return err
					}
					n := tc.size
					msg := append([]byte{record.MsgNewSessionTicket, byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'t'}, n)...)
					if tc.alert >= 0 {
						// The header and a little of the body: the rest
						// is never read.
						msg = msg[:100]
					}
					var out []byte
					for i := 0; i < len(msg); {
						n := 1
						if i >= 1024 && i < len(msg)-1024 {
							n = min(record.MaxPlaintext, len(msg)-1024-i)
						}
						out = append(out, p.Out.Seal(record.TypeHandshake, msg[i:i+n])...)
						i += n
					}
					out = append(out, p.Out.Seal(record.TypeApplicationData, []byte("after"))...)
					out = append(out, p.Out.Seal(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify})...)
					if _, err := conn.Write(out); err != nil {
						return err
					}
					if tc.alert < 0 {
						return nil
					}
					typ, data, err := p.Recv()
					if err != nil || typ != record.TypeAlert || !bytes.Equal(data, []byte{record.AlertLevelFatal, byte(tc.alert)}) {
						return errors.New("raw server: did not get the client's alert")
					}
					return nil
				}()
			}()

			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c := ktls.Client(raw, ccfg)
			defer c.Close()
			c.SetDeadline(deadline)
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			if o := c.Offload(); !o.TX || !o.RX {
				t.Fatalf("Offload() = %+v, want TX and RX", o)
			}
			start := time.Now()
			got, err := wiretest.ReadAll(c)
			t.Logf("read %q, %v, in %v", got, err, time.Since(start))
			if wiretest.IsTimeout(err) {
				t.Fatalf("Read timed out on a %d-byte ticket in 1-byte records", tc.size)
			}
			if tc.alert < 0 {
				if string(got) != "after" || err != io.EOF {
					t.Fatalf("read %q, %v; want %q to the end", got, err, "after")
				}
			} else {
				var ae tls.AlertError
				if len(got) != 0 || !errors.As(err, &ae) || int(ae) != tc.alert {
					t.Fatalf("read %q, %v; want the local alert %d", got, err, tc.alert)
				}
			}
			if err := <-peerErr; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// ticketedClientCert is the padding of the largest client certificate in
// these tests that a Go server can still put in a session ticket (at most
// 64 KiB): its ticket is several records under the server's application
// key, all sent before the handshake returns.
const ticketedClientCert = 60_000

// TestLargeFlight: the kernel continues each direction at the exact
// sequence number whatever the size of the handshake's flights, from
// small to the largest Certificate message a Go peer accepts (256 KiB), on
// both sides, with and without client certificates. The Go clients offer
// resumption wherever a ticket can hold their certificate, so a TLS 1.3
// server has sent its session ticket under the application key when its
// handshake returns; data then goes both ways and must arrive intact.
//
// Issue 13, finding 1: ktls kept only the first 256 KiB of what crypto/tls
// wrote, so a TLS 1.3 server whose flight passed that found no record
// under its application key, started the kernel at sequence 0, and sent
// its first data record with the nonce of its session ticket; the Go
// client failed with bad_record_mac.
func TestLargeFlight(t *testing.T) {
	kerneltest.RequireULP(t)
	type tc struct {
		version        uint16
		ktlsClient     bool
		server, client int // certificate paddings; client -1: none
		clientCache    bool
		caList         bool // the largest list of client CAs
	}
	const max = testcert.MaxPadding
	v13, v12 := uint16(tls.VersionTLS13), uint16(tls.VersionTLS12)
	cases := []tc{
		// A ktls server, a Go client: a small flight, then the largest,
		// and each with a client certificate.
		{version: v13, server: 0, client: -1, clientCache: true},
		{version: v13, server: 0, client: ticketedClientCert, clientCache: true},
		{version: v13, server: max, client: -1, clientCache: true},
		{version: v13, server: max, client: ticketedClientCert, clientCache: true},
		// The largest flight a Go server sends: add the largest
		// CertificateRequest.
		{version: v13, server: max, client: ticketedClientCert, clientCache: true, caList: true},
		// A ktls client with the largest certificate, a Go server.
		{version: v13, ktlsClient: true, server: 0, client: max},
		// Two ktls ends, large flights both ways.
		{version: v13, ktlsClient: true, server: max, client: ticketedClientCert, clientCache: true},
		// In TLS 1.2 the certificates travel in the clear, before the
		// key change; the same sizes must not disturb the count.
		{version: v12, server: max, client: ticketedClientCert, clientCache: true},
		{version: v12, ktlsClient: true, server: 0, client: max},
	}
	for _, c := range cases {
		roles := "ktls-server"
		if c.ktlsClient {
			roles = "ktls-both"
			if c.server == 0 {
				roles = "ktls-client"
			}
		}
		name := fmt.Sprintf("%s/%s/server-cert-%d/client-cert-%d", tls.VersionName(c.version), roles, c.server, c.client)
		if c.caList {
			name += "/large-CA-list"
		}
		t.Run(name, func(t *testing.T) {
			sb := testcert.Large(c.server)
			scfg := &tls.Config{Certificates: []tls.Certificate{sb.Cert}}
			// ServerName keys the session cache.
			ccfg := &tls.Config{RootCAs: sb.Pool, ServerName: "localhost", MaxVersion: c.version}
			if c.clientCache {
				ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			if c.client >= 0 {
				cb := testcert.Large(c.client)
				ccfg.Certificates = []tls.Certificate{cb.Cert}
				scfg.ClientAuth, scfg.ClientCAs = tls.RequireAndVerifyClientCert, cb.Pool.Clone()
				if c.caList {
					scfg.ClientCAs.AddCert(testcert.LargeSubject(testcert.MaxSubject))
				}
			}
			ktlsServer := roles != "ktls-client"
			cl, sv := ktlstest.Connect(t, ktlstest.Endpoint{KTLS: c.ktlsClient, Config: ccfg}, ktlstest.Endpoint{KTLS: ktlsServer, Config: scfg})
			wiretest.Exchange(t, cl, sv, 16<<10)
			for _, conn := range []net.Conn{cl, sv} {
				if kc, ok := conn.(*ktls.Conn); ok {
					if o := kc.Offload(); !o.TX || !o.RX {
						t.Errorf("Offload() = %v, want TX and RX", o)
					}
				}
			}
			ktlstest.CloseBoth(t, cl, sv)
		})
	}
}

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
	client, raw := wiretest.TCPPair(t, "tcp")
	// A whole request, far shorter than the 8239 bytes its first five
	// bytes announce as a record.
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}

	raw.SetDeadline(time.Now().Add(notTLSDeadline))
	err := ktls.Server(raw, serverConfig(testcert.ECDSA)).Handshake()
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
