package ktls

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// A socket is the connection a Conn was made on, as its record layer uses
// it once the kernel holds a key: a descriptor for the syscalls of the
// kernel data path, and the addresses its errors carry. The calls that
// need golang.org/x/sys/unix are in socket_linux.go; the rest go through
// internal/kernel, which has its own stubs elsewhere.
type socket struct{ conn net.Conn }

// rawConn returns the socket's descriptor; the handoff checked that the
// connection has one.
func (s socket) rawConn() syscall.RawConn {
	rc, _ := s.conn.(syscall.Conn).SyscallConn()
	return rc
}

// opError wraps err as net does for a Read or Write on the socket.
func (s socket) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		// The poller's errors come as "raw-read" and "raw-write".
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}

// install attaches the ULP if asked and installs one direction's key.
func (s socket) install(dir kernel.Direction, info *kernel.CryptoInfo, attach bool) error {
	var serr error
	err := s.rawConn().Control(func(fd uintptr) {
		if attach {
			if serr = kernel.AttachULP(int(fd)); serr != nil {
				return
			}
		}
		serr = kernel.SetCryptoInfo(int(fd), dir, info)
	})
	if err != nil {
		return fmt.Errorf("ktls: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("ktls: installing the %v key: %w", dir, serr)
	}
	return nil
}

// setOption sets an optional socket option if the kernel has it. A kernel
// without it is no reason to fail: the connection works without.
func (s socket) setOption(f *kernel.Feature, set func(fd int) error) error {
	if err := f.Check(); err != nil {
		return err
	}
	var serr error
	err := s.rawConn().Control(func(fd uintptr) { serr = set(int(fd)) })
	if err == nil {
		err = serr
	}
	return err
}

// recSeq returns the sequence number of the next record the kernel sends
// or expects in direction dir.
func (s socket) recSeq(dir kernel.Direction) (uint64, error) {
	var seq uint64
	var serr error
	if err := s.rawConn().Control(func(fd uintptr) { seq, serr = kernel.RecSeq(int(fd), dir) }); err != nil {
		return 0, err
	}
	return seq, serr
}

// recvRecord reads plaintext of one content type into buf, or, where lend
// is not nil, into the buffer it lends: taken only once the socket has
// data, and given back each time it has none, so that a reader waiting
// for data holds no buffer. It waits in the poller for data, so deadlines
// and Close work as for any net.Conn, and returns the buffer it read into.
// oob holds kernel.OOBSize bytes for the record type.
func (s socket) recvRecord(buf []byte, lend *recordBuf, oob []byte) (n int, typ uint8, used []byte, err error) {
	var serr error
	err = s.rawConn().Read(func(fd uintptr) bool {
		// buf itself is never assigned: a variable the closure assigns
		// moves to the heap, an allocation a call.
		b := buf
		if lend != nil {
			b = lend.take()
		}
		for {
			n, typ, serr = kernel.RecvRecord(int(fd), b, oob, 0)
			switch {
			case errors.Is(serr, syscall.EINTR):
				continue
			case errors.Is(serr, syscall.EAGAIN):
				if lend != nil {
					lend.give()
				}
				return false
			}
			return true
		}
	})
	if err != nil {
		return 0, 0, nil, s.opError("read", err)
	}
	used = buf
	if lend != nil {
		used = lend.b[:lend.size] // what the last attempt took, and kept
	}
	return n, typ, used, serr
}
