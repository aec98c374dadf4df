// Command ktls runs TLS on the Linux kernel's TLS layer.
//
//	ktls serve                  HTTPS file server, sendfile through the kernel
//	ktls proxy                  TLS terminator, splicing plaintext to a backend
//	ktls check                  what this kernel can offload, tested for real
//	ktls stat                   the kernel's TLS counters and connections
//	ktls bench                  side-by-side numbers
//
// Each subcommand has --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() { os.Exit(run(os.Args[1:])) }

// exitError carries an exit status without an error message of its own:
// the command has said what it had to say.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(args []string) int {
	ctx, stop := interruptContext(os.Stderr, func() { os.Exit(1) })
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case errors.As(err, &exit):
		return int(exit)
	case err != nil:
		fmt.Fprintln(os.Stderr, "ktls:", err)
		return 1
	}
	return 0
}

// interruptContext returns a context that the first SIGINT or SIGTERM
// cancels, which lets a command stop gracefully (serve and proxy drain
// their connections). A second signal doesn't wait for that: it says so
// on w and calls exit, so a drain stuck on a peer that never finishes
// can't keep the process alive against its user.
func interruptContext(w io.Writer, exit func()) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		cancel()
		select {
		case s := <-sigs:
			fmt.Fprintf(w, "ktls: second %v: exiting now, without waiting for connections to finish\n", s)
			exit()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ktls",
		Short: "TLS on the Linux kernel's TLS layer, with Go's crypto/tls for the handshake",
		Long: `ktls runs the TLS handshake with Go's crypto/tls and hands the record layer to
the Linux kernel (CONFIG_TLS): files go out with sendfile, proxied bytes with
splice, and nothing is copied through user space. Where the kernel can't take a
connection, it stays on crypto/tls and says why.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("ktls {{.Version}}\n")
	// Each call makes its commands afresh, so flag values never carry
	// from one run to the next in a test that calls run twice.
	root.AddCommand(newServeCmd(), newProxyCmd(), newCheckCmd(), newStatCmd(),
		newBenchCmd(), newBenchServerCmd(), newVersionCmd())
	return root
}
