package ktls

import (
	"crypto/tls"
	"testing"

	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestCloseInHandoffWindowNoPanic: crypto/tls's Close, concurrent with the
// end of the handshake, may write its close_notify after the handoff has
// taken over crypto/tls's writes (startTranslating) and before it has
// marked TX as the kernel's (txHalf.toKernel): the translator then sends
// the alert again through txHalf (Conn.HandshakeContext documents that
// case). Since txHalf's kernel-only fields moved behind a pointer that
// toKernel allocates, that alert dereferenced a nil txKernel and panicked
// the process. The handoff is stopped here, by hand, at that point, with
// the calls it makes in that order; crypto/tls's close_notify then arrives
// as crypto/tls writes it.
func TestCloseInHandoffWindowNoPanic(t *testing.T) {
	raw, _ := wiretest.TCPPair(t, "tcp")

	suite, ok := keyschedule.Lookup(tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256)
	if !ok {
		t.Fatal("no suite")
	}
	secret, err := keyschedule.NewApplicationSecret(suite, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(raw, nil, nil, true)
	keys := secret.Keys()
	translate, err := record.NewProtector(suite, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := record.NewProtector(suite, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	// offloadTX, up to the window: the kernel has the TX key, the
	// translator has crypto/tls's write state.
	c.rx.startTranslating(suite, translate, secret)
	// crypto/tls's Close, in another goroutine: closeNotify writes its
	// alert, sealed under its write state, to the transport.
	closeNotify := sealer.SealPadded(record.TypeAlert, []byte{record.AlertLevelWarning, record.AlertCloseNotify}, 0)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("crypto/tls's close_notify in the handoff window panicked: %v", r)
			}
		}()
		c.hc.Write(closeNotify)
	}()
}
