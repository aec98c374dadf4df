package ktls

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktlsgo/ktls/internal/handoff"
	"github.com/ktlsgo/ktls/internal/keylog"
	"github.com/ktlsgo/ktls/internal/keyschedule"
	"github.com/ktlsgo/ktls/internal/record"
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
	// activeCall counts Writes in flight and has bit 0 set once Close has
	// been called, as in crypto/tls: a Close during a Write only closes the
	// socket, to unblock it.
	activeCall atomic.Int32
}

// handshakeConn is what crypto/tls runs over: the record-boundary reader,
// plus the secrets of this connection's handshake. A server's
// GetConfigForClient finds it as ClientHelloInfo.Conn.
type handshakeConn struct {
	*handoff.Conn
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
	c.tc = tls.Client(c.hc, clientConfig(config, c.hc))
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
	c.tc = tls.Server(c.hc, serverConfig(config, c.hc))
	return c
}

func newConn(conn net.Conn, config *tls.Config, opts *Options, isClient bool) *Conn {
	c := &Conn{raw: conn, isClient: isClient, config: config}
	if opts != nil {
		c.opts = *opts
	}
	c.hc = &handshakeConn{Conn: handoff.NewConn(conn, isClient)}
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
	if err := c.tc.HandshakeContext(ctx); err != nil {
		return fromTLS(err)
	}
	c.handoff()
	c.handshakeDone.Store(true)
	return nil
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
	defer c.in.Unlock()
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

func (c *Conn) endWrite() { c.activeCall.Add(-2) }

// lockOut locks the writing side of an offloaded connection, or says why
// nothing more can be written.
func (c *Conn) lockOut() error {
	c.out.Lock()
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
	if err := c.lockOut(); err != nil {
		return err
	}
	defer c.out.Unlock()
	return c.updateTXLocked(requestPeer)
}

// Close sends a close_notify alert, unless a Write is in flight, and
// closes the connection. A Read or Write blocked on the connection
// returns.
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
		return c.tc.Close()
	}
	if x != 0 {
		// A Write is in flight: this Close is to unblock it.
		return c.raw.Close()
	}
	alertErr := c.closeNotify()
	if err := c.raw.Close(); err != nil {
		return err
	}
	return alertErr
}

// CloseWrite sends a close_notify alert and shuts down the writing side
// of the TCP connection. The peer reads io.EOF; this side can still read.
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errEarlyCloseWrite
	}
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

// closeNotify sends close_notify through the kernel, bounded by a 5 s
// write deadline as crypto/tls does, so Close never hangs on a peer that
// doesn't read.
func (c *Conn) closeNotify() error {
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.closing {
		return nil
	}
	c.out.closing = true
	c.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err := c.sendAlertLocked(record.AlertLevelWarning, record.AlertCloseNotify)
	c.raw.SetWriteDeadline(time.Time{})
	return err
}

// rawConn is the socket under the connection; the handoff checked it has
// one.
func (c *Conn) rawConn() syscall.RawConn {
	rc, _ := c.raw.(syscall.Conn).SyscallConn()
	return rc
}

var _ net.Conn = (*Conn)(nil)
