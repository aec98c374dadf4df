package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// promptly bounds what must not wait on the peer or on another goroutine;
// a failure then reports instead of hanging the run.
const promptly = 5 * time.Second

// TestCloseDuringRelay: src.WriteTo(dst) holds dst's write lock while it
// waits for data from src. dst.Close must not wait for that relay: it
// closes the socket, and the relay fails when the next data comes, which
// then stays for src's next Read.
func TestCloseDuringRelay(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			peer, src, dst, reader := relayConns(t, ccfg, scfg)
			relayed := wiretest.Async(func() (int64, error) { return src.(*ktls.Conn).WriteTo(dst) })
			// Data through the relay: it has dst's lock, and waits on src.
			first := wiretest.RandomBytes(100<<10, 1)
			if _, err := peer.Write(first); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(first))
			if _, err := io.ReadFull(reader, got); err != nil || !bytes.Equal(got, first) {
				t.Fatalf("through the relay: %v, intact %v", err, bytes.Equal(got, first))
			}

			closed := make(chan error, 1)
			go func() { closed <- dst.Close() }()
			select {
			case err := <-closed:
				t.Logf("dst.Close: %v", err)
			case <-time.After(promptly):
				t.Fatalf("dst.Close did not return within %v while src.WriteTo(dst) waited for data", promptly)
			}

			second := wiretest.RandomBytes(64<<10, 2)
			if _, err := peer.Write(second); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-relayed:
				if r.Err == nil || r.V != int64(len(first)) {
					t.Fatalf("relay into the closed dst = %d, %v; want %d and an error", r.V, r.Err, len(first))
				}
				t.Logf("the relay ended with %v", r.Err)
			case <-time.After(promptly):
				t.Fatalf("the relay into the closed dst went on %v after data came", promptly)
			}
			// Nothing the relay took from src is lost.
			if _, err := io.ReadFull(src, got[:len(second)]); err != nil || !bytes.Equal(got[:len(second)], second) {
				t.Fatalf("src.Read after the relay failed: %v, intact %v; want the data the relay could not deliver", err, bytes.Equal(got[:len(second)], second))
			}
		})
	}
}

// TestFatalAlertStopsWriters: a record that fails authentication ends
// both directions. A Write in flight, blocked on a peer that doesn't
// read, stops with the alert's error, and so do later ones.
func TestFatalAlertStopsWriters(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
			kc := s.(*ktls.Conn)
			if o := kc.Offload(); !o.TX || !o.RX {
				t.Fatalf("Offload() = %v, want TX and RX", o)
			}
			deadline := time.Now().Add(time.Minute)
			kc.SetDeadline(deadline)
			p.Conn.SetDeadline(deadline)

			// The peer doesn't read: the Write fills the socket and
			// blocks, holding the write lock.
			wrote := make(chan error, 1)
			go func() {
				_, err := kc.Write(make([]byte, 64<<20))
				wrote <- err
			}()
			time.Sleep(500 * time.Millisecond) // let it get there; the test holds either way
			read := make(chan error, 1)
			go func() {
				_, err := kc.Read(make([]byte, 100))
				read <- err
			}()
			rec := p.Out.Seal(record.TypeApplicationData, []byte("one bit of this record is flipped"))
			rec[len(rec)-3] ^= 0x10
			if _, err := p.Conn.Write(rec); err != nil {
				t.Fatal(err)
			}

			isBadMAC := func(err error) bool {
				var ae tls.AlertError
				return errors.As(err, &ae) && uint8(ae) == record.AlertBadRecordMAC
			}
			select {
			case err := <-read:
				if !isBadMAC(err) {
					t.Fatalf("Read = %v, want bad_record_mac", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Read did not see the bad record")
			}
			select {
			case err := <-wrote:
				if !isBadMAC(err) {
					t.Errorf("the Write in flight ended with %v, want the bad_record_mac alert's error", err)
				}
			case <-time.After(promptly):
				t.Fatalf("the Write in flight went on %v after the read side failed with bad_record_mac", promptly)
			}
			for range 2 {
				if _, err := kc.Write([]byte("after")); !isBadMAC(err) {
					t.Errorf("Write after bad_record_mac = %v, want the alert's error", err)
				}
			}
		})
	}
}

// TestCloseZeroesSecrets: Close wipes the TLS 1.3 traffic secrets kept for
// KeyUpdate and for following crypto/tls, when idle, and when a Read or a
// Write is in flight (they wipe theirs as they end).
func TestCloseZeroesSecrets(t *testing.T) {
	kerneltest.RequireULP(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	// A session cache keeps the client's RX deferred, with its own copy
	// of the secret, and a translator for crypto/tls's writes.
	ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	kc, ks := c.(*ktls.Conn), s.(*ktls.Conn)

	type held struct {
		name  string
		bytes []byte // the secret's own backing array
	}
	secrets := func(who string, k *ktls.Conn, want ...string) []held {
		t.Helper()
		var hs []held
		m := k.TrafficSecrets()
		for _, name := range want {
			sec, ok := m[name]
			if !ok {
				t.Fatalf("%s holds no %s secret before Close (it holds %v)", who, name, m)
			}
			b := reflect.ValueOf(sec).Elem().FieldByName("secret").Bytes()
			if len(b) == 0 || bytes.Count(b, []byte{0}) == len(b) {
				t.Fatalf("%s's %s secret is empty before Close", who, name)
			}
			hs = append(hs, held{who + " " + name, b})
		}
		return hs
	}
	client := secrets("client", kc, "tx", "deferred rx", "translate")
	server := secrets("server", ks, "tx", "rx")
	wantZero := func(hs []held) {
		t.Helper()
		for _, h := range hs {
			if bytes.Count(h.bytes, []byte{0}) != len(h.bytes) {
				t.Errorf("the %s secret is not zeroed after Close", h.name)
			}
		}
	}

	// The server Closes during a Read, and a Write that the client
	// doesn't read.
	deadline := time.Now().Add(time.Minute)
	ks.SetDeadline(deadline)
	kc.SetDeadline(deadline)
	read, wrote := make(chan error, 1), make(chan error, 1)
	go func() { _, err := ks.Read(make([]byte, 10)); read <- err }()
	go func() { _, err := ks.Write(make([]byte, 64<<20)); wrote <- err }()
	time.Sleep(500 * time.Millisecond) // let them get there; the test holds either way
	closed := make(chan error, 1)
	go func() { closed <- ks.Close() }()
	for _, ch := range []chan error{closed, read, wrote} {
		select {
		case <-ch:
		case <-time.After(promptly):
			t.Fatalf("Close, or the Read or Write it should end, did not return within %v", promptly)
		}
	}
	wantZero(server)

	// The client Closes idle, with its RX still deferred.
	if err := kc.Close(); err != nil {
		t.Logf("client Close: %v", err)
	}
	wantZero(client)
}

// relayConns connects two ktls pairs for a relay from src (whose RX the
// kernel took) to dst (whose TX it took): peer writes into src, reader
// reads what reaches dst. Every end gets a one-minute deadline.
func relayConns(t *testing.T, ccfg, scfg *tls.Config) (peer, src, dst, reader net.Conn) {
	t.Helper()
	peer, src = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	dst, reader = ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	if o := src.(*ktls.Conn).Offload(); !o.RX {
		t.Fatalf("src: Offload() = %v, want RX", o)
	}
	if o := dst.(*ktls.Conn).Offload(); !o.TX {
		t.Fatalf("dst: Offload() = %v, want TX", o)
	}
	deadline := time.Now().Add(time.Minute)
	for _, c := range []net.Conn{peer, src, dst, reader} {
		c.SetDeadline(deadline)
	}
	return peer, src, dst, reader
}
