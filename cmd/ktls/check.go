package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/cli/check"
)

func newCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Test what this kernel can offload, for real, and say why not",
		Long: `Check answers "why isn't it offloading here?". It tries everything ktls needs
from the running kernel on loopback sockets, with throwaway keys: the tls ULP
(which loads the module on demand), TLS 1.2 and 1.3 with each cipher in each
direction, TLS_TX_ZEROCOPY_RO, TLS_RX_EXPECT_NO_PAD and TLS 1.3 rekey. It
prints one line per item, with the kernel's reason for what fails, the
counters of /proc/net/tls_stat, and a verdict.

It exits 0 when kernel TLS is usable (the tls ULP, and at least one cipher
crypto/tls negotiates in both directions), 1 when it is not. --json prints
the same report as one JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := check.Collect()
			out := cmd.OutOrStdout()
			var err error
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			} else {
				err = r.WriteText(out)
			}
			if err != nil {
				return err
			}
			if !r.Usable {
				// The report has said why.
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
