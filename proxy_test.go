package ktls_test

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// A proxy relays a TCP connection and can corrupt one record of the
// server's stream, to show what a receiver does with a record that fails
// authentication.
type proxy struct {
	armed atomic.Bool // corrupt the next application_data record
	done  atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

// connectThroughProxy is connect with a proxy between the two ends. The
// proxy is armed once the handshake is over: the next application_data
// record from the server has a bit flipped.
func connectThroughProxy(t testing.TB, client, server ktlstest.Endpoint) (c, s net.Conn) {
	t.Helper()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		down, err := front.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			down.Close()
			return
		}
		p.track(down, up)
		var relay sync.WaitGroup
		relay.Add(2)
		go func() { defer relay.Done(); io.Copy(up, down); up.(*net.TCPConn).CloseWrite() }()
		go func() { defer relay.Done(); p.serverToClient(down, up); down.(*net.TCPConn).CloseWrite() }()
		relay.Wait()
	}()
	t.Cleanup(func() {
		front.Close()
		back.Close()
		p.closeAll()
		wg.Wait()
	})
	c, s = ktlstest.ConnectVia(t, client, server, back, front.Addr().String())
	t.Cleanup(func() { c.Close(); s.Close() })
	p.armed.Store(true)
	return c, s
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, cs...)
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// serverToClient relays records, flipping the last bit of the tag of the
// first application_data record after the proxy is armed.
func (p *proxy) serverToClient(down, up net.Conn) {
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(up, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
		if _, err := io.ReadFull(up, body); err != nil {
			return
		}
		if hdr[0] == 23 && len(body) > 0 && p.armed.Load() && !p.done.Swap(true) {
			body[len(body)-1] ^= 0x01
		}
		if _, err := down.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}
