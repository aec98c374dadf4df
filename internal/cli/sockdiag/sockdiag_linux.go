package sockdiag

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// List returns every TCP socket, IPv4 and IPv6, in the caller's network
// namespace that has the tls ULP attached, with the TLS state the kernel
// reports for it. It dumps each family over NETLINK_SOCK_DIAG and keeps
// the sockets whose ULP is "tls"; TLS is never nil in what it returns.
//
// Before Linux 6.15 the kernel reports ULPs only to a caller with
// CAP_NET_ADMIN: without it, List returns no sockets and no error. Where
// the kernel has no sock_diag handler for TCP (CONFIG_INET_DIAG or
// CONFIG_INET_TCP_DIAG off, or the inet_diag and tcp_diag modules not
// loadable), the error matches kernel.ErrNotSupported and unix.ENOENT.
func List() ([]Socket, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var out []Socket
	for _, family := range []uint8{afINET, afINET6} {
		err := dump(c, family, func(s Socket) {
			if s.TLS != nil {
				out = append(out, s)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func dial() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("sockdiag: %w", err)
	}
	return c, nil
}

// dump sends one SOCK_DIAG_BY_FAMILY dump request and calls fn for each
// socket in the reply, as the messages arrive: a busy server has many
// sockets, and only a few of them carry TLS.
func dump(c *netlink.Conn, family uint8, fn func(Socket)) error {
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{
			Type:  sockDiagByFamily,
			Flags: netlink.Request | netlink.Dump,
		},
		Data: request(family),
	})
	if err != nil {
		return dumpError(family, err)
	}
	for m, err := range c.ReceiveIter() {
		if err != nil {
			return dumpError(family, err)
		}
		if err := netlink.Validate(req, []netlink.Message{m}); err != nil {
			return dumpError(family, err)
		}
		if m.Header.Type != sockDiagByFamily {
			return fmt.Errorf("sockdiag: %s dump: unexpected netlink message type %d", familyName(family), m.Header.Type)
		}
		s, err := Parse(m.Data)
		if err != nil {
			return err
		}
		fn(s)
	}
	return nil
}

// dumpError wraps a failed dump. ENOENT is sock_diag saying it has no
// handler: inet_diag or tcp_diag is missing.
func dumpError(family uint8, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("sockdiag: %s dump: no sock_diag handler for TCP (inet_diag and tcp_diag): %w: %w",
			familyName(family), kernel.ErrNotSupported, err)
	}
	return fmt.Errorf("sockdiag: %s dump: %w", familyName(family), err)
}

func familyName(family uint8) string {
	if family == afINET6 {
		return "TCPv6"
	}
	return "TCPv4"
}
