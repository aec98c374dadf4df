package kernel_test

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// TestFeatureInconclusiveNotCached is issue 13's finding 10: a probe that
// could not run (here EMFILE, as in a process out of file descriptors) says
// nothing about the kernel, so it must not be cached as the answer. The next
// Check probes again; the kernel's answer, once given, is cached. Known,
// which never probes, reports that answer and nothing before it: ktls
// skips the handoff's bookkeeping only where the kernel has said no.
func TestFeatureInconclusiveNotCached(t *testing.T) {
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
			err := f.Check()
			if err == nil || errors.Is(err, kernel.ErrNotSupported) || !errors.Is(err, unix.EMFILE) {
				t.Fatalf("first Check = %v, want an error wrapping EMFILE that doesn't match ErrNotSupported", err)
			}
			if known, err := f.Known(); known || err != nil {
				t.Fatalf("Known after an inconclusive probe = %v, %v; want false, nil", known, err)
			}
			for i := range 3 {
				err = f.Check()
				if answer == "supported" && err != nil || answer == "unsupported" && !errors.Is(err, kernel.ErrNotSupported) {
					t.Fatalf("Check %d after EMFILE = %v, want the kernel's answer (%s)", i+2, err, answer)
				}
			}
			if known, err := f.Known(); !known || (err == nil) != (answer == "supported") {
				t.Errorf("Known after the kernel's answer (%s) = %v, %v", answer, known, err)
			}
			if n := probes.Load(); n != 2 {
				t.Errorf("probed %d times, want 2: once inconclusive, once answered and cached", n)
			}
		})
	}
}

// TestFeatureConcurrentCheck checks that concurrent Checks probe once when
// the kernel answers, and that every caller gets the answer.
func TestFeatureConcurrentCheck(t *testing.T) {
	var probes atomic.Int32
	f := kernel.NewFeature("test feature", func() error { probes.Add(1); return nil })
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := f.Check(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := probes.Load(); n != 1 {
		t.Errorf("probed %d times, want 1", n)
	}
}
