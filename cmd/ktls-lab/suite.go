package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab"
)

// The suite is the project's whole test command, the one the README gives
// and .ci/run calls: static checks, the tests on this host with the race
// detector, then every package's tests on every lab kernel.
func newSuiteCmd() *cobra.Command {
	var (
		m         machineFlags
		noLab     bool
		noRace    bool
		fuzzExecs int
	)
	cmd := &cobra.Command{
		Use:   "suite",
		Short: "Run the whole test suite: gofmt, go vet, host tests with -race, lab tests on every kernel",
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := lab.ParseKernels(m.kernel)
			if err != nil {
				return err
			}
			r, err := m.runner()
			if err != nil {
				return err
			}
			s := &suiteRun{}
			s.step("gofmt", checkGofmt)
			s.step("go vet", func() (string, error) { return "", runTool("go", "vet", "./...") })
			if !noLab {
				// The lab's own tests boot guests from the host side, so
				// qemu and the kernels come before the host tests, which
				// then must not skip them.
				s.step("qemu", func() (string, error) { return lab.EnsureQEMU(r.Logf) })
				for _, k := range ks {
					s.step("fetch "+k.Name, func() (string, error) {
						fk, err := r.Cache.Fetch(k, r.Logf)
						if err != nil {
							return "", err
						}
						return fk.Package + " " + fk.Version, nil
					})
				}
				os.Setenv("KTLS_LAB_SELFTEST", "1")
			}
			s.step("host tests", func() (string, error) { return hostTests(s, !noRace) })
			if fuzzExecs > 0 {
				s.step("fuzz", func() (string, error) { return fuzzPass(fuzzExecs) })
			}
			if !noLab {
				pkgs, err := guestPackages()
				if err != nil {
					return err
				}
				reports, err := runLabTests(cmd, r, ks, pkgs, nil)
				if err != nil {
					s.record("lab", "", err)
				}
				for _, rep := range reports {
					s.passed += rep.Counts.Passed
					s.failed += rep.Counts.Failed
					s.skipped += rep.Counts.Skipped
					err := rep.Err
					if err == nil && rep.Counts.Failed > 0 {
						err = fmt.Errorf("failed: %s", strings.Join(rep.Counts.FailedNames, " "))
					}
					s.record("lab "+rep.Kernel.Name, rep.Detail(), err)
				}
			}
			return s.finish()
		},
	}
	m.register(cmd, "all", 45*time.Minute)
	cmd.Flags().BoolVar(&noLab, "no-lab", false, "skip the kernel lab")
	cmd.Flags().BoolVar(&noRace, "no-race", false, "run the host tests without the race detector")
	cmd.Flags().IntVar(&fuzzExecs, "fuzz-execs", 50000, "run each fuzz target for this many inputs (0: none)")
	return cmd
}

type suiteRun struct {
	lines                   []string
	failures                int
	passed, failed, skipped int
	start                   time.Time
}

func (s *suiteRun) step(name string, fn func() (string, error)) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	fmt.Fprintf(os.Stderr, "suite: %s\n", name)
	t := time.Now()
	detail, err := fn()
	if detail == "" {
		detail = fmt.Sprintf("%.1fs", time.Since(t).Seconds())
	}
	s.record(name, detail, err)
}

func (s *suiteRun) record(name, detail string, err error) {
	status := "ok  "
	if err != nil {
		status = "FAIL"
		s.failures++
		detail += ": " + err.Error()
	}
	s.lines = append(s.lines, fmt.Sprintf("%s %-12s %s", status, name, detail))
}

func (s *suiteRun) finish() error {
	fmt.Println()
	fmt.Println("Summary")
	for _, l := range s.lines {
		fmt.Println("  " + l)
	}
	fmt.Printf("  total time %.0fs\n", time.Since(s.start).Seconds())
	fmt.Printf("suite: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	if s.failures > 0 {
		return exitCode(1)
	}
	return nil
}

// fuzzPass runs every fuzz target in the module for a short while: the
// seed corpora in testdata/fuzz run with the tests anyway, and this looks
// a little further.
//
// The budget is a count of inputs, not a duration. With a duration, Go's
// fuzz coordinator can report its own deadline as "context deadline
// exceeded" and fail a target that found nothing (golang/go#75804, fixed
// in Go 1.27); it failed this suite in CI, and 1 run in 15 of
// FuzzParseLine for 5s here. A count has no deadline to race.
func fuzzPass(execs int) (string, error) {
	out, err := exec.Command("go", "test", "-list", "^Fuzz", "./...").Output()
	if err != nil {
		return "", fmt.Errorf("listing fuzz targets: %w", err)
	}
	// go test -list prints a package's names, then "ok PKG".
	var names []string
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], "Fuzz"):
			names = append(names, f[0])
		case len(f) >= 2 && f[0] == "ok":
			for _, name := range names {
				fmt.Fprintf(os.Stderr, "suite: fuzz %s %s, %d inputs\n", f[1], name, execs)
				if err := runTool("go", "test", "-run", "^$", "-fuzz", "^"+name+"$", "-fuzztime", fmt.Sprintf("%dx", execs), f[1]); err != nil {
					return "", fmt.Errorf("%s in %s: %w", name, f[1], err)
				}
				n++
			}
			names = nil
		}
	}
	return fmt.Sprintf("%d targets, %d inputs each", n, execs), nil
}

// guestPackages are the packages whose tests run in the lab: all but the
// lab's host side, whose tests boot guests themselves, and the architecture
// tests, which read the source tree with the go tool the guest lacks.
func guestPackages() ([]string, error) {
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/ktlsgo/ktls/internal/lab",
			"github.com/ktlsgo/ktls/internal/lab/archtest",
			"github.com/ktlsgo/ktls/cmd/ktls-lab":
			continue
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func runTool(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func checkGofmt() (string, error) {
	files, err := exec.Command("git", "ls-files", "*.go").Output()
	if err != nil {
		return "", fmt.Errorf("git ls-files: %w", err)
	}
	list := strings.Fields(string(files))
	if len(list) == 0 {
		return "", nil
	}
	out, err := exec.Command("gofmt", append([]string{"-l"}, list...)...).Output()
	if err != nil {
		return "", fmt.Errorf("gofmt: %w", err)
	}
	if bad := strings.Fields(string(out)); len(bad) > 0 {
		return "", fmt.Errorf("not gofmt'ed: %s", strings.Join(bad, " "))
	}
	return fmt.Sprintf("%d files", len(list)), nil
}

// hostTests runs go test -json ./... on this host, printing a line per
// package and the output of failed tests, and counts the results.
func hostTests(s *suiteRun, race bool) (string, error) {
	// -count=1: results cached from another machine state say nothing.
	args := []string{"test", "-json", "-count=1"}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var passed, failed, skipped int
	output := map[string]*bytes.Buffer{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Action, Package, Test, Output string
			Elapsed                       float64
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			fmt.Println(sc.Text())
			continue
		}
		key := ev.Package + " " + ev.Test
		switch ev.Action {
		case "output":
			if output[key] == nil {
				output[key] = &bytes.Buffer{}
			}
			output[key].WriteString(ev.Output)
		case "pass", "fail", "skip":
			if ev.Test == "" {
				status := strings.ToUpper(ev.Action)
				if ev.Action == "skip" {
					status = "none" // a package without tests
				}
				fmt.Printf("%-4s %s (%.1fs)\n", status, ev.Package, ev.Elapsed)
				if ev.Action == "fail" {
					io.Copy(os.Stdout, output[key])
				}
				break
			}
			switch ev.Action {
			case "pass":
				passed++
			case "fail":
				failed++
				io.Copy(os.Stdout, output[key])
			case "skip":
				skipped++
			}
			delete(output, key)
		}
	}
	err = cmd.Wait()
	s.passed += passed
	s.failed += failed
	s.skipped += skipped
	detail := fmt.Sprintf("%d passed, %d failed, %d skipped", passed, failed, skipped)
	if err := kernel.FeatureULP.Check(); err != nil {
		detail += " (kernel tests skip on this host: no TLS ULP)"
	}
	return detail, err
}
