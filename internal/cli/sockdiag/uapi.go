package sockdiag

// Values from the kernel's UAPI headers. They are fixed ABI, and Parse
// reads Linux's wire format on every GOOS, so they are spelled out here
// rather than taken from x/sys/unix (whose AF_INET6 is 30 on darwin).
const (
	// include/linux/socket.h, include/uapi/linux/in.h
	afINET     = 2
	afINET6    = 10
	ipprotoTCP = 6

	// include/uapi/linux/sock_diag.h
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY

	// include/uapi/linux/inet_diag.h: struct inet_diag_req_v2 and struct
	// inet_diag_msg, the latter without padding on every architecture.
	reqLen = 56
	msgLen = 72

	// Attributes of a struct inet_diag_msg (enum INET_DIAG_*).
	attrInfo    = 2  // INET_DIAG_INFO: struct tcp_info
	attrULPInfo = 19 // INET_DIAG_ULP_INFO, Linux 5.3

	// Attributes in INET_DIAG_ULP_INFO (enum INET_ULP_INFO_*).
	ulpInfoName = 1 // INET_ULP_INFO_NAME: NUL-terminated string
	ulpInfoTLS  = 2 // INET_ULP_INFO_TLS: nest of TLS_INFO_*

	// include/uapi/linux/tls.h: attributes in INET_ULP_INFO_TLS.
	tlsInfoVersion      = 1 // TLS_INFO_VERSION: u16
	tlsInfoCipher       = 2 // TLS_INFO_CIPHER: u16
	tlsInfoTXConf       = 3 // TLS_INFO_TXCONF: u16, TLS_CONF_*
	tlsInfoRXConf       = 4 // TLS_INFO_RXCONF: u16, TLS_CONF_*
	tlsInfoZCROTX       = 5 // TLS_INFO_ZC_RO_TX: flag
	tlsInfoRXNoPad      = 6 // TLS_INFO_RX_NO_PAD: flag
	tlsInfoTXMaxPayload = 7 // TLS_INFO_TX_MAX_PAYLOAD_LEN: u16
)

// TCP states, from include/net/tcp_states.h. inet_diag_req_v2's
// idiag_states is a mask of 1<<state.
const (
	tcpEstablished   = 1
	tcpSynSent       = 2
	tcpSynRecv       = 3
	tcpFinWait1      = 4
	tcpFinWait2      = 5
	tcpTimeWait      = 6
	tcpClose         = 7
	tcpCloseWait     = 8
	tcpLastAck       = 9
	tcpListen        = 10
	tcpClosing       = 11
	tcpNewSynRecv    = 12
	tcpBoundInactive = 13
)

var stateNames = [...]string{
	tcpEstablished:   "ESTABLISHED",
	tcpSynSent:       "SYN_SENT",
	tcpSynRecv:       "SYN_RECV",
	tcpFinWait1:      "FIN_WAIT1",
	tcpFinWait2:      "FIN_WAIT2",
	tcpTimeWait:      "TIME_WAIT",
	tcpClose:         "CLOSE",
	tcpCloseWait:     "CLOSE_WAIT",
	tcpLastAck:       "LAST_ACK",
	tcpListen:        "LISTEN",
	tcpClosing:       "CLOSING",
	tcpNewSynRecv:    "NEW_SYN_RECV",
	tcpBoundInactive: "BOUND_INACTIVE",
}

// ulpStates are the states a socket with the tls ULP can be in. The ULP
// attaches only to an ESTABLISHED socket, and the kernel refuses listen()
// on a socket whose ULP has no clone operation, as tls has none (commit
// 2c02d41d71f9, "net/ulp: prevent ULP without clone op from entering the
// LISTEN status"), so the socket moves on only through the closing
// states. TIME_WAIT and NEW_SYN_RECV sockets are mini-sockets with no ULP.
const ulpStates = 1<<tcpEstablished | 1<<tcpFinWait1 | 1<<tcpFinWait2 |
	1<<tcpClose | 1<<tcpCloseWait | 1<<tcpLastAck | 1<<tcpClosing
