package ktls_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

// promptly bounds what must not wait on the peer or on another goroutine;
// a failure then reports instead of hanging the run.
const promptly = 5 * time.Second

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
