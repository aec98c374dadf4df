package bench

import (
	"os"
	"testing"
	"time"
)

// /proc/PID/stat is Linux's: this file builds only there.

// TestProcessCPU reads this process's own CPU time, which a busy loop
// moves on, and fails for a process that isn't there.
func TestProcessCPU(t *testing.T) {
	if _, _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1) succeeded")
	}
	u0, s0, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < time.Second; {
		u1, s1, err := processCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if u1 < u0 || s1 < s0 {
			t.Fatalf("CPU time went back: user %v to %v, sys %v to %v", u0, u1, s0, s1)
		}
		if u1+s1 >= u0+s0+2*ticks(1) {
			return
		}
	}
	t.Error("a second of busy loop moved the CPU time by less than two ticks")
}
