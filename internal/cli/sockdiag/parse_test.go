package sockdiag_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ktlsgo/ktls/internal/cli/sockdiag"
	"github.com/ktlsgo/ktls/internal/kernel"
)

// The wire format, built by hand from the kernel's UAPI headers. A reply
// to a SOCK_DIAG_BY_FAMILY dump is, per socket, one netlink message whose
// payload is a struct inet_diag_msg (72 bytes) followed by attributes.
// Each attribute is a struct nlattr, {u16 nla_len; u16 nla_type}, in host
// byte order, then the payload; nla_len counts the 4-byte header and the
// payload but not the padding to the next multiple of 4.

const (
	afINET  = 2  // AF_INET
	afINET6 = 10 // AF_INET6
	afUNIX  = 1  // AF_UNIX

	established = 1 // TCP_ESTABLISHED
	closeWait   = 8 // TCP_CLOSE_WAIT

	// enum INET_DIAG_*
	inetDiagInfo    = 2
	inetDiagCong    = 4
	inetDiagULPInfo = 19

	// enum INET_ULP_INFO_*
	ulpName  = 1
	ulpTLS   = 2
	ulpMPTCP = 3

	// enum TLS_INFO_*
	tlsVersion      = 1
	tlsCipher       = 2
	tlsTXConf       = 3
	tlsRXConf       = 4
	tlsZCROTX       = 5
	tlsRXNoPad      = 6
	tlsTXMaxPayload = 7

	nlaFNested = 0x8000 // NLA_F_NESTED
)

// sock is what goes into a struct inet_diag_msg.
type sock struct {
	family         byte
	state          byte
	local, remote  netip.AddrPort
	ifindex        uint32
	cookie         uint64
	uid, inode     uint32
	rqueue, wqueue uint32
}

// diagMsg lays out a struct inet_diag_msg:
//
//	 0 idiag_family u8, idiag_state u8, idiag_timer u8, idiag_retrans u8
//	 4 struct inet_diag_sockid (48 bytes):
//	     idiag_sport, idiag_dport     __be16: network byte order
//	     idiag_src[4], idiag_dst[4]   __be32: 16 bytes each; IPv4 uses the first 4
//	     idiag_if                     u32
//	     idiag_cookie[2]              u32, low half first
//	52 idiag_expires, idiag_rqueue, idiag_wqueue, idiag_uid, idiag_inode  u32
func diagMsg(s sock) []byte {
	ne := binary.NativeEndian
	b := []byte{s.family, s.state, 0, 0}
	b = binary.BigEndian.AppendUint16(b, s.local.Port())
	b = binary.BigEndian.AppendUint16(b, s.remote.Port())
	b = append(b, addr16(s.local.Addr())...)
	b = append(b, addr16(s.remote.Addr())...)
	b = ne.AppendUint32(b, s.ifindex)
	b = ne.AppendUint32(b, uint32(s.cookie))
	b = ne.AppendUint32(b, uint32(s.cookie>>32))
	b = ne.AppendUint32(b, 0) // idiag_expires
	b = ne.AppendUint32(b, s.rqueue)
	b = ne.AppendUint32(b, s.wqueue)
	b = ne.AppendUint32(b, s.uid)
	b = ne.AppendUint32(b, s.inode)
	return b
}

func addr16(a netip.Addr) []byte {
	b := make([]byte, 16)
	if a.Is4() {
		a4 := a.As4()
		copy(b, a4[:])
	} else if a.IsValid() {
		a16 := a.As16()
		copy(b, a16[:])
	}
	return b
}

func attr(typ uint16, payload ...[]byte) []byte {
	data := bytes.Join(payload, nil)
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }

func cstr(s string) []byte { return append([]byte(s), 0) }

// ulpInfo is INET_DIAG_ULP_INFO as tcp_diag_put_ulp writes it: a nest,
// opened without NLA_F_NESTED, holding the ULP's name and, for tls, the
// INET_ULP_INFO_TLS nest that tls_get_info fills.
func ulpInfo(name string, inner ...[]byte) []byte {
	return attr(inetDiagULPInfo, append([][]byte{attr(ulpName, cstr(name))}, inner...)...)
}

func tlsNest(attrs ...[]byte) []byte { return attr(ulpTLS, attrs...) }

func msg(s sock, attrs ...[]byte) []byte {
	return append(diagMsg(s), bytes.Join(attrs, nil)...)
}

var (
	v4 = sock{
		family: afINET, state: established,
		local:  netip.MustParseAddrPort("127.0.0.1:443"),
		remote: netip.MustParseAddrPort("127.0.0.1:51000"),
		cookie: 0x0000_0102_0304_0506, uid: 1000, inode: 123456,
	}
	v6 = sock{
		family: afINET6, state: closeWait,
		local:  netip.MustParseAddrPort("[2001:db8::1]:8443"),
		remote: netip.MustParseAddrPort("[2001:db8::2]:40000"),
		cookie: 0xffff_0000_0000_0001, uid: 0, inode: 7,
	}
	// A dual-stack socket: the kernel keeps IPv4-mapped addresses.
	mapped = sock{
		family: afINET6, state: established,
		local:  netip.MustParseAddrPort("[::ffff:10.0.0.1]:443"),
		remote: netip.MustParseAddrPort("[::ffff:10.0.0.2]:1234"),
	}
)

func wantSocket(s sock, state string, tls *sockdiag.TLSInfo) sockdiag.Socket {
	return sockdiag.Socket{
		Local: s.local, Remote: s.remote, State: state,
		Inode: s.inode, UID: s.uid, Cookie: s.cookie, TLS: tls,
	}
}

// TLS 1.3 AES-128-GCM with only TLS_TX installed, as tls_get_info reports
// it: version, cipher, then both confs.
var tls13TX = tlsNest(
	attr(tlsVersion, u16(kernel.VersionTLS13)),
	attr(tlsCipher, u16(uint16(kernel.CipherAESGCM128))),
	attr(tlsTXConf, u16(uint16(sockdiag.ConfSW))),
	attr(tlsRXConf, u16(uint16(sockdiag.ConfBase))),
)

var parseTests = []struct {
	name string
	in   []byte
	want sockdiag.Socket
}{{
	name: "no attributes",
	in:   diagMsg(v4),
	want: wantSocket(v4, "ESTABLISHED", nil),
}, {
	name: "tls 1.3 TX in software, RX not yet",
	in:   msg(v4, ulpInfo("tls", tls13TX)),
	want: wantSocket(v4, "ESTABLISHED", &sockdiag.TLSInfo{
		Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM128,
		TX: sockdiag.ConfSW, RX: sockdiag.ConfBase,
	}),
}, {
	// What List asks for with INET_DIAG_INFO comes first: struct tcp_info
	// (its size grows with the kernel), and congestion control for some
	// algorithms. Parse skips everything but the ULP.
	name: "tcp_info and others around the ULP",
	in: msg(v4,
		attr(inetDiagInfo, make([]byte, 232)),
		attr(inetDiagCong, cstr("cubic")),
		ulpInfo("tls", tls13TX),
		attr(0x7ff, []byte{1, 2, 3})),
	want: wantSocket(v4, "ESTABLISHED", &sockdiag.TLSInfo{
		Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM128,
		TX: sockdiag.ConfSW, RX: sockdiag.ConfBase,
	}),
}, {
	name: "IPv6, both directions, every flag",
	in: msg(v6, ulpInfo("tls", tlsNest(
		attr(tlsVersion, u16(kernel.VersionTLS12)),
		attr(tlsCipher, u16(uint16(kernel.CipherChaCha20Poly1305))),
		attr(tlsTXConf, u16(uint16(sockdiag.ConfHW))),
		attr(tlsRXConf, u16(uint16(sockdiag.ConfSW))),
		attr(tlsZCROTX),  // a flag: no payload
		attr(tlsRXNoPad), // likewise
		attr(tlsTXMaxPayload, u16(16384)),
	))),
	want: wantSocket(v6, "CLOSE_WAIT", &sockdiag.TLSInfo{
		Version: kernel.VersionTLS12, Cipher: kernel.CipherChaCha20Poly1305,
		TX: sockdiag.ConfHW, RX: sockdiag.ConfSW,
		ZerocopyTX: true, RXNoPad: true, TXMaxPayload: 16384,
	}),
}, {
	// Right after TCP_ULP: no version or cipher until a key goes in.
	name: "ULP attached, no keys",
	in: msg(mapped, ulpInfo("tls", tlsNest(
		attr(tlsTXConf, u16(uint16(sockdiag.ConfBase))),
		attr(tlsRXConf, u16(uint16(sockdiag.ConfBase))),
	))),
	want: wantSocket(mapped, "ESTABLISHED", &sockdiag.TLSInfo{TX: sockdiag.ConfBase, RX: sockdiag.ConfBase}),
}, {
	// tls_get_info cancels its nest when the socket's context is gone,
	// and leaves the name.
	name: "tls name without its nest",
	in:   msg(v4, ulpInfo("tls")),
	want: wantSocket(v4, "ESTABLISHED", &sockdiag.TLSInfo{}),
}, {
	name: "mptcp subflow",
	in:   msg(v4, ulpInfo("mptcp", attr(ulpMPTCP, attr(1, make([]byte, 4))))),
	want: wantSocket(v4, "ESTABLISHED", nil),
}, {
	// Newer kernels add TLS_INFO_* attributes; older parsers skip them.
	name: "unknown TLS attribute",
	in: msg(v4, ulpInfo("tls", tlsNest(
		attr(tlsTXConf, u16(uint16(sockdiag.ConfSW))),
		attr(8, u16(0)),
		attr(tlsRXConf, u16(uint16(sockdiag.ConfSW))),
	))),
	want: wantSocket(v4, "ESTABLISHED", &sockdiag.TLSInfo{TX: sockdiag.ConfSW, RX: sockdiag.ConfSW}),
}, {
	// The kernel opens these nests with nla_nest_start_noflag; one that
	// sets NLA_F_NESTED means the same.
	name: "NLA_F_NESTED",
	in: msg(v4, attr(inetDiagULPInfo|nlaFNested,
		attr(ulpName, cstr("tls")),
		attr(ulpTLS|nlaFNested, attr(tlsTXConf, u16(uint16(sockdiag.ConfSW)))))),
	want: wantSocket(v4, "ESTABLISHED", &sockdiag.TLSInfo{TX: sockdiag.ConfSW}),
}, {
	name: "unknown state",
	in:   diagMsg(sock{family: afINET, state: 42, local: v4.local, remote: v4.remote}),
	want: sockdiag.Socket{Local: v4.local, Remote: v4.remote, State: "state(42)"},
}}

func TestParse(t *testing.T) {
	for _, tc := range parseTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sockdiag.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{{
		name: "short",
		in:   diagMsg(v4)[:71],
		want: "shorter than struct inet_diag_msg",
	}, {
		name: "not inet",
		in:   diagMsg(sock{family: afUNIX}),
		want: "address family 1",
	}, {
		name: "attribute longer than the message",
		in:   append(diagMsg(v4), 0xff, 0, byte(inetDiagULPInfo), 0),
		want: "attributes",
	}, {
		name: "half an attribute header",
		in:   append(diagMsg(v4), 8, 0),
		want: "attributes",
	}, {
		name: "3-byte version",
		in:   msg(v4, ulpInfo("tls", tlsNest(attr(tlsVersion, []byte{4, 3, 0})))),
		want: "not a uint16",
	}, {
		name: "flag with a payload",
		in:   msg(v4, ulpInfo("tls", tlsNest(attr(tlsRXNoPad, []byte{1})))),
		want: "not a flag",
	}, {
		name: "bad nest",
		in:   msg(v4, attr(inetDiagULPInfo, []byte{0xff, 0xff, 1, 0})),
		want: "attributes",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sockdiag.Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %+v, %v; want an error containing %q", s, err, tc.want)
			}
		})
	}
}

// TestRequest checks the dump request against struct inet_diag_req_v2.
// The one bit that matters most is INET_DIAG_INFO in idiag_ext: the
// kernel adds INET_DIAG_ULP_INFO only when it is set.
func TestRequest(t *testing.T) {
	const (
		finWait1 = 4
		finWait2 = 5
		closed   = 7
		lastAck  = 9
		closing  = 11
	)
	states := uint32(1<<established | 1<<finWait1 | 1<<finWait2 | 1<<closed | 1<<closeWait | 1<<lastAck | 1<<closing)
	want := []byte{
		afINET6,                 // sdiag_family
		6,                       // sdiag_protocol: IPPROTO_TCP
		1 << (inetDiagInfo - 1), // idiag_ext
		0,                       // pad
	}
	want = binary.NativeEndian.AppendUint32(want, states) // idiag_states
	want = append(want, make([]byte, 48)...)              // id: any socket
	if got := sockdiag.Request(afINET6); !bytes.Equal(got, want) {
		t.Errorf("request =\n%x\nwant\n%x", got, want)
	}
}

func TestConfString(t *testing.T) {
	for c, want := range map[sockdiag.Conf]string{
		0: "conf(0)", sockdiag.ConfBase: "base", sockdiag.ConfSW: "sw",
		sockdiag.ConfHW: "hw", sockdiag.ConfHWRecord: "hw-record", 9: "conf(9)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Conf(%d).String() = %q, want %q", uint16(c), got, want)
		}
	}
}

// FuzzParse feeds Parse arbitrary bytes. It must never panic, and whatever
// it accepts must survive a round trip: laid out again in canonical form,
// it parses to the same Socket.
func FuzzParse(f *testing.F) {
	for _, tc := range parseTests {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sockdiag.Parse(in)
		if err != nil {
			return
		}
		if !s.Local.IsValid() || !s.Remote.IsValid() {
			t.Fatalf("Parse(%x) accepted invalid addresses %v, %v", in, s.Local, s.Remote)
		}
		again, err := sockdiag.Parse(canonical(s, in))
		if err != nil {
			t.Fatalf("canonical form of %+v: %v", s, err)
		}
		if diff := cmp.Diff(s, again, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Fatalf("round trip of %x (-first +second):\n%s", in, diff)
		}
	})
}

// canonical lays s out again, taking the family and state bytes from the
// original message: Parse doesn't keep the family, and an unknown state
// comes back only as text.
func canonical(s sockdiag.Socket, orig []byte) []byte {
	b := diagMsg(sock{
		family: orig[0], state: orig[1],
		local: s.Local, remote: s.Remote,
		cookie: s.Cookie, uid: s.UID, inode: s.Inode,
	})
	if s.TLS == nil {
		return b
	}
	i := s.TLS
	var attrs [][]byte
	if i.Version != 0 {
		attrs = append(attrs, attr(tlsVersion, u16(i.Version)))
	}
	if i.Cipher != 0 {
		attrs = append(attrs, attr(tlsCipher, u16(uint16(i.Cipher))))
	}
	if i.TX != 0 {
		attrs = append(attrs, attr(tlsTXConf, u16(uint16(i.TX))))
	}
	if i.RX != 0 {
		attrs = append(attrs, attr(tlsRXConf, u16(uint16(i.RX))))
	}
	if i.ZerocopyTX {
		attrs = append(attrs, attr(tlsZCROTX))
	}
	if i.RXNoPad {
		attrs = append(attrs, attr(tlsRXNoPad))
	}
	if i.TXMaxPayload != 0 {
		attrs = append(attrs, attr(tlsTXMaxPayload, u16(i.TXMaxPayload)))
	}
	return append(b, ulpInfo("tls", tlsNest(attrs...))...)
}
