package e2e_test

import (
	"net"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/labnet"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestOffloadAcrossHosts runs an offloaded connection between two network
// namespaces joined by a veth pair, as between two hosts: segments of a
// 1500-byte MTU instead of loopback's 64 KiB, so records span segments
// and the kernel reassembles them. 16 MiB each way, both ends TX+RX.
func TestOffloadAcrossHosts(t *testing.T) {
	kerneltest.RequireULP(t)
	ktlstest.WarmProbes(t)
	a, b := labnet.Pair(t)
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			rawServer, raw, err := labnet.Connect(a, b)
			if err != nil {
				t.Fatal(err)
			}
			c, s := ktls.Client(raw, ccfg), ktls.Server(rawServer, scfg)
			defer c.Close()
			defer s.Close()
			if cerr, serr := wiretest.Handshake(c, s); cerr != nil || serr != nil {
				t.Fatalf("handshake: client: %v, server: %v", cerr, serr)
			}
			ktlstest.WantOffload(t, c, s)
			if got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); got != a.Addr {
				t.Fatalf("the client is connected to %v, want a's %v across the veth pair", got, a.Addr)
			}
			wiretest.Exchange(t, c, s, 16<<20)
		})
	}
}
