package khttp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/http2"

	"github.com/ktlsgo/ktls"
)

// NewTransport returns an http.Transport for HTTP/1.1 whose HTTPS
// connections are ktls connections. config may be nil; it is cloned per
// connection, with ServerName set from the address when empty. Like
// http.DefaultTransport, it uses the environment's proxy settings and
// pools connections.
func NewTransport(config *tls.Config, opts *ktls.Options) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	t.TLSClientConfig = config
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dial(ctx, network, addr, config, opts, "http/1.1")
	}
	return t
}

// NewHTTP2Transport returns an HTTP/2 transport (golang.org/x/net/http2)
// whose connections are ktls connections. Servers must speak HTTP/2.
func NewHTTP2Transport(config *tls.Config, opts *ktls.Options) *http2.Transport {
	return &http2.Transport{
		TLSClientConfig: config,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			c, err := dial(ctx, network, addr, config, opts, "h2")
			if err != nil {
				return nil, err
			}
			if p := c.(*ktls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
				c.Close()
				return nil, fmt.Errorf("khttp: %s negotiated %q, not h2", addr, p)
			}
			return c, nil
		},
	}
}

func dial(ctx context.Context, network, addr string, config *tls.Config, opts *ktls.Options, proto string) (net.Conn, error) {
	cfg := &tls.Config{}
	if config != nil {
		cfg = config.Clone()
	}
	cfg.NextProtos = []string{proto}
	d := &ktls.Dialer{
		NetDialer: &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		Config:    cfg,
		Options:   opts,
	}
	return d.DialContext(ctx, network, addr)
}
