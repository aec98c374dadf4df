package ktls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
)

// Listen creates a TLS listener on the given network address with
// net.Listen, as tls.Listen does. config must hold at least one
// certificate, or set GetCertificate or GetConfigForClient. The
// connections Accept returns are *Conn.
func Listen(network, laddr string, config *tls.Config) (net.Listener, error) {
	return ListenWithOptions(network, laddr, config, nil)
}

// ListenWithOptions is Listen with offload options for every connection.
func ListenWithOptions(network, laddr string, config *tls.Config, opts *Options) (net.Listener, error) {
	if config == nil || len(config.Certificates) == 0 &&
		config.GetCertificate == nil && config.GetConfigForClient == nil {
		return nil, errors.New("tls: neither Certificates, GetCertificate, nor GetConfigForClient set in Config")
	}
	l, err := net.Listen(network, laddr)
	if err != nil {
		return nil, err
	}
	return NewListenerWithOptions(l, config, opts), nil
}

// NewListener returns a listener whose Accept wraps each connection of
// inner with Server. inner should yield *net.TCPConn.
func NewListener(inner net.Listener, config *tls.Config) net.Listener {
	return NewListenerWithOptions(inner, config, nil)
}

// NewListenerWithOptions is NewListener with offload options for every
// connection.
func NewListenerWithOptions(inner net.Listener, config *tls.Config, opts *Options) net.Listener {
	return &listener{Listener: inner, config: config, opts: opts}
}

type listener struct {
	net.Listener
	config *tls.Config
	opts   *Options
}

// Accept waits for a connection and returns it as a *Conn, before the
// handshake.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return ServerWithOptions(c, l.config, l.opts), nil
}

// Dial connects to addr and runs a client handshake, as tls.Dial does.
func Dial(network, addr string, config *tls.Config) (*Conn, error) {
	return DialWithDialer(new(net.Dialer), network, addr, config)
}

// DialWithDialer is Dial with a net.Dialer, whose Timeout and Deadline
// bound the connection and the handshake together, as with
// tls.DialWithDialer.
func DialWithDialer(dialer *net.Dialer, network, addr string, config *tls.Config) (*Conn, error) {
	return dial(context.Background(), dialer, network, addr, config, nil)
}

// A Dialer dials TLS connections, as tls.Dialer does, and offloads them.
type Dialer struct {
	// NetDialer is the dialer for the TCP connection; nil means a zero
	// net.Dialer.
	NetDialer *net.Dialer
	// Config is the TLS configuration; nil means the zero config, with
	// ServerName taken from the address.
	Config *tls.Config
	// Options are the offload options; nil means the defaults.
	Options *Options
}

// Dial dials addr and runs the handshake. The net.Conn it returns is a
// *Conn.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext is Dial with a context that bounds the connection and the
// handshake; once they are done, it has no effect.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := d.NetDialer
	if nd == nil {
		nd = new(net.Dialer)
	}
	c, err := dial(ctx, nd, network, addr, d.Config, d.Options)
	if err != nil {
		// Don't return a typed nil.
		return nil, err
	}
	return c, nil
}

func dial(ctx context.Context, nd *net.Dialer, network, addr string, config *tls.Config, opts *Options) (*Conn, error) {
	if nd.Timeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nd.Timeout)
		defer cancel()
	}
	if !nd.Deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, nd.Deadline)
		defer cancel()
	}
	raw, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if config == nil {
		config = &tls.Config{}
	}
	// As tls.Dial: without a ServerName, verify the host being dialed.
	if config.ServerName == "" {
		host := addr
		if i := strings.LastIndex(addr, ":"); i >= 0 {
			host = addr[:i]
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		c := config.Clone()
		c.ServerName = host
		config = c
	}
	conn := ClientWithOptions(raw, config, opts)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}
