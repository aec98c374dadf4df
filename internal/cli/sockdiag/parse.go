package sockdiag

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// A Conf is what handles one direction of a TLS socket: one of the
// TLS_CONF_* values of include/uapi/linux/tls.h.
type Conf uint16

const (
	// ConfBase: no key for this direction yet; bytes pass through as plain
	// TCP. Every direction starts here when the ULP attaches.
	ConfBase Conf = 1
	// ConfSW: the kernel's software crypto, after TLS_TX or TLS_RX.
	ConfSW Conf = 2
	// ConfHW: the NIC encrypts or decrypts (TLS device offload).
	ConfHW Conf = 3
	// ConfHWRecord: a TCP offload engine that handled whole records
	// (chtls). tls.h marks it unused; no current kernel reports it.
	ConfHWRecord Conf = 4
)

var confNames = [...]string{ConfBase: "base", ConfSW: "sw", ConfHW: "hw", ConfHWRecord: "hw-record"}

func (c Conf) String() string {
	if int(c) < len(confNames) && confNames[c] != "" {
		return confNames[c]
	}
	return fmt.Sprintf("conf(%d)", uint16(c))
}

// TLSInfo is what the tls ULP reports about a socket (tls_get_info in
// net/tls/tls_main.c).
type TLSInfo struct {
	// Version and Cipher are kernel.VersionTLS12 or VersionTLS13 and a
	// kernel.Cipher. Both are zero until the first key is installed in
	// either direction: the kernel leaves the attributes out.
	Version uint16
	Cipher  kernel.Cipher
	// TX and RX are what handles each direction.
	TX, RX Conf
	// ZerocopyTX is TLS_INFO_ZC_RO_TX: TLS_TX_ZEROCOPY_RO is on and TX
	// runs on the NIC. The kernel never reports it for software TX.
	ZerocopyTX bool
	// RXNoPad is TLS_INFO_RX_NO_PAD: TLS_RX_EXPECT_NO_PAD is on (Linux
	// 6.0).
	RXNoPad bool
	// TXMaxPayload is TLS_INFO_TX_MAX_PAYLOAD_LEN, the most plaintext the
	// kernel puts in one record it sends, or 0 where the kernel doesn't
	// report it (those before TLS_TX_MAX_PAYLOAD_LEN, 6.12 among them).
	TXMaxPayload uint16
}

// A Socket is one TCP socket as sock_diag reports it.
type Socket struct {
	// Local and Remote are as the kernel keeps them: a dual-stack IPv6
	// socket talking IPv4 has IPv4-mapped addresses (netip.Addr.Unmap).
	Local, Remote netip.AddrPort
	// State is the TCP state as include/net/tcp_states.h names it, without
	// the TCP_ prefix: "ESTABLISHED", "CLOSE_WAIT", ...
	State string
	// Inode is the inode number of the socket file, as in
	// /proc/PID/fd/N -> socket:[Inode], for finding the process that
	// holds it; 0 once no file refers to the socket. UID owns it.
	Inode uint32
	UID   uint32
	// Cookie is the kernel's unique id of the socket (SO_COOKIE).
	Cookie uint64
	// TLS is nil unless the socket has the tls ULP and the kernel reported
	// it (see the package documentation for when it doesn't).
	TLS *TLSInfo
}

// Parse decodes one reply of a SOCK_DIAG_BY_FAMILY dump of TCP sockets:
// the payload of one netlink message, a struct inet_diag_msg followed by
// attributes. It never keeps a reference to b.
func Parse(b []byte) (Socket, error) {
	// struct inet_diag_msg, 72 bytes:
	//
	//	 0 idiag_family, idiag_state, idiag_timer, idiag_retrans   u8 each
	//	 4 id.idiag_sport, id.idiag_dport                          be16 each
	//	 8 id.idiag_src                                            16 bytes
	//	24 id.idiag_dst                                            16 bytes
	//	40 id.idiag_if                                             u32
	//	44 id.idiag_cookie[2]                                      u32 each, low half first
	//	52 idiag_expires, idiag_rqueue, idiag_wqueue               u32 each
	//	64 idiag_uid, idiag_inode                                  u32 each
	//
	// An IPv4 address takes the first 4 bytes of its 16.
	if len(b) < msgLen {
		return Socket{}, fmt.Errorf("sockdiag: %d-byte message, shorter than struct inet_diag_msg (%d)", len(b), msgLen)
	}
	ne := binary.NativeEndian
	var s Socket
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	switch b[0] {
	case afINET:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[8:12])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[24:28])), dport)
	case afINET6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), dport)
	default:
		return Socket{}, fmt.Errorf("sockdiag: address family %d, want AF_INET or AF_INET6", b[0])
	}
	s.State = stateName(b[1])
	s.Cookie = uint64(ne.Uint32(b[44:])) | uint64(ne.Uint32(b[48:]))<<32
	s.UID = ne.Uint32(b[64:])
	s.Inode = ne.Uint32(b[68:])

	// The attributes start at NLMSG_ALIGN(sizeof(struct inet_diag_msg)),
	// which is 72 itself.
	ad, err := netlink.NewAttributeDecoder(b[msgLen:])
	if err != nil {
		return Socket{}, fmt.Errorf("sockdiag: inet_diag_msg attributes: %w", err)
	}
	for ad.Next() {
		if ad.Type() == attrULPInfo {
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				s.TLS = parseULP(nad)
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return Socket{}, fmt.Errorf("sockdiag: inet_diag_msg attributes: %w", err)
	}
	return s, nil
}

// parseULP decodes the inside of INET_DIAG_ULP_INFO. It returns nil for
// another ULP (mptcp). Errors stay in nad, for the caller's Nested.
func parseULP(nad *netlink.AttributeDecoder) *TLSInfo {
	var (
		name string
		info TLSInfo
	)
	for nad.Next() {
		switch nad.Type() {
		case ulpInfoName:
			name = nad.String()
		case ulpInfoTLS:
			nad.Nested(func(tad *netlink.AttributeDecoder) error {
				parseTLS(tad, &info)
				return nil
			})
		}
	}
	if name != "tls" {
		return nil
	}
	// The kernel may send the name without INET_ULP_INFO_TLS: it drops
	// the nest when the socket's tls context is already gone. The socket
	// still has the ULP; info says nothing more.
	return &info
}

// parseTLS decodes the inside of INET_ULP_INFO_TLS. Attributes it doesn't
// know, from newer kernels, are skipped.
func parseTLS(tad *netlink.AttributeDecoder, info *TLSInfo) {
	for tad.Next() {
		switch tad.Type() {
		case tlsInfoVersion:
			info.Version = tad.Uint16()
		case tlsInfoCipher:
			info.Cipher = kernel.Cipher(tad.Uint16())
		case tlsInfoTXConf:
			info.TX = Conf(tad.Uint16())
		case tlsInfoRXConf:
			info.RX = Conf(tad.Uint16())
		case tlsInfoZCROTX:
			info.ZerocopyTX = tad.Flag()
		case tlsInfoRXNoPad:
			info.RXNoPad = tad.Flag()
		case tlsInfoTXMaxPayload:
			info.TXMaxPayload = tad.Uint16()
		}
	}
}

func stateName(st uint8) string {
	if int(st) < len(stateNames) && stateNames[st] != "" {
		return stateNames[st]
	}
	return fmt.Sprintf("state(%d)", st)
}

// request returns the struct inet_diag_req_v2 that asks for the TCP
// sockets of one address family in the states where they can have a ULP:
//
//	0 sdiag_family, sdiag_protocol, idiag_ext, pad   u8 each
//	4 idiag_states                                   u32, a mask of 1<<state
//	8 id                                             struct inet_diag_sockid, 48 bytes
//
// idiag_ext has the INET_DIAG_INFO bit: without it the kernel leaves out
// INET_DIAG_ULP_INFO. The socket id stays zero, which in a dump matches
// every port.
func request(family uint8) []byte {
	b := make([]byte, reqLen)
	b[0] = family
	b[1] = ipprotoTCP
	b[2] = 1 << (attrInfo - 1)
	binary.NativeEndian.PutUint32(b[4:], ulpStates)
	return b
}
