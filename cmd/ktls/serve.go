package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/cli/serve"
)

func newServeCmd() *cobra.Command {
	var (
		cfg   serve.Config
		flags serverFlags
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a directory over HTTPS, with kernel TLS and sendfile",
		Long: `Serve serves a directory over HTTPS (HTTP/1.1 and HTTP/2, chosen by ALPN), as
http.FileServer does: files, directory listings, byte ranges, conditional
requests, content types. HTTP/1.1 bodies go out with sendfile through the
kernel's TLS layer. Without --cert and --key it makes a self-signed
certificate and prints its SHA-256 fingerprint.

Nothing outside --dir is served: paths resolve inside it (os.Root), so ".."
and symlinks that lead out are not found. Paths with an element that starts
with "." (.git, .env) are not found either, unless --dotfiles. A private key
inside --dir is not served, and a warning says to move it out.

A client is bounded in each phase: the TLS handshake and each request header
by --read-header-timeout, a request body by --read-timeout, a kept-alive
connection by --idle-timeout, and a client that takes nothing it is sent by
--write-timeout, which bounds each write's progress, not a whole response (a
large file still reaches a slow client that reads).

The first line it prints is "serving https://ADDR (kernel TLS: ...)", with
what --tx and --rx ask of the kernel; with --tx on or --rx on it refuses to
start where the kernel can't offload at all. What the kernel took of each
connection, or why not, is logged (an "offload" line for the first connection
of each kind, ktls= on every request) and counted in the metrics. It logs each
request to stderr and shuts down gracefully on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, log, err := flags.prepare(cmd, "shutdown-timeout", "write-timeout", "read-header-timeout", "read-timeout", "idle-timeout")
			if err != nil {
				return err
			}
			cfg.Options, cfg.Stdout, cfg.Log = opts, cmd.OutOrStdout(), log
			return serve.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8443", "address to listen on")
	f.StringVar(&cfg.Dir, "dir", ".", "directory to serve")
	f.StringVar(&cfg.Metrics, "metrics", "", "serve Prometheus metrics on this address (/metrics)")
	f.BoolVar(&cfg.Dotfiles, "dotfiles", false, `serve paths with an element that starts with "." (.git, .env)`)
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", time.Minute, "drop a client that takes nothing it is sent for this long")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "bound on the TLS handshake and on reading each request header")
	f.DurationVar(&cfg.ReadTimeout, "read-timeout", time.Minute, "bound on reading a request body")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 2*time.Minute, "close a kept-alive connection with no request for this long")
	flags.register(cmd, &cfg.CertFile, &cfg.KeyFile)
	return cmd
}
