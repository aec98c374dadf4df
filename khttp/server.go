// Package khttp serves and fetches HTTP over ktls connections.
//
// net/http treats a connection that is not a *tls.Conn as plaintext: it
// would serve a ktls.Conn without HTTP/2 and with sendfile only by luck.
// A Server runs the TLS handshake itself, then hands HTTP/1.1 connections
// to the http.Server, which sets Request.TLS (a ktls.Conn reports its
// ConnectionState) and sends file bodies with sendfile through the
// kernel, and serves HTTP/2 connections, negotiated by ALPN, with
// golang.org/x/net/http2 under the same http.Server's settings.
//
// # Connections the kernel doesn't encrypt
//
// net/http writes the first 512 bytes of a response body itself and hands
// the rest to the connection's ReadFrom, if it has one. Where the kernel
// encrypts, that is what sends a file with sendfile. Where transmission
// stayed in crypto/tls (no kernel TLS, a cipher the kernel lacks, TX
// disabled), it only costs a flush, a record and a read of the file more
// per response, which made small files cost more CPU than on net/http
// with crypto/tls (see docs/BENCHMARKS.md). So such a connection is
// handed to the http.Server as a net.Conn that wraps the *ktls.Conn
// without its ReadFrom, and responses are written as net/http writes
// them on a *tls.Conn.
//
// This is a choice, made on purpose, and it shows wherever net/http
// passes the connection on: the http.Server's ConnContext and ConnState
// hooks, and Hijack, get the *ktls.Conn itself where the kernel
// encrypts, and the wrapper where it doesn't, on HTTP/1.1 and HTTP/2
// alike. ConnFromNetConn returns the *ktls.Conn of either (so does the
// wrapper's NetConn method, as tls.Conn's returns the connection under
// it), and ConnFromContext returns it to handlers. The wrapper reads,
// writes, closes, sets deadlines and reports the ConnectionState as the
// *ktls.Conn does; for anything else, use the *ktls.Conn.
package khttp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/ktlsgo/ktls"
)

// A Server serves an http.Server's handler over ktls.
//
// Serve takes over HTTP's ConnContext (wrapping the one set, if any) so
// handlers can find their connection with ConnFromContext; otherwise the
// http.Server's fields mean what they mean to net/http: Handler,
// TLSConfig, the timeouts (the TLS handshake is bounded as net/http bounds
// it), ConnState, ErrorLog, BaseContext, Protocols (HTTP/2 is on unless
// Protocols leaves it out). Shutdown and Close stop it gracefully or not.
type Server struct {
	// HTTP is the server to run. Its TLSConfig, if set, must hold the
	// certificate, unless ServeTLS or ListenAndServeTLS load one.
	HTTP *http.Server
	// Options are the offload options of every connection.
	Options *ktls.Options
	// OnHandshake, if set, is called after each connection's TLS
	// handshake with its error (nil when it succeeded), before the
	// connection is served or closed: for metrics and logs.
	OnHandshake func(c *ktls.Conn, err error)

	mu        sync.Mutex
	h2        *http2.Server
	listeners map[net.Listener]struct{}
	conns     map[*ktls.Conn]struct{} // handshaking, or served as HTTP/2
	wg        sync.WaitGroup
	closing   bool
	userCtx   func(context.Context, net.Conn) context.Context
	hooked    bool
}

type connKey struct{}

// ConnFromContext returns the connection a request came on, from the
// request's context: its Offload says what the kernel does for it.
func ConnFromContext(ctx context.Context) (*ktls.Conn, bool) {
	c, ok := ctx.Value(connKey{}).(*ktls.Conn)
	return c, ok
}

// ListenAndServeTLS listens on srv.Addr (":https" if empty) and serves srv
// over ktls with the certificate and key in the files, as
// http.Server.ListenAndServeTLS does.
func ListenAndServeTLS(srv *http.Server, certFile, keyFile string) error {
	return (&Server{HTTP: srv}).ListenAndServeTLS(certFile, keyFile)
}

// ServeTLS serves srv over ktls on l, as http.Server.ServeTLS does.
func ServeTLS(srv *http.Server, l net.Listener, certFile, keyFile string) error {
	return (&Server{HTTP: srv}).ServeTLS(l, certFile, keyFile)
}

// ListenAndServeTLS listens on the http.Server's Addr and serves.
func (s *Server) ListenAndServeTLS(certFile, keyFile string) error {
	addr := s.HTTP.Addr
	if addr == "" {
		addr = ":https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	return s.ServeTLS(ln, certFile, keyFile)
}

// ServeTLS serves on l with the certificate and key in the files, added
// to a clone of the http.Server's TLSConfig.
func (s *Server) ServeTLS(l net.Listener, certFile, keyFile string) error {
	cfg := &tls.Config{}
	if s.HTTP.TLSConfig != nil {
		cfg = s.HTTP.TLSConfig.Clone()
	}
	if certFile != "" || keyFile != "" || len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	return s.serve(l, cfg)
}

// Serve serves on l, whose connections must be TCP, with the http.Server's
// TLSConfig.
func (s *Server) Serve(l net.Listener) error {
	cfg := s.HTTP.TLSConfig
	if cfg == nil || len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("khttp: TLSConfig has no certificate")
	}
	return s.serve(l, cfg.Clone())
}

func (s *Server) serve(l net.Listener, cfg *tls.Config) error {
	srv := s.HTTP
	if err := s.setup(); err != nil {
		return err
	}
	if len(cfg.NextProtos) == 0 {
		if s.http2() {
			cfg.NextProtos = append(cfg.NextProtos, "h2")
		}
		cfg.NextProtos = append(cfg.NextProtos, "http/1.1")
	}
	if !track(s, &s.listeners, l, true) {
		return http.ErrServerClosed
	}
	defer track(s, &s.listeners, l, false)

	// HTTP/1.1 connections go to the http.Server through h1, once their
	// handshake is done.
	h1 := newConnListener(l.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(h1) }()
	defer func() {
		h1.Close()
		<-served
	}()

	var backoff time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			// As net/http: back off on temporary errors, among them
			// running out of file descriptors (a client that opens
			// connections until none are left), which connections that
			// end give back.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := ktls.ServerWithOptions(raw, cfg, s.Options)
		if !track(s, &s.conns, c, true) {
			c.Close()
			return http.ErrServerClosed
		}
		s.wg.Add(1)
		go s.handshake(l, c, h1)
	}
}

// setup makes the HTTP/2 server and hooks the http.Server once.
func (s *Server) setup() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooked {
		return nil
	}
	s.hooked = true
	srv := s.HTTP
	s.userCtx = srv.ConnContext
	srv.ConnContext = s.connContext
	s.h2 = &http2.Server{}
	// ConfigureServer registers the HTTP/2 server's graceful shutdown
	// (GOAWAY) with srv.Shutdown.
	if err := http2.ConfigureServer(srv, s.h2); err != nil {
		return err
	}
	srv.RegisterOnShutdown(s.closeHandshakes)
	return nil
}

func (s *Server) http2() bool {
	p := s.HTTP.Protocols
	return p == nil || p.HTTP2()
}

func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if s.userCtx != nil {
		ctx = s.userCtx(ctx, c)
	}
	if kc, ok := ConnFromNetConn(c); ok {
		ctx = context.WithValue(ctx, connKey{}, kc)
	}
	return ctx
}

// ConnFromNetConn returns the *ktls.Conn that c is, or wraps: for the
// connections the http.Server's ConnState hook and Hijack get, which wrap
// it where the kernel doesn't encrypt (see the package documentation).
func ConnFromNetConn(c net.Conn) (*ktls.Conn, bool) {
	switch c := c.(type) {
	case *ktls.Conn:
		return c, true
	case fallbackConn:
		return c.c, true
	}
	return nil, false
}

// served is c as the http.Server gets it: itself where the kernel
// encrypts, else without its ReadFrom (see fallbackConn).
func served(c *ktls.Conn) net.Conn {
	if c.Offload().TX {
		return c
	}
	return fallbackConn{c}
}

// fallbackConn is a *ktls.Conn whose transmission stayed in crypto/tls,
// as the http.Server gets it: without ReadFrom, which net/http would hand
// every response body to after writing its first 512 bytes: a flush, a
// record, and a read of the file more per response, where the kernel
// doesn't take the body with sendfile. Hiding it makes net/http write
// responses as it does on a *tls.Conn.
type fallbackConn struct{ c *ktls.Conn }

func (f fallbackConn) Read(b []byte) (int, error)         { return f.c.Read(b) }
func (f fallbackConn) Write(b []byte) (int, error)        { return f.c.Write(b) }
func (f fallbackConn) Close() error                       { return f.c.Close() }
func (f fallbackConn) LocalAddr() net.Addr                { return f.c.LocalAddr() }
func (f fallbackConn) RemoteAddr() net.Addr               { return f.c.RemoteAddr() }
func (f fallbackConn) SetDeadline(t time.Time) error      { return f.c.SetDeadline(t) }
func (f fallbackConn) SetReadDeadline(t time.Time) error  { return f.c.SetReadDeadline(t) }
func (f fallbackConn) SetWriteDeadline(t time.Time) error { return f.c.SetWriteDeadline(t) }

// CloseWrite is for net/http, which sends close_notify and waits before
// closing a connection whose request it refused.
func (f fallbackConn) CloseWrite() error { return f.c.CloseWrite() }

// ConnectionState is for net/http, which sets Request.TLS from it.
func (f fallbackConn) ConnectionState() tls.ConnectionState { return f.c.ConnectionState() }

// WriteTo keeps the *ktls.Conn's: what w doesn't take is kept for the
// next Read, where a plain copy loop would lose it.
func (f fallbackConn) WriteTo(w io.Writer) (int64, error) { return f.c.WriteTo(w) }

// NetConn returns the *ktls.Conn, as tls.Conn.NetConn returns the
// connection under it.
func (f fallbackConn) NetConn() net.Conn { return f.c }

// handshakeTimeout bounds the handshake as net/http does: the smallest of
// the read and write timeouts that are set.
func (s *Server) handshakeTimeout() time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{s.HTTP.ReadHeaderTimeout, s.HTTP.ReadTimeout, s.HTTP.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

func (s *Server) handshake(l net.Listener, c *ktls.Conn, h1 *connListener) {
	defer s.wg.Done()
	srv := s.HTTP
	if d := s.handshakeTimeout(); d > 0 {
		c.SetDeadline(time.Now().Add(d))
	}
	err := c.Handshake()
	if s.OnHandshake != nil {
		s.OnHandshake(c, err)
	}
	if err != nil {
		track(s, &s.conns, c, false)
		reason := err.Error()
		// As net/http: a client speaking plain HTTP (a user who typed
		// http://) gets a 400 it can read, in plain text on the socket.
		if re, ok := err.(tls.RecordHeaderError); ok && re.Conn != nil && recordHeaderLooksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, plainHTTPResponse)
			reason = "client sent an HTTP request to an HTTPS server"
		}
		c.Close()
		s.logf("http: TLS handshake error from %s: %v", c.RemoteAddr(), reason)
		return
	}
	c.SetDeadline(time.Time{})
	nc := served(c)
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		track(s, &s.conns, c, false)
		if !h1.push(nc) {
			c.Close()
		}
		return
	}
	// HTTP/2: served here, on the http.Server's settings.
	defer track(s, &s.conns, c, false)
	ctx := context.Background()
	if srv.BaseContext != nil {
		ctx = srv.BaseContext(l)
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, srv)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	ctx = s.connContext(ctx, nc)
	if srv.ConnState != nil {
		srv.ConnState(nc, http.StateNew)
	}
	s.h2.ServeConn(nc, &http2.ServeConnOpts{Context: ctx, BaseConfig: srv, Handler: srv.Handler})
	// net/http reports StateNew and StateClosed for the connections it
	// serves, and the HTTP/2 server leaves both to it: so does this.
	if srv.ConnState != nil {
		srv.ConnState(nc, http.StateClosed)
	}
}

// plainHTTPResponse is net/http's answer to an HTTP request on its
// HTTPS port.
const plainHTTPResponse = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// IsPlainHTTP reports whether err, a failed handshake's, came from a
// client speaking plain HTTP to the TLS port (a user who typed http://),
// by net/http's own test of the record header crypto/tls refused.
func IsPlainHTTP(err error) bool {
	var re tls.RecordHeaderError
	return errors.As(err, &re) && recordHeaderLooksLikeHTTP(re.RecordHeader)
}

// recordHeaderLooksLikeHTTP reports whether a record header that
// crypto/tls refused is the start of an HTTP request, by net/http's own
// test.
func recordHeaderLooksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

func (s *Server) logf(format string, args ...any) {
	if s.HTTP.ErrorLog != nil {
		s.HTTP.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// track adds x to the set, or removes it, under s.mu. It adds nothing
// once the server is closing, and says so.
func track[T comparable](s *Server, set *map[T]struct{}, x T, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(*set, x)
		return true
	}
	if s.closing {
		return false
	}
	if *set == nil {
		*set = map[T]struct{}{}
	}
	(*set)[x] = struct{}{}
	return true
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// closeHandshakes runs when the http.Server shuts down: it stops
// accepting, and ends the handshakes in progress.
func (s *Server) closeHandshakes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		if !c.ConnectionState().HandshakeComplete {
			c.Close()
		}
	}
}

// Shutdown shuts the server down gracefully: no new connections, HTTP/2
// connections get GOAWAY, and it waits for active requests on both
// protocols to finish, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.HTTP.Shutdown(ctx)
	s.closeHandshakes()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	err := s.HTTP.Close()
	s.closeHandshakes()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return err
}

// connListener is the listener the http.Server serves: it yields the
// connections whose handshake chose HTTP/1.1.
type connListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
