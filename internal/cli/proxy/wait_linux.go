package proxy

import (
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waitData waits, until deadline, for the backend to have bytes to read
// or to reach its end, and returns how many bytes are ready (0 at the
// end). exact says the count is the kernel's: a read of that many won't
// wait.
func waitData(c *net.TCPConn, deadline time.Time) (ready int, exact bool, err error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return 0, false, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	var serr error
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		var n int
		for {
			n, _, serr = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if serr != unix.EINTR {
				break
			}
		}
		if serr == unix.EAGAIN {
			return false // the poller waits, up to the read deadline
		}
		if serr == nil && n > 0 {
			// SIOCINQ: the bytes in the receive queue, all readable now.
			ready, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			ready = max(ready, 1)
		}
		return true
	})
	if err != nil {
		return 0, false, err
	}
	if serr != nil {
		return 0, false, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("recvfrom", serr)}
	}
	return ready, true, nil
}
