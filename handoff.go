package ktls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"syscall"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
)

// handoff decides, right after crypto/tls finished the handshake, what the
// kernel takes over, and hands it over. It runs with handshakeMu held and
// never fails the connection: whatever can't be offloaded stays on
// crypto/tls, and the reason goes into c.offload.
func (c *Conn) handoff() {
	cs := c.tc.Load().ConnectionState()
	o := &c.offload
	o.Version, o.CipherSuite = cs.Version, cs.CipherSuite

	keys, err := c.offloadTX(cs)
	if err != nil {
		o.TXReason = err
		o.RXReason = ErrRXNeedsTX
		if !c.opts.rx() {
			o.RXReason = ErrDisabled
		}
		if c.hc != nil {
			c.rx.stayOnTLS()
			c.hc.WritePassthrough()
			c.zeroSecrets()
		}
		return
	}
	o.TX = true
	c.tx.state = keepState(cs) // see releaseTLS
	if testHookAfterTX != nil {
		testHookAfterTX(c)
	}
	if c.opts.ZerocopySendfile {
		o.ZerocopySendfileReason = c.tx.setZerocopySendfile()
		o.ZerocopySendfile = o.ZerocopySendfileReason == nil
	}
	o.RecordSizing, o.RecordSizingReason = c.tx.startRecordSizing(c.hc.recordSizingOff)
	o.RXReason = c.offloadRX(keys)
	o.RX = o.RXReason == nil
	keys.zero()
	if keys.suite.Version == tls.VersionTLS12 {
		c.zeroSecrets()
	}
}

// testHookAfterTX, if set, runs in the handoff once the kernel encrypts,
// before the receive direction is decided: tests use it to close the Conn
// there.
var testHookAfterTX func(*Conn)

// handoffKeys is the key material of both directions, with the sequence
// number of the next record each way.
type handoffKeys struct {
	suite        *keyschedule.Suite
	tx, rx       keyschedule.TrafficKeys
	txSeq, rxSeq uint64
	// The TLS 1.3 application traffic secrets, each until its direction
	// takes it: the two the kernel's keys come from, kept for KeyUpdates,
	// and crypto/tls's own write secret, which the translator follows
	// while crypto/tls still reads (rxHalf.translate).
	txSecret, rxSecret, translateSecret *keyschedule.ApplicationSecret
}

// zero wipes the keys, and the secrets no direction took.
func (k *handoffKeys) zero() {
	k.tx.Zero()
	k.rx.Zero()
	for _, s := range []**keyschedule.ApplicationSecret{&k.txSecret, &k.rxSecret, &k.translateSecret} {
		if *s != nil {
			(*s).Zero()
			*s = nil
		}
	}
}

// zeroSecrets wipes the handshake's secrets: those the key log collected,
// and the session the handshake may have resumed.
func (c *Conn) zeroSecrets() {
	if c.hc == nil {
		return // crypto/tls's own: none were captured
	}
	if c.hc.secrets != nil {
		c.hc.secrets.Zero()
	}
	// The resumed session holds its own secret; it is crypto/tls's and
	// can't be wiped, but it need not live as long as the Conn.
	c.hc.resumed = nil
}

// offloadTX installs the transmit key in the kernel. On success crypto/tls
// no longer writes to the socket: what it still writes (alerts, while it
// reads) is decrypted and sent again through the kernel.
func (c *Conn) offloadTX(cs tls.ConnectionState) (*handoffKeys, error) {
	if !c.opts.tx() {
		return nil, ErrDisabled
	}
	if a := c.raw.LocalAddr(); a == nil || a.Network() != "tcp" {
		// Kernel TLS is a TCP upper layer protocol.
		return nil, withCode(CodeNotTCP, fmt.Errorf("ktls: the connection is not TCP (%T): %w", c.raw, ErrNotSupported))
	}
	suite, err := offloadable(cs.Version, cs.CipherSuite, kernel.TX)
	if err != nil {
		return nil, err
	}
	if c.isClient && cs.Version == tls.VersionTLS12 && c.config != nil && c.config.Renegotiation != tls.RenegotiateNever {
		return nil, withCode(CodeRenegotiation, errors.New("ktls: tls.Config.Renegotiation is enabled, and renegotiation needs crypto/tls's record layer"))
	}
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil, withCode(CodeNotTCP, fmt.Errorf("ktls: the connection is a %T, which has no socket: %w", c.raw, ErrNotSupported))
	}
	if _, err := sc.SyscallConn(); err != nil {
		return nil, withCode(CodeNotTCP, fmt.Errorf("ktls: %w", err))
	}
	keys, err := c.deriveKeys(suite)
	if err != nil {
		if errors.Is(err, ErrResumedTLS12) {
			return nil, err
		}
		return nil, withCode(CodeHandoff, err)
	}
	info := kernel.NewCryptoInfo(suite, keys.tx, keys.txSeq)
	defer info.Zero()
	if err := c.tx.sock.install(kernel.TX, info, true); err != nil {
		keys.zero()
		return nil, withCode(CodeKernelRefused, err)
	}
	// Until the kernel also decrypts, crypto/tls reads, and may answer
	// with an alert under its own, now stale, write state.
	translate, err := record.NewProtector(suite, keys.tx, keys.txSeq)
	if err != nil {
		keys.zero()
		return nil, err
	}
	c.rx.startTranslating(suite, translate, keys.translateSecret)
	keys.translateSecret = nil
	c.tx.toKernel(suite, keys.txSecret)
	c.tx.keyUpdateLimit = c.opts.keyUpdateLimit
	keys.txSecret = nil
	return keys, nil
}

// offloadRX installs the receive key in the kernel, or says why not.
func (c *Conn) offloadRX(keys *handoffKeys) error {
	suite := keys.suite
	if !c.opts.rx() {
		c.rxStaysOnTLS(keys)
		return ErrDisabled
	}
	if _, err := offloadable(suite.Version, suite.ID, kernel.RX); err != nil {
		c.rxStaysOnTLS(keys)
		return err
	}
	if suite.Version == tls.VersionTLS13 && c.isClient && c.config != nil && c.config.ClientSessionCache != nil {
		// The server's NewSessionTicket messages follow its Finished.
		// Only crypto/tls can turn them into sessions for the cache, so it
		// reads until the first application data, and the kernel takes
		// over from there (readDeferred): the follower keeps the secret
		// until then.
		d, err := newDeferredRX(suite, keys.rxSecret, keys.rxSeq)
		if err != nil {
			c.rxStaysOnTLS(keys)
			return withCode(CodeHandoff, err)
		}
		keys.rxSecret = nil
		c.rx.deferTo(d)
		return ErrDeferred
	}
	noPadReason, err := c.rx.offload(suite, keys.rx, keys.rxSeq, keys.rxSecret, c.opts.rxNoPad())
	if err != nil {
		c.rxStaysOnTLS(keys)
		return withCode(CodeKernelRefused, err)
	}
	keys.rxSecret = nil
	c.offload.RXNoPad, c.offload.RXNoPadReason = noPadReason == nil && suite.Version == tls.VersionTLS13, noPadReason
	return nil
}

// rxStaysOnTLS leaves the receive direction to crypto/tls, for good. It
// has keys of its own and follows the peer's KeyUpdates itself, so ours
// would only wait in memory to be stolen: they are zeroed and dropped.
func (c *Conn) rxStaysOnTLS(keys *handoffKeys) {
	c.rx.stayOnTLS()
	keys.rx.Zero()
	if keys.rxSecret != nil {
		keys.rxSecret.Zero()
		keys.rxSecret = nil
	}
}

// readDeferred reads through crypto/tls until the first application data,
// then hands the receive direction to the kernel: the handoff of a
// receiving side that offloadRX deferred. c.rx is locked.
func (c *Conn) readDeferred(b []byte) (int, error) {
	h := &c.rx
	// A buffer larger than any record's plaintext: crypto/tls returns the
	// whole record, so it holds nothing back when the kernel takes over.
	buf := h.lendBuf(record.MaxCiphertextTLS12).take()
	n, err := c.readTLS(buf)
	if n == 0 {
		return 0, err
	}
	d := h.endDeferral()

	var reason, noPadReason error
	switch {
	case d.err != nil:
		reason = withCode(CodeHandoff, fmt.Errorf("ktls: could not follow the peer's records before RX handoff: %w", d.err))
	case d.hs.Pending():
		reason = withCode(CodeHandoff, fmt.Errorf("ktls: a handshake message spans the RX handoff"))
	default:
		keys := d.secret.Keys()
		noPadReason, reason = h.offload(d.suite, keys, d.prot.Seq(), d.secret, c.opts.rxNoPad())
		keys.Zero()
		if reason != nil {
			reason = withCode(CodeKernelRefused, reason)
		}
	}
	if reason != nil {
		// crypto/tls keeps reading, at full speed, and follows the peer's
		// keys itself: ours are of no more use.
		h.stayOnTLS()
		d.secret.Zero()
		if c.opts.rxRequired() {
			// The data read stays unread: the connection fails here, as
			// the handshake would have if RX had not waited.
			h.tx.sendAlertBestEffort(record.AlertLevelFatal, record.AlertInternalError)
			h.err = &RequiredError{Direction: "RX", Reason: reason}
			c.handshakeMu.Lock()
			c.offload.RXReason = reason
			c.handshakeMu.Unlock()
			return 0, h.err
		}
	}
	c.handshakeMu.Lock()
	c.offload.RX, c.offload.RXReason = reason == nil, reason
	if reason == nil {
		c.offload.RXNoPad, c.offload.RXNoPadReason = noPadReason == nil, noPadReason
		c.releaseTLS()
	}
	c.handshakeMu.Unlock()

	m := copy(b, buf[:n])
	h.pending = buf[m:n]
	return m, err
}

// deriveKeys computes both directions' keys from the captured secrets, and
// the sequence numbers from what crypto/tls read and wrote. Each sequence
// number is proven, not assumed: see countRecords.
func (c *Conn) deriveKeys(suite *keyschedule.Suite) (*handoffKeys, error) {
	if c.hc == nil || c.hc.secrets == nil {
		return nil, errors.New("ktls: the handshake's secrets were not captured")
	}
	sec := c.hc.secrets
	keys := &handoffKeys{suite: suite}
	// The keys of the records crypto/tls protected before the application
	// keys, which the count needs: the TLS 1.3 handshake traffic keys of
	// each direction. TLS 1.2 has one key change only.
	var hsTX, hsRX keyschedule.TrafficKeys
	defer func() { hsTX.Zero(); hsRX.Zero() }() // as set below, not now
	switch suite.Version {
	case tls.VersionTLS12:
		master, err := c.hc.masterSecret(suite.ID)
		if err != nil {
			return nil, err
		}
		defer clear(master)
		clientRandom, ok1 := c.hc.ClientRandom()
		serverRandom, ok2 := c.hc.ServerRandom()
		if !ok1 || !ok2 {
			return nil, errors.New("ktls: the TLS 1.2 randoms were not captured")
		}
		client, server, err := keyschedule.KeyBlock(suite, master, clientRandom[:], serverRandom[:])
		if err != nil {
			return nil, err
		}
		keys.tx, keys.rx = client, server
		if !c.isClient {
			keys.tx, keys.rx = server, client
		}
	case tls.VersionTLS13:
		clientSecret, ok1 := sec.ClientTrafficSecret()
		serverSecret, ok2 := sec.ServerTrafficSecret()
		clientHS, ok3 := sec.ClientHandshakeTrafficSecret()
		serverHS, ok4 := sec.ServerHandshakeTrafficSecret()
		defer clear(clientSecret)
		defer clear(serverSecret)
		defer clear(clientHS)
		defer clear(serverHS)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, errors.New("ktls: the TLS 1.3 traffic secrets were not captured")
		}
		client, err := keyschedule.NewApplicationSecret(suite, clientSecret)
		if err != nil {
			return nil, err
		}
		server, err := keyschedule.NewApplicationSecret(suite, serverSecret)
		if err != nil {
			client.Zero()
			return nil, err
		}
		keys.txSecret, keys.rxSecret = client, server
		own, ownHS, peerHS := clientSecret, clientHS, serverHS
		if !c.isClient {
			keys.txSecret, keys.rxSecret = server, client
			own, ownHS, peerHS = serverSecret, serverHS, clientHS
		}
		// crypto/tls's own write key, which it keeps using while it reads.
		if keys.translateSecret, err = keyschedule.NewApplicationSecret(suite, own); err != nil {
			keys.zero()
			return nil, err
		}
		keys.tx, keys.rx = keys.txSecret.Keys(), keys.rxSecret.Keys()
		if hsTX, err = keyschedule.HandshakeKeys(suite, ownHS); err != nil {
			keys.zero()
			return nil, err
		}
		if hsRX, err = keyschedule.HandshakeKeys(suite, peerHS); err != nil {
			keys.zero()
			return nil, err
		}
	}
	sec.Zero()
	c.hc.resumed = nil
	var err error
	if keys.txSeq, keys.rxSeq, err = c.countRecords(keys, hsTX, hsRX); err != nil {
		keys.zero()
		return nil, err
	}
	return keys, nil
}

// countRecords returns the sequence numbers the kernel must continue from:
// how many records crypto/tls wrote, and read, under the application keys.
// A TLS 1.3 server has already sent its session ticket under its key when
// the handshake returns, so its count is not 0; in TLS 1.2 each side's
// Finished was the first record under the new keys.
//
// Every record crypto/tls wrote after its ChangeCipherSpec, or with outer
// type application_data, is accounted for, by opening it or by a proof from
// one that opens (recordio.Records.Sequence12, Sequence13), as one under the
// handshake keys (hsTX, TLS 1.3) or under keys.tx: a record missed would
// make the kernel reuse a nonce. Of the records read, the same proof shows
// that none was under the peer's TLS 1.3 application key, as the handshake
// ends at the peer's Finished; the kernel starts at 0 there, and a record
// read under that key would be lost to it. Opening the records also proves
// that the derived keys are those crypto/tls used, before they go to the
// kernel. Where a count can't be proven, offload is refused with the
// reason: nothing is guessed.
func (c *Conn) countRecords(keys *handoffKeys, hsTX, hsRX keyschedule.TrafficKeys) (txSeq, rxSeq uint64, err error) {
	suite := keys.suite
	written, read := c.hc.Written(), c.hc.ReadRecords()
	if suite.Version == tls.VersionTLS12 {
		if txSeq, err = written.Sequence12(suite, keys.tx); err != nil {
			return 0, 0, fmt.Errorf("%w (of the records crypto/tls wrote)", err)
		}
		if rxSeq, err = read.Sequence12(suite, keys.rx); err != nil {
			return 0, 0, fmt.Errorf("%w (of the records crypto/tls read)", err)
		}
		return txSeq, rxSeq, nil
	}
	if txSeq, err = written.Sequence13(suite, hsTX, keys.tx); err != nil {
		return 0, 0, fmt.Errorf("%w (of the records crypto/tls wrote)", err)
	}
	if rxSeq, err = read.Sequence13(suite, hsRX, keys.rx); err != nil {
		return 0, 0, fmt.Errorf("%w (of the records crypto/tls read)", err)
	}
	if rxSeq != 0 {
		return 0, 0, fmt.Errorf("ktls: crypto/tls read %d records under the peer's application key during the handshake", rxSeq)
	}
	return txSeq, rxSeq, nil
}

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
