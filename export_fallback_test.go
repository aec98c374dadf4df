package ktls

// KeyLogCaptured reports whether c's handshake is to run on a config of
// its own, whose key log ktls reads: the handoff's bookkeeping, which a
// connection the kernel can't take goes without.
func (c *Conn) KeyLogCaptured() bool { return c.hc != nil && c.hc.secrets != nil }
