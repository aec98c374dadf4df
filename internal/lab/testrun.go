package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/job"
)

// A TestPackage is a Go package whose test binary runs in the guest.
type TestPackage struct {
	ImportPath string
	Dir        string
	Binary     string
}

// BuildTests compiles the test binaries of the packages matching patterns
// into dir, skipping packages without tests.
func BuildTests(dir string, patterns []string, buildFlags []string) ([]TestPackage, error) {
	args := append([]string{"list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}\t{{.Dir}}{{end}}"}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("lab: go list: %w", exitDetail(err))
	}
	var pkgs []TestPackage
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ip, d, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		bin := filepath.Join(dir, strings.ReplaceAll(ip, "/", "_")+".test")
		pkgs = append(pkgs, TestPackage{ImportPath: ip, Dir: d, Binary: bin})
	}
	// Two builds at a time: the compiler is parallel already.
	sem := make(chan struct{}, 2)
	errs := make([]error, len(pkgs))
	var wg sync.WaitGroup
	for i, p := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := append([]string{"test", "-c", "-o", p.Binary}, buildFlags...)
			cmd := exec.Command("go", append(args, p.ImportPath)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("lab: building tests of %s: %v\n%s", p.ImportPath, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pkgs, nil
}

func exitDetail(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// TestCounts tallies go test -v results, subtests included.
type TestCounts struct {
	Passed, Failed, Skipped int
	FailedNames             []string
}

func (c TestCounts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.Passed, c.Failed, c.Skipped)
}

var resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// Count adds one line of go test -v output.
func (c *TestCounts) Count(line string) {
	m := resultLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	switch m[1] {
	case "PASS":
		c.Passed++
	case "FAIL":
		c.Failed++
		c.FailedNames = append(c.FailedNames, m[2])
	case "SKIP":
		c.Skipped++
	}
}

// A TestReport is one kernel's run of the test binaries.
type TestReport struct {
	Kernel  Kernel
	Outcome *Outcome
	Counts  TestCounts
	// Err is set when the guest did not finish, or a test binary failed
	// (a panic or a build-time init failure can fail a binary with no
	// "--- FAIL" line).
	Err error
}

// Detail is the report without the failure: release, counts, timings.
func (r *TestReport) Detail() string {
	release := "?"
	if r.Outcome != nil && r.Outcome.Result.Release != "" {
		release = r.Outcome.Result.Release
	}
	s := fmt.Sprintf("%-24s %s", release, r.Counts)
	if o := r.Outcome; o != nil {
		s += fmt.Sprintf("; %s, boot %.1fs, teardown %.1fs, total %.1fs", accelName(o.Accel), o.Boot.Seconds(), o.Teardown.Seconds(), o.Wall.Seconds())
		for _, f := range o.BootFailures {
			s += "; booted again after: " + f
		}
	}
	return s
}

func accelName(a Accel) string {
	if a == AccelKVM {
		return "KVM"
	}
	return "TCG (emulated)"
}

// Summary is the one-line report printed per kernel.
func (r *TestReport) Summary() string {
	s := fmt.Sprintf("lab kernel %-4s %s", r.Kernel.Name, r.Detail())
	if r.Err != nil {
		s += "; FAIL: " + r.Err.Error()
	}
	return s
}

// RunTests runs the test binaries of pkgs in one boot of kernel k.
func (r *Runner) RunTests(ctx context.Context, k Kernel, pkgs []TestPackage, testArgs []string) *TestReport {
	rep := &TestReport{Kernel: k}
	j := &job.Job{Env: guestEnv()}
	seenDirs := map[string]bool{}
	tmp := filepath.Clean(os.TempDir()) + "/"
	for _, p := range pkgs {
		// As go test does, bound each binary: a hang then ends with the
		// goroutines' stacks, before the guest's own timeout. Emulated
		// crypto makes the biggest transfers take minutes.
		argv := append([]string{p.Binary, "-test.v", "-test.timeout=30m"}, testArgs...)
		j.Steps = append(j.Steps, job.Step{Name: p.ImportPath, Argv: argv, Dir: p.Dir})
		// The guest has its own /tmp: what the steps need from the host's
		// (the binaries, and the packages of a checkout there) is bound
		// back in.
		for _, d := range []string{filepath.Dir(p.Binary), p.Dir} {
			if strings.HasPrefix(d, tmp) && !seenDirs[d] {
				seenDirs[d] = true
				j.Binds = append(j.Binds, d)
			}
		}
	}
	var mu sync.Mutex
	prev := r.OnLine
	r.OnLine = func(line string) {
		mu.Lock()
		rep.Counts.Count(line)
		mu.Unlock()
		if prev != nil {
			prev(line)
		}
	}
	defer func() { r.OnLine = prev }()

	out, err := r.Run(ctx, k, j)
	rep.Outcome = out
	if err != nil {
		rep.Err = err
		return rep
	}
	var failed []string
	for _, s := range out.Result.Steps {
		switch {
		case s.ExitCode > 0:
			failed = append(failed, fmt.Sprintf("%s (exit %d)", s.Name, s.ExitCode))
		case s.ExitCode < 0:
			failed = append(failed, fmt.Sprintf("%s (%s)", s.Name, s.Error))
		}
	}
	if len(failed) > 0 {
		rep.Err = fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	} else if len(out.Result.Steps) != len(j.Steps) {
		rep.Err = fmt.Errorf("ran %d of %d test binaries", len(out.Result.Steps), len(j.Steps))
	}
	return rep
}

// guestEnv is the environment programs get in the guest: the host's, less
// what only makes sense on the host.
func guestEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TMPDIR", "GOTMPDIR", "DISPLAY", "SSH_AUTH_SOCK", job.EnvLab:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// WithDeadline is a helper for callers that take a duration flag.
func WithDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
