package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/job"
)

// An Accel is how QEMU runs the guest.
type Accel string

const (
	// AccelAuto uses KVM where a probe boot shows that it runs a stock
	// kernel, and TCG elsewhere.
	AccelAuto Accel = "auto"
	// AccelTCG emulates the CPU: slow (figures are only good for ratios
	// within one run), but it runs anywhere. -cpu max emulates AES-NI and
	// PCLMULQDQ, which the kernel's aesni-intel and ghash-clmulni-intel
	// need.
	AccelTCG Accel = "tcg"
	// AccelKVM runs the guest on the host's CPU (-cpu host), at native
	// speed: absolute figures mean something there.
	AccelKVM Accel = "kvm"
)

// EnvAccel, when set, is ktls-lab's default --accel.
const EnvAccel = "KTLS_LAB_ACCEL"

// ParseAccel checks a --accel value.
func ParseAccel(s string) (Accel, error) {
	switch a := Accel(s); a {
	case AccelAuto, AccelTCG, AccelKVM:
		return a, nil
	}
	return "", fmt.Errorf("unknown accelerator %q (have auto, tcg, kvm)", s)
}

// kvmProbeTimeout bounds the probe boot. Under KVM a stock kernel reaches
// the guest's init in a second or two, with the host busy too; under a
// KVM that can't run it (a paravirtual one, such as PVM, hangs stock
// kernels right after "Probing EDD") it never does.
const kvmProbeTimeout = 20 * time.Second

// resolveAccel turns the Runner's Accel into the one a boot uses, probing
// KVM once per Runner for AccelAuto. It returns why TCG was chosen, for
// the summary.
func (r *Runner) resolveAccel(ctx context.Context, qemu string, fk *FetchedKernel, initrd string, k Kernel) (Accel, string, error) {
	r.accelMu.Lock()
	defer r.accelMu.Unlock()
	switch r.Accel {
	case "", AccelTCG:
		return AccelTCG, "", nil
	case AccelKVM:
		if err := kvmUsable(); err != nil {
			return "", "", fmt.Errorf("lab: --accel kvm: %w", err)
		}
		return AccelKVM, "", nil
	}
	if r.accelResolved != "" {
		return r.accelResolved, r.accelReason, nil
	}
	if a, reason, ok := r.Cache.loadAccel(); ok {
		r.accelResolved, r.accelReason = a, reason
		return a, reason, nil
	}
	accel, reason, conclusive := r.probeKVM(ctx, qemu, fk, initrd, k)
	if conclusive {
		// Only an answer is kept: a probe that could not run (qemu failed
		// to start, the context ended) says nothing of KVM, and the next
		// boot probes again. The answer holds until the host reboots, so
		// go test -exec, which runs ktls-lab once per package, probes once.
		r.accelResolved, r.accelReason = accel, reason
		r.Cache.storeAccel(accel, reason)
	}
	return accel, reason, nil
}

// accelFile keeps the probe's answer in the cache, with the host's boot
// id: a reboot (a new kernel, KVM loaded or not) asks again.
func (c *Cache) accelFile() string { return filepath.Join(c.Dir, "accel") }

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (c *Cache) loadAccel() (Accel, string, bool) {
	id := bootID()
	b, err := os.ReadFile(c.accelFile())
	if id == "" || err != nil {
		return "", "", false
	}
	f := strings.SplitN(strings.TrimSpace(string(b)), "\t", 3)
	if len(f) != 3 || f[0] != id || (f[1] != string(AccelTCG) && f[1] != string(AccelKVM)) {
		return "", "", false
	}
	return Accel(f[1]), f[2], true
}

func (c *Cache) storeAccel(a Accel, reason string) {
	if id := bootID(); id != "" {
		os.WriteFile(c.accelFile(), []byte(id+"\t"+string(a)+"\t"+reason+"\n"), 0o644)
	}
}

// kvmUsable checks that this process can open /dev/kvm.
func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("KVM is not usable here: %w", err)
	}
	f.Close()
	return nil
}

// probeKVM boots k under KVM with a job of one step, `true`, and reports
// whether it ran. conclusive is false when the probe said nothing about
// KVM.
func (r *Runner) probeKVM(ctx context.Context, qemu string, fk *FetchedKernel, initrd string, k Kernel) (accel Accel, reason string, conclusive bool) {
	if err := kvmUsable(); err != nil {
		return AccelTCG, err.Error(), true
	}
	m := r.Machine
	if m.MemoryMiB == 0 {
		m = DefaultMachine
	}
	m.Accel = AccelKVM
	j := &job.Job{Steps: []job.Step{{Name: "kvm-probe", Argv: []string{"true"}, Dir: "/"}}}
	start := time.Now()
	out, err := r.boot(ctx, qemu, fk, initrd, k, j, bootOptions{machine: m, bootTimeout: kvmProbeTimeout})
	var ge *GuestError
	switch {
	case err == nil && !out.Failed():
		return AccelKVM, "", true
	case ctx.Err() != nil:
		return AccelTCG, "", false
	case errors.As(err, &ge) && strings.HasPrefix(ge.Reason, "guest not ready"):
		return AccelTCG, fmt.Sprintf("a probe boot under KVM was not ready in %v (a paravirtual KVM, such as PVM, hangs stock kernels)",
			time.Since(start).Round(time.Second)), true
	case err != nil:
		return AccelTCG, "a probe boot under KVM failed: " + err.Error(), true
	}
	return AccelTCG, "a probe boot under KVM ran, but its step failed", true
}

// accelArgs are QEMU's accelerator and CPU flags.
func accelArgs(a Accel) []string {
	if a == AccelKVM {
		return []string{"-accel", "kvm", "-cpu", "host"}
	}
	return []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
}
