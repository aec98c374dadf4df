package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
)

// TestKeyUpdateOpenSSL: openssl's s_server and s_client send KeyUpdates
// when told "K" (requesting one back) or "k" on their standard input.
func TestKeyUpdateOpenSSL(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
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
