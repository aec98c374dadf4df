package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls/internal/serve"
)

func init() { subcommands = append(subcommands, newServeCmd()) }

func newServeCmd() *cobra.Command {
	var (
		cfg  serve.Config
		off  offloadFlags
		json bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a directory over HTTPS, with kernel TLS and sendfile",
		Long: `Serve serves a directory over HTTPS (HTTP/1.1 and HTTP/2, chosen by ALPN), as
http.FileServer does: files, directory listings, byte ranges, conditional
requests, content types. HTTP/1.1 bodies go out with sendfile through the
kernel's TLS layer. Without --cert and --key it makes a self-signed
certificate and prints its SHA-256 fingerprint.

The first line it prints is "serving https://ADDR (kernel TLS: ...)", with
what the kernel will do, or why it won't. It logs each request to stderr and
shuts down gracefully on SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := off.options()
			if err != nil {
				return err
			}
			cfg.Options = opts
			cfg.Stdout = cmd.OutOrStdout()
			cfg.Log = logger(cmd, json)
			return serve.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8443", "address to listen on")
	f.StringVar(&cfg.Dir, "dir", ".", "directory to serve")
	f.StringVar(&cfg.CertFile, "cert", "", "certificate chain, PEM (default: self-signed)")
	f.StringVar(&cfg.KeyFile, "key", "", "private key, PEM")
	f.StringVar(&cfg.Metrics, "metrics", "", "serve Prometheus metrics on this address (/metrics)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	f.BoolVar(&json, "log-json", false, "log as JSON")
	off.register(cmd)
	return cmd
}

func logger(cmd *cobra.Command, json bool) *slog.Logger {
	if json {
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
}
