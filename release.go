package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
)

// Once the kernel has both directions, crypto/tls has nothing left to do:
// it no longer reads (recordio refuses it), nor writes (it writes only
// while it reads: an alert, or a KeyUpdate reply, which rxHalf's
// translator sends again through the kernel). What the connection still
// needs is in rxHalf and txHalf: the read and write secrets for KeyUpdates
// each way, post-handshake messages (a late NewSessionTicket is dropped
// there, as before; a client that wants tickets defers its RX handoff
// until crypto/tls has read them), alerts, renegotiation refused,
// close_notify. Yet crypto/tls's Conn would hold, for as long as the
// connection lives, its record buffers, its ciphers and handshake state,
// and the handshake's config clone with its key log collector: more than
// an idle crypto/tls connection holds in all. So the Conn lets go of it
// (releaseTLS), and answers ConnectionState, OCSPResponse and
// VerifyHostname from the state crypto/tls gave when the handshake ended
// (c.tx.state). crypto/tls's own copies of the keys become garbage, as they
// would when the connection ends.
//
// c.tx.state is kept for every connection whose TX the kernel took, set in
// the handoff before handshakeDone, and never changes after: such a
// connection never renegotiates (a TLS 1.2 client that allows it stays on
// crypto/tls), and nothing after a TLS 1.3 handshake changes the state.
// Where the kernel didn't take TX, crypto/tls answers, as its state may
// change (TLS 1.2 renegotiation).
//
// c.tc is atomic: ConnectionState and the others may run at any time, in
// any goroutine, and load it. They answer from c.tx.state once the handshake
// is done where the kernel took TX, or once c.tc is nil, which it becomes only
// after c.tx.state is set: either way, what they read of it was written
// before. No lock: a call during the handshake waits in crypto/tls, as it
// did, and a call from a hook inside the handoff, where handshakeMu is
// held, answers. The other users of c.tc (the handshake, Read and Write
// where crypto/tls reads or writes, Close and CloseWrite where it writes)
// run only where the kernel hasn't both directions, or (Close) where the
// handshake isn't done: the release at the end of HandshakeContext
// happens only where it saw no Close after storing handshakeDone, so a
// Close that may still run sees the handshake done.

// liveTLS returns crypto/tls's Conn where it answers for the connection,
// or nil where c.tx.state does.
func (c *Conn) liveTLS() *tls.Conn {
	if c.handshakeDone.Load() && c.tx.kernel {
		return nil
	}
	return c.tc.Load()
}

// releaseTLS lets go of crypto/tls once the kernel has both directions,
// so that it can be collected. handshakeMu is held.
func (c *Conn) releaseTLS() {
	if !c.tx.kernel || !c.rx.kernel.Load() {
		return
	}
	c.tc.Store(nil)
	// The handshakeConn stays, and its reader, which now refuses reads and
	// writes and holds nothing of the watch but its empty state (a
	// server's GetConfigForClient may have kept it, as the ClientHelloInfo's
	// Conn), but not the key log collector, wiped at the handoff: wipe it
	// again, in case, before it goes.
	c.zeroSecrets()
	c.hc.secrets = nil
}

// keepState returns a copy of cs that holds nothing of crypto/tls's Conn.
// TLSUnique is a slice of an array in it (its Finished), which would keep
// all of it, buffers and ciphers included, from being collected. (A TLS
// 1.2 connection without Extended Master Secret still keeps it, through
// the exporter, which crypto/tls makes a closure over its Conn there;
// Go's peers and most others negotiate it.)
func keepState(cs tls.ConnectionState) *tls.ConnectionState {
	cs.TLSUnique = bytes.Clone(cs.TLSUnique)
	return &cs
}

// stateVerifyHostname is tls.Conn.VerifyHostname, from c.tx.state, with its
// errors.
func (c *Conn) stateVerifyHostname(host string) error {
	if !c.isClient {
		return errors.New("tls: VerifyHostname called on TLS server connection")
	}
	if len(c.tx.state.VerifiedChains) == 0 {
		return errors.New("tls: handshake did not verify certificate chain")
	}
	return c.tx.state.PeerCertificates[0].VerifyHostname(host)
}
