package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/job"
)

// A Runner boots kernels and runs jobs in them.
type Runner struct {
	Cache   *Cache
	Machine Machine
	// Accel is the accelerator asked for: AccelTCG ("" too), AccelKVM, or
	// AccelAuto, which probes KVM with a short boot once and falls back to
	// TCG with the reason (see Outcome).
	Accel Accel
	// Timeout bounds a whole boot, from QEMU's start to its exit. A guest
	// that hangs is killed when it runs out.
	Timeout time.Duration
	// BootTimeout bounds the boot alone, until init is ready for the first
	// step: 3 minutes if zero. Under TCG a boot takes 5 to 12 s.
	BootTimeout time.Duration
	// BootAttempts is how many times a guest that fails before its first
	// step starts is booted: 2 if zero. Emulated kernels very rarely panic
	// while booting (once seen here, 6.12 at 3 s), and nothing of the job
	// has run then, so booting again hides no failure of the job. A guest
	// that fails once a step has started is never booted again.
	BootAttempts int
	// Console receives the guest's console output, line by line, as it
	// arrives.
	Console io.Writer
	// Logf reports the lab's own progress.
	Logf func(format string, args ...any)
	// OnLine, if set, sees every console line, for example to count tests.
	OnLine func(line string)

	accelMu       sync.Mutex
	accelResolved Accel
	accelReason   string
}

// An Outcome is what came of one boot.
type Outcome struct {
	Kernel *FetchedKernel
	Result job.Result
	// Boot is the time from QEMU's start until init was ready to run the
	// first step, and Teardown from the end of the last step until QEMU
	// exited. Wall is the whole, of the last boot.
	Boot, Teardown, Wall time.Duration
	// BootFailures says why each earlier boot failed before the first
	// step, when the guest was booted again.
	BootFailures []string
	// Accel is what the guest ran on, and AccelReason why TCG where KVM
	// was asked for with AccelAuto.
	Accel       Accel
	AccelReason string
}

// Failed reports whether any step failed.
func (o *Outcome) Failed() bool {
	for _, s := range o.Result.Steps {
		if s.ExitCode != 0 {
			return true
		}
	}
	return false
}

// A GuestError is a boot that did not run its job to the end: init
// failed, the kernel panicked, or the guest hung.
type GuestError struct {
	Kernel string
	Reason string
	// BeforeSteps is set when the guest failed before its first step
	// started.
	BeforeSteps bool
}

func (e *GuestError) Error() string { return fmt.Sprintf("lab: kernel %s: %s", e.Kernel, e.Reason) }

// Run boots kernel k and runs j in it. The error is non-nil when the guest
// didn't finish the job; failed steps are reported in the Outcome.
func (r *Runner) Run(ctx context.Context, k Kernel, j *job.Job) (*Outcome, error) {
	logf := r.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	qemu, err := EnsureQEMU(logf)
	if err != nil {
		return nil, err
	}
	fk, err := r.Cache.Fetch(k, logf)
	if err != nil {
		return nil, err
	}
	initrd, err := r.Cache.initramfs(fk)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	accel, accelReason, err := r.resolveAccel(ctx, qemu, fk, initrd, k)
	if err != nil {
		return nil, err
	}
	if r.Accel == AccelAuto {
		if accelReason != "" {
			logf("lab: accel auto: tcg, because %s", accelReason)
		} else {
			logf("lab: accel auto: %s", accel)
		}
	}
	m := r.Machine
	if m.MemoryMiB == 0 {
		m = DefaultMachine
	}
	m.Accel = accel
	// Programs in the guest learn what they run on (ktls bench marks
	// figures from TCG as emulated).
	jc := *j
	jc.Env = append(slices.Clone(j.Env), EnvAccel+"="+string(accel))
	j = &jc
	opts := bootOptions{machine: m, bootTimeout: r.BootTimeout, console: true}
	attempts := r.BootAttempts
	if attempts <= 0 {
		attempts = 2
	}
	var failures []string
	for {
		out, err := r.boot(ctx, qemu, fk, initrd, k, j, opts)
		var ge *GuestError
		if err == nil || !errors.As(err, &ge) || !ge.BeforeSteps || ctx.Err() != nil || len(failures)+1 >= attempts {
			if out != nil {
				out.BootFailures = failures
				out.Accel, out.AccelReason = accel, accelReason
			}
			return out, err
		}
		failures = append(failures, ge.Reason)
		logf("lab: kernel %s: the guest failed before its first step (%s); booting it again", k.Name, ge.Reason)
	}
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout == 0 {
		return 20 * time.Minute
	}
	return r.Timeout
}

// bootOptions are what one boot runs with.
type bootOptions struct {
	machine     Machine
	bootTimeout time.Duration // 3 minutes if zero
	console     bool          // pass the console to r.Console and r.OnLine
}

// boot boots the guest once and runs j in it.
func (r *Runner) boot(ctx context.Context, qemu string, fk *FetchedKernel, initrd string, k Kernel, j *job.Job, opts bootOptions) (*Outcome, error) {
	jobDir, err := os.MkdirTemp("", "ktls-lab-job-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(jobDir)
	j.Kernel = k.Name
	if err := job.Write(jobDir, job.JobFile, j); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}

	bootTimeout := opts.bootTimeout
	if bootTimeout == 0 {
		bootTimeout = 3 * time.Minute
	}
	qctx, kill := context.WithCancel(ctx)
	defer kill()

	cmd := exec.CommandContext(qctx, qemu, qemuArgs(opts.machine, fk.BootImage(), initrd, jobDir, j.Shares)...)
	cmd.Stdin = nil
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	out := &Outcome{Kernel: fk}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: starting qemu: %w", err)
	}

	var (
		mu        sync.Mutex
		ready     time.Time
		started   bool // the first step
		lastStep  time.Time
		panicLine string
		notReady  bool
	)
	bootTimer := time.AfterFunc(bootTimeout, func() {
		mu.Lock()
		defer mu.Unlock()
		if ready.IsZero() {
			notReady = true
			kill()
		}
	})
	defer bootTimer.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			now := time.Now()
			mu.Lock()
			switch {
			case strings.HasPrefix(line, "ktls-lab: guest ") && strings.Contains(line, " ready "):
				ready = now
			case strings.HasPrefix(line, "ktls-lab: step ") && strings.HasSuffix(line, ": start"):
				started = true
			case strings.HasPrefix(line, "ktls-lab: step ") && strings.Contains(line, ": exit "):
				lastStep = now
			case strings.Contains(line, "Kernel panic"):
				panicLine = line
			}
			mu.Unlock()
			if opts.console && r.Console != nil {
				fmt.Fprintln(r.Console, line)
			}
			if opts.console && r.OnLine != nil {
				r.OnLine(line)
			}
		}
	}()
	<-done
	waitErr := cmd.Wait()
	end := time.Now()
	mu.Lock()
	defer mu.Unlock()
	out.Wall = end.Sub(start)
	if !ready.IsZero() {
		out.Boot = ready.Sub(start)
	}
	if !lastStep.IsZero() {
		out.Teardown = end.Sub(lastStep)
	}

	readErr := job.Read(jobDir, job.ResultFile, &out.Result)
	fail := func(reason string) (*Outcome, error) {
		return out, &GuestError{Kernel: k.Name, Reason: reason, BeforeSteps: !started}
	}
	switch {
	case notReady:
		return fail(fmt.Sprintf("guest not ready after %v and was killed", bootTimeout))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fail(fmt.Sprintf("guest timed out after %v and was killed", r.timeout()))
	case ctx.Err() != nil:
		return fail("interrupted")
	case panicLine != "":
		return fail("kernel panic: " + panicLine)
	case waitErr != nil:
		return fail(fmt.Sprintf("qemu: %v", waitErr))
	case readErr != nil:
		return fail(fmt.Sprintf("guest powered off without a result (%v)", readErr))
	case out.Result.Init != "":
		return fail("init failed: " + out.Result.Init)
	case !out.Result.Done:
		return fail("guest stopped before the job ended")
	}
	return out, nil
}

// moduleDir finds the ktls module's source, to build the guest init from:
// the directory this file was compiled from, when the build recorded it,
// else the current directory (which works inside the module).
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		dir := filepath.Dir(file)
		for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
			if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
				if strings.Contains(string(data), "module github.com/ktlsgo/ktls\n") {
					return d
				}
				break
			}
		}
	}
	return ""
}

// initramfs returns an initramfs for fk holding the current guest init,
// building both when needed.
func (c *Cache) initramfs(fk *FetchedKernel) (string, error) {
	unlock, err := c.lock()
	if err != nil {
		return "", err
	}
	defer unlock()

	vmlinux := filepath.Join(fk.Dir, "vmlinux")
	if !fileExists(vmlinux) && !fileExists(vmlinux+".none") {
		if err := writeVmlinux(fk.Vmlinuz(), vmlinux); err != nil {
			os.WriteFile(vmlinux+".none", []byte(err.Error()+"\n"), 0o644)
		}
	}

	initBin := filepath.Join(c.Dir, "init")
	build := exec.Command("go", "build", "-trimpath", "-o", initBin, "github.com/ktlsgo/ktls/internal/lab/init")
	build.Dir = moduleDir()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: building guest init: %v\n%s", err, out)
	}
	data, err := os.ReadFile(initBin)
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	sum := sha256.Sum256(data)
	path := filepath.Join(fk.Dir, "initramfs-"+hex.EncodeToString(sum[:6])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	old, _ := filepath.Glob(filepath.Join(fk.Dir, "initramfs-*.cpio"))
	tmp := path + ".tmp"
	if err := buildInitramfs(tmp, initBin, fk.ModulesDir()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	for _, o := range old {
		os.Remove(o)
	}
	return path, nil
}
