//go:build !unix

package ktls

import "net"

// discardQueued is a no-op where the socket can't be read without
// waiting.
func discardQueued(net.Conn) {}
