package ktls

// SendAlert sends an alert record through the kernel, without the
// consequences a real one has here: tests use it to make a peer that sends
// alerts in mid-stream.
func (c *Conn) SendAlert(level, desc uint8) error {
	c.out.Lock()
	defer c.out.Unlock()
	_, err := c.sendRecord(21, []byte{level, desc})
	return err
}

// SetKeyUpdateLimit lowers the number of records after which the write key
// is updated, so tests can reach it.
func SetKeyUpdateLimit(o *Options, records uint64) { o.keyUpdateLimit = records }

// RXSecretHeld reports whether c still holds a receive traffic secret.
func (c *Conn) RXSecretHeld() bool {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	return c.rxSecret != nil
}
