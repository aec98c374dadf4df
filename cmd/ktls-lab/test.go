package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/lab"
)

type testFlags struct {
	machineFlags
	run       string
	bench     string
	benchtime string
	short     bool
	count     string
}

func newTestCmd() *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test [flags] [PACKAGE...]",
		Short: "Build Go test binaries and run them in one boot per kernel",
		Long: `Test compiles the test binaries of the packages (default ./...) on the host,
then boots each kernel once and runs them all in it, printing a summary line
per kernel. It fails if any test fails or any guest does not finish.`,
		RunE: f.withRunner(func(cmd *cobra.Command, args []string, ks []lab.Kernel, r *lab.Runner) error {
			if len(args) == 0 {
				args = []string{"./..."}
			}
			reports, err := runLabTests(cmd, r, ks, args, f.testArgs())
			if err != nil {
				return err
			}
			fmt.Println()
			failed := false
			for _, rep := range reports {
				fmt.Println(rep.Summary())
				failed = failed || rep.Err != nil || rep.Counts.Failed > 0
			}
			if failed {
				return exitCode(1)
			}
			return nil
		}),
	}
	f.register(cmd, "all", 45*time.Minute)
	cmd.Flags().StringVar(&f.run, "run", "", "run only tests matching this regular expression")
	cmd.Flags().BoolVar(&f.short, "short", false, "pass -test.short")
	cmd.Flags().StringVar(&f.count, "count", "", "pass -test.count")
	cmd.Flags().StringVar(&f.bench, "bench", "", "run benchmarks matching this regular expression (pass -test.bench)")
	cmd.Flags().StringVar(&f.benchtime, "benchtime", "", "pass -test.benchtime")
	return cmd
}

func (f *testFlags) testArgs() []string {
	var a []string
	if f.run != "" {
		a = append(a, "-test.run="+f.run)
	}
	if f.short {
		a = append(a, "-test.short")
	}
	if f.count != "" {
		a = append(a, "-test.count="+f.count)
	}
	if f.bench != "" {
		a = append(a, "-test.bench="+f.bench, "-test.benchmem")
	}
	if f.benchtime != "" {
		a = append(a, "-test.benchtime="+f.benchtime)
	}
	return a
}

func runLabTests(cmd *cobra.Command, r *lab.Runner, ks []lab.Kernel, patterns, testArgs []string) ([]*lab.TestReport, error) {
	dir, err := os.MkdirTemp("", "ktls-lab-tests-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	r.Logf("lab: building test binaries for %s", strings.Join(patterns, " "))
	pkgs, err := lab.BuildTests(dir, patterns, nil)
	if err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, errors.New("no packages with tests")
	}
	var reports []*lab.TestReport
	for _, k := range ks {
		r.Logf("lab: kernel %s: running %d test binaries", k.Name, len(pkgs))
		rep := r.RunTests(cmd.Context(), k, pkgs, testArgs)
		r.Logf("%s", rep.Summary())
		reports = append(reports, rep)
		if cmd.Context().Err() != nil {
			break
		}
	}
	return reports, nil
}
