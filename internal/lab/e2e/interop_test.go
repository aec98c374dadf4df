package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// Tests against OpenSSL's command-line peers. They cover the TLS 1.3
// suites crypto/tls won't negotiate with itself (AES-256-GCM), and prove
// the record layer against an implementation that shares no code with
// ours.

// writeCerts writes the bundle's PEM files into dir.
func writeCerts(t *testing.T, dir string, b *testcert.Bundle) (cert, key, ca string) {
	t.Helper()
	cert, key, ca = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	for name, data := range map[string][]byte{cert: b.CertPEM, key: b.KeyPEM, ca: b.CAPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key, ca
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// randomFile writes n pseudo-random bytes and returns the path and hash.
func randomFile(t *testing.T, dir string, n int64) (string, [32]byte) {
	t.Helper()
	p := filepath.Join(dir, "data.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := wiretest.Stream(f, n, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, sum
}

var opensslSuites = []struct {
	name  string
	suite uint16
}{
	{"TLS_AES_128_GCM_SHA256", tls.TLS_AES_128_GCM_SHA256},
	{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384},
	{"TLS_CHACHA20_POLY1305_SHA256", tls.TLS_CHACHA20_POLY1305_SHA256},
}

// TestOpenSSLServer: a ktls client fetches a file from openssl s_server
// -WWW, for each TLS 1.3 suite.
func TestOpenSSLServer(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	openssl := kerneltest.Program(t, "openssl")
	for _, s := range opensslSuites {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			b := testcert.Get(testcert.ECDSA)
			cert, key, _ := writeCerts(t, dir, b)
			const size = 4 << 20
			_, sum := randomFile(t, dir, size)
			port := freePort(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			srv := exec.CommandContext(ctx, openssl, "s_server", "-accept", "127.0.0.1:"+port,
				"-cert", cert, "-key", key, "-tls1_3", "-ciphersuites", s.name, "-WWW", "-naccept", "1", "-quiet")
			srv.Dir = dir
			startAndWait(t, srv, "127.0.0.1:"+port)

			cfg := b.ClientConfig()
			conn, err := ktls.Dial("tcp", "127.0.0.1:"+port, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if o := conn.Offload(); !o.TX || !o.RX || o.CipherSuite != s.suite {
				t.Fatalf("Offload() = %v, want TX and RX with %s", o, s.name)
			}
			if _, err := io.WriteString(conn, "GET /data.bin HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			body := readHTTPBody(t, conn)
			if len(body) != size || sha256.Sum256(body) != sum {
				t.Fatalf("got %d bytes from openssl, want %d intact", len(body), size)
			}
		})
	}
}

// TestOpenSSLClient: openssl s_client reads a stream from a ktls server,
// for each TLS 1.3 suite, and its SHA-256 matches.
func TestOpenSSLClient(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	openssl := kerneltest.Program(t, "openssl")
	for _, s := range opensslSuites {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			b := testcert.Get(testcert.ECDSA)
			_, _, ca := writeCerts(t, dir, b)
			ln, err := ktls.Listen("tcp", "127.0.0.1:0", b.ServerConfig())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const size = 4 << 20
			served := make(chan error, 1)
			var sent [32]byte
			go func() {
				c, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				defer c.Close()
				kc := c.(*ktls.Conn)
				if err := kc.Handshake(); err != nil {
					served <- err
					return
				}
				if o := kc.Offload(); !o.TX || !o.RX || o.CipherSuite != s.suite {
					served <- fmt.Errorf("Offload() = %v, want TX and RX with %s", o, s.name)
					return
				}
				sent, err = wiretest.Stream(kc, size, 9)
				if err == nil {
					err = kc.CloseWrite()
				}
				served <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cl := exec.CommandContext(ctx, openssl, "s_client", "-connect", ln.Addr().String(),
				"-servername", "localhost", "-CAfile", ca, "-verify_return_error",
				"-tls1_3", "-ciphersuites", s.name, "-quiet")
			var out, stderr bytes.Buffer
			cl.Stdout, cl.Stderr = &out, &stderr
			err = cl.Run()
			if serr := <-served; serr != nil {
				t.Fatalf("server: %v", serr)
			}
			if err != nil {
				t.Fatalf("openssl s_client: %v\n%s", err, stderr.Bytes())
			}
			if out.Len() != size || sha256.Sum256(out.Bytes()) != sent {
				t.Fatalf("openssl read %d bytes, want %d intact\n%s", out.Len(), size, stderr.Bytes())
			}
		})
	}
}

// startAndWait starts a server process and waits until addr accepts.
func startAndWait(t *testing.T, cmd *exec.Cmd, addr string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// A TCP probe would use up s_server's one accept; look for the
		// listening socket instead.
		if listening(addr) {
			return
		}
	}
	t.Fatalf("%s did not listen on %s: %s", cmd.Path, addr, stderr.Bytes())
}

// listening reports whether a TCP socket listens on addr, from
// /proc/net/tcp.
func listening(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	want := fmt.Sprintf(":%04X ", p)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// local_address is field 1, state field 3; 0A is LISTEN.
			if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", want) && fields[3] == "0A" {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// readHTTPBody reads an HTTP/1.0 response to the end and returns its body.
func readHTTPBody(t *testing.T, r io.Reader) []byte {
	t.Helper()
	data, err := wiretest.ReadAll(r)
	if err != io.EOF {
		t.Fatalf("reading the response: %v (after %d bytes)", err, len(data))
	}
	i := bytes.Index(data, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatalf("no end of headers in %q", data[:min(len(data), 200)])
	}
	return data[i+4:]
}
