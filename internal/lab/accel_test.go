package lab

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseAccel(t *testing.T) {
	for _, s := range []string{"auto", "tcg", "kvm"} {
		if a, err := ParseAccel(s); err != nil || string(a) != s {
			t.Errorf("ParseAccel(%q) = %q, %v", s, a, err)
		}
	}
	if _, err := ParseAccel("hvf"); err == nil || !strings.Contains(err.Error(), "have auto, tcg, kvm") {
		t.Errorf("ParseAccel(hvf) = %v, want an error naming the choices", err)
	}
}

// TestQEMUAccelArgs: KVM runs the host's CPU; TCG emulates one with
// AES-NI and PCLMULQDQ.
func TestQEMUAccelArgs(t *testing.T) {
	kvm := qemuArgs(Machine{MemoryMiB: 512, CPUs: 1, Accel: AccelKVM}, "vmlinuz", "initrd", "/j", nil)
	if !slices.Contains(kvm, "kvm") || !slices.Contains(kvm, "host") || slices.Contains(kvm, "max") {
		t.Errorf("KVM args %q", kvm)
	}
	for _, a := range []Accel{"", AccelTCG} {
		tcg := qemuArgs(Machine{MemoryMiB: 512, CPUs: 1, Accel: a}, "vmlinuz", "initrd", "/j", nil)
		if !slices.Contains(tcg, "tcg,thread=multi") || !slices.Contains(tcg, "max") || slices.Contains(tcg, "kvm") {
			t.Errorf("TCG args for %q: %q", a, tcg)
		}
	}
}

// TestAccelCache: the probe's answer is kept for this boot of the host,
// and not for another.
func TestAccelCache(t *testing.T) {
	if bootID() == "" {
		t.Skip("no /proc/sys/kernel/random/boot_id: the answer is never kept here")
	}
	c := &Cache{Dir: t.TempDir()}
	if _, _, ok := c.loadAccel(); ok {
		t.Fatal("an empty cache has an answer")
	}
	c.storeAccel(AccelTCG, "a probe boot hung")
	a, reason, ok := c.loadAccel()
	if !ok || a != AccelTCG || reason != "a probe boot hung" {
		t.Errorf("loadAccel = %q, %q, %v", a, reason, ok)
	}
	os.WriteFile(c.accelFile(), []byte("another-boot\tkvm\t\n"), 0o644)
	if _, _, ok := c.loadAccel(); ok {
		t.Error("an answer from another boot of the host was used")
	}
}

// TestAccelExplicit: tcg needs no probe, and kvm fails where /dev/kvm
// can't be opened instead of falling back.
func TestAccelExplicit(t *testing.T) {
	r := &Runner{Accel: AccelTCG}
	if a, reason, err := r.resolveAccel(context.Background(), "", nil, "", Kernel{}); a != AccelTCG || reason != "" || err != nil {
		t.Errorf("tcg resolved to %q, %q, %v", a, reason, err)
	}
	r = &Runner{Accel: AccelKVM}
	a, _, err := r.resolveAccel(context.Background(), "", nil, "", Kernel{})
	if kvmUsable() != nil && err == nil {
		t.Errorf("kvm without a usable /dev/kvm resolved to %q", a)
	}
	if kvmUsable() == nil && (err != nil || a != AccelKVM) {
		t.Errorf("kvm with /dev/kvm resolved to %q, %v", a, err)
	}
}
