package ktls

import (
	"bytes"
	"crypto/tls"
	"runtime"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// largeTicket is a NewSessionTicket of the largest size buffered, 64 KiB.
func largeTicket() []byte {
	n := record.MaxNewSessionTicket
	return append([]byte{record.MsgNewSessionTicket, byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{'t'}, n)...)
}

// TestPostHandshakeReassemblyLinear is issue 13's finding 7 on the kernel
// path's own code: a 64 KiB NewSessionTicket in 1-byte records, as
// recvmsg returns them once the kernel decrypts, goes through
// controlRecordLocked. 8d385c3 copied everything buffered into a fresh
// slice for every record: over 4 GB allocated, about a second of CPU. The
// bytes allocated are a deterministic measure of that work.
func TestPostHandshakeReassemblyLinear(t *testing.T) {
	c, _ := fuzzConn(t, true, true)
	msg := largeTicket()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range msg {
		if err := fuzzDeliver(c, record.TypeHandshake, msg[i:i+1]); err != nil {
			t.Fatalf("record %d of the ticket: %v", i, err)
		}
	}
	runtime.ReadMemStats(&after)
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(4*len(msg)); got > limit {
		t.Errorf("reassembling a %d-byte message from 1-byte records allocated %d bytes, want at most %d", len(msg), got, limit)
	}
	if c.rx.err != nil {
		t.Fatalf("after the whole ticket: %v", c.rx.err)
	}
	// Nothing of the ticket is left: data may follow.
	if err := fuzzDeliver(c, record.TypeApplicationData, []byte("data")); err != nil {
		t.Fatal(err)
	}
}

// TestDeferredReassemblyLinear is finding 7 on the deferred RX path, which
// follows the records crypto/tls reads: the same ticket in 1-byte sealed
// records costs the follower a copy of each byte, not of all buffered.
func TestDeferredReassemblyLinear(t *testing.T) {
	s, _ := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	secret := bytes.Repeat([]byte{9}, s.Hash.Size())
	_, sender, d := senderAndFollower(t, s, secret)
	msg := largeTicket()
	for i := range msg {
		d.see(sender.Seal(record.TypeHandshake, msg[i:i+1]))
	}
	if d.err != nil || d.hs.Pending() || d.prot.Seq() != uint64(len(msg)) {
		t.Fatalf("after the ticket: error %v, pending %v, at record %d of %d", d.err, d.hs.Pending(), d.prot.Seq(), len(msg))
	}
	if got := d.hs.Copied(); got > 3*len(msg) {
		t.Errorf("the follower copied %d bytes for a %d-byte message in 1-byte records, want at most %d", got, len(msg), 3*len(msg))
	}
}
