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
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// Tests against OpenSSL's command-line peers. They cover the TLS 1.3
// suites crypto/tls won't negotiate with itself (AES-256-GCM), and prove
// the record layer against an implementation that shares no code with
// ours.

// peerFiles are the test bundle's PEM files, for the peer programs, in
// a directory of the test's, where the peers run: what they serve goes
// there too.
type peerFiles struct {
	bundle        *testcert.Bundle
	dir           string
	cert, key, ca string
}

// writePeerFiles writes the ECDSA bundle's files into a new directory.
func writePeerFiles(t *testing.T) peerFiles {
	t.Helper()
	dir := t.TempDir()
	pf := peerFiles{bundle: testcert.Get(testcert.ECDSA), dir: dir,
		cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), ca: filepath.Join(dir, "ca.pem")}
	for name, data := range map[string][]byte{pf.cert: pf.bundle.CertPEM, pf.key: pf.bundle.KeyPEM, pf.ca: pf.bundle.CAPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pf
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

// randomFile writes n pseudo-random bytes to dir/data.bin and returns
// the path and hash.
func randomFile(t *testing.T, dir string, n int64) (string, [32]byte) {
	t.Helper()
	p := filepath.Join(dir, "data.bin")
	return p, wiretest.RandomFile(t, p, n, 7)
}

// opensslSuite is a TLS 1.3 suite, named as openssl's -ciphersuites
// names it.
type opensslSuite struct {
	name  string
	suite uint16
}

var opensslSuites = []opensslSuite{
	{"TLS_AES_128_GCM_SHA256", tls.TLS_AES_128_GCM_SHA256},
	{"TLS_AES_256_GCM_SHA384", tls.TLS_AES_256_GCM_SHA384},
	{"TLS_CHACHA20_POLY1305_SHA256", tls.TLS_CHACHA20_POLY1305_SHA256},
}

// TestOpenSSLServer: a ktls client fetches a file from openssl s_server
// -WWW, for each TLS 1.3 suite.
func TestOpenSSLServer(t *testing.T) {
	eachOpenSSLSuite(t, func(t *testing.T, ctx context.Context, s opensslSuite, openssl string, pf peerFiles) {
		const size = 4 << 20
		_, sum := randomFile(t, pf.dir, size)
		addr := startOpenSSLServer(t, ctx, openssl, pf, nil, "-tls1_3", "-ciphersuites", s.name, "-WWW", "-naccept", "1", "-quiet")
		conn, err := ktls.Dial("tcp", addr, pf.bundle.ClientConfig())
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

// TestOpenSSLClient: openssl s_client reads a stream from a ktls server,
// for each TLS 1.3 suite, and its SHA-256 matches.
func TestOpenSSLClient(t *testing.T) {
	eachOpenSSLSuite(t, func(t *testing.T, ctx context.Context, s opensslSuite, openssl string, pf peerFiles) {
		const size = 4 << 20
		var sent [32]byte
		ln, served := serveOne(t, ctx, pf.bundle.ServerConfig(), func(o ktls.Offload) error {
			if !o.TX || !o.RX || o.CipherSuite != s.suite {
				return fmt.Errorf("Offload() = %v, want TX and RX with %s", o, s.name)
			}
			return nil
		}, func(kc *ktls.Conn) (err error) {
			if sent, err = wiretest.Stream(kc, size, 9); err != nil {
				return err
			}
			return kc.CloseWrite()
		})
		cl := exec.CommandContext(ctx, openssl, "s_client", "-connect", ln.Addr().String(),
			"-servername", "localhost", "-CAfile", pf.ca, "-verify_return_error",
			"-tls1_3", "-ciphersuites", s.name, "-quiet")
		var out, stderr bytes.Buffer
		cl.Stdout, cl.Stderr = &out, &stderr
		err := cl.Run()
		ln.Close()
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

// eachOpenSSLSuite runs f in a subtest for each TLS 1.3 suite, with
// openssl's path, new peer files and a context that bounds the subtest.
func eachOpenSSLSuite(t *testing.T, f func(t *testing.T, ctx context.Context, s opensslSuite, openssl string, pf peerFiles)) {
	kerneltest.RequireULP(t)
	openssl := kerneltest.Program(t, "openssl")
	for _, s := range opensslSuites {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			f(t, ctx, s, openssl, writePeerFiles(t))
		})
	}
}

// startOpenSSLServer starts openssl s_server on a free loopback port,
// with the files' certificate, in their directory (which -WWW serves),
// and returns its address. prepare, if not nil, sees the command before
// it starts.
func startOpenSSLServer(t *testing.T, ctx context.Context, openssl string, pf peerFiles, prepare func(*exec.Cmd), args ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	srv := exec.CommandContext(ctx, openssl, append([]string{"s_server", "-accept", addr, "-cert", pf.cert, "-key", pf.key}, args...)...)
	srv.Dir = pf.dir
	if prepare != nil {
		prepare(srv)
	}
	startAndWait(t, srv, addr)
	return addr
}

// serveOne accepts one connection on a ktls listener with cfg and, once
// its handshake is done and check accepts its Offload, runs serve on it,
// within ctx's deadline; the channel receives the error that ended it.
// Closing the listener ends a wait for a client that never came.
func serveOne(t *testing.T, ctx context.Context, cfg *tls.Config, check func(ktls.Offload) error, serve func(*ktls.Conn) error) (net.Listener, <-chan error) {
	t.Helper()
	ln, err := ktls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		kc := c.(*ktls.Conn)
		defer kc.Close()
		d, _ := ctx.Deadline()
		kc.SetDeadline(d)
		if err := kc.Handshake(); err != nil {
			done <- fmt.Errorf("handshake: %w", err)
			return
		}
		if err := check(kc.Offload()); err != nil {
			done <- err
			return
		}
		done <- serve(kc)
	}()
	return ln, done
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

// TestKeyUpdateOpenSSL: openssl's s_server and s_client send KeyUpdates
// when told "K" (requesting one back) or "k" on their standard input.
func TestKeyUpdateOpenSSL(t *testing.T) {
	kerneltest.RequireRekey(t)
	openssl := kerneltest.Program(t, "openssl")
	pf := writePeerFiles(t)
	t.Run("s_server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var in io.WriteCloser
		var out io.ReadCloser
		addr := startOpenSSLServer(t, ctx, openssl, pf, func(srv *exec.Cmd) {
			in, _ = srv.StdinPipe()
			out, _ = srv.StdoutPipe()
		}, "-tls1_3", "-naccept", "1", "-msg")
		conn, err := ktls.Dial("tcp", addr, pf.bundle.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		peerTalk(t, conn, in, out, "CIPHER is ")
	})
	t.Run("s_client", func(t *testing.T) {
		ln, err := ktls.Listen("tcp", "127.0.0.1:0", pf.bundle.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cl := exec.CommandContext(ctx, openssl, "s_client", "-connect", ln.Addr().String(), "-CAfile", pf.ca, "-servername", "localhost", "-tls1_3", "-msg")
		in, _ := cl.StdinPipe()
		out, _ := cl.StdoutPipe()
		if err := cl.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cl.Process.Kill(); cl.Wait() }()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// s_client's handshake waits for ours.
		if err := c.(*ktls.Conn).Handshake(); err != nil {
			t.Fatal(err)
		}
		peerTalk(t, c.(*ktls.Conn), in, out, "Verify return code: ")
	})
}

// peerTalk drives an interactive openssl peer, started with -msg so that
// it logs each message it sends (">>>") and receives ("<<<"). For each
// command, "K" (update and ask for one back) or "k" (update only), it
// waits until openssl has sent its KeyUpdate, then sends a line each way.
// In the end openssl must have received one KeyUpdate from ktls for each
// "K" and none for "k".
//
// openssl takes a command only from the start of what one read of its
// standard input returns, and s_client drops whatever came with it; so
// nothing more goes in until the KeyUpdate is out. Nor does the first
// command go in before openssl has printed ready, which says its
// handshake is done: until then it can't send a KeyUpdate.
func peerTalk(t *testing.T, conn *ktls.Conn, peerIn io.Writer, peerOut io.Reader, ready string) {
	t.Helper()
	peer := &peerLog{lines: bufio.NewScanner(peerOut)}
	peer.waitFor(t, ready)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	say := func(line string) {
		t.Helper()
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatal(err)
		}
		peer.waitFor(t, line)
	}
	cmds := []string{"K", "k", "K"}
	for i, cmd := range cmds {
		io.WriteString(peerIn, cmd+"\n")
		peer.waitFor(t, sentKeyUpdate)
		// To the peer, under our key, updated if it asked.
		say(fmt.Sprintf("from ktls %c", 'a'+i))
		// From the peer, under its new key.
		want := fmt.Sprintf("from openssl %c", 'a'+i)
		io.WriteString(peerIn, want+"\n")
		got, err := r.ReadString('\n')
		if err != nil || strings.TrimSpace(got) != want {
			t.Fatalf("after %q: read %q, %v; openssl said:\n%s", cmd, got, err, peer.said.String())
		}
		if o := conn.Offload(); !o.TX || !o.RX {
			t.Fatalf("Offload() = %v", o)
		}
	}
	// ktls answers a KeyUpdate it has read by its next write at the latest.
	say("from ktls, the end")
	said := peer.said.String()
	received := strings.Count(said, receivedKeyUpdate)
	if want := strings.Count(strings.Join(cmds, ""), "K"); received != want {
		t.Fatalf("openssl received %d KeyUpdates from ktls, want %d; it said:\n%s", received, want, said)
	}
	t.Logf("openssl sent %d KeyUpdates and received %d", strings.Count(said, sentKeyUpdate), received)
}

// What openssl -msg logs for a KeyUpdate it sends and one it receives.
const (
	sentKeyUpdate     = ">>> TLS 1.3, Handshake [length 0005], KeyUpdate"
	receivedKeyUpdate = "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"
)

// A peerLog reads an openssl peer's standard output line by line.
type peerLog struct {
	lines *bufio.Scanner
	said  strings.Builder
}

// waitFor reads lines until one contains s. The peer's process has a
// deadline, so this ends.
func (p *peerLog) waitFor(t *testing.T, s string) {
	t.Helper()
	for p.lines.Scan() {
		p.said.WriteString(p.lines.Text() + "\n")
		if strings.Contains(p.lines.Text(), s) {
			return
		}
	}
	t.Fatalf("openssl never printed %q; it said:\n%s", s, p.said.String())
}
