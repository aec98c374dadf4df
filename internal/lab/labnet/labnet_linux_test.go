package labnet_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/ktlsgo/ktls/internal/lab/labnet"
)

// Two hosts: a connection from b to a crosses the veth pair, so each end
// sees the other's address, and neither namespace can reach the host's
// loopback listeners.
func TestPair(t *testing.T) {
	a, b := labnet.Pair(t)
	s, c, err := labnet.Connect(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer c.Close()

	if got := addrOf(s.RemoteAddr()); got != b.Addr {
		t.Errorf("a sees the connection from %v, want b's %v", got, b.Addr)
	}
	if got := addrOf(c.LocalAddr()); got != b.Addr {
		t.Errorf("b's end has address %v, want %v", got, b.Addr)
	}
	msg := bytes.Repeat([]byte("across the veth pair "), 1000)
	go func() {
		c.Write(msg)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("read %d bytes, %v; want the %d sent", len(got), err, len(msg))
	}

	// The host's loopback is not b's: a listener here is out of reach.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if c, err := b.Dial("tcp", host.Addr().String()); err == nil {
		c.Close()
		t.Error("b reached a listener on the host's loopback")
	}
}

func addrOf(a net.Addr) netip.Addr {
	return a.(*net.TCPAddr).AddrPort().Addr().Unmap()
}
