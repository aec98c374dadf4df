package ktls_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestKeyUpdate moves 64 MiB each way between two offloaded ends while
// both keep updating their keys, some asking the other to update too.
func TestKeyUpdate(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	size := int64(64 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	ccfg, scfg := suiteCases[0].configs()
	c, s := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
	txBefore, rxBefore := tlsStat(t, "TlsTxRekeyOk"), tlsStat(t, "TlsRxRekeyOk")
	stop := make(chan struct{})
	var updates atomic.Int64
	var wg sync.WaitGroup
	for i, conn := range []*ktls.Conn{c.(*ktls.Conn), s.(*ktls.Conn)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if err := conn.UpdateKeys((n+i)%3 == 0); err != nil {
					t.Errorf("UpdateKeys: %v", err)
					return
				}
				updates.Add(1)
			}
		}()
	}
	exchange(t, c, s, size)
	close(stop)
	wg.Wait()
	// Reading to each close_notify takes in any KeyUpdate still on the
	// way.
	closeBoth(t, c, s)
	tx, rx := tlsStat(t, "TlsTxRekeyOk")-txBefore, tlsStat(t, "TlsRxRekeyOk")-rxBefore
	t.Logf("%d updates asked for, TlsTxRekeyOk +%d, TlsRxRekeyOk +%d", updates.Load(), tx, rx)
	if updates.Load() < 4 {
		t.Errorf("only %d key updates happened", updates.Load())
	}
	// Requested ones add a reply each: every update sent was received.
	if rx < uint64(updates.Load()) || rx != tx {
		t.Errorf("TlsTxRekeyOk +%d, TlsRxRekeyOk +%d, want equal and at least the %d asked for", tx, rx, updates.Load())
	}
}

// TestKeyUpdateCryptoTLSPeer: a crypto/tls peer answers a requested
// update with its own KeyUpdate, which the kernel's RX follows; with RX
// on crypto/tls, crypto/tls follows it.
func TestKeyUpdateCryptoTLSPeer(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	for _, rx := range []ktls.Mode{ktls.Enabled, ktls.Disabled} {
		t.Run(map[ktls.Mode]string{ktls.Enabled: "RX-kernel", ktls.Disabled: "RX-crypto-tls"}[rx], func(t *testing.T) {
			ccfg, scfg := suiteCases[0].configs()
			c, s := connect(t, endpoint{ktls: true, config: ccfg, opts: &ktls.Options{RX: rx}}, endpoint{config: scfg})
			kc := c.(*ktls.Conn)
			for range 5 {
				if err := kc.UpdateKeys(true); err != nil {
					t.Fatal(err)
				}
				exchange(t, c, s, 1<<20)
			}
			closeBoth(t, c, s)
		})
	}
}

// TestKeyUpdateRequestedByPeer: a peer's KeyUpdate with update_requested
// gets a KeyUpdate back, and data flows both ways under the new keys.
// The peer sends a storm of them too.
func TestKeyUpdateRequestedByPeer(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	ccfg, scfg := suiteCases[0].configs()
	p, s := connectRawPeer(t, endpoint{ktls: true, config: scfg}, ccfg)
	for round := range 3 {
		updates := 1
		if round == 2 {
			updates = 200 // a storm
		}
		for range updates {
			if err := p.updateKeys(true); err != nil {
				t.Fatal(err)
			}
		}
		msg := []byte("under the new key")
		if err := p.send(record.TypeApplicationData, msg, 0); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		s.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("server read %q, %v", got, err)
		}
		if _, err := s.Write([]byte("reply")); err != nil {
			t.Fatal(err)
		}
		// One KeyUpdate back per request, then the reply under the
		// newest key.
		for range updates {
			typ, m, err := p.recv()
			if err != nil || typ != record.TypeHandshake || !bytes.Equal(m, record.MarshalKeyUpdate(false)) {
				t.Fatalf("round %d: got record %d %x, %v; want the server's KeyUpdate", round, typ, m, err)
			}
			if err := p.followKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		}
		if data, err := p.recvData(5); err != nil || string(data) != "reply" {
			t.Fatalf("round %d: reply %q, %v", round, data, err)
		}
	}
}

// TestKeyUpdateAtRecordLimit: the write key is updated before the AEAD
// limit; a lowered limit shows it happening, on a peer that follows.
func TestKeyUpdateAtRecordLimit(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	ccfg, scfg := suiteCases[0].configs()
	opts := &ktls.Options{}
	ktls.SetKeyUpdateLimit(opts, 64)
	p, s := connectRawPeer(t, endpoint{ktls: true, config: scfg, opts: opts}, ccfg)
	const records = 400
	chunk := bytes.Repeat([]byte{'x'}, 16384)
	go func() {
		for range records {
			if _, err := s.Write(chunk); err != nil {
				return
			}
		}
	}()
	updates, data := 0, 0
	for data < records*len(chunk) {
		typ, m, err := p.recv()
		if err != nil {
			t.Fatalf("after %d bytes and %d updates: %v", data, updates, err)
		}
		switch typ {
		case record.TypeHandshake:
			updates++
			if err := p.followKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		case record.TypeApplicationData:
			data += len(m)
		}
	}
	// 400 records under a limit of 64, updated at half of it: at least
	// one update per 64 records.
	if updates < records/64 {
		t.Errorf("%d key updates in %d records, want at least %d", updates, records, records/64)
	}
	t.Logf("%d key updates in %d records", updates, records)
}

// TestRelayKeyUpdate: a relay that splices into an offloaded Conn
// (WriteTo) is that Conn's writer, so when the Conn's peer asks for a
// KeyUpdate mid-relay, the relay sends it before its next chunk, and the
// data arrives intact around it.
func TestRelayKeyUpdate(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	ccfg, scfg := suiteCases[0].configs()
	src, in := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{ktls: true, config: scfg})
	p, out := connectRawPeer(t, endpoint{ktls: true, config: scfg}, ccfg)
	const size = 8 << 20
	sent := make(chan [32]byte, 1)
	go func() {
		sum, _ := stream(src, size, 7)
		src.(*ktls.Conn).CloseWrite()
		sent <- sum
	}()
	// out's reader takes the peer's KeyUpdate; the relay, holding out's
	// write side, must answer it.
	go io.Copy(io.Discard, out)
	relayed := make(chan error, 1)
	go func() {
		_, err := in.(*ktls.Conn).WriteTo(out)
		relayed <- err
	}()
	h := sha256.New()
	got, asked, answered := 0, false, -1
	for got < size {
		typ, data, err := p.recv()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		switch {
		case typ == record.TypeApplicationData:
			h.Write(data)
			got += len(data)
			if !asked && got >= 1<<20 {
				if err := p.updateKeys(true); err != nil {
					t.Fatal(err)
				}
				asked = true
			}
		case typ == record.TypeHandshake && asked && answered < 0 && len(data) > 0 && data[0] == record.MsgKeyUpdate:
			answered = got
			if err := p.followKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("after %d bytes: unexpected record of type %d: %x", got, typ, data[:min(len(data), 16)])
		}
	}
	if answered < 0 {
		t.Fatalf("asked for a KeyUpdate after 1 MiB; none came in %d MiB", size>>20)
	}
	if sum := <-sent; [32]byte(h.Sum(nil)) != sum {
		t.Fatal("the relayed data arrived different")
	}
	if err := <-relayed; err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	t.Logf("asked after 1 MiB, answered after %d bytes", answered)
}

// TestKeyUpdateWithoutRekey is the policy on kernels before 6.14, which
// can't install a second key: a peer's KeyUpdate ends the connection with
// ErrKeyUpdateNotSupported, after the data before it; UpdateKeys says it
// can't; and a connection at the record limit stops writing instead of
// exceeding it.
func TestKeyUpdateWithoutRekey(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP)
	if kernel.FeatureRekey.Check() == nil {
		t.Skipf("kernel %s can rekey: the policy for kernels without it does not apply", kerneltest.Release())
	}
	ccfg, scfg := suiteCases[0].configs()
	t.Run("peer-update", func(t *testing.T) {
		p, s := connectRawPeer(t, endpoint{ktls: true, config: scfg}, ccfg)
		p.send(record.TypeApplicationData, []byte("before"), 0)
		p.updateKeys(false)
		p.send(record.TypeApplicationData, []byte("after"), 0)
		got, err := readAll(s)
		if string(got) != "before" || !errors.Is(err, ktls.ErrKeyUpdateNotSupported) || !errors.Is(err, ktls.ErrNotSupported) {
			t.Fatalf("read %q, %v; want %q, then ErrKeyUpdateNotSupported", got, err, "before")
		}
	})
	t.Run("UpdateKeys", func(t *testing.T) {
		c, s := connect(t, endpoint{ktls: true, config: ccfg}, endpoint{config: scfg})
		if err := c.(*ktls.Conn).UpdateKeys(false); !errors.Is(err, ktls.ErrNotSupported) {
			t.Fatalf("UpdateKeys = %v, want ErrNotSupported", err)
		}
		exchange(t, c, s, 1<<16) // and the connection is unharmed
	})
	t.Run("record-limit", func(t *testing.T) {
		opts := &ktls.Options{}
		ktls.SetKeyUpdateLimit(opts, 64)
		c, s := connect(t, endpoint{ktls: true, config: ccfg, opts: opts}, endpoint{config: scfg})
		go io.Copy(io.Discard, s)
		chunk := make([]byte, 16384)
		var err error
		for i := 0; i < 64 && err == nil; i++ {
			_, err = c.Write(chunk)
		}
		if !errors.Is(err, ktls.ErrKeyUpdateNotSupported) {
			t.Fatalf("writing past the record limit: %v, want ErrKeyUpdateNotSupported", err)
		}
	})
}

// TestKeyUpdateOpenSSL: openssl's s_server and s_client send KeyUpdates
// when told "K" (requesting one back) or "k" on their standard input.
func TestKeyUpdateOpenSSL(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	openssl := kerneltest.Program(t, "openssl")
	b := testcert.Get(testcert.ECDSA)
	t.Run("s_server", func(t *testing.T) {
		dir := t.TempDir()
		cert, key, _ := writeCerts(t, dir, b)
		port := freePort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv := exec.CommandContext(ctx, openssl, "s_server", "-accept", "127.0.0.1:"+port, "-cert", cert, "-key", key, "-tls1_3", "-naccept", "1", "-msg")
		in, _ := srv.StdinPipe()
		out, _ := srv.StdoutPipe()
		startAndWait(t, srv, "127.0.0.1:"+port)
		conn, err := ktls.Dial("tcp", "127.0.0.1:"+port, b.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		peerTalk(t, conn, in, out, "CIPHER is ")
	})
	t.Run("s_client", func(t *testing.T) {
		dir := t.TempDir()
		_, _, ca := writeCerts(t, dir, b)
		ln, err := ktls.Listen("tcp", "127.0.0.1:0", b.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cl := exec.CommandContext(ctx, openssl, "s_client", "-connect", ln.Addr().String(), "-CAfile", ca, "-servername", "localhost", "-tls1_3", "-msg")
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

// oneByteReader returns n bytes, one per Read, as a source that trickles
// does: through ReadFrom, each becomes a write(2), and a record, of its own.
type oneByteReader struct{ n int }

func (r *oneByteReader) Read(b []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	r.n--
	b[0] = 'x'
	return 1, nil
}

// TestReadFromSmallRecordsAtRecordLimit: ReadFrom updates the write key
// before the record limit whatever the source, also one whose bytes come
// one at a time, each in a record. ReadFrom estimated the records of a
// step as one per 4 KiB, as sendfile from a file fills them, and checked
// only between steps of 16 MiB: a trickling source made up to 4096 times
// the records it counted, far past the limit.
func TestReadFromSmallRecordsAtRecordLimit(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRekey)
	ccfg, scfg := suiteCases[0].configs()
	opts := &ktls.Options{}
	const limit = 64
	ktls.SetKeyUpdateLimit(opts, limit)
	p, s := connectRawPeer(t, endpoint{ktls: true, config: scfg, opts: opts}, ccfg)
	deadline := time.Now().Add(30 * time.Second)
	s.SetDeadline(deadline)
	p.conn.SetDeadline(deadline)
	const total = 400
	done := make(chan error, 1)
	go func() {
		_, err := s.(*ktls.Conn).ReadFrom(&oneByteReader{n: total})
		done <- err
	}()
	data, run, longest, updates := 0, 0, 0, 0
	for data < total {
		typ, m, err := p.recv()
		if err != nil {
			t.Fatalf("after %d bytes and %d updates: %v", data, updates, err)
		}
		switch typ {
		case record.TypeHandshake:
			updates++
			run = 0
			if err := p.followKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		case record.TypeApplicationData:
			data += len(m)
			run++
			longest = max(longest, run)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	if longest > limit {
		t.Errorf("%d records under one key, with a limit of %d (%d key updates in %d bytes)", longest, limit, updates, total)
	}
	t.Logf("%d key updates; at most %d records under one key", updates, longest)
}
