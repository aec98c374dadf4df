package ktls_test

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// TestBookkeepingOnlyWhereOffloadMay: a connection gets the handoff's
// bookkeeping (the key log capture on a clone of the config, the
// record-boundary reader, the copies of what crypto/tls writes) where the
// kernel may take it, and goes without where it can't: TX disabled, or a
// kernel that has said it has no tls ULP. That bookkeeping cost a
// handshake 5 to 7% on a host without kernel TLS; this test failed
// there while every connection paid it. In the lab, it checks the other
// way: connections the kernel may take are watched.
func TestBookkeepingOnlyWhereOffloadMay(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	ulpErr := kernel.FeatureULP.Check()
	known, _ := kernel.FeatureULP.Known()
	for _, tc := range []struct {
		name  string
		opts  *ktls.Options
		watch bool
	}{
		{"TX disabled", &ktls.Options{TX: ktls.Disabled}, false},
		{"defaults", nil, !known || ulpErr == nil},
	} {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		for side, c := range map[string]*ktls.Conn{
			"client": ktls.ClientWithOptions(a, ccfg, tc.opts),
			"server": ktls.ServerWithOptions(b, scfg, tc.opts),
		} {
			if got := c.KeyLogCaptured(); got != tc.watch {
				t.Errorf("%s, %s (tls ULP: %v): key log captured %v, want %v", tc.name, side, ulpErr, got, tc.watch)
			}
		}
	}
}

// TestFallbackAllocs: on a connection that stays on crypto/tls, a Write
// and the Read of what it wrote allocate no more than they do on
// crypto/tls itself. The fallback's per-call path (Conn, the handoff's
// passthrough, the error translation) once allocated on every call: its
// error check took the address of a variable before looking at the
// error, which moved that variable to the heap.
func TestFallbackAllocs(t *testing.T) {
	off := &ktls.Options{TX: ktls.Disabled}
	ccfg, scfg := ktlstest.TLS13.Configs()
	allocs := func(c, s net.Conn) float64 {
		msg := make([]byte, 1024)
		buf := make([]byte, len(msg))
		return testing.AllocsPerRun(200, func() {
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(s, buf); err != nil {
				t.Fatal(err)
			}
		})
	}
	c, s := ktlstest.Connect(t, ktlstest.CryptoTLS(ccfg), ktlstest.CryptoTLS(scfg))
	want := allocs(c, s)
	c, s = ktlstest.Connect(t, ktlstest.KTLSWith(ccfg, off), ktlstest.KTLSWith(scfg, off))
	if got := allocs(c, s); got > want {
		t.Errorf("a fallback Write and Read allocate %v times, crypto/tls's %v", got, want)
	}
}

// processCPU is the CPU time, user and system, this process has used:
// benchmarks report it per operation beside the wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
