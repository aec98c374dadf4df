package e2e_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/labnet"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
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

// The link BenchmarkTTFB measures across: each way, a delay and a loss
// rate, as `tc qdisc add dev X root netem delay 50ms loss 1%` on both
// hosts (a round trip of 100 ms), and a response of 64 KiB.
const (
	ttfbDelay    = 50 * time.Millisecond
	ttfbLoss     = 1.0 // percent
	ttfbResponse = 64 << 10
)

// A ttfbServer is one way of serving the response.
type ttfbServer struct {
	name  string
	serve func(raw net.Conn, cfg *tls.Config) (ktlstest.Handshaker, func() ktls.Offload)
	// sized16k makes the server's config set DynamicRecordSizingDisabled.
	sized16k bool
}

var ttfbServers = []ttfbServer{
	{name: "go", serve: func(raw net.Conn, cfg *tls.Config) (ktlstest.Handshaker, func() ktls.Offload) {
		return tls.Server(raw, cfg), nil
	}},
	{name: "ktls16k", sized16k: true, serve: ktlsServe},
	{name: "ktls", serve: ktlsServe},
}

func ktlsServe(raw net.Conn, cfg *tls.Config) (ktlstest.Handshaker, func() ktls.Offload) {
	c := ktls.Server(raw, cfg)
	return c, c.Offload
}

// BenchmarkTTFB measures the time to the first decrypted byte of a 64 KiB
// response, on a fresh connection across a slow, lossy link (labnet with
// netem): from the client's request, sent as soon as its handshake is
// done, to its first Read of the response. Three servers take turns, one
// connection each per iteration: crypto/tls ("go"), whose first records
// fit one TCP segment; ktls with tls.Config.DynamicRecordSizingDisabled
// ("ktls16k"), which is what every kernel did before ktls capped its
// records, and still does where the kernel lacks TLS_TX_MAX_PAYLOAD_LEN;
// and ktls ("ktls"), small records first where the kernel can. Loss makes
// each sample random, so it reports per server the median and the 10th
// and 90th percentiles (ms/ttfb), and the median time to the last byte
// (ms/ttlb). Run it with a fixed count, in the lab (netem needs a kernel
// module): go run ./cmd/ktls-lab test -k 7 --run '^$' --bench TTFB
// --benchtime 100x .
func BenchmarkTTFB(b *testing.B) {
	kerneltest.RequireULP(b)
	ktlstest.WarmProbes(b)
	servers := ttfbServers
	if err := kernel.FeatureTXMaxPayloadLen.Check(); err != nil {
		b.Logf("kernel %s: no ktls with small records: %v", kerneltest.Release(), err)
		servers = servers[:2]
	}
	a, c := labnet.Pair(b)
	for _, h := range []*labnet.Host{a, c} {
		if err := h.Netem(ttfbDelay, ttfbLoss); err != nil {
			kerneltest.Unavailable(b, "%v", err)
		}
	}
	ccfg := testcert.Get(testcert.ECDSA).ClientConfig()
	ccfg.MinVersion = tls.VersionTLS13
	ttfb := make([][]time.Duration, len(servers))
	ttlb := make([][]time.Duration, len(servers))
	b.ResetTimer()
	for i := range b.N {
		// Take turns, starting with a different server each time, so
		// that the link's and the machine's moods fall on all alike.
		for j := range servers {
			k := (i + j) % len(servers)
			first, last, err := ttfbSample(a, c, servers[k], ccfg)
			if err != nil {
				b.Fatalf("%s: %v", servers[k].name, err)
			}
			ttfb[k] = append(ttfb[k], first)
			ttlb[k] = append(ttlb[k], last)
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for k, s := range servers {
		p := percentiles(ttfb[k], 10, 50, 90)
		b.ReportMetric(ms(p[1]), s.name+"-ms/ttfb")
		b.ReportMetric(ms(p[0]), s.name+"-p10-ms/ttfb")
		b.ReportMetric(ms(p[2]), s.name+"-p90-ms/ttfb")
		b.ReportMetric(ms(percentiles(ttlb[k], 50)[0]), s.name+"-ms/ttlb")
		b.Logf("%s: %d samples, time to first byte p10/p50/p90 %v/%v/%v", s.name, len(ttfb[k]), p[0], p[1], p[2])
	}
}

// ttfbSample runs one connection: the server on a, the client on c.
func ttfbSample(a, c *labnet.Host, srv ttfbServer, ccfg *tls.Config) (first, last time.Duration, err error) {
	rawServer, rawClient, err := labnet.Connect(a, c)
	if err != nil {
		return 0, 0, err
	}
	defer rawServer.Close()
	defer rawClient.Close()
	scfg := testcert.Get(testcert.ECDSA).ServerConfig()
	scfg.DynamicRecordSizingDisabled = srv.sized16k
	s, offload := srv.serve(rawServer, scfg)
	served := make(chan error, 1)
	go func() {
		served <- func() error {
			if err := s.Handshake(); err != nil {
				return err
			}
			if offload != nil {
				o := offload()
				if !o.TX || o.RecordSizing == srv.sized16k {
					return fmt.Errorf("offload %v, record sizing %v (%v)", o, o.RecordSizing, o.RecordSizingReason)
				}
			}
			req := make([]byte, 1)
			if _, err := io.ReadFull(s, req); err != nil {
				return err
			}
			_, err := s.Write(make([]byte, ttfbResponse))
			return err
		}()
	}()
	tc := tls.Client(rawClient, ccfg)
	if err := tc.Handshake(); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, ttfbResponse)
	start := time.Now()
	if _, err := tc.Write([]byte{'?'}); err != nil {
		return 0, 0, err
	}
	n, err := tc.Read(buf)
	first = time.Since(start)
	if err == nil {
		_, err = io.ReadFull(tc, buf[n:])
	}
	last = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	return first, last, <-served
}

// percentiles returns the p-th percentiles of d, by nearest rank.
func percentiles(d []time.Duration, ps ...int) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		if len(s) > 0 {
			out[i] = s[max(0, (len(s)*p+99)/100-1)]
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
