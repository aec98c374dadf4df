package ktls_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
)

// BenchmarkHandshake compares a full handshake through ktls (crypto/tls,
// plus the secrets' capture, the record-boundary reader and the handoff,
// with the kernel's setsockopt calls where it has TLS) with crypto/tls
// alone, both ends in this process over loopback TCP.
func BenchmarkHandshake(b *testing.B) {
	for _, impl := range []string{"crypto-tls", "ktls"} {
		b.Run(impl, func(b *testing.B) {
			handshakes := handshakeLoop(b, impl == "ktls")
			b.ResetTimer()
			cpu0 := processCPU(b)
			handshakes(b.N)
			b.StopTimer()
			// Both ends' CPU time, which depends less than the wall
			// time on what else the machine runs.
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// handshakeLoop starts a server on loopback, ktls or crypto/tls, and
// returns a function that runs n full handshakes to it from a client of
// the same kind, one after another. The server ends with the benchmark.
func handshakeLoop(b *testing.B, useKTLS bool) func(n int) {
	ccfg, scfg := ktlstest.TLS13.Configs()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			var c ktlstest.Handshaker
			if useKTLS {
				c = ktls.Server(raw, scfg)
			} else {
				c = tls.Server(raw, scfg)
			}
			c.Handshake()
			// Let the client finish reading before closing.
			c.Read(make([]byte, 1))
			c.Close()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		<-done
	})
	return func(n int) {
		for range n {
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			var c ktlstest.Handshaker
			if useKTLS {
				c = ktls.Client(raw, ccfg)
			} else {
				c = tls.Client(raw, ccfg)
			}
			if err := c.Handshake(); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
}

// BenchmarkThroughput compares reading and writing through ktls on
// crypto/tls (the fallback, or Options with offload off) with crypto/tls
// itself: the fallback must cost nothing measurable.
func BenchmarkThroughput(b *testing.B) {
	for _, impl := range []string{"crypto-tls", "ktls-fallback"} {
		b.Run(impl, func(b *testing.B) {
			ccfg, scfg := ktlstest.TLS13.Configs()
			off := &ktls.Options{TX: ktls.Disabled}
			var c, s net.Conn
			if impl == "ktls-fallback" {
				c, s = ktlstest.Connect(b, ktlstest.KTLSWith(ccfg, off), ktlstest.KTLSWith(scfg, off))
			} else {
				c, s = ktlstest.Connect(b, ktlstest.CryptoTLS(ccfg), ktlstest.CryptoTLS(scfg))
			}
			const chunk = 1 << 20
			buf := make([]byte, chunk)
			go func() {
				for {
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
			rbuf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := io.ReadFull(c, rbuf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.Close()
			s.Close()
		})
	}
}
