// Package labnet gives a test two hosts on one machine: two network
// namespaces joined by a veth pair, so that a connection between them
// crosses a real (virtual) link with its own addresses, MTU and qdisc,
// not loopback. The lab's guests load the veth module for it.
//
// A socket belongs to the namespace it was created in, whichever thread
// uses it later: create listeners and dial inside Host.Do, then use the
// connections from any goroutine.
package labnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
)

// A Host is one end of a Pair: a network namespace with one veth
// interface, up, with an address, and loopback up.
type Host struct {
	Name string     // the veth interface's name
	Addr netip.Addr // its IPv4 address, in 10.99.N.0/24

	ns netns.NsHandle
}

// Do runs fn on an OS thread that is in h's namespace, and returns what
// fn returns. Sockets fn creates stay in the namespace.
func (h *Host) Do(fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(h.ns); err != nil {
			return fmt.Errorf("labnet: entering %s's namespace: %w", h.Name, err)
		}
		return fn()
	})
}

// onThread runs fn on a locked OS thread that fn may move into other
// network namespaces, and moves the thread back to the one it started in
// before handing it back to the scheduler.
//
// A thread that can't be moved back stays locked, so Go ends it with the
// goroutine; but it must not be left to that otherwise. Go can't end its
// main thread and parks it instead, and /proc/self/net is the main
// thread's namespace: a main thread parked in a test's namespace would
// make every later /proc/net read in the process describe that
// namespace.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("labnet: the thread's namespace: %w", err)
			return
		}
		defer origin.Close()
		err = fn()
		if rerr := netns.Set(origin); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("labnet: back to the original namespace: %w", rerr))
			return // still locked: the thread ends here
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Listen listens on h's address, in h's namespace.
func (h *Host) Listen(network string) (ln net.Listener, err error) {
	err = h.Do(func() error {
		ln, err = net.Listen(network, net.JoinHostPort(h.Addr.String(), "0"))
		return err
	})
	return ln, err
}

// Dial connects from h's namespace.
func (h *Host) Dial(network, addr string) (c net.Conn, err error) {
	err = h.Do(func() error {
		c, err = net.Dial(network, addr)
		return err
	})
	return c, err
}

// Connect opens a TCP connection from client to server across the pair,
// and returns both ends: server's accepted one, and client's.
func Connect(server, client *Host) (s, c net.Conn, err error) {
	ln, err := server.Listen("tcp")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	if c, err = client.Dial("tcp", ln.Addr().String()); err != nil {
		return nil, nil, err // closing the listener ends the Accept
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		return nil, nil, a.err
	}
	return a.c, c, nil
}

// ErrNotPermitted is returned by NewPair where the process can't create
// network namespaces (it needs CAP_SYS_ADMIN and CAP_NET_ADMIN).
var ErrNotPermitted = errors.New("labnet: creating network namespaces needs CAP_SYS_ADMIN and CAP_NET_ADMIN")

var pairs atomic.Uint32

// NewPair creates two namespaces joined by a veth pair: a at 10.99.N.1/24
// and b at 10.99.N.2/24. Close releases both; the kernel removes the
// veth pair with the last namespace.
func NewPair() (a, b *Host, err error) {
	n := pairs.Add(1) % 250
	a = &Host{Name: fmt.Sprintf("ktlsa%d", n), Addr: netip.AddrFrom4([4]byte{10, 99, byte(n), 1})}
	b = &Host{Name: fmt.Sprintf("ktlsb%d", n), Addr: netip.AddrFrom4([4]byte{10, 99, byte(n), 2})}
	// Namespaces are made by moving a thread into them.
	if err := onThread(func() error { return setup(a, b) }); err != nil {
		a.close()
		b.close()
		return nil, nil, err
	}
	return a, b, nil
}

func setup(a, b *Host) error {
	var err error
	for _, h := range []*Host{a, b} {
		if h.ns, err = netns.New(); err != nil {
			h.ns = netns.None()
			if errors.Is(err, unix.EPERM) {
				return ErrNotPermitted
			}
			return fmt.Errorf("labnet: new namespace: %w", err)
		}
	}
	// The thread is in b's namespace now: create the pair there, then
	// move a's end over.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: b.Name}, PeerName: a.Name}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("labnet: creating the veth pair (is the veth module loaded?): %w", err)
	}
	peer, err := netlink.LinkByName(a.Name)
	if err != nil {
		return fmt.Errorf("labnet: %s: %w", a.Name, err)
	}
	if err := netlink.LinkSetNsFd(peer, int(a.ns)); err != nil {
		return fmt.Errorf("labnet: moving %s: %w", a.Name, err)
	}
	for _, h := range []*Host{a, b} {
		if err := netns.Set(h.ns); err != nil {
			return fmt.Errorf("labnet: entering %s's namespace: %w", h.Name, err)
		}
		if err := configure(h); err != nil {
			return err
		}
	}
	return nil
}

// configure brings up lo and h's interface with its address, in the
// namespace the thread is in.
func configure(h *Host) error {
	for _, name := range []string{"lo", h.Name} {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("labnet: %s: %w", name, err)
		}
		if name == h.Name {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: h.Addr.AsSlice(), Mask: net.CIDRMask(24, 32)}}
			if err := netlink.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("labnet: address for %s: %w", name, err)
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("labnet: bringing %s up: %w", name, err)
		}
	}
	return nil
}

func (h *Host) close() {
	if h != nil && h.ns.IsOpen() {
		h.ns.Close()
	}
}

// Pair is NewPair for a test: it closes the namespaces when the test
// ends. Where the pair can't be made (no privilege, no veth module), it
// skips with the reason, except in the lab (KTLS_LAB set), which runs as
// root with veth loaded: there it fails.
func Pair(t testing.TB) (a, b *Host) {
	t.Helper()
	a, b, err := NewPair()
	if err != nil {
		kerneltest.Unavailable(t, "%v", err)
	}
	t.Cleanup(func() {
		a.close()
		b.close()
	})
	return a, b
}
