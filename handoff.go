package ktls

import (
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
	cs := c.tc.ConnectionState()
	o := &c.offload
	o.Version, o.CipherSuite = cs.Version, cs.CipherSuite

	keys, err := c.offloadTX(cs)
	if err != nil {
		o.TXReason = err
		o.RXReason = ErrRXNeedsTX
		if !c.opts.rx() {
			o.RXReason = ErrDisabled
		}
		c.hc.ReadPassthrough()
		c.hc.WritePassthrough()
		c.zeroSecrets()
		return
	}
	o.TX = true
	if testHookAfterTX != nil {
		testHookAfterTX(c)
	}
	if c.opts.ZerocopySendfile {
		o.ZerocopySendfileReason = c.setOption(kernel.FeatureTXZerocopyRO, kernel.SetTXZerocopyRO)
		o.ZerocopySendfile = o.ZerocopySendfileReason == nil
	}
	o.RecordSizing, o.RecordSizingReason = c.startRecordSizing()
	o.RXReason = c.offloadRX(keys)
	o.RX = o.RXReason == nil
	keys.zero()
	if c.suite.Version == tls.VersionTLS12 {
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
	tx, rx       keyschedule.TrafficKeys
	txSeq, rxSeq uint64
}

func (k *handoffKeys) zero() {
	k.tx.Zero()
	k.rx.Zero()
}

func (c *Conn) zeroSecrets() {
	if c.hc.secrets != nil {
		c.hc.secrets.Zero()
	}
	for _, s := range []*keyschedule.ApplicationSecret{c.txSecret, c.rxSecret, c.translateSecret} {
		if s != nil {
			s.Zero()
		}
	}
	c.txSecret, c.rxSecret, c.translateSecret = nil, nil, nil
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
	if err := kernel.FeatureULP.Check(); err != nil {
		return nil, withCode(probeCode(err, CodeNoULP), err)
	}
	if c.isClient && cs.Version == tls.VersionTLS12 && c.config != nil && c.config.Renegotiation != tls.RenegotiateNever {
		return nil, withCode(CodeRenegotiation, errors.New("ktls: tls.Config.Renegotiation is enabled, and renegotiation needs crypto/tls's record layer"))
	}
	suite, ok := keyschedule.Lookup(cs.Version, cs.CipherSuite)
	if !ok {
		return nil, withCode(CodeCipher, notOffloadable(cs.Version, cs.CipherSuite))
	}
	kc := kernelCipher(suite)
	if err := kernel.CipherFeature(kernelVersion(suite), kc, kernel.TX).Check(); err != nil {
		return nil, withCode(probeCode(err, CodeCipher), err)
	}
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return nil, withCode(CodeNotTCP, fmt.Errorf("ktls: the connection is a %T, which has no socket: %w", c.raw, ErrNotSupported))
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, withCode(CodeNotTCP, fmt.Errorf("ktls: %w", err))
	}
	c.suite = suite
	keys, err := c.deriveKeys()
	if err != nil {
		if errors.Is(err, ErrResumedTLS12) {
			return nil, err
		}
		return nil, withCode(CodeHandoff, err)
	}
	info := cryptoInfo(suite, keys.tx, keys.txSeq)
	defer info.Zero()
	if err := c.install(rc, kernel.TX, info, true); err != nil {
		keys.zero()
		return nil, withCode(CodeKernelRefused, err)
	}
	// Until the kernel also decrypts, crypto/tls reads, and may answer
	// with an alert under its own, now stale, write state.
	c.translate, err = record.NewProtector(suite, keys.tx, keys.txSeq)
	if err != nil {
		return nil, err
	}
	c.hc.HandOffWrite(c.translateRecord)
	c.kernelTX = true
	return keys, nil
}

// offloadRX installs the receive key in the kernel, or says why not.
func (c *Conn) offloadRX(keys *handoffKeys) error {
	if !c.opts.rx() {
		c.rxStaysOnTLS(keys)
		return ErrDisabled
	}
	if err := kernel.CipherFeature(kernelVersion(c.suite), kernelCipher(c.suite), kernel.RX).Check(); err != nil {
		c.rxStaysOnTLS(keys)
		return withCode(probeCode(err, CodeCipher), err)
	}
	if c.suite.Version == tls.VersionTLS13 && c.isClient && c.config != nil && c.config.ClientSessionCache != nil {
		// The server's NewSessionTicket messages follow its Finished.
		// Only crypto/tls can turn them into sessions for the cache, so it
		// reads until the first application data, and the kernel takes
		// over from there: the follower keeps the secret until then.
		d, err := newDeferredRX(c.suite, c.rxSecret, keys.rxSeq)
		if err != nil {
			c.rxStaysOnTLS(keys)
			return withCode(CodeHandoff, err)
		}
		c.deferred = d
		c.hc.OnRead(d.see)
		return ErrDeferred
	}
	noPadReason, err := c.installRX(keys.rx, keys.rxSeq)
	if err != nil {
		c.rxStaysOnTLS(keys)
		return withCode(CodeKernelRefused, err)
	}
	c.offload.RXNoPad, c.offload.RXNoPadReason = noPadReason == nil && c.suite.Version == tls.VersionTLS13, noPadReason
	return nil
}

// rxStaysOnTLS leaves the receive direction to crypto/tls, for good. It
// has keys of its own and follows the peer's KeyUpdates itself, so ours
// would only wait in memory to be stolen: they are zeroed and dropped.
func (c *Conn) rxStaysOnTLS(keys *handoffKeys) {
	c.hc.ReadPassthrough()
	keys.rx.Zero()
	if c.rxSecret != nil {
		c.rxSecret.Zero()
		c.rxSecret = nil
	}
}

// installRX installs the receive key; from then on the kernel decrypts,
// and crypto/tls neither reads nor writes the socket. It returns why
// TLS_RX_EXPECT_NO_PAD is not in effect, for a TLS 1.3 connection.
func (c *Conn) installRX(keys keyschedule.TrafficKeys, seq uint64) (noPadReason, err error) {
	info := cryptoInfo(c.suite, keys, seq)
	defer info.Zero()
	if err := c.install(c.rawConn(), kernel.RX, info, false); err != nil {
		return nil, err
	}
	if c.suite.Version == tls.VersionTLS13 {
		noPadReason = ErrDisabled
		if c.opts.rxNoPad() {
			noPadReason = c.setOption(kernel.FeatureRXExpectNoPad, kernel.SetRXExpectNoPad)
		}
	}
	c.hc.HandOffRead()
	c.hc.StopTranslating()
	c.translate = nil
	if c.translateSecret != nil {
		c.translateSecret.Zero()
		c.translateSecret = nil
	}
	c.kernelRX.Store(true)
	return noPadReason, nil
}

// setOption sets an optional socket option if the kernel has it. A kernel
// without it is no reason to fail: the connection works without.
func (c *Conn) setOption(f *kernel.Feature, set func(fd int) error) error {
	if err := f.Check(); err != nil {
		return err
	}
	var serr error
	err := c.rawConn().Control(func(fd uintptr) { serr = set(int(fd)) })
	if err == nil {
		err = serr
	}
	return err
}

// deriveKeys computes both directions' keys from the captured secrets, and
// the sequence numbers from what crypto/tls read and wrote. Each sequence
// number is proven, not assumed: see countRecords.
func (c *Conn) deriveKeys() (*handoffKeys, error) {
	sec := c.hc.secrets
	if sec == nil {
		return nil, errors.New("ktls: the handshake's secrets were not captured")
	}
	keys := &handoffKeys{}
	// The keys of the records crypto/tls protected before the application
	// keys, which the count needs: the TLS 1.3 handshake traffic keys of
	// each direction. TLS 1.2 has one key change only.
	var hsTX, hsRX keyschedule.TrafficKeys
	defer func() { hsTX.Zero(); hsRX.Zero() }() // as set below, not now
	switch c.suite.Version {
	case tls.VersionTLS12:
		master, err := c.hc.masterSecret(c.suite.ID)
		if err != nil {
			return nil, err
		}
		defer clear(master)
		clientRandom, ok1 := c.hc.ClientRandom()
		serverRandom, ok2 := c.hc.ServerRandom()
		if !ok1 || !ok2 {
			return nil, errors.New("ktls: the TLS 1.2 randoms were not captured")
		}
		client, server, err := keyschedule.KeyBlock(c.suite, master, clientRandom[:], serverRandom[:])
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
		client, err := keyschedule.NewApplicationSecret(c.suite, clientSecret)
		if err != nil {
			return nil, err
		}
		server, err := keyschedule.NewApplicationSecret(c.suite, serverSecret)
		if err != nil {
			return nil, err
		}
		c.txSecret, c.rxSecret = client, server
		own, ownHS, peerHS := clientSecret, clientHS, serverHS
		if !c.isClient {
			c.txSecret, c.rxSecret = server, client
			own, ownHS, peerHS = serverSecret, serverHS, clientHS
		}
		// crypto/tls's own write key, which it keeps using while it reads.
		if c.translateSecret, err = keyschedule.NewApplicationSecret(c.suite, own); err != nil {
			return nil, err
		}
		keys.tx, keys.rx = c.txSecret.Keys(), c.rxSecret.Keys()
		if hsTX, err = keyschedule.HandshakeKeys(c.suite, ownHS); err != nil {
			keys.zero()
			return nil, err
		}
		if hsRX, err = keyschedule.HandshakeKeys(c.suite, peerHS); err != nil {
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
	written, read := c.hc.Written(), c.hc.ReadRecords()
	if c.suite.Version == tls.VersionTLS12 {
		if txSeq, err = written.Sequence12(c.suite, keys.tx); err != nil {
			return 0, 0, fmt.Errorf("%w (of the records crypto/tls wrote)", err)
		}
		if rxSeq, err = read.Sequence12(c.suite, keys.rx); err != nil {
			return 0, 0, fmt.Errorf("%w (of the records crypto/tls read)", err)
		}
		return txSeq, rxSeq, nil
	}
	if txSeq, err = written.Sequence13(c.suite, hsTX, keys.tx); err != nil {
		return 0, 0, fmt.Errorf("%w (of the records crypto/tls wrote)", err)
	}
	if rxSeq, err = read.Sequence13(c.suite, hsRX, keys.rx); err != nil {
		return 0, 0, fmt.Errorf("%w (of the records crypto/tls read)", err)
	}
	if rxSeq != 0 {
		return 0, 0, fmt.Errorf("ktls: crypto/tls read %d records under the peer's application key during the handshake", rxSeq)
	}
	return txSeq, rxSeq, nil
}

// translateRecord is where records crypto/tls writes after the kernel took
// over transmission go: an alert or KeyUpdate it sends while it still
// reads. The record is opened with crypto/tls's write state and sent again
// through the kernel.
func (c *Conn) translateRecord(rec []byte) error {
	typ, msg, err := c.translate.Open(rec)
	if err != nil {
		return err
	}
	switch typ {
	case record.TypeAlert:
		// crypto/tls sends alerts as it fails. Like the kernel path's
		// own, they don't wait for a Write in flight.
		if len(msg) == 2 {
			c.sendAlertBestEffort(msg[0], msg[1])
		}
		return nil
	case record.TypeHandshake:
		return c.sendKeyUpdateFromTLS(msg)
	}
	return fmt.Errorf("ktls: internal error: crypto/tls wrote a record of type %d after the handoff", typ)
}
