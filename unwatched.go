package ktls

import (
	"crypto/tls"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// offloadRuledOut reports whether the handoff is sure to leave both
// directions to crypto/tls, from what is known before the handshake: TX
// is disabled (RX needs it), or this process has already had the
// kernel's answer that it has no tls ULP. The probe is not run here, and
// an inconclusive one is no answer: until the kernel has said no, every
// connection is watched, and its handoff probes.
func offloadRuledOut(opts *Options) bool {
	if !opts.tx() {
		return true
	}
	known, err := kernel.FeatureULP.Known()
	return known && err != nil
}

// handshakeConfig returns the config crypto/tls runs the handshake on:
// from watched (clientConfig or serverConfig) where the kernel may take
// the connection. Where offloadRuledOut, the connection needs none of
// the handoff's bookkeeping: the key log capture, which needs a clone of
// the config per connection, and the record-boundary reader and the copy
// of what crypto/tls writes, which prove the sequence numbers. Together
// they cost a handshake 5 to 7% of crypto/tls's CPU on a host without
// kernel TLS (BenchmarkHandshakeInterleaved; the largest part is the
// reader's two read(2) calls per record, where crypto/tls reads about
// once per flight). So such a connection is crypto/tls's from the start:
// the handshake runs on the user's config, over the socket as crypto/tls
// reads and writes it, and the handoff only says why the kernel took
// nothing.
func (c *Conn) handshakeConfig(watched func(*tls.Config, *handshakeConn) *tls.Config) *tls.Config {
	if !offloadRuledOut(&c.opts) {
		return watched(c.config, c.hc)
	}
	c.hc.ReadPassthrough()
	c.hc.WritePassthrough()
	if c.config == nil {
		return &tls.Config{}
	}
	return c.config
}
