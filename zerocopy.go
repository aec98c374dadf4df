package ktls

import (
	"io"
)

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
	if err := c.beginWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	if err := c.Handshake(); err != nil {
		return 0, err
	}
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
	c.in.Lock()
	if !c.kernelRX.Load() {
		c.in.Unlock()
		return c.copyRead(w)
	}
	defer c.unlockIn()
	var n int64
	if len(c.in.pending) > 0 {
		m, err := w.Write(c.in.pending)
		n += int64(m)
		c.in.pending = c.in.pending[m:]
		if err != nil {
			return n, err
		}
	}
	if c.in.err != nil {
		if c.in.err == io.EOF {
			return n, nil
		}
		return n, c.in.err
	}
	m, err := c.writeToKernel(w)
	return n + m, err
}

// copyRead is WriteTo while crypto/tls reads: io.Copy, except that what
// w doesn't take is kept for the next Read, where io.Copy would drop it.
func (c *Conn) copyRead(w io.Writer) (int64, error) {
	return copyKeeping(w, make([]byte, 32<<10), c.Read, func(rest []byte) {
		c.in.Lock()
		defer c.unlockIn()
		c.keepPendingLocked(rest)
	})
}

// copyKeeping copies what read returns to w, in buf's size, until the
// stream ends. What w doesn't take of a chunk goes to keep, so that no
// byte read is lost.
func copyKeeping(w io.Writer, buf []byte, read func([]byte) (int, error), keep func(rest []byte)) (int64, error) {
	var written int64
	for {
		n, err := read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				keep(buf[m:n:n])
				return written, werr
			}
		}
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// keepPendingLocked puts rest back for the next Read, before what Read
// keeps itself, which came after it. c.in is locked.
func (c *Conn) keepPendingLocked(rest []byte) {
	c.in.pending = append(rest, c.in.pending...)
}

// writerOnly hides ReadFrom, so io.Copy doesn't come back to it.
type writerOnly struct{ io.Writer }
