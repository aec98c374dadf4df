package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/cli/proxy"
)

func newProxyCmd() *cobra.Command {
	var (
		cfg   proxy.Config
		flags serverFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy --backend HOST:PORT",
		Short: "Terminate TLS on kernel TLS and splice plaintext to a TCP backend",
		Long: `Proxy accepts TLS connections, hands their record layer to the kernel, and
connects each to the backend over plain TCP. Bytes move both ways with
splice: decrypted by the kernel, straight into the backend's socket, and from
it straight into the kernel to be encrypted. A half-close passes through
(close_notify to FIN, and FIN to close_notify), connections idle both ways
for --idle are closed, and so are both sides of a connection when either
peer takes nothing it is sent for --write-timeout (a client that stops
reading). Each connection is logged.

The first line it prints is "proxying tls://ADDR to BACKEND (kernel TLS: ...)".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, log, err := flags.prepare(cmd, "idle", "write-timeout", "handshake-timeout")
			if err != nil {
				return err
			}
			cfg.Options, cfg.Stdout, cfg.Log = opts, cmd.OutOrStdout(), log
			return proxy.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "address to listen on")
	f.StringVar(&cfg.Backend, "backend", "", "plaintext TCP backend, host:port (required)")
	f.DurationVar(&cfg.IdleTimeout, "idle", 5*time.Minute, "close connections idle both ways for this long")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", time.Minute, "close a connection when a write to either peer makes no progress for this long")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", 10*time.Second, "bound on the TLS handshake")
	flags.register(cmd, &cfg.CertFile, &cfg.KeyFile)
	return cmd
}
