package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/lab"
	"github.com/ktlsgo/ktls/internal/lab/job"
)

type machineFlags struct {
	shares  []string
	kernel  string
	timeout time.Duration
	memory  int
	cpus    int
	accel   string
	quiet   bool
}

func (m *machineFlags) register(cmd *cobra.Command, defaultKernel string, timeout time.Duration) {
	cmd.Flags().StringVarP(&m.kernel, "kernel", "k", defaultKernel, `kernels: "6.1", "6.12", "7", a comma-separated list, or "all"`)
	cmd.Flags().DurationVar(&m.timeout, "timeout", timeout, "kill a guest that runs longer than this")
	cmd.Flags().IntVar(&m.memory, "memory", lab.DefaultMachine.MemoryMiB, "guest memory in MiB")
	cmd.Flags().IntVar(&m.cpus, "cpus", lab.DefaultMachine.CPUs, "guest CPUs")
	accel := os.Getenv(lab.EnvAccel)
	if accel == "" {
		accel = string(lab.AccelAuto)
	}
	cmd.Flags().StringVar(&m.accel, "accel", accel, `how QEMU runs the guest: "kvm" (native speed), "tcg" (emulated, runs anywhere), or "auto": KVM where a probe boot shows it works, else TCG (default from $`+lab.EnvAccel+`)`)
	cmd.Flags().BoolVarP(&m.quiet, "quiet", "q", false, "don't report the lab's own progress")
}

// withRunner makes a command's RunE that hands fn the kernels --kernel
// names and a runner set up as the flags say.
func (m *machineFlags) withRunner(fn func(cmd *cobra.Command, args []string, ks []lab.Kernel, r *lab.Runner) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ks, r, err := m.runner()
		if err != nil {
			return err
		}
		return fn(cmd, args, ks, r)
	}
}

// runner returns the kernels --kernel names and a runner set up as the
// flags say.
func (m *machineFlags) runner() ([]lab.Kernel, *lab.Runner, error) {
	ks, err := lab.ParseKernels(m.kernel)
	if err != nil {
		return nil, nil, err
	}
	accel, err := lab.ParseAccel(m.accel)
	if err != nil {
		return nil, nil, fmt.Errorf("--accel: %w", err)
	}
	cache, err := lab.DefaultCache()
	if err != nil {
		return nil, nil, err
	}
	r := &lab.Runner{
		Cache:   cache,
		Accel:   accel,
		Machine: lab.Machine{MemoryMiB: m.memory, CPUs: m.cpus},
		Timeout: m.timeout,
		Console: os.Stdout,
		Logf:    func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	}
	if m.quiet {
		r.Logf = func(string, ...any) {}
	}
	return ks, r, nil
}

func newRunCmd() *cobra.Command {
	var m machineFlags
	cmd := &cobra.Command{
		Use:   "run [flags] [--] PROGRAM [ARG...]",
		Short: "Run a program in a guest kernel (also works as go test -exec)",
		Long: `Run boots one kernel and runs PROGRAM in it, chrooted into the host's root,
as root, in the current directory, with the current environment plus
KTLS_LAB=<kernel>. Its exit status is the program's.

Programs under /tmp (go test builds its binaries there) stay reachable even
though the guest has its own /tmp, so this works as go test's -exec:

  go test -exec 'go run github.com/ktlsgo/ktls/cmd/ktls-lab run -k 6.1' ./...`,
		Args: cobra.MinimumNArgs(1),
		RunE: m.withRunner(func(cmd *cobra.Command, args []string, ks []lab.Kernel, r *lab.Runner) error {
			if len(ks) != 1 {
				return fmt.Errorf("run takes one kernel, not %q", m.kernel)
			}
			wd, err := os.Getwd()
			if err != nil {
				return err
			}
			var shares []string
			for _, s := range m.shares {
				abs, err := filepath.Abs(s)
				if err != nil {
					return err
				}
				shares = append(shares, abs)
			}
			j := &job.Job{
				Env:    os.Environ(),
				Steps:  []job.Step{{Name: filepath.Base(args[0]), Argv: args, Dir: wd}},
				Binds:  tmpBinds(append([]string{wd}, args...)),
				Shares: shares,
			}
			out, err := r.Run(cmd.Context(), ks[0], j)
			if err != nil {
				return err
			}
			if code := out.Result.Steps[0].ExitCode; code != 0 {
				if code < 0 {
					return fmt.Errorf("%s: %s", args[0], out.Result.Steps[0].Error)
				}
				return exitCode(code)
			}
			return nil
		}),
	}
	cmd.Flags().SetInterspersed(false)
	m.register(cmd, "7", 20*time.Minute)
	cmd.Flags().StringArrayVar(&m.shares, "share", nil, "a host directory the guest can write, at the same path (repeatable)")
	return cmd
}

// tmpBinds returns the directories under the host's temporary directory
// that paths need: the guest mounts its own /tmp over the host's.
func tmpBinds(paths []string) []string {
	tmp := filepath.Clean(os.TempDir())
	var binds []string
	seen := map[string]bool{}
	for _, p := range paths {
		if !filepath.IsAbs(p) || !strings.HasPrefix(p, tmp+"/") {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		d := p
		if !st.IsDir() {
			d = filepath.Dir(p)
		}
		if !seen[d] {
			seen[d] = true
			binds = append(binds, d)
		}
	}
	return binds
}
