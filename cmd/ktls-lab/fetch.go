package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/lab"
)

func newFetchCmd() *cobra.Command {
	var m machineFlags
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download the kernels and install qemu, without booting",
		RunE: m.withRunner(func(cmd *cobra.Command, args []string, ks []lab.Kernel, r *lab.Runner) error {
			if _, err := lab.EnsureQEMU(r.Logf); err != nil {
				return err
			}
			for _, k := range ks {
				fk, err := r.Cache.Fetch(k, r.Logf)
				if err != nil {
					return err
				}
				fmt.Printf("%-5s %s %s (%s)\n", k.Name, fk.Package, fk.Version, fk.Dir)
			}
			return nil
		}),
	}
	m.register(cmd, "all", 45*time.Minute)
	return cmd
}
