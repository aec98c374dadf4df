package ktls

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// A Mode says whether ktls may, or must, offload one direction of a
// connection.
type Mode int

const (
	// Auto is the default: offload when the kernel can, and stay on
	// crypto/tls, saying why, when it can't.
	Auto Mode = iota
	// Enabled is Auto.
	//
	// Deprecated: Enabled never meant more than Auto. Use Auto, or
	// Required to fail a connection that the kernel doesn't take.
	Enabled
	// Disabled keeps the direction on crypto/tls.
	Disabled
	// Required offloads the direction or fails the handshake with a
	// *RequiredError that wraps the reason, after which the connection is
	// closed: for a deployment that counts on the kernel, where a silent
	// fallback would hide a misconfigured host.
	Required
)

// Options control what a connection hands to the kernel. The zero value
// is the default, and nil means the zero value.
//
// Unless a direction is Required, a connection never fails because
// offload was refused: it stays on crypto/tls, and Conn.Offload reports
// why.
type Options struct {
	// TX is offload of the records the connection sends. With it, Write
	// is a plain write(2) on the socket and io.Copy from a file uses
	// sendfile(2).
	TX Mode

	// RX is offload of the records the connection receives. It needs TX
	// offload, because the connection then answers the peer (alerts,
	// KeyUpdate) through the kernel. On a TLS 1.3 client with a
	// ClientSessionCache it starts at the first application data (see
	// ErrDeferred); Required is then checked there, and the first Read
	// fails if the kernel refuses.
	RX Mode

	// ZerocopySendfile sets TLS_TX_ZEROCOPY_RO (Linux 5.19). Only a NIC
	// that encrypts (the kernel's TLS device offload) acts on it: sendfile
	// then hands the file's pages to the NIC instead of copying them
	// first, and the file must not change while it is being sent, or a
	// retransmission carries bytes that differ from what was
	// authenticated and the peer ends the connection with
	// bad_record_mac. Where the kernel encrypts in software, it changes
	// nothing (net/tls/tls_device.c is the only code that acts on it;
	// measured in docs/BENCHMARKS.md). Off by default.
	ZerocopySendfile bool

	// RXNoPad sets TLS_RX_EXPECT_NO_PAD (Linux 6.0) on TLS 1.3
	// connections: the kernel decrypts records straight into the reader's
	// buffer, betting that the peer doesn't pad them. A peer that pads
	// anyway loses the bet only in speed: the kernel decrypts that record
	// again the slow way and counts it in TlsRxNoPadViolation; the data is
	// the same. Auto means Enabled: crypto/tls, OpenSSL and GnuTLS don't
	// pad unless asked to.
	RXNoPad Mode

	// keyUpdateLimit, if non-zero, replaces the number of records after
	// which TX keys are updated automatically; tests lower it.
	keyUpdateLimit uint64
}

func (o *Options) tx() bool         { return o == nil || o.TX != Disabled }
func (o *Options) rx() bool         { return o == nil || o.RX != Disabled }
func (o *Options) txRequired() bool { return o != nil && o.TX == Required }
func (o *Options) rxRequired() bool { return o != nil && o.RX == Required }
func (o *Options) rxNoPad() bool    { return o == nil || o.RXNoPad != Disabled }

// Offload says which directions of a connection the kernel handles, and
// why not where it doesn't.
type Offload struct {
	TX bool // the kernel encrypts what the connection sends
	RX bool // the kernel decrypts what the connection receives

	// TXReason and RXReason say why a direction is not offloaded; they
	// are nil when it is. Errors for what the kernel lacks match
	// ErrNotSupported. TXCode and RXCode give each in one stable word.
	TXReason, RXReason error

	Version     uint16 // the TLS version, as in tls.ConnectionState
	CipherSuite uint16

	// ZerocopySendfile is set when TLS_TX_ZEROCOPY_RO was set on the
	// socket (only a NIC that encrypts acts on it; see
	// Options.ZerocopySendfile), and ZerocopySendfileReason says why not
	// when it was asked for.
	ZerocopySendfile       bool
	ZerocopySendfileReason error
	// RXNoPad is set when TLS_RX_EXPECT_NO_PAD is in effect, and
	// RXNoPadReason says why not for a TLS 1.3 connection whose RX is
	// offloaded.
	RXNoPad       bool
	RXNoPadReason error
	// RecordSizing is set when the kernel sizes records as crypto/tls
	// does, with TLS_TX_MAX_PAYLOAD_LEN (Linux 6.19): records that fit one
	// TCP segment until 128 KiB have been sent, then 16 KiB ones.
	// RecordSizingReason says why not for a connection whose TX is
	// offloaded: without it the kernel sends 16 KiB records from the first
	// byte, which makes the peer wait longer for the first byte it can
	// decrypt on a slow or lossy link. tls.Config.DynamicRecordSizingDisabled
	// turns it off, as it does crypto/tls's.
	RecordSizing       bool
	RecordSizingReason error
}

func (o Offload) String() string {
	var b strings.Builder
	switch {
	case o.TX && o.RX:
		b.WriteString("TX+RX")
	case o.TX:
		b.WriteString("TX")
	case o.RX:
		b.WriteString("RX")
	default:
		b.WriteString("off")
	}
	if o.Version != 0 {
		fmt.Fprintf(&b, " (%s, %s)", tls.VersionName(o.Version), tls.CipherSuiteName(o.CipherSuite))
	}
	if o.TXReason != nil && o.RXReason != nil && o.TXReason.Error() == o.RXReason.Error() {
		fmt.Fprintf(&b, ": %v", o.TXReason)
		return b.String()
	}
	if o.TXReason != nil {
		fmt.Fprintf(&b, "; TX: %v", o.TXReason)
	}
	if o.RXReason != nil {
		fmt.Fprintf(&b, "; RX: %v", o.RXReason)
	}
	return b.String()
}
