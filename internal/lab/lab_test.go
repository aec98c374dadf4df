package lab_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab"
	"github.com/ktlsgo/ktls/internal/lab/job"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// EnvSelfTest makes the lab's own tests mandatory: the suite sets it after
// fetching the kernels, so a broken lab fails the suite instead of
// skipping.
const envSelfTest = "KTLS_LAB_SELFTEST"

// runner returns a Runner for the newest lab kernel, or skips when this
// machine can't boot one.
func runner(t *testing.T, timeout time.Duration) (*lab.Runner, *wiretest.SyncBuffer) {
	t.Helper()
	t.Parallel()
	if _, inLab := os.LookupEnv(job.EnvLab); inLab {
		t.Skip("the lab's self-tests boot guests from the host; they don't nest")
	}
	_, qemuErr := exec.LookPath("qemu-system-x86_64")
	if qemuErr != nil && os.Getenv(envSelfTest) == "" {
		t.Skipf("no qemu-system-x86_64 (the suite installs it; run go run ./cmd/ktls-lab suite): %v", qemuErr)
	}
	cache, err := lab.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	console := &wiretest.SyncBuffer{}
	return &lab.Runner{
		Cache:   cache,
		Timeout: timeout,
		Console: console,
		Logf:    t.Logf,
	}, console
}

func newest() lab.Kernel { return lab.Kernels[len(lab.Kernels)-1] }

func step(name string, argv ...string) job.Step {
	return job.Step{Name: name, Argv: argv, Dir: "/"}
}

// TestExitStatus: the guest reports each step's exit status, and a failing
// step is a failed outcome, not a lab error.
func TestExitStatus(t *testing.T) {
	r, console := runner(t, 5*time.Minute)
	out, err := r.Run(context.Background(), newest(), &job.Job{
		Env: []string{"PATH=/usr/bin:/bin"},
		Steps: []job.Step{
			step("pass", "sh", "-c", "echo hello from $KTLS_LAB; uname -r"),
			step("fail", "sh", "-c", "exit 3"),
			step("missing", "/nonexistent/program"),
		},
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, console)
	}
	want := []int{0, 3, -1}
	if len(out.Result.Steps) != len(want) {
		t.Fatalf("ran %d steps, want %d", len(out.Result.Steps), len(want))
	}
	for i, s := range out.Result.Steps {
		if s.ExitCode != want[i] {
			t.Errorf("step %s exit code %d, want %d", s.Name, s.ExitCode, want[i])
		}
	}
	if !out.Failed() {
		t.Error("Failed() = false with a failing step")
	}
	if !strings.Contains(console.String(), "hello from "+newest().Name) {
		t.Errorf("console lacks the step's output:\n%s", console)
	}
	if !strings.HasPrefix(out.Result.Release, "7.") {
		t.Errorf("guest release %q, want 7.x", out.Result.Release)
	}
	t.Logf("boot %v, teardown %v, wall %v", out.Boot, out.Teardown, out.Wall)
}

// TestHangIsKilled: a guest that never finishes is killed at the timeout
// and reported as a lab error.
func TestHangIsKilled(t *testing.T) {
	r, console := runner(t, 30*time.Second)
	start := time.Now()
	_, err := r.Run(context.Background(), newest(), &job.Job{
		Env:   []string{"PATH=/usr/bin:/bin"},
		Steps: []job.Step{step("hang", "sleep", "3600")},
	})
	var ge *lab.GuestError
	if !errors.As(err, &ge) || !strings.Contains(ge.Reason, "timed out") {
		t.Fatalf("Run of a hanging guest = %v, want a timeout GuestError\n%s", err, console)
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("killing the guest took %v", d)
	}
}

// TestKernelPanic: a panicking kernel is reported as one.
func TestKernelPanic(t *testing.T) {
	r, console := runner(t, 5*time.Minute)
	out, err := r.Run(context.Background(), newest(), &job.Job{
		Env:   []string{"PATH=/usr/bin:/bin"},
		Steps: []job.Step{step("panic", "sh", "-c", "echo c > /proc/sysrq-trigger")},
	})
	var ge *lab.GuestError
	if !errors.As(err, &ge) || !strings.Contains(ge.Reason, "panic") || ge.BeforeSteps {
		t.Fatalf("Run of a panicking guest = %v, want a kernel panic GuestError after the first step\n%s", err, console)
	}
	// A panic the job caused is its failure: the guest is not booted again.
	if boots := strings.Count(console.String(), "ktls-lab: guest "); boots != 1 || len(out.BootFailures) != 0 {
		t.Fatalf("the guest booted %d times (boot failures %q), want once", boots, out.BootFailures)
	}
}

// TestBootRetry: a guest that fails before its first step, here because
// its boot outlasts BootTimeout, is booted again, BootAttempts times in
// all, and the outcome says why each boot failed.
func TestBootRetry(t *testing.T) {
	r, console := runner(t, 5*time.Minute)
	r.BootTimeout = 200 * time.Millisecond // far less than a boot takes
	r.BootAttempts = 3
	out, err := r.Run(context.Background(), newest(), &job.Job{
		Steps: []job.Step{step("never", "/bin/true")},
	})
	var ge *lab.GuestError
	if !errors.As(err, &ge) || !ge.BeforeSteps || !strings.Contains(ge.Reason, "not ready after 200ms") {
		t.Fatalf("Run = %v, want a GuestError for a guest not ready\n%s", err, console)
	}
	if len(out.BootFailures) != 2 || out.BootFailures[0] != ge.Reason {
		t.Fatalf("BootFailures = %q, want the same reason twice", out.BootFailures)
	}
	if strings.Contains(console.String(), "ktls-lab: step ") {
		t.Fatalf("a step started:\n%s", console)
	}
}
