package ktls_test

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestClientHelloConnClosed: a server's GetConfigForClient that closes
// ClientHelloInfo.Conn (crypto/tls's transport: the record reader, or,
// where the kernel can take nothing, the Conn itself, plainTransport)
// fails the handshake at once, as with crypto/tls over the bare socket.
// (Reading or writing it corrupts the stream as it does with crypto/tls,
// whose ClientHelloInfo.Conn is the socket.)
func TestClientHelloConnClosed(t *testing.T) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	scfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		hello.Conn.Close()
		return nil, nil
	}
	craw, sraw := wiretest.TCPPair(t, "tcp")
	c, s := tls.Client(craw, ccfg), ktls.Server(sraw, scfg)
	defer c.Close()
	defer s.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	cerr, serr := wiretest.Handshake(c, s)
	if wiretest.IsTimeout(cerr) || wiretest.IsTimeout(serr) {
		t.Fatalf("the handshake hung: client %v, server %v", cerr, serr)
	}
	if serr == nil {
		t.Fatal("the server's handshake succeeded over a closed transport")
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Error("a Read after the failed handshake succeeded")
	}
}

// TestStateDuringHandshakeAndClose: ConnectionState, OCSPResponse and
// VerifyHostname, called all along from other goroutines, during the
// handshake, the handoff, reads, writes and Close, race with nothing (run
// with -race) and never report a handshake the Conn has not finished.
func TestStateDuringHandshakeAndClose(t *testing.T) {
	for _, sc := range ktlstest.OnePerVersion {
		t.Run(sc.Name, func(t *testing.T) {
			for range 20 {
				ccfg, scfg := sc.Configs()
				craw, sraw := wiretest.TCPPair(t, "tcp")
				c, s := ktls.Client(craw, ccfg), ktls.Server(sraw, scfg)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for _, conn := range []*ktls.Conn{c, s} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							cs := conn.ConnectionState()
							if cs.HandshakeComplete && cs.Version == 0 {
								t.Error("a complete handshake of no version")
							}
							conn.OCSPResponse()
							conn.VerifyHostname("localhost")
						}
					}()
				}
				go func() { c.Write([]byte("x")); c.Read(make([]byte, 1)) }()
				go func() { s.Read(make([]byte, 1)); s.Write([]byte("y")) }()
				time.Sleep(2 * time.Millisecond)
				var cw sync.WaitGroup
				cw.Add(2)
				go func() { defer cw.Done(); c.Close() }()
				go func() { defer cw.Done(); s.Close() }()
				cw.Wait()
				close(stop)
				wg.Wait()
				if _, err := c.Read(make([]byte, 1)); err == nil {
					t.Error("a Read after Close succeeded")
				}
			}
		})
	}
}
