// Command ktls-lab runs programs and tests on real Linux kernels in QEMU.
//
// The host running ktls's tests usually has no kernel TLS. ktls-lab
// downloads Debian kernels (6.1, 6.12 and the newest 7.x), boots them under
// QEMU's TCG with the host's root filesystem mounted read-only over 9p, and
// runs the requested program chrooted into it, so the guest sees the same
// binaries, Go toolchain, curl, openssl and nginx as the host.
//
//	ktls-lab run --kernel 7 -- sh -c 'cat /proc/net/tls_stat'
//	go test -exec 'ktls-lab run --kernel 6.1' ./...
//	ktls-lab test --kernel all ./...
//	ktls-lab suite
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	var exit exitCode
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case err != nil:
		fmt.Fprintln(os.Stderr, "ktls-lab:", err)
		os.Exit(125)
	}
}

// exitCode is returned by commands that pass on a program's exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ktls-lab",
		Short: "Run programs and tests on real Linux kernels in QEMU",
		Long: `ktls-lab boots Debian kernels under QEMU (TCG) with the host's root over 9p,
and runs programs and Go tests in them. Kernels: 6.1 (Debian 12), 6.12
(Debian 13), 7 (newest in trixie-backports). Kernels and qemu are fetched
and installed on first use; the cache is $KTLS_LAB_CACHE or ~/.cache/ktls-lab.

Exit status: the program's, or 125 when the lab itself failed (a guest that
hung, panicked or could not start its program).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newTestCmd(), newFetchCmd(), newSuiteCmd())
	return root
}
