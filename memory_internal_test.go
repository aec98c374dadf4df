package ktls

import "crypto/tls"

// What an idle connection holds, for memory_test.go.

// RecordBufHeld reports whether c holds a record buffer, and how many bytes
// of plaintext wait to be read.
func (c *Conn) RecordBufHeld() (held bool, pending int) {
	c.rx.Lock()
	defer c.rx.Unlock()
	return c.rx.rxKernel != nil && c.rx.buf.b != nil, len(c.rx.pending)
}

// CryptoTLS returns crypto/tls's Conn under c, or nil once c let go of it.
func (c *Conn) CryptoTLS() *tls.Conn { return c.tc.Load() }
