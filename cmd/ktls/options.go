package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ktlsgo/ktls"
)

// offloadFlags are the ktls.Options every serving command takes.
type offloadFlags struct {
	tx, rx   string
	zerocopy bool
}

func (o *offloadFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.tx, "tx", "auto", "kernel TLS for sending: auto, on or off")
	f.StringVar(&o.rx, "rx", "auto", "kernel TLS for receiving: auto, on or off")
	f.BoolVar(&o.zerocopy, "zerocopy-sendfile", false, "TLS_TX_ZEROCOPY_RO: sendfile straight from the page cache (files must not change while sent)")
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
	return &ktls.Options{TX: tx, RX: rx, ZerocopySendfile: o.zerocopy}, nil
}

func parseMode(flag, s string) (ktls.Mode, error) {
	switch s {
	case "auto":
		return ktls.Auto, nil
	case "on":
		return ktls.Enabled, nil
	case "off":
		return ktls.Disabled, nil
	}
	return 0, fmt.Errorf("%s: %q is not auto, on or off", flag, s)
}
