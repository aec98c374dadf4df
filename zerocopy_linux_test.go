package ktls_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// BenchmarkSendfileZerocopy measures what TLS_TX_ZEROCOPY_RO
// (Options.ZerocopySendfile) changes. Only the kernel's device-offload
// path (a NIC that encrypts) acts on it, by handing the file's pages to
// the NIC without a copy; software kernel TLS, which the lab runs,
// should show no difference, and this benchmark is how we know. Two ktls
// pairs, one with the option and one without, each send the same 4 MiB
// file with sendfile(2) every op, in an order that alternates from op to
// op, and the op waits until the receiver has all of it. It reports each
// way's wall time and the process's CPU time (getrusage) per GiB, and the
// ratio of the CPU times, so the comparison comes from interleaved
// samples. Both ends are in this process, and the receiver's work is the
// same either way, so a saving on the sender shows in the ratio at about
// half its size. In the lab the CPU is emulated: compare the ways, not
// the figures.
func BenchmarkSendfileZerocopy(b *testing.B) {
	ktlstest.TLS13.RequireTX(b)
	kerneltest.Require(b, kernel.FeatureTXZerocopyRO)
	ccfg, scfg := ktlstest.TLS13.Configs()
	const chunk = 4 << 20
	f := testFile(b, chunk)
	type way struct {
		name      string
		send      net.Conn
		received  chan struct{} // a chunk arrived; closed when the reader stops
		wall, cpu int64
	}
	ways := []*way{{name: "copy"}, {name: "zerocopy"}}
	for i, w := range ways {
		zc := i == 1
		c, s := ktlstest.Connect(b, ktlstest.KTLS(ccfg),
			ktlstest.KTLSWith(scfg, &ktls.Options{TX: ktls.Required, ZerocopySendfile: zc}))
		if o := s.(*ktls.Conn).Offload(); o.ZerocopySendfile != zc {
			b.Fatalf("%s: Offload().ZerocopySendfile = %v (%v)", w.name, o.ZerocopySendfile, o.ZerocopySendfileReason)
		}
		// Buffered, so that a reader with a whole chunk never waits on a
		// benchmark that has failed and gone.
		w.send, w.received = s, make(chan struct{}, 1)
		go func() {
			defer close(w.received)
			buf := make([]byte, 64<<10)
			for got := 0; ; {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if got += n; got >= chunk {
					got -= chunk
					w.received <- struct{}{}
				}
			}
		}()
	}
	b.SetBytes(2 * chunk)
	b.ResetTimer()
	for i := range b.N {
		order := ways
		if i%2 == 1 {
			order = reversed(ways)
		}
		for _, w := range order {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			cpu0 := processCPU(b)
			start := time.Now()
			if _, err := io.Copy(w.send, f); err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			select {
			case _, ok := <-w.received:
				if !ok {
					b.Fatalf("%s: the receiver stopped", w.name)
				}
			case <-time.After(time.Minute):
				b.Fatalf("%s: the receiver did not get the file in a minute", w.name)
			}
			w.wall += int64(time.Since(start))
			w.cpu += int64(processCPU(b) - cpu0)
		}
	}
	b.StopTimer()
	perGiB := float64(1<<30) / chunk / float64(b.N)
	for _, w := range ways {
		b.ReportMetric(float64(w.wall)/1e9*perGiB, w.name+"-s/GiB")
		b.ReportMetric(float64(w.cpu)/1e9*perGiB, w.name+"-cpu-s/GiB")
	}
	b.ReportMetric(float64(ways[1].cpu)/float64(ways[0].cpu), "zerocopy/copy-cpu")
	b.ReportMetric(0, "ns/op")
}
