package ktlstest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// A RawPeer is a TLS end that does its handshake with crypto/tls and then
// writes and reads records itself, with internal/record in user space: a
// peer that can pad records, update keys, or misbehave in ways crypto/tls
// never would, to test the kernel path against.
type RawPeer struct {
	Conn    net.Conn
	Suite   *keyschedule.Suite
	Out, In *record.Protector
	// TLS 1.3 traffic secrets, for KeyUpdate.
	OutSecret, InSecret *keyschedule.ApplicationSecret
}

// DialRaw runs a crypto/tls client handshake on conn and takes over its
// record layer.
func DialRaw(t testing.TB, conn net.Conn, cfg *tls.Config) *RawPeer {
	t.Helper()
	secrets := keylog.NewSecrets(nil)
	cfg = cfg.Clone()
	cfg.KeyLogWriter = secrets
	cfg.ClientSessionCache = nil // no tickets after the handshake
	hc := recordio.NewConn(conn, true)
	tc := tls.Client(hc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("raw peer handshake: %v", err)
	}
	cs := tc.ConnectionState()
	s, ok := keyschedule.Lookup(cs.Version, cs.CipherSuite)
	if !ok {
		t.Fatalf("raw peer: no keys for %s", tls.CipherSuiteName(cs.CipherSuite))
	}
	p := &RawPeer{Conn: conn, Suite: s}
	var out, in keyschedule.TrafficKeys
	var outSeq, inSeq uint64
	var err error
	if cs.Version == tls.VersionTLS13 {
		cts, _ := secrets.ClientTrafficSecret()
		sts, _ := secrets.ServerTrafficSecret()
		if err = p.setSecrets(cts, sts); err != nil {
			t.Fatal(err)
		}
		out, in = p.OutSecret.Keys(), p.InSecret.Keys()
	} else {
		master, _ := secrets.MasterSecret()
		cr, _ := hc.ClientRandom()
		sr, _ := hc.ServerRandom()
		if out, in, err = keyschedule.KeyBlock(s, master, cr[:], sr[:]); err != nil {
			t.Fatal(err)
		}
		outSeq, inSeq = 1, 1 // each Finished was record 0
	}
	if err := p.protect(out, in, outSeq, inSeq); err != nil {
		t.Fatal(err)
	}
	return p
}

// AcceptRawTLS13 runs a crypto/tls server handshake on conn and takes
// over its record layer: a TLS 1.3 server that can send what crypto/tls
// never would. The client must not offer resumption, so that crypto/tls
// sends no ticket of its own and both directions start at sequence
// number 0.
func AcceptRawTLS13(conn net.Conn, cfg *tls.Config) (*RawPeer, error) {
	secrets := keylog.NewSecrets(nil)
	cfg = cfg.Clone()
	cfg.KeyLogWriter = secrets
	tc := tls.Server(recordio.NewConn(conn, false), cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	cs := tc.ConnectionState()
	s, ok := keyschedule.Lookup(cs.Version, cs.CipherSuite)
	if !ok || cs.Version != tls.VersionTLS13 {
		return nil, errors.New("raw server: not a TLS 1.3 suite")
	}
	cts, _ := secrets.ClientTrafficSecret()
	sts, _ := secrets.ServerTrafficSecret()
	p := &RawPeer{Conn: conn, Suite: s}
	if err := p.setSecrets(sts, cts); err != nil {
		return nil, err
	}
	return p, p.protect(p.OutSecret.Keys(), p.InSecret.Keys(), 0, 0)
}

// setSecrets takes the TLS 1.3 traffic secrets this end writes and reads
// with.
func (p *RawPeer) setSecrets(out, in []byte) error {
	var err error
	if p.OutSecret, err = keyschedule.NewApplicationSecret(p.Suite, out); err != nil {
		return err
	}
	p.InSecret, err = keyschedule.NewApplicationSecret(p.Suite, in)
	return err
}

// protect sets the record protection of both directions.
func (p *RawPeer) protect(out, in keyschedule.TrafficKeys, outSeq, inSeq uint64) error {
	var err error
	if p.Out, err = record.NewProtector(p.Suite, out, outSeq); err != nil {
		return err
	}
	p.In, err = record.NewProtector(p.Suite, in, inSeq)
	return err
}

// ConnectRawPeer makes a server end and a raw client connected to it, and
// runs the handshake; both are closed when t ends.
func ConnectRawPeer(t testing.TB, server Endpoint, ccfg *tls.Config) (*RawPeer, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := server.accept(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := DialRaw(t, conn, ccfg)
	r := <-done
	if r.Err != nil {
		t.Fatalf("server handshake: %v", r.Err)
	}
	t.Cleanup(func() { conn.Close(); r.V.Close() })
	return p, r.V
}

// Send seals and writes one record, padded by pad zero bytes in TLS 1.3.
func (p *RawPeer) Send(typ uint8, data []byte, pad int) error {
	_, err := p.Conn.Write(p.Out.SealPadded(typ, data, pad))
	return err
}

// Recv reads and opens one record.
func (p *RawPeer) Recv() (uint8, []byte, error) {
	hdr := make([]byte, record.HeaderLen)
	if _, err := io.ReadFull(p.Conn, hdr); err != nil {
		return 0, nil, err
	}
	// The length only: whatever the header says is for Open to judge.
	n := int(hdr[3])<<8 | int(hdr[4])
	rec := make([]byte, record.HeaderLen+n)
	copy(rec, hdr)
	if _, err := io.ReadFull(p.Conn, rec[record.HeaderLen:]); err != nil {
		return 0, nil, err
	}
	return p.In.Open(rec)
}

// RecvData reads records until n bytes of application data came, and
// returns them; other records are an error.
func (p *RawPeer) RecvData(n int) ([]byte, error) {
	var got []byte
	for len(got) < n {
		typ, data, err := p.Recv()
		if err != nil {
			return got, err
		}
		if typ != record.TypeApplicationData {
			return got, errors.New("raw peer: unexpected record type")
		}
		got = append(got, data...)
	}
	return got, nil
}

// UpdateKeys sends a TLS 1.3 KeyUpdate and moves to the next write key.
func (p *RawPeer) UpdateKeys(requestPeer bool) error {
	if err := p.Send(record.TypeHandshake, record.MarshalKeyUpdate(requestPeer), 0); err != nil {
		return err
	}
	p.OutSecret = p.OutSecret.Next()
	var err error
	p.Out, err = record.NewProtector(p.Suite, p.OutSecret.Keys(), 0)
	return err
}

// FollowKeyUpdate moves to the peer's next write key, after reading its
// KeyUpdate.
func (p *RawPeer) FollowKeyUpdate() error {
	p.InSecret = p.InSecret.Next()
	var err error
	p.In, err = record.NewProtector(p.Suite, p.InSecret.Keys(), 0)
	return err
}
