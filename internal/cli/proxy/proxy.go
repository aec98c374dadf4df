// Package proxy is the ktls proxy command: a TLS terminator whose
// connections run on kernel TLS. Plaintext moves between the client and
// the backend with splice, both ways, without passing through user space;
// half-closes pass through, and idle connections, and those to a peer
// that stops reading, are closed.
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
	"syscall"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/cli/serve"
)

// Config is what the command line sets.
type Config struct {
	Listen   string
	Backend  string // host:port of the plaintext TCP service
	CertFile string // PEM; with KeyFile, else self-signed
	KeyFile  string
	// IdleTimeout closes a connection on which nothing moved, either
	// way, for this long, with no write waiting (WriteTimeout bounds
	// those). Zero means 5 minutes.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection, both ways, when a write to
	// either peer makes no progress for this long: a peer that stops
	// reading can't hold it. Zero means 60 seconds, as nginx's
	// send_timeout.
	WriteTimeout time.Duration
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
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{"--idle", cfg.IdleTimeout}, {"--write-timeout", cfg.WriteTimeout}, {"--handshake-timeout", cfg.HandshakeTimeout}} {
		if t.d < 0 {
			return fmt.Errorf("%s: %v is negative", t.flag, t.d)
		}
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
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = time.Minute
	}
	ln, err := ktls.ListenWithOptions("tcp", cfg.Listen, &tls.Config{Certificates: []tls.Certificate{cert}}, cfg.Options)
	if err != nil {
		return err
	}
	state := serve.OffloadModes(cfg.Options)
	fmt.Fprintf(cfg.Stdout, "proxying tls://%s to %s (kernel TLS: %s)\n", ln.Addr(), cfg.Backend, state)
	cfg.Log.Info("proxying", "listen", ln.Addr().String(), "backend", cfg.Backend, "kernel_tls", state)

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
			// Out of file descriptors (a client that opens connections
			// until none are left) is, as to net/http, a reason to wait,
			// not to stop: connections that end give them back.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
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
	cfg      Config
	offloads serve.OffloadLog // the sentence of each kind of outcome, once
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
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

	pr := &pair{client: c, backend: b.(*net.TCPConn), idle: p.cfg.IdleTimeout, write: p.cfg.WriteTimeout}
	pr.touch()
	var up, down int64
	var upErr, downErr error
	var wg sync.WaitGroup
	// relay runs one way until its source ends, then passes the end on
	// (FIN, or close_notify) to the other side.
	relay := func(n *int64, err *error, copy func() (int64, error), closeWrite func() error) {
		defer wg.Done()
		*n, *err = copy()
		if *err != nil {
			// A peer is gone, broken, idle or not taking what it is
			// sent: the pair ends, both ways.
			pr.abort()
			return
		}
		closeWrite()
	}
	wg.Add(2)
	go relay(&up, &upErr, pr.up, pr.backend.CloseWrite)
	go relay(&down, &downErr, pr.down, c.CloseWrite)
	wg.Wait()
	// Each connection says what the kernel took, and why not in one
	// word; the sentence is logged once for each kind of outcome.
	o := c.Offload()
	p.offloads.First(p.cfg.Log, o)
	attrs := []any{"backend", p.cfg.Backend, "bytes_up", up, "bytes_down", down,
		"duration", time.Since(start).Round(time.Millisecond), "ktls", serve.OffloadLabel(o)}
	if code := o.TXCode(); code != "" {
		attrs = append(attrs, "ktls_tx_reason", code)
	}
	if code := o.RXCode(); code != "" {
		attrs = append(attrs, "ktls_rx_reason", code)
	}
	attrs = append(attrs, "up_err", errString(upErr), "down_err", errString(downErr))
	log.Info("connection", attrs...)
}

// A pair is a client and its backend connection. Plaintext moves both
// ways in bounded steps, so that no peer holds the pair for longer than
// the timeouts: a write that makes no progress for write ends it (a peer
// that stopped reading), and so does idle with nothing moved and nothing
// waiting to be written either way. A clean end one way (close_notify,
// FIN) is passed on as a half-close; any other end of either direction
// closes both connections, which also ends the other direction wherever
// it is blocked.
type pair struct {
	client  *ktls.Conn
	backend *net.TCPConn
	idle    time.Duration
	write   time.Duration

	last    atomic.Int64 // time.Now().UnixNano() when bytes last moved
	writing atomic.Int32 // writes in progress, which the write timeout bounds
	closer  sync.Once
}

func (pr *pair) touch() { pr.last.Store(time.Now().UnixNano()) }

// idleFor is how long nothing has moved either way, or 0 while a write
// is in progress: the write timeout bounds that, and a slow reader that
// takes a step longer than idle to drain is not idle.
func (pr *pair) idleFor() time.Duration {
	if pr.writing.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, pr.last.Load()))
}

func (pr *pair) beginWrite() { pr.writing.Add(1) }

func (pr *pair) endWrite(n int64) {
	if n > 0 {
		pr.touch()
	}
	pr.writing.Add(-1)
}

// abort ends the pair at once. The client's TCP connection closes
// first, without a close_notify: the client must not take a cut stream
// for a complete one, and a close_notify to a client that doesn't read
// would wait for its own deadline.
func (pr *pair) abort() {
	pr.closer.Do(func() {
		pr.client.NetConn().Close()
		pr.backend.Close()
	})
}

// up copies the client's plaintext to the backend until close_notify.
// The copy is the client's WriteTo, which splices from the kernel's TLS
// layer into the backend's socket; it returns at the client's read
// deadline, which measures idleness. The backend goes in as a
// progressWriter, so each write into it, spliced or not, runs under a
// write deadline of its own.
func (pr *pair) up() (int64, error) {
	dst := &progressWriter{c: pr.backend, timeout: pr.write, pr: pr}
	var total int64
	for {
		pr.client.SetReadDeadline(time.Now().Add(pr.idle))
		n, err := pr.client.WriteTo(dst)
		total += n
		switch {
		case err == nil:
			return total, nil
		case dst.stalled.Load():
			return total, fmt.Errorf("ktls: the backend took nothing for %v", pr.write)
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return total, err
		}
		if d := pr.idleFor(); d >= pr.idle {
			return total, fmt.Errorf("ktls: idle for %v", d.Round(time.Millisecond))
		}
	}
}

// downStep bounds what one step of down writes to the client under one
// write deadline: a client must take this much within the write timeout
// (256 KiB in 60 s is about 4 KiB/s), however large the whole response.
const downStep = 256 << 10

// down copies the backend's bytes to the client until the backend's FIN.
// Each step first waits, up to the idle deadline, for the backend to have
// bytes, then hands the client's ReadFrom (splice into the kernel's TLS
// layer) no more than are already there, under a fresh write deadline.
// So a deadline during a step is the client not reading, never the
// backend being quiet. The two must be told apart: an expired write
// deadline can drop what a splice had already taken from the backend, so
// after one the pair must end, while a quiet backend is only idle.
func (pr *pair) down() (int64, error) {
	var total int64
	for {
		ready, exact, err := waitData(pr.backend, time.Now().Add(pr.idle))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if d := pr.idleFor(); d >= pr.idle {
				return total, fmt.Errorf("ktls: idle for %v", d.Round(time.Millisecond))
			}
			continue
		}
		if err != nil {
			return total, err
		}
		if ready == 0 {
			return total, nil // the backend's FIN
		}
		start := time.Now()
		wd := start.Add(pr.write)
		if exact {
			// The bytes are there: reads don't wait, and no read deadline
			// may end the step while its write waits.
			pr.backend.SetReadDeadline(time.Time{})
		} else {
			// Without a count of what is ready, the step may also wait
			// for the backend, up to the idle deadline; the write
			// deadline comes after it, so that a deadline before wd is
			// the read's.
			pr.backend.SetReadDeadline(start.Add(pr.idle))
			wd = start.Add(pr.idle + pr.write)
		}
		pr.client.SetWriteDeadline(wd)
		lr := &io.LimitedReader{R: pr.backend, N: int64(min(ready, downStep))}
		pr.beginWrite()
		n, err := pr.client.ReadFrom(lr)
		pr.endWrite(n)
		total += n
		switch {
		case err == nil && lr.N > 0:
			return total, nil // the backend's FIN within the step
		case err == nil:
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return total, err
		case exact || !time.Now().Before(wd):
			return total, fmt.Errorf("ktls: the client took nothing for %v", pr.write)
		case pr.idleFor() >= pr.idle:
			return total, fmt.Errorf("ktls: idle for %v", pr.idleFor().Round(time.Millisecond))
		}
	}
}

// progressWriter is the backend as up writes to it: every write, whether
// a Write or a splice through the raw connection, first moves the write
// deadline to now plus the timeout, so it bounds each write's progress
// and not the whole stream. It keeps the shape that ktls's WriteTo
// splices into (a syscall.Conn with CloseWrite), and hides the TCP
// connection's ReadFrom, which would write without coming through here.
type progressWriter struct {
	c       *net.TCPConn
	timeout time.Duration
	pr      *pair
	stalled atomic.Bool // a write timed out: the pair must end
}

func (w *progressWriter) arm() {
	w.pr.beginWrite()
	w.c.SetWriteDeadline(time.Now().Add(w.timeout))
}

func (w *progressWriter) done(n int, err error) {
	w.pr.endWrite(int64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.stalled.Store(true)
	}
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.arm()
	n, err := w.c.Write(b)
	w.done(n, err)
	return n, err
}

func (w *progressWriter) CloseWrite() error { return w.c.CloseWrite() }

func (w *progressWriter) SyscallConn() (syscall.RawConn, error) {
	rc, err := w.c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return progressRawConn{rc, w}, nil
}

type progressRawConn struct {
	syscall.RawConn
	w *progressWriter
}

// Write is one splice of a chunk into the backend (ktls's drainTo).
func (rc progressRawConn) Write(f func(fd uintptr) bool) error {
	rc.w.arm()
	err := rc.RawConn.Write(f)
	rc.w.done(1, err)
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
