package ktls

import "io"

// ReadFrom copies from r until EOF, as io.Copy to the Conn does. Once the
// kernel encrypts, a *os.File goes out with sendfile(2) and a TCP or Unix
// socket or a pipe with splice(2), so the bytes never pass through user
// space; any other reader is read and written. With an *io.LimitedReader
// around one of those, the same holds for the limit. When the peer goes
// away mid-copy, ReadFrom fails with an error that wraps ECONNRESET or
// EPIPE; it never counts what the connection could not take as sent.
//
// Before the handoff, or on crypto/tls, it is an ordinary copy.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.beginDataWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	if !c.tx.kernel {
		return io.Copy(writerOnly{c}, r)
	}
	if err := c.tx.lockWrite(); err != nil {
		return 0, err
	}
	defer c.tx.Unlock()
	return c.tx.readFromKernel(r)
}

// WriteTo copies the plaintext the Conn reads to w until the peer's
// close_notify, as io.Copy from the Conn does, and returns nil then. Once
// the kernel decrypts, a TCP or Unix socket, a pipe, a file, or a *Conn
// whose kernel encrypts gets the data with splice(2), never passing
// through user space; a file splice can't write (opened with O_APPEND or
// O_DIRECT) is written from user space instead. An alert or a record
// that fails authentication ends the copy with its error, after
// everything before it was written.
//
// No byte read from the connection is lost when w fails: what w didn't
// take is kept, and the next Read or WriteTo returns it first. A *Conn
// that is closed during the copy makes it fail when the next data comes.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.rx.Lock()
	if !c.rx.kernel.Load() {
		c.rx.Unlock()
		return c.copyRead(w)
	}
	defer c.unlockRX()
	var n int64
	if len(c.rx.pending) > 0 {
		m, err := w.Write(c.rx.pending)
		n += int64(m)
		c.rx.pending = c.rx.pending[m:]
		if err != nil {
			return n, err
		}
	}
	if c.rx.err != nil {
		if c.rx.err == io.EOF {
			return n, nil
		}
		return n, c.rx.err
	}
	var relay *txHalf
	if d, ok := w.(*Conn); ok {
		var release func()
		if relay, release = d.lockRelay(); relay != nil {
			defer release()
		}
	}
	m, err := c.rx.writeToKernel(w, relay)
	return n + m, err
}

// lockRelay makes a relay from another Conn's WriteTo a write in flight
// on c, and gives it c's sending side, locked, for as long as it lasts:
// c's Close doesn't wait for it. It returns nil if c's kernel doesn't
// encrypt, or c can't be written; the relay then writes to c as any
// writer does.
func (c *Conn) lockRelay() (tx *txHalf, release func()) {
	if !c.handshakeDone.Load() || !c.tx.kernel {
		return nil, nil
	}
	if c.beginWrite() != nil {
		return nil, nil
	}
	if c.tx.lockWrite() != nil {
		c.endWrite()
		return nil, nil
	}
	return &c.tx, func() { c.tx.Unlock(); c.endWrite() }
}

// copyRead is WriteTo while crypto/tls reads: io.Copy, except that what
// w doesn't take is kept for the next Read, where io.Copy would drop it.
func (c *Conn) copyRead(w io.Writer) (int64, error) {
	return copyKeeping(w, make([]byte, 32<<10), c.Read, func(rest []byte) {
		c.rx.Lock()
		defer c.unlockRX()
		c.rx.keepPendingLocked(rest)
	})
}

// writerOnly hides ReadFrom, so io.Copy doesn't come back to it.
type writerOnly struct{ io.Writer }
