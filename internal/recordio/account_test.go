package recordio_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	rec "github.com/ktlsgo/ktls/internal/record"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// side is one end of a handshake run over a recordio.Conn.
type side struct {
	raw  net.Conn
	hc   *recordio.Conn
	tc   *tls.Conn
	keys *keylog.Secrets
}

// handshakeOver runs a handshake between ccfg and scfg, each end over a
// recordio.Conn with its own key log.
func handshakeOver(t *testing.T, ccfg, scfg *tls.Config) (client, server side) {
	t.Helper()
	craw, sraw := wiretest.TCPPair(t, "tcp")
	client = side{raw: craw, hc: recordio.NewConn(craw, true), keys: keylog.NewSecrets(nil)}
	server = side{raw: sraw, hc: recordio.NewConn(sraw, false), keys: keylog.NewSecrets(nil)}
	ccfg, scfg = ccfg.Clone(), scfg.Clone()
	ccfg.KeyLogWriter, scfg.KeyLogWriter = client.keys, server.keys
	client.tc, server.tc = tls.Client(client.hc, ccfg), tls.Server(server.hc, scfg)
	errc := make(chan error, 1)
	go func() {
		err := server.tc.Handshake()
		if err != nil {
			sraw.Close() // so the client does not wait for the server
		}
		errc <- err
	}()
	cerr := client.tc.Handshake()
	if cerr != nil {
		craw.Close()
	}
	if serr := <-errc; cerr != nil || serr != nil {
		t.Fatalf("handshake: client: %v, server: %v", cerr, serr)
	}
	return client, server
}

// appKeys returns the application keys each way, from the key logs, and
// each direction's TLS 1.3 handshake keys.
func appKeys(t *testing.T, s *keyschedule.Suite, client, server side) (c, sv, chs, shs keyschedule.TrafficKeys) {
	t.Helper()
	if s.Version == tls.VersionTLS12 {
		master, _ := client.keys.MasterSecret()
		cr, _ := client.hc.ClientRandom()
		sr, _ := client.hc.ServerRandom()
		c, sv, err := keyschedule.KeyBlock(s, master, cr[:], sr[:])
		if err != nil {
			t.Fatal(err)
		}
		return c, sv, chs, shs
	}
	get := func(f func() ([]byte, bool)) keyschedule.TrafficKeys {
		secret, ok := f()
		if !ok {
			t.Fatal("a TLS 1.3 secret is missing from the key log")
		}
		k, err := keyschedule.HandshakeKeys(s, secret) // the same derivation
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return get(client.keys.ClientTrafficSecret), get(client.keys.ServerTrafficSecret),
		get(client.keys.ClientHandshakeTrafficSecret), get(client.keys.ServerHandshakeTrafficSecret)
}

// count returns the next sequence numbers of one end, written and read, as
// the handoff computes them.
func count(s *keyschedule.Suite, e side, own, peer, ownHS, peerHS keyschedule.TrafficKeys) (tx, rx uint64, err error) {
	w, r := e.hc.Written(), e.hc.ReadRecords()
	for _, rs := range []recordio.Records{w, r} {
		n := 0
		for _, r := range rs.Tail {
			n += len(r.Bytes)
		}
		if n > 128<<10+rec.HeaderLen+1<<16 {
			return 0, 0, fmt.Errorf("%d bytes of records kept", n)
		}
	}
	if s.Version == tls.VersionTLS12 {
		if tx, err = w.Sequence12(s, own); err == nil {
			rx, err = r.Sequence12(s, peer)
		}
		return tx, rx, err
	}
	if tx, err = w.Sequence13(s, ownHS, own); err == nil {
		rx, err = r.Sequence13(s, peerHS, peer)
	}
	return tx, rx, err
}

// sendAt writes one application_data record sealed under keys at seq
// straight to the socket, as the kernel would, and checks that the peer's
// crypto/tls reads it: a wrong sequence number fails there with
// bad_record_mac.
func sendAt(t *testing.T, s *keyschedule.Suite, from, to side, keys keyschedule.TrafficKeys, seq uint64) {
	t.Helper()
	p, err := rec.NewProtector(s, keys, seq)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("after the handoff")
	if _, err := from.raw.Write(p.Seal(rec.TypeApplicationData, msg)); err != nil {
		t.Fatal(err)
	}
	to.tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to.tc, got); err != nil || string(got) != string(msg) {
		t.Fatalf("the peer read %q, %v; want %q", got, err, msg)
	}
}

// maxTicketedClientCert is the largest padding of a client certificate
// with which a Go server can still issue a session ticket: the ticket holds
// the certificate and is at most 64 KiB. With a larger one the handshake
// fails in crypto/tls, so a client that offers resumption can't have one.
// A ticket this large is several records under the server's application
// key, sent before its handshake returns.
const maxTicketedClientCert = 64_000

// TestSequenceLargeFlights: the sequence numbers a handoff continues from
// are exact whatever the size of the flights, up to the largest
// Certificate message crypto/tls accepts, in TLS 1.2 and 1.3, with and
// without client certificates, with a client that offers resumption, so
// that a TLS 1.3 server has sent a session ticket under its application
// key. Each count is checked by a record sealed at it, which the peer's
// crypto/tls must read. Flights past 256 KiB are where ktls once lost count
// and reused a nonce (issue 13).
func TestSequenceLargeFlights(t *testing.T) {
	// -1 is no client certificate.
	clientCerts := []int{-1, 0, maxTicketedClientCert, testcert.MaxPadding}
	paddings := []int{0, 16_000, 120_000, 140_000, 250_000, testcert.MaxPadding}
	if testing.Short() {
		paddings = []int{0, testcert.MaxPadding}
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, padding := range paddings {
			for _, clientCert := range clientCerts {
				for _, caList := range []bool{false, true} {
					if caList && clientCert < 0 {
						continue
					}
					name := fmt.Sprintf("%s/server-%d/client-%d", tls.VersionName(version), padding, clientCert)
					if caList {
						// The largest CertificateRequest a Go client takes.
						name += "/large-CA-list"
					}
					t.Run(name, func(t *testing.T) {
						sb := testcert.Large(padding)
						scfg := &tls.Config{Certificates: []tls.Certificate{sb.Cert}}
						ccfg := &tls.Config{RootCAs: sb.Pool, ServerName: "localhost", MaxVersion: version}
						if clientCert <= maxTicketedClientCert {
							ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
						}
						if clientCert >= 0 {
							cb := testcert.Large(clientCert)
							ccfg.Certificates = []tls.Certificate{cb.Cert}
							scfg.ClientAuth, scfg.ClientCAs = tls.RequireAndVerifyClientCert, cb.Pool.Clone()
							if caList {
								scfg.ClientCAs.AddCert(testcert.LargeSubject(testcert.MaxSubject))
							}
						}
						client, server := handshakeOver(t, ccfg, scfg)
						cs := client.tc.ConnectionState()
						s, ok := keyschedule.Lookup(cs.Version, cs.CipherSuite)
						if !ok {
							t.Fatalf("%s: no suite", tls.CipherSuiteName(cs.CipherSuite))
						}
						ck, sk, chs, shs := appKeys(t, s, client, server)
						ctx, crx, err := count(s, client, ck, sk, chs, shs)
						if err != nil {
							t.Fatalf("client: %v", err)
						}
						stx, srx, err := count(s, server, sk, ck, shs, chs)
						if err != nil {
							t.Fatalf("server: %v", err)
						}
						want := [4]uint64{1, 1, 1, 1} // each side's Finished
						if version == tls.VersionTLS13 {
							want = [4]uint64{0, 0, 0, 0}
							if ccfg.ClientSessionCache != nil {
								// The server's session ticket: one record, or
								// several with a large client certificate in
								// it. sendAt checks the exact number.
								want[2] = max(stx, 1)
							}
						}
						if got := [4]uint64{ctx, crx, stx, srx}; got != want {
							t.Fatalf("client TX, RX, server TX, RX = %v, want %v", got, want)
						}
						sendAt(t, s, server, client, sk, stx)
						sendAt(t, s, client, server, ck, ctx)
					})
				}
			}
		}
	}
}

// TestSequenceRefused: where the records kept can't prove a count, or a
// record fits no key, Sequence12 and Sequence13 say so instead of
// counting, and the handoff refuses offload with that reason.
func TestSequenceRefused(t *testing.T) {
	s13, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	s12, _ := keyschedule.Lookup(tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
	keys := func(s *keyschedule.Suite, b byte) keyschedule.TrafficKeys {
		return keyschedule.TrafficKeys{Key: bytes.Repeat([]byte{b}, s.KeyLen), IV: bytes.Repeat([]byte{b + 1}, s.FixedIVLen)}
	}
	hs, app, other := keys(s13, 1), keys(s13, 3), keys(s13, 5)
	seal := func(s *keyschedule.Suite, k keyschedule.TrafficKeys, typ byte, sizes ...int) []byte {
		p, err := rec.NewProtector(s, k, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		for _, n := range sizes {
			out = append(out, p.Seal(typ, make([]byte, n))...)
		}
		return out
	}
	written := func(parts ...[]byte) recordio.Records {
		hc := recordio.NewConn(sink{}, false)
		hc.Write(record(22, 40))
		hc.Write(record(20, 1))
		for _, p := range parts {
			hc.Write(p)
		}
		return hc.Written()
	}
	full := make([]int, 9)
	for i := range full {
		full[i] = 16384
	}
	for _, c := range []struct {
		name string
		rs   recordio.Records
		want string
	}{
		{"more under the application key than is kept", written(seal(s13, hs, 22, 100, 50), seal(s13, app, 22, full...)), "cannot account"},
		{"a record under a third key", written(seal(s13, hs, 22, 100), seal(s13, other, 22, 10), seal(s13, app, 22, 10)), "neither"},
		{"no protected record", written(), "no protected record"},
		{"a plaintext record after protected ones", written(seal(s13, hs, 22, 100), record(22, 10)), "came after protected records"},
	} {
		if n, err := c.rs.Sequence13(s13, hs, app); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("TLS 1.3, %s: %d, %v; want an error saying %q", c.name, n, err, c.want)
		}
	}
	// Nothing kept but the application key's records cannot give 0 when
	// they stand where the handshake key's should.
	if n, err := written(seal(s13, app, 22, 10)).Sequence13(s13, hs, app); err == nil {
		t.Errorf("TLS 1.3, no record under the handshake key: counted %d", n)
	}
	k12 := keys(s12, 7)
	for _, c := range []struct {
		name string
		rs   recordio.Records
		want string
	}{
		{"a record under another key", written(seal(s12, keys(s12, 9), 22, 30)), "does not open"},
		{"a record that is not the next", written(seal(s12, k12, 22, 30, 30)[30+5+8+16:]), "does not open"},
		{"nothing after the ChangeCipherSpec", written(), "no record came after"},
	} {
		if n, err := c.rs.Sequence12(s12, k12); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("TLS 1.2, %s: %d, %v; want an error saying %q", c.name, n, err, c.want)
		}
	}
}
