package ktls_test

import (
	"net"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/labnet"
)

// TestOffloadAcrossHosts runs an offloaded connection between two network
// namespaces joined by a veth pair, as between two hosts: segments of a
// 1500-byte MTU instead of loopback's 64 KiB, so records span segments
// and the kernel reassembles them. 16 MiB each way, both ends TX+RX.
func TestOffloadAcrossHosts(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	warmProbes(t)
	a, b := labnet.Pair(t)
	for _, sc := range []suiteCase{suiteCases[0], suiteCases[2]} {
		t.Run(sc.name, func(t *testing.T) {
			ccfg, scfg := sc.configs()
			rawServer, raw, err := labnet.Connect(a, b)
			if err != nil {
				t.Fatal(err)
			}
			c, s := ktls.Client(raw, ccfg), ktls.Server(rawServer, scfg)
			defer c.Close()
			defer s.Close()
			errc := make(chan error, 1)
			go func() { errc <- s.Handshake() }()
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			for _, kc := range []*ktls.Conn{c, s} {
				if o := kc.Offload(); !o.TX || !o.RX {
					t.Fatalf("Offload() = %v, want TX and RX", o)
				}
			}
			if got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); got != a.Addr {
				t.Fatalf("the client is connected to %v, want a's %v across the veth pair", got, a.Addr)
			}
			exchange(t, c, s, 16<<20)
		})
	}
}
