package ktls

import (
	"bytes"
	"crypto/tls"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// FuzzDeferredRX checks the follower a TLS 1.3 client runs while
// crypto/tls still reads the server's first records (session tickets,
// mostly), so that the kernel can take over at the right key and sequence
// number. A script of server records, sealed by an independent sender
// (internal/record with its own key schedule), goes through deferredRX.see
// one record at a time: application data, tickets whole or split across
// records, padding, KeyUpdates (after which the sender moves to its next
// key), stray change_cipher_spec records, a tampered record, or bytes the
// fuzzer made up.
//
// While every record is authentic, the follower must open each, hold
// exactly the bytes of an unfinished handshake message, and be at the
// sender's sequence number and key; after a tampered record it must have
// failed, for good. Whatever the bytes, it must not panic.
func FuzzDeferredRX(f *testing.F) {
	f.Add(uint8(0), []byte{0, 5, 1, 40, 0, 0})
	f.Add(uint8(1), []byte{2, 1, 0, 7, 2, 0, 0, 9})
	f.Add(uint8(2), []byte{3, 30, 4, 1, 10, 0x80 | 0, 3})
	f.Add(uint8(0), []byte{0, 1, 5, 0, 3})
	f.Add(uint8(1), []byte{6, 23, 3, 3, 0, 17, 0, 0, 0})
	f.Fuzz(func(t *testing.T, suiteSel uint8, script []byte) {
		ids := []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256}
		s, _ := keyschedule.Lookup(tls.VersionTLS13, ids[int(suiteSel)%len(ids)])
		secret := bytes.Repeat([]byte{suiteSel}, s.Hash.Size())

		sendSecret, sender, d := senderAndFollower(t, s, secret)

		var (
			pending int  // bytes of a handshake message split across records
			tamper  bool // flip a bit in the next record
			broken  bool // a tampered record went through
			unknown bool // made-up bytes went through: no expectations
		)
		feedNext := func(rec []byte, protected bool) {
			if tamper && protected {
				rec[len(rec)-1] ^= 1
				tamper, broken = false, true
			}
			d.see(rec)
			switch {
			case unknown:
			case broken:
				if d.err == nil {
					t.Fatalf("a tampered record went through")
				}
			case d.err != nil:
				t.Fatalf("an authentic record failed: %v", d.err)
			case d.hs.Buffered() != pending:
				t.Fatalf("the follower holds %d bytes of an unfinished message, want %d", d.hs.Buffered(), pending)
			}
		}
		sealed := func(typ uint8, msg []byte, pad int) {
			feedNext(sender.SealPadded(typ, msg, pad), true)
		}

		for len(script) > 0 && !broken {
			op, arg := script[0], byte(0)
			if len(script) > 1 {
				arg = script[1]
			}
			script = script[min(2, len(script)):]
			pad := 0
			if op&0x80 != 0 {
				pad = int(arg)
			}
			switch op & 0x7f % 7 {
			case 0: // application data
				sealed(record.TypeApplicationData, bytes.Repeat([]byte{'d'}, int(arg)), pad)
			case 1: // a whole NewSessionTicket
				sealed(record.TypeHandshake, ticketMsg(int(arg)), pad)
			case 2: // a KeyUpdate; the sender's next records are under its next key
				sealed(record.TypeHandshake, record.MarshalKeyUpdate(arg&1 != 0), pad)
				sendSecret = sendSecret.Next()
				next, err := record.NewProtector(s, sendSecret.Keys(), 0)
				if err != nil {
					t.Fatal(err)
				}
				sender = next
			case 3: // a ticket split across two records
				msg := ticketMsg(int(arg))
				cut := 1 + int(arg)%(len(msg)-1)
				pending = cut
				sealed(record.TypeHandshake, msg[:cut], pad)
				pending = 0
				sealed(record.TypeHandshake, msg[cut:], 0)
			case 4: // a change_cipher_spec, unprotected, which the follower skips
				feedNext([]byte{record.TypeChangeCipherSpec, 3, 3, 0, 1, 1}, false)
			case 5: // the next record is tampered with
				tamper = true
			case 6: // a record of made-up bytes
				n := min(int(arg), len(script))
				rec := append([]byte{record.TypeApplicationData, 3, 3, byte(n >> 8), byte(n)}, script[:n]...)
				script = script[n:]
				unknown = true
				feedNext(rec, false)
			}
		}
		if broken || unknown || tamper {
			return
		}
		if d.prot.Seq() != sender.Seq() {
			t.Fatalf("the follower is at sequence number %d, the sender at %d", d.prot.Seq(), sender.Seq())
		}
		if got, want := d.secret.Keys(), sendSecret.Keys(); !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.IV, want.IV) {
			t.Fatal("the follower is not at the sender's key")
		}
	})
}

// senderAndFollower returns a sender of TLS 1.3 records under suite s and
// an application secret (the secret, and its records sealed by
// internal/record with its own key schedule), and the deferredRX that
// follows it from its first record.
func senderAndFollower(t testing.TB, s *keyschedule.Suite, secret []byte) (*keyschedule.ApplicationSecret, *record.Protector, *deferredRX) {
	t.Helper()
	sendSecret, err := keyschedule.NewApplicationSecret(s, secret)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := record.NewProtector(s, sendSecret.Keys(), 0)
	if err != nil {
		t.Fatal(err)
	}
	followSecret, _ := keyschedule.NewApplicationSecret(s, secret)
	d, err := newDeferredRX(s, followSecret, 0)
	if err != nil {
		t.Fatal(err)
	}
	return sendSecret, sender, d
}

// ticketMsg is a NewSessionTicket message, header included, of n body
// bytes (at least 1).
func ticketMsg(n int) []byte {
	n = max(n, 1)
	return append([]byte{record.MsgNewSessionTicket, 0, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'t'}, n)...)
}
