//go:build unix

package ktls

import (
	"net"
	"syscall"
)

// notTLSDiscardLimit bounds what discardQueued throws away.
const notTLSDiscardLimit = 64 << 10

// discardQueued reads and drops what the peer has already sent, without
// waiting for more, after a first record that is not TLS. crypto/tls,
// reading a socket itself, takes in with the header whatever else has
// come (the rest of a plain HTTP request, in one read of 512 bytes or
// more); the record reader under it gave it only the header. Bytes left unread when the
// caller closes after its plaintext answer would make the close a reset,
// and the client could lose the answer: curl says "Connection reset by
// peer".
func discardQueued(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var buf [4096]byte
	rc.Read(func(fd uintptr) bool {
		// The socket is non-blocking: a read of an empty queue returns
		// EAGAIN at once, and returning true never waits for more.
		for total := 0; total < notTLSDiscardLimit; {
			n, err := syscall.Read(int(fd), buf[:])
			if n <= 0 || err != nil {
				break
			}
			total += n
		}
		return true
	})
}
