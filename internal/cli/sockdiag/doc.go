// Package sockdiag lists the kernel TLS state of live TCP sockets, as the
// kernel reports it through sock_diag (the netlink protocol behind ss(8)):
// for every TCP socket with the "tls" upper layer protocol attached, its
// addresses, state, owner, and what the tls ULP says about itself: the
// protocol version and cipher of the installed keys, and whether each
// direction runs in software, on the NIC, or not at all yet.
//
// # The protocol
//
// A request is a struct inet_diag_req_v2 (include/uapi/linux/inet_diag.h)
// sent as a SOCK_DIAG_BY_FAMILY message with NLM_F_DUMP on a
// NETLINK_SOCK_DIAG socket, once per address family. The kernel answers
// with one message per socket: a struct inet_diag_msg, then netlink
// attributes. The TLS state sits two nests deep:
//
//	INET_DIAG_ULP_INFO                 nest (tcp_diag.c, tcp_diag_put_ulp)
//	  INET_ULP_INFO_NAME               "tls\0"
//	  INET_ULP_INFO_TLS                nest (tls_main.c, tls_get_info)
//	    TLS_INFO_VERSION               u16, only once a key is installed
//	    TLS_INFO_CIPHER                u16, likewise
//	    TLS_INFO_TXCONF                u16, TLS_CONF_*
//	    TLS_INFO_RXCONF                u16, TLS_CONF_*
//	    TLS_INFO_ZC_RO_TX              flag (Linux 5.19)
//	    TLS_INFO_RX_NO_PAD             flag (Linux 6.0)
//	    TLS_INFO_TX_MAX_PAYLOAD_LEN    u16 (newer kernels)
//
// The kernel opens both nests without NLA_F_NESTED, and writes every
// integer in host byte order except the ports and addresses of the socket
// identity, which are in network byte order.
//
// # What makes the kernel report it
//
// inet_sk_diag_fill (net/ipv4/inet_diag.c) calls the protocol's
// idiag_get_aux, which is where tcp_diag adds INET_DIAG_ULP_INFO, only
// when the request's idiag_ext has the INET_DIAG_INFO bit,
// 1<<(INET_DIAG_INFO-1): the same bit that asks for struct tcp_info. So
// List asks for tcp_info too, and drops it.
//
// From Linux 5.3, where the ULP info first appeared (commit 61723b393292,
// "tcp: ulp: add functions to dump ulp-specific information"), through
// 6.14, the kernel adds it only when the requesting netlink socket has
// CAP_NET_ADMIN in the user namespace that owns the network namespace
// (netlink_net_capable). Without it the attribute is simply missing, and
// List finds no TLS sockets at all. Linux 6.15 (commits f5afcb9fbb39,
// "tcp: ulp: diag: always print the name if any", and 0d7336f8f06d, "tcp:
// ulp: diag: more info without CAP_NET_ADMIN") reports the name to
// everyone and leaves the rest to each ULP; the tls ULP holds nothing
// back, as none of it is secret: no keys, no sequence numbers.
//
// TLS_INFO_ZC_RO_TX is set only when TX runs on the NIC (tx_conf is
// TLS_HW) and TLS_TX_ZEROCOPY_RO is on: software kTLS never reports it,
// even on a socket where the option is set. A process can read the option
// on its own socket with kernel.TXZerocopyRO.
//
// Only full sockets carry a ULP: the kernel fills time-wait and
// request sockets through other paths, with no ULP info, so List doesn't
// ask for those states.
package sockdiag
