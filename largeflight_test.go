package ktls_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

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
	kerneltest.Require(t, kernel.FeatureULP)
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
