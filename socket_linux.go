package ktls

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// sendRecord sends one record of the given content type, waiting in the
// poller while the socket is full.
func (s socket) sendRecord(typ uint8, p []byte) (int, error) {
	return s.sendRecordMaybeWait(typ, p, true)
}

// trySendRecord is sendRecord that doesn't wait: on a full socket it
// fails at once, with an error that matches syscall.EAGAIN.
func (s socket) trySendRecord(typ uint8, p []byte) (int, error) {
	return s.sendRecordMaybeWait(typ, p, false)
}

func (s socket) sendRecordMaybeWait(typ uint8, p []byte, wait bool) (int, error) {
	var (
		n    int
		serr error
	)
	retried := false
	err := s.rawConn().Write(func(fd uintptr) bool {
		for {
			n, serr = kernel.SendRecord(int(fd), typ, p, 0)
			switch {
			case errors.Is(serr, unix.EINTR):
				continue
			case errors.Is(serr, unix.EBADMSG) && !retried:
				// When a received record fails authentication, the kernel
				// leaves EBADMSG as the socket's pending error, and its
				// TLS layer refuses to send while one is pending. Reading
				// SO_ERROR takes it: recvmsg has told us already, and the
				// bad_record_mac alert must still go out.
				retried = true
				unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
				continue
			}
			return !wait || !errors.Is(serr, unix.EAGAIN)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return n, s.opError("write", err)
	}
	return n, nil
}

// write writes b with write(2), which the kernel frames and encrypts,
// waiting in the poller while the socket is full. It returns how much
// was written, and the error as net gives it.
func (s socket) write(b []byte) (int, error) {
	var (
		written int
		werr    error
	)
	err := s.rawConn().Write(func(fd uintptr) bool {
		for written < len(b) {
			n, err := unix.Write(int(fd), b[written:])
			if n > 0 {
				written += n
			}
			switch {
			case err == unix.EINTR:
			case err == unix.EAGAIN:
				return false
			case err != nil:
				werr = os.NewSyscallError("write", err)
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return written, s.opError("write", err)
	}
	return written, nil
}

// shutdownWrite shuts the socket for writing, so that a write blocked on
// it returns.
func (s socket) shutdownWrite() {
	s.rawConn().Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_WR) })
}
