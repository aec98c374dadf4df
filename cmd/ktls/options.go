package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/serve"
	"github.com/ktlsgo/ktls/internal/kernel"
)

// serverFlags are the flags every serving command (serve, proxy) takes:
// the certificate, the log format and the offload options.
type serverFlags struct {
	offloadFlags
	json bool
}

// register adds the flags, with the certificate's paths written to
// certFile and keyFile.
func (s *serverFlags) register(cmd *cobra.Command, certFile, keyFile *string) {
	f := cmd.Flags()
	f.StringVar(certFile, "cert", "", "certificate chain, PEM (default: self-signed)")
	f.StringVar(keyFile, "key", "", "private key, PEM")
	f.BoolVar(&s.json, "log-json", false, "log as JSON")
	s.offloadFlags.register(cmd)
}

// prepare checks that each named duration flag is positive and returns
// the options and the logger the flags ask for.
func (s *serverFlags) prepare(cmd *cobra.Command, durations ...string) (*ktls.Options, *slog.Logger, error) {
	if err := positiveDurations(cmd, durations...); err != nil {
		return nil, nil, err
	}
	opts, err := s.options()
	if err != nil {
		return nil, nil, err
	}
	var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
	if s.json {
		h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
	}
	return opts, slog.New(h), nil
}

// offloadFlags are the ktls.Options every serving command takes.
type offloadFlags struct {
	tx, rx   string
	zerocopy bool
}

func (o *offloadFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.tx, "tx", "auto", "kernel TLS for sending: auto (when the kernel can), on (required: a connection the kernel doesn't take fails) or off")
	f.StringVar(&o.rx, "rx", "auto", "kernel TLS for receiving: auto, on (required) or off")
	f.BoolVar(&o.zerocopy, "zerocopy-sendfile", false, "TLS_TX_ZEROCOPY_RO: with a NIC that encrypts, sendfile without a copy (files must not change while sent); software kernel TLS ignores it")
}

func (o *offloadFlags) options() (*ktls.Options, error) {
	tx, err := parseMode("--tx", o.tx)
	if err != nil {
		return nil, err
	}
	rx, err := parseMode("--rx", o.rx)
	if err != nil {
		return nil, err
	}
	if rx == ktls.Required && tx == ktls.Disabled {
		return nil, fmt.Errorf("--rx on needs --tx on or auto: RX offload needs TX offload")
	}
	// "on" means required: where this kernel can't offload at all, say
	// so now, not on each connection.
	for _, d := range []struct {
		flag string
		mode ktls.Mode
		dir  kernel.Direction
	}{{"--tx", tx, kernel.TX}, {"--rx", rx, kernel.RX}} {
		if d.mode != ktls.Required {
			continue
		}
		if err := serve.CheckCapability(d.dir); err != nil {
			return nil, fmt.Errorf("%s on: kernel TLS is required, and this kernel can't offload: %w", d.flag, err)
		}
	}
	return &ktls.Options{TX: tx, RX: rx, ZerocopySendfile: o.zerocopy}, nil
}

func parseMode(flag, s string) (ktls.Mode, error) {
	switch s {
	case "auto":
		return ktls.Auto, nil
	case "on":
		return ktls.Required, nil
	case "off":
		return ktls.Disabled, nil
	}
	return 0, fmt.Errorf("%s: %q is not auto, on or off", flag, s)
}

// positiveDurations refuses a zero or negative value for each named
// duration flag: every one bounds what a client can hold, and none has a
// "never".
func positiveDurations(cmd *cobra.Command, names ...string) error {
	for _, name := range names {
		d, err := cmd.Flags().GetDuration(name)
		if err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("--%s: %v is not positive: each timeout bounds what a client can hold, and none can be turned off", name, d)
		}
	}
	return nil
}
