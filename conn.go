package ktls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktlsgo/ktls/internal/record"
	"github.com/ktlsgo/ktls/internal/recordio"
)

// A Conn is a TLS connection whose record layer the kernel may handle. It
// behaves as a *tls.Conn: the handshake runs on the first Read or Write, or
// on Handshake, and is done by crypto/tls itself.
//
// After the handshake, the directions the kernel took (see Offload) no
// longer go through crypto/tls: Write is a write(2) of plaintext on the
// socket, Read a recvmsg(2), and io.Copy to and from the Conn uses
// sendfile(2) and splice(2) where it can.
type Conn struct {
	raw      net.Conn
	hc       *handshakeConn           // nil where offloadRuledOut (plainTransport)
	tc       atomic.Pointer[tls.Conn] // nil once let go of (releaseTLS)
	isClient bool
	opts     Options
	config   *tls.Config // the user's, never modified

	handshakeMu   sync.Mutex
	handshakeDone atomic.Bool
	eof           atomic.Bool // plainTransport's read reached the socket's end
	offload       Offload
	requiredErr   error // a Required direction was not offloaded: the connection failed

	// The two directions, each with its own lock, secret, sticky error
	// and protection; the handoff gives each to the kernel, or leaves it
	// to crypto/tls. A reader never waits for the sending side's lock.
	rx rxHalf // receive.go
	tx txHalf // send.go
	// activeCall counts writes in flight (Write, ReadFrom, UpdateKeys,
	// CloseWrite, and a relay from another Conn's WriteTo into this one)
	// and has bit 0 set once Close has been called, as in crypto/tls: a
	// Close during a write only closes the socket, to unblock it, and never
	// waits for the sending side's lock.
	activeCall atomic.Int32
}

// Client returns a new client side of a TLS connection over conn, as
// tls.Client does. config must hold ServerName or InsecureSkipVerify. conn
// should be a *net.TCPConn (or wrap one in a way that exposes
// SyscallConn); on anything else the connection stays on crypto/tls.
func Client(conn net.Conn, config *tls.Config) *Conn {
	return ClientWithOptions(conn, config, nil)
}

// ClientWithOptions is Client with offload options.
func ClientWithOptions(conn net.Conn, config *tls.Config, opts *Options) *Conn {
	return newConn(conn, config, opts, true)
}

// Server returns a new server side of a TLS connection over conn, as
// tls.Server does. config must hold at least one certificate, or set
// GetCertificate or GetConfigForClient.
func Server(conn net.Conn, config *tls.Config) *Conn {
	return ServerWithOptions(conn, config, nil)
}

// ServerWithOptions is Server with offload options.
func ServerWithOptions(conn net.Conn, config *tls.Config, opts *Options) *Conn {
	return newConn(conn, config, opts, false)
}

func newConn(conn net.Conn, config *tls.Config, opts *Options, isClient bool) *Conn {
	c := &Conn{raw: conn, isClient: isClient, config: config}
	if opts != nil {
		c.opts = *opts
	}
	if !offloadRuledOut(&c.opts) {
		c.hc = &handshakeConn{Conn: recordio.NewConn(conn, isClient)}
		c.rx.rec = c.hc.Conn
	}
	c.tx.sock = socket{conn}
	c.rx.tx = &c.tx
	c.rx.isClient = isClient
	if isClient {
		c.tc.Store(tls.Client(c.transport(), c.handshakeConfig(config, clientConfig)))
	} else {
		c.tc.Store(tls.Server(c.transport(), c.handshakeConfig(config, serverConfig)))
	}
	return c
}

// Handshake runs the handshake if it has not run yet, then hands the
// record layer to the kernel where it can. Most uses need not call it: the
// first Read or Write does.
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext is Handshake with a context that can cancel the
// handshake; once it is done, the context has no effect.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeDone.Load() {
		return nil
	}
	if c.requiredErr != nil {
		return c.requiredErr
	}
	if err := c.tc.Load().HandshakeContext(ctx); err != nil {
		// No handoff will wipe what the key log collected before the
		// failure (a peer can fail a handshake after the traffic secrets,
		// by sending no certificate, say): do it now.
		c.zeroSecrets()
		return handshakeError(err, c.raw)
	}
	c.handoff()
	if err := c.missingRequired(); err != nil {
		c.requiredErr = err
		c.abortRequired()
		return err
	}
	c.handshakeDone.Store(true)
	if x := c.activeCall.Load(); x&1 != 0 {
		// A Close came during the handoff. It saw no finished handshake,
		// so it wiped nothing: the secrets kept for KeyUpdates are wiped
		// here, as Close would have. (Either it sees handshakeDone, or
		// this sees its bit.) A write in flight, such as one that ran
		// this handshake or a relay into this Conn, may hold the sending
		// side's lock for long: the last of them to end wipes the write
		// secret (endWrite).
		if x == 1 {
			c.tx.Lock()
			c.tx.zeroSecretLocked()
			c.tx.Unlock()
		}
		c.rx.zeroAfterClose()
		// Close went to crypto/tls, which may have sealed its
		// close_notify under the application key after the handoff
		// counted the records and before it took over crypto/tls's
		// writes: at the sequence number the kernel now starts from.
		// Nothing more may go out under that key, so the socket closes
		// here, before any Read or Write can get the kernel to send.
		c.raw.Close()
	} else {
		// Any Close from now on sees the handshake done, and leaves
		// crypto/tls alone where the kernel took TX.
		c.releaseTLS()
	}
	return nil
}

// missingRequired returns the error of a Required direction the handoff
// didn't offload. A deferred RX is checked when it is installed.
func (c *Conn) missingRequired() error {
	o := &c.offload
	if c.opts.txRequired() && !o.TX {
		return &RequiredError{Direction: "TX", Reason: o.TXReason}
	}
	if c.opts.rxRequired() && !o.RX && !errors.Is(o.RXReason, ErrDeferred) {
		return &RequiredError{Direction: "RX", Reason: o.RXReason}
	}
	return nil
}

// abortRequired ends a connection whose required offload failed: with an
// internal_error alert where the kernel took TX, else by closing the
// socket without close_notify, so the peer doesn't take the end for a
// clean one. The handshake's secrets are zeroed.
func (c *Conn) abortRequired() {
	if c.tx.kernel {
		c.tx.Lock()
		c.tx.sendAlertLocked(record.AlertLevelFatal, record.AlertInternalError, true)
		c.tx.Unlock()
	}
	c.raw.Close()
	c.rx.Lock()
	c.rx.zeroSecretsLocked()
	if c.rx.rxKernel != nil {
		c.rx.deferred = nil
	}
	c.rx.Unlock()
	c.tx.Lock()
	c.tx.zeroSecretLocked()
	c.tx.Unlock()
	c.zeroSecrets()
}

// Offload reports what the kernel handles for this connection. Before the
// handshake it is the zero Offload.
func (c *Conn) Offload() Offload {
	if !c.handshakeDone.Load() {
		return Offload{}
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	return c.offload
}

// ConnectionState returns the state of the handshake, as crypto/tls gave
// it.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if tc := c.liveTLS(); tc != nil {
		return tc.ConnectionState()
	}
	return *c.tx.state
}

// OCSPResponse returns the stapled OCSP response from the TLS server, if
// any, as tls.Conn.OCSPResponse does. (Valid for client connections only.)
func (c *Conn) OCSPResponse() []byte {
	if tc := c.liveTLS(); tc != nil {
		return tc.OCSPResponse()
	}
	return c.tx.state.OCSPResponse
}

// VerifyHostname checks that the peer certificate chain is valid for
// connecting to host, as tls.Conn.VerifyHostname does: it fails before
// the handshake and when the chain was not verified.
func (c *Conn) VerifyHostname(host string) error {
	if tc := c.liveTLS(); tc != nil {
		return tc.VerifyHostname(host)
	}
	return c.stateVerifyHostname(host)
}

// NetConn returns the connection the Conn was made on. Reading or writing
// it directly corrupts the TLS session.
func (c *Conn) NetConn() net.Conn { return c.raw }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as net.Conn does; they
// bound the handshake too. On crypto/tls, a Write that times out leaves
// the record layer in an unknown state and later Writes fail. Once the
// kernel encrypts, a timed-out Write is like one on TCP: it reports what
// was written, and the stream stays whole.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// Read reads plaintext, as tls.Conn.Read does. A close_notify from the
// peer ends the stream with io.EOF; a connection that ends without one
// gives io.ErrUnexpectedEOF, so a truncation is never mistaken for the
// end. A fatal alert from the peer gives an error matching
// tls.AlertError.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.rx.Lock()
	defer c.unlockRX()
	if len(c.rx.pending) > 0 {
		n := copy(b, c.rx.pending)
		c.rx.pending = c.rx.pending[n:]
		return n, nil
	}
	if c.rx.err != nil {
		return 0, c.rx.err
	}
	switch {
	case c.rx.kernel.Load():
		return c.rx.readKernel(b)
	case c.rx.deferring():
		return c.readDeferred(b)
	}
	return c.readTLS(b)
}

// readTLS reads through crypto/tls, which returns io.EOF for a connection
// that ended without close_notify, as for one that sent it: tell them
// apart.
func (c *Conn) readTLS(b []byte) (int, error) {
	n, err := c.tc.Load().Read(b)
	if err == io.EOF && c.sawEOF() {
		err = io.ErrUnexpectedEOF
	}
	return n, fromTLS(err)
}

// sawEOF reports whether crypto/tls's read of the socket reached its end.
// crypto/tls returns io.EOF both for a close_notify and for a connection
// that just ended; it never reads the socket again after a close_notify,
// so if the socket did reach its end, the close_notify never came.
func (c *Conn) sawEOF() bool {
	if c.hc == nil {
		return c.eof.Load()
	}
	return c.hc.SawEOF()
}

// Write writes plaintext, as tls.Conn.Write does.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.beginDataWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	if !c.tx.kernel {
		n, err := c.tc.Load().Write(b)
		return n, fromTLS(err)
	}
	if err := c.tx.lockWrite(); err != nil {
		return 0, err
	}
	defer c.tx.Unlock()
	return c.tx.writeKernel(b)
}

// beginWrite counts a write in flight, as crypto/tls does, so that a Close
// during it only closes the socket, to unblock it.
func (c *Conn) beginWrite() error {
	for {
		x := c.activeCall.Load()
		if x&1 != 0 {
			return net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x+2) {
			return nil
		}
	}
}

// beginDataWrite begins a write of application data: it counts the
// write, as beginWrite does, then completes the handshake, whose handoff
// decides who protects the bytes. Unless it fails, the caller must call
// endWrite.
func (c *Conn) beginDataWrite() error {
	if err := c.beginWrite(); err != nil {
		return err
	}
	if err := c.Handshake(); err != nil {
		c.endWrite()
		return err
	}
	return nil
}

// endWrite ends a write that beginWrite counted. The last one to end
// after a Close wipes the write secret, which Close left to it.
func (c *Conn) endWrite() {
	if c.activeCall.Add(-2) != 1 {
		return
	}
	c.tx.Lock()
	if c.tx.err == nil {
		c.tx.err = net.ErrClosed
	}
	c.tx.zeroSecretLocked()
	c.tx.Unlock()
}

// UpdateKeys sends a TLS 1.3 KeyUpdate and moves to the next write key
// (RFC 8446, Section 4.6.3). With requestPeer, it asks the peer to update
// its keys too. It needs TX offload, since crypto/tls has no such API, and
// a kernel that can rekey (Linux 6.14): elsewhere the error matches
// ErrNotSupported and the connection is unchanged.
func (c *Conn) UpdateKeys(requestPeer bool) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	if !c.tx.kernel {
		return fmt.Errorf("ktls: UpdateKeys needs TX offload: %w", ErrNotSupported)
	}
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	if err := c.tx.lockWrite(); err != nil {
		return err
	}
	defer c.tx.Unlock()
	return c.tx.updateKeyLocked(requestPeer)
}

// Close sends a close_notify alert, unless a write is in flight, and
// closes the connection. A Read or Write blocked on the connection
// returns. Close never waits for a write, nor for another Conn's WriteTo
// relaying into this one: as in crypto/tls, a Close during one only closes
// the socket, which makes it fail; a relay that is waiting for its source
// fails when the next data comes, and keeps that data for the source's
// next Read. Close then wipes the TLS 1.3 traffic secrets, or leaves that
// to the Read or write still using them, as it ends.
func (c *Conn) Close() error {
	var x int32
	for {
		x = c.activeCall.Load()
		if x&1 != 0 {
			return net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x|1) {
			break
		}
	}
	if !c.handshakeDone.Load() || !c.tx.kernel {
		// The handoff wiped the secrets of a connection the kernel didn't
		// take, and a failed handshake its own.
		return c.tc.Load().Close()
	}
	if x != 0 {
		// A write is in flight: this Close is to unblock it. The last
		// write to end wipes the write secret (endWrite).
		err := c.raw.Close()
		c.rx.zeroAfterClose()
		return err
	}
	// No write can start now, but the read side may hold the sending
	// side's lock to send a KeyUpdate the peer asked for to a peer that
	// doesn't read (alerts never wait: sendAlertBestEffort): the deadline
	// bounds that wait, as it bounds the close_notify.
	c.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	alertErr := c.tx.closeNotify()
	err := c.raw.Close()
	c.rx.zeroAfterClose()
	if err != nil {
		return err
	}
	return alertErr
}

// CloseWrite sends a close_notify alert and shuts down the writing side
// of the TCP connection. The peer reads io.EOF; this side can still read.
// It waits for a write in flight, as crypto/tls does.
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errEarlyCloseWrite
	}
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	var err error
	if c.tx.kernel {
		err = c.tx.closeNotify()
	} else {
		err = c.tc.Load().CloseWrite()
	}
	if err != nil {
		return err
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// unlockRX unlocks the reading side, giving back the record buffer unless
// plaintext in it waits to be read. After a Close, whose zeroAfterClose
// found it locked, the read that held it wipes the read secrets.
// Unlocking first and trying the lock again can't miss: either Close's
// TryLock came after this Unlock and did it, or it failed while this read
// held the lock, after Close had set bit 0, which is then seen here.
func (c *Conn) unlockRX() {
	c.rx.releaseBufLocked()
	c.rx.Unlock()
	if c.activeCall.Load()&1 != 0 {
		c.rx.zeroAfterClose()
	}
}

var _ net.Conn = (*Conn)(nil)
