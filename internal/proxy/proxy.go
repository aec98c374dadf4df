// Package proxy is the ktls proxy command: a TLS terminator whose
// connections run on kernel TLS. Plaintext moves between the client and
// the backend with splice, both ways, without passing through user space;
// half-closes pass through, and idle connections are closed.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/serve"
)

// Config is what the command line sets.
type Config struct {
	Listen   string
	Backend  string // host:port of the plaintext TCP service
	CertFile string // PEM; with KeyFile, else self-signed
	KeyFile  string
	// IdleTimeout closes a connection on which nothing moved, either
	// way, for this long. Zero means 5 minutes.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake; zero means 10 seconds.
	HandshakeTimeout time.Duration
	Options          *ktls.Options

	Stdout io.Writer
	Log    *slog.Logger
}

// Run proxies until ctx ends, then stops accepting and waits (up to 10 s)
// for the connections to finish.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Backend == "" {
		return errors.New("--backend is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Backend); err != nil {
		return fmt.Errorf("--backend: %w", err)
	}
	cert, err := serve.Certificate(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return err
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	ln, err := ktls.ListenWithOptions("tcp", cfg.Listen, &tls.Config{Certificates: []tls.Certificate{cert}}, cfg.Options)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Stdout, "proxying tls://%s to %s (kernel TLS: %s)\n", ln.Addr(), cfg.Backend, serve.KernelState(cfg.Options))
	cfg.Log.Info("proxying", "listen", ln.Addr().String(), "backend", cfg.Backend)

	p := &proxy{cfg: cfg, conns: map[net.Conn]struct{}{}}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		p.wg.Add(1)
		go p.handle(c.(*ktls.Conn))
	}
	cfg.Log.Info("shutting down")
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.closeAll()
		<-done
	}
	return nil
}

type proxy struct {
	cfg   Config
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (p *proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// handle serves one client: handshake, dial the backend, copy both ways.
func (p *proxy) handle(c *ktls.Conn) {
	defer p.wg.Done()
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	start := time.Now()
	log := p.cfg.Log.With("remote", c.RemoteAddr().String())

	c.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	if err := c.Handshake(); err != nil {
		log.Warn("handshake failed", "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	b, err := net.DialTimeout("tcp", p.cfg.Backend, 10*time.Second)
	if err != nil {
		log.Warn("backend unreachable", "backend", p.cfg.Backend, "err", err)
		return
	}
	p.track(b, true)
	defer p.track(b, false)
	defer b.Close()
	backend := b.(*net.TCPConn)

	var lastActive atomic.Int64
	lastActive.Store(time.Now().UnixNano())
	var up, down int64
	var upErr, downErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Client to backend: the kernel decrypts, splice carries it.
		up, upErr = p.copyIdle(c, &lastActive, func() (int64, error) { return c.WriteTo(backend) })
		backend.CloseWrite()
		if upErr != nil {
			// The client is gone or broken: the other way can stop too.
			backend.Close()
		}
	}()
	go func() {
		defer wg.Done()
		// Backend to client: splice into the socket the kernel encrypts.
		down, downErr = p.copyIdle(backend, &lastActive, func() (int64, error) { return c.ReadFrom(backend) })
		if downErr == nil {
			c.CloseWrite()
		} else {
			c.Close()
		}
	}()
	wg.Wait()
	o := c.Offload()
	log.Info("connection", "backend", p.cfg.Backend, "bytes_up", up, "bytes_down", down,
		"duration", time.Since(start).Round(time.Millisecond), "ktls", o.String(),
		"up_err", errString(upErr), "down_err", errString(downErr))
}

// copyIdle runs copy, a copy that returns at src's read deadline, again
// and again while data moves either way; it stops when the copy ends, or
// when nothing moved either way for the idle timeout.
func (p *proxy) copyIdle(src net.Conn, lastActive *atomic.Int64, copy func() (int64, error)) (int64, error) {
	idle := p.cfg.IdleTimeout
	var total int64
	for {
		src.SetReadDeadline(time.Now().Add(idle))
		n, err := copy()
		total += n
		now := time.Now()
		if n > 0 {
			lastActive.Store(now.UnixNano())
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		if since := now.Sub(time.Unix(0, lastActive.Load())); since >= idle {
			return total, fmt.Errorf("idle for %v", since.Round(time.Second))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
