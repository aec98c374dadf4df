package kernel_test

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// TestFeatureKnown: Known reports the kernel's answer once a Check got
// one, never an inconclusive probe's, and never probes itself. ktls
// relies on it to skip the handoff's bookkeeping only where the kernel
// has said it has no tls ULP.
func TestFeatureKnown(t *testing.T) {
	for _, answer := range []string{"supported", "unsupported"} {
		t.Run(answer, func(t *testing.T) {
			var probes atomic.Int32
			var f *kernel.Feature
			f = kernel.NewFeature("test feature", func() error {
				if probes.Add(1) == 1 {
					return os.NewSyscallError("socket", unix.EMFILE)
				}
				if answer == "unsupported" {
					return f.Unsupported("the kernel said no")
				}
				return nil
			})
			if known, err := f.Known(); known || err != nil {
				t.Fatalf("Known before any Check = %v, %v; want false, nil", known, err)
			}
			f.Check() // inconclusive
			if known, err := f.Known(); known || err != nil {
				t.Fatalf("Known after an inconclusive probe = %v, %v; want false, nil", known, err)
			}
			f.Check()
			known, err := f.Known()
			if !known || answer == "supported" && err != nil || answer == "unsupported" && !errors.Is(err, kernel.ErrNotSupported) {
				t.Fatalf("Known after the kernel's answer (%s) = %v, %v", answer, known, err)
			}
			if n := probes.Load(); n != 2 {
				t.Errorf("probed %d times, want 2: Known never probes", n)
			}
		})
	}
}
