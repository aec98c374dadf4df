package ktls_test

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

// A rawPeer is a TLS client that does its handshake with crypto/tls and
// then writes and reads records itself, with internal/record in user
// space: a peer that can pad records, update keys, or misbehave in ways
// crypto/tls never would, to test the kernel path against.
type rawPeer struct {
	conn    net.Conn
	suite   *keyschedule.Suite
	out, in *record.Protector
	// TLS 1.3 traffic secrets, for KeyUpdate.
	outSecret, inSecret *keyschedule.ApplicationSecret
}

// dialRaw runs a crypto/tls client handshake on conn and takes over its
// record layer.
func dialRaw(t testing.TB, conn net.Conn, cfg *tls.Config) *rawPeer {
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
	p := &rawPeer{conn: conn, suite: s}
	var out, in keyschedule.TrafficKeys
	var outSeq, inSeq uint64
	if cs.Version == tls.VersionTLS13 {
		cts, _ := secrets.ClientTrafficSecret()
		sts, _ := secrets.ServerTrafficSecret()
		var err error
		if p.outSecret, err = keyschedule.NewApplicationSecret(s, cts); err != nil {
			t.Fatal(err)
		}
		if p.inSecret, err = keyschedule.NewApplicationSecret(s, sts); err != nil {
			t.Fatal(err)
		}
		out, in = p.outSecret.Keys(), p.inSecret.Keys()
	} else {
		master, _ := secrets.MasterSecret()
		cr, _ := hc.ClientRandom()
		sr, _ := hc.ServerRandom()
		var err error
		if out, in, err = keyschedule.KeyBlock(s, master, cr[:], sr[:]); err != nil {
			t.Fatal(err)
		}
		outSeq, inSeq = 1, 1 // each Finished was record 0
	}
	var err error
	if p.out, err = record.NewProtector(s, out, outSeq); err != nil {
		t.Fatal(err)
	}
	if p.in, err = record.NewProtector(s, in, inSeq); err != nil {
		t.Fatal(err)
	}
	return p
}

// send seals and writes one record, padded by pad zero bytes in TLS 1.3.
func (p *rawPeer) send(typ uint8, data []byte, pad int) error {
	_, err := p.conn.Write(p.out.SealPadded(typ, data, pad))
	return err
}

// recv reads and opens one record.
func (p *rawPeer) recv() (uint8, []byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(p.conn, hdr); err != nil {
		return 0, nil, err
	}
	n := int(hdr[3])<<8 | int(hdr[4])
	rec := make([]byte, 5+n)
	copy(rec, hdr)
	if _, err := io.ReadFull(p.conn, rec[5:]); err != nil {
		return 0, nil, err
	}
	return p.in.Open(rec)
}

// recvData reads records until n bytes of application data came, and
// returns them; other records are an error.
func (p *rawPeer) recvData(n int) ([]byte, error) {
	var got []byte
	for len(got) < n {
		typ, data, err := p.recv()
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

// updateKeys sends a TLS 1.3 KeyUpdate and moves to the next write key.
func (p *rawPeer) updateKeys(requestPeer bool) error {
	if err := p.send(record.TypeHandshake, record.MarshalKeyUpdate(requestPeer), 0); err != nil {
		return err
	}
	p.outSecret = p.outSecret.Next()
	var err error
	p.out, err = record.NewProtector(p.suite, p.outSecret.Keys(), 0)
	return err
}

// followKeyUpdate moves to the peer's next write key, after reading its
// KeyUpdate.
func (p *rawPeer) followKeyUpdate() error {
	p.inSecret = p.inSecret.Next()
	var err error
	p.in, err = record.NewProtector(p.suite, p.inSecret.Keys(), 0)
	return err
}

// connectRaw makes a ktls server and a raw peer connected to it.
func connectRawPeer(t testing.TB, server endpoint, ccfg *tls.Config) (*rawPeer, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	done := make(chan res, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- res{nil, err}
			return
		}
		c := serverConn(raw, server)
		done <- res{c, c.Handshake()}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, conn, ccfg)
	r := <-done
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	t.Cleanup(func() { conn.Close(); r.c.Close() })
	return p, r.c
}
