package ktls_test

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// TestNetConn runs x/net's net.Conn conformance suite on a pair of
// offloaded ktls connections. crypto/tls itself can't pass it: after a
// Write times out, its record state is lost and every later Write fails.
// With the kernel framing records, a timed-out write leaves the stream
// whole, as on plain TCP.
func TestNetConn(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				ccfg, scfg := sc.Configs()
				c, s := ktlstest.ConnectRaw(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
				for _, conn := range []net.Conn{c, s} {
					if o := conn.(*ktls.Conn).Offload(); !o.TX || !o.RX {
						t.Fatalf("Offload() = %v, want TX and RX", o)
					}
				}
				return c, s, func() { c.Close(); s.Close() }, nil
			})
		})
	}
}
