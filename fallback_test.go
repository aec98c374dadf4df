package ktls_test

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
)

// TestFallbackAllocs: on a connection that stays on crypto/tls, a Write
// and the Read of what it wrote allocate no more than they do on
// crypto/tls itself. The fallback's per-call path (Conn, the handoff's
// passthrough, the error translation) once allocated on every call: its
// error check took the address of a variable before looking at the
// error, which moved that variable to the heap.
func TestFallbackAllocs(t *testing.T) {
	off := &ktls.Options{TX: ktls.Disabled}
	ccfg, scfg := suiteCases[0].configs()
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
	c, s := connect(t, endpoint{config: ccfg}, endpoint{config: scfg})
	want := allocs(c, s)
	c, s = connect(t, endpoint{ktls: true, config: ccfg, opts: off}, endpoint{ktls: true, config: scfg, opts: off})
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
