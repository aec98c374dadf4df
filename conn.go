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
	"syscall"
	"time"

	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
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
	hc       *handshakeConn
	tc       *tls.Conn
	isClient bool
	opts     Options
	config   *tls.Config // the user's, never modified

	handshakeMu   sync.Mutex
	handshakeDone atomic.Bool
	offload       Offload
	requiredErr   error // a Required direction was not offloaded: the connection failed

	// Set by the handoff.
	suite    *keyschedule.Suite
	txSecret *keyschedule.ApplicationSecret // TLS 1.3, for KeyUpdate
	rxSecret *keyschedule.ApplicationSecret
	kernelTX bool
	kernelRX atomic.Bool
	deferred *deferredRX // TLS 1.3 client RX, waiting for tickets

	// While crypto/tls still reads, the records it writes are opened with
	// its write state and sent again through the kernel.
	translate       *record.Protector
	translateSecret *keyschedule.ApplicationSecret // TLS 1.3

	in struct {
		sync.Mutex
		pending []byte // plaintext read but not yet returned
		buf     []byte
		err     error // sticky, except for timeouts
		sys     kernelReadState
	}
	out struct {
		sync.Mutex
		err     error // sticky
		closing bool  // close_notify sent
		// Records under the current write key: counted exactly at the
		// last check, and at most estimated since. See afterWrite.
		counted, estimated uint64
	}
	// updateTX is set when the peer asked for a key update while a write
	// held c.out: the update then happens before the next chunk of data.
	// Waiting for c.out in the reader could deadlock two ends whose
	// writers each wait for the other's reader.
	updateTX atomic.Bool
	// activeCall counts writes in flight (Write, ReadFrom, UpdateKeys,
	// CloseWrite, and a relay from another Conn's WriteTo into this one)
	// and has bit 0 set once Close has been called, as in crypto/tls: a
	// Close during a write only closes the socket, to unblock it, and never
	// waits for c.out.
	activeCall atomic.Int32
	// writeFailed is the fatal alert the read side sent, or would have
	// sent had a writer not held c.out. A fatal error ends both directions
	// (RFC 8446, Section 6.2), but the reader can't wait for c.out: a
	// writer may hold it for as long as the peer doesn't read. So the
	// reader records the error here, without the lock, and shuts the
	// socket for writing to end a blocked call; writers check it between
	// chunks and report it in place of the error the shutdown gave them.
	writeFailed atomic.Pointer[error]
}

// handshakeConn is what crypto/tls runs over: the record-boundary reader,
// plus the secrets of this connection's handshake. A server's
// GetConfigForClient finds it as ClientHelloInfo.Conn.
type handshakeConn struct {
	*recordio.Conn
	secrets *keylog.Secrets
	// resumed is the session the handshake may resume, as the client's
	// cache or the server's UnwrapSession gave it to crypto/tls; ktls
	// only reads it (masterSecret).
	resumed *tls.SessionState
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
	c := newConn(conn, config, opts, true)
	c.tc = tls.Client(c.hc, c.handshakeConfig(clientConfig))
	return c
}

// Server returns a new server side of a TLS connection over conn, as
// tls.Server does. config must hold at least one certificate, or set
// GetCertificate or GetConfigForClient.
func Server(conn net.Conn, config *tls.Config) *Conn {
	return ServerWithOptions(conn, config, nil)
}

// ServerWithOptions is Server with offload options.
func ServerWithOptions(conn net.Conn, config *tls.Config, opts *Options) *Conn {
	c := newConn(conn, config, opts, false)
	c.tc = tls.Server(c.hc, c.handshakeConfig(serverConfig))
	return c
}

func newConn(conn net.Conn, config *tls.Config, opts *Options, isClient bool) *Conn {
	c := &Conn{raw: conn, isClient: isClient, config: config}
	if opts != nil {
		c.opts = *opts
	}
	c.hc = &handshakeConn{Conn: recordio.NewConn(conn, isClient)}
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
	if err := c.tc.HandshakeContext(ctx); err != nil {
		// No handoff will wipe what the key log collected before the
		// failure (a peer can fail a handshake after the traffic secrets,
		// by sending no certificate, say): do it now.
		c.zeroSecrets()
		return c.handshakeError(err)
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
		// this handshake or a relay into this Conn, may hold c.out for
		// long: the last of them to end wipes the write secret
		// (endWrite).
		if x == 1 {
			c.out.Lock()
			c.zeroTXLocked()
			c.out.Unlock()
		}
		c.zeroRX()
		// Close went to crypto/tls, which may have sealed its
		// close_notify under the application key after the handoff
		// counted the records and before it took over crypto/tls's
		// writes: at the sequence number the kernel now starts from.
		// Nothing more may go out under that key, so the socket closes
		// here, before any Read or Write can get the kernel to send.
		c.raw.Close()
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
	if c.kernelTX {
		c.out.Lock()
		c.sendAlertLocked(record.AlertLevelFatal, record.AlertInternalError)
		c.out.Unlock()
	}
	c.raw.Close()
	c.in.Lock()
	if c.deferred != nil {
		c.deferred.secret.Zero()
		c.deferred = nil
	}
	c.in.Unlock()
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

// ConnectionState returns the state of the handshake, from crypto/tls.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// OCSPResponse returns the stapled OCSP response from the TLS server, if
// any, as tls.Conn.OCSPResponse does. (Valid for client connections only.)
func (c *Conn) OCSPResponse() []byte { return c.tc.OCSPResponse() }

// VerifyHostname checks that the peer certificate chain is valid for
// connecting to host, as tls.Conn.VerifyHostname does: it fails before
// the handshake and when the chain was not verified.
func (c *Conn) VerifyHostname(host string) error { return c.tc.VerifyHostname(host) }

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
	c.in.Lock()
	defer c.unlockIn()
	if len(c.in.pending) > 0 {
		n := copy(b, c.in.pending)
		c.in.pending = c.in.pending[n:]
		return n, nil
	}
	if c.in.err != nil {
		return 0, c.in.err
	}
	switch {
	case c.kernelRX.Load():
		return c.readKernel(b)
	case c.deferred != nil:
		return c.readDeferred(b)
	}
	return c.readTLS(b)
}

// readTLS reads through crypto/tls, which returns io.EOF for a connection
// that ended without close_notify, as for one that sent it: tell them
// apart.
func (c *Conn) readTLS(b []byte) (int, error) {
	n, err := c.tc.Read(b)
	if err == io.EOF && c.hc.SawEOF() {
		err = io.ErrUnexpectedEOF
	}
	return n, fromTLS(err)
}

// Write writes plaintext, as tls.Conn.Write does.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.beginWrite(); err != nil {
		return 0, err
	}
	defer c.endWrite()
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if !c.kernelTX {
		n, err := c.tc.Write(b)
		return n, fromTLS(err)
	}
	if err := c.lockOut(); err != nil {
		return 0, err
	}
	defer c.out.Unlock()
	return c.writeKernel(b)
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

// endWrite ends a write that beginWrite counted. The last one to end
// after a Close wipes the write secret, which Close left to it.
func (c *Conn) endWrite() {
	if c.activeCall.Add(-2) != 1 {
		return
	}
	c.out.Lock()
	if c.out.err == nil {
		c.out.err = net.ErrClosed
	}
	c.zeroTXLocked()
	c.out.Unlock()
}

// writeFailure returns the error that ended the writing side from the
// read side (see writeFailed), or nil.
func (c *Conn) writeFailure() error {
	if p := c.writeFailed.Load(); p != nil {
		return *p
	}
	return nil
}

// failWrites records err as the end of the writing side, unless an error
// is there already, and returns the one that stays.
func (c *Conn) failWrites(err error) error {
	c.writeFailed.CompareAndSwap(nil, &err)
	return c.writeFailure()
}

// lockOut locks the writing side of an offloaded connection, or says why
// nothing more can be written.
func (c *Conn) lockOut() error {
	c.out.Lock()
	if err := c.writeFailure(); err != nil && c.out.err == nil {
		c.out.err = err
	}
	switch {
	case c.out.err != nil:
		err := c.out.err
		c.out.Unlock()
		return err
	case c.out.closing:
		c.out.Unlock()
		return errShutdown
	}
	return nil
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
	if !c.kernelTX {
		return fmt.Errorf("ktls: UpdateKeys needs TX offload: %w", ErrNotSupported)
	}
	if err := c.beginWrite(); err != nil {
		return err
	}
	defer c.endWrite()
	if err := c.lockOut(); err != nil {
		return err
	}
	defer c.out.Unlock()
	return c.updateTXLocked(requestPeer)
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
	if !c.handshakeDone.Load() || !c.kernelTX {
		// The handoff wiped the secrets of a connection the kernel didn't
		// take, and a failed handshake its own.
		return c.tc.Close()
	}
	if x != 0 {
		// A write is in flight: this Close is to unblock it. The last
		// write to end wipes the write secret (endWrite).
		err := c.raw.Close()
		c.zeroRX()
		return err
	}
	// No write can start now, but the read side may hold c.out to send an
	// alert or a KeyUpdate to a peer that doesn't read: the deadline
	// bounds that wait, as it bounds the close_notify.
	c.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	alertErr := c.closeNotify()
	err := c.raw.Close()
	c.zeroRX()
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
	if c.kernelTX {
		err = c.closeNotify()
	} else {
		err = c.tc.CloseWrite()
	}
	if err != nil {
		return err
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// closeNotifyTimeout bounds the close_notify, as in crypto/tls, so Close
// never hangs on a peer that doesn't read.
const closeNotifyTimeout = 5 * time.Second

// closeNotify sends close_notify through the kernel. Nothing is written
// after it, not even a KeyUpdate, so the write secret is wiped.
func (c *Conn) closeNotify() error {
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closing {
		return nil
	}
	c.out.closing = true
	defer c.zeroTXLocked()
	if c.writeFailure() != nil {
		// A fatal alert went first, or the socket is shut for writing.
		return nil
	}
	c.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	err := c.sendAlertLocked(record.AlertLevelWarning, record.AlertCloseNotify)
	c.raw.SetWriteDeadline(time.Time{})
	return err
}

// zeroTXLocked wipes the TLS 1.3 write secret, which only a KeyUpdate
// needs, once nothing more can be written. c.out is locked.
func (c *Conn) zeroTXLocked() {
	if c.txSecret != nil {
		c.txSecret.Zero()
		c.txSecret = nil
	}
}

// unlockIn unlocks the reading side. After a Close, whose zeroRX found it
// locked, the read that held it wipes the read secrets. Unlocking first
// and trying the lock again can't miss: either Close's TryLock came after
// this Unlock and did it, or it failed while this read held the lock,
// after Close had set bit 0, which is then seen here.
func (c *Conn) unlockIn() {
	c.in.Unlock()
	if c.activeCall.Load()&1 != 0 {
		c.zeroRX()
	}
}

// zeroRX wipes the read side's TLS 1.3 secrets after Close, unless a read
// holds c.in; that read does it as it ends (unlockIn). Waiting for it
// could mean waiting for a relay blocked on another connection.
func (c *Conn) zeroRX() {
	if !c.in.TryLock() {
		return
	}
	defer c.in.Unlock()
	if c.in.err == nil {
		// Reads after Close fail before they could need a secret.
		c.in.err = net.ErrClosed
	}
	for _, s := range []**keyschedule.ApplicationSecret{&c.rxSecret, &c.translateSecret} {
		if *s != nil {
			(*s).Zero()
			*s = nil
		}
	}
	if d := c.deferred; d != nil && d.secret != nil {
		// The same secret as c.rxSecret, until a KeyUpdate.
		d.secret.Zero()
		d.secret = nil
		if d.err == nil {
			d.err = net.ErrClosed
		}
	}
}

// rawConn is the socket under the connection; the handoff checked it has
// one.
func (c *Conn) rawConn() syscall.RawConn {
	rc, _ := c.raw.(syscall.Conn).SyscallConn()
	return rc
}

var _ net.Conn = (*Conn)(nil)
