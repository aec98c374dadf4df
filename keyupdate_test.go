package ktls_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestKeyUpdate moves 64 MiB each way between two offloaded ends while
// both keep updating their keys, some asking the other to update too.
func TestKeyUpdate(t *testing.T) {
	kerneltest.RequireRekey(t)
	size := int64(64 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	txBefore, rxBefore := kerneltest.Stat(t, "TlsTxRekeyOk"), kerneltest.Stat(t, "TlsRxRekeyOk")
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
	wiretest.Exchange(t, c, s, size)
	close(stop)
	wg.Wait()
	// Reading to each close_notify takes in any KeyUpdate still on the
	// way.
	ktlstest.CloseBoth(t, c, s)
	tx, rx := kerneltest.Stat(t, "TlsTxRekeyOk")-txBefore, kerneltest.Stat(t, "TlsRxRekeyOk")-rxBefore
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
	kerneltest.RequireRekey(t)
	for _, rx := range []ktls.Mode{ktls.Enabled, ktls.Disabled} {
		t.Run(map[ktls.Mode]string{ktls.Enabled: "RX-kernel", ktls.Disabled: "RX-crypto-tls"}[rx], func(t *testing.T) {
			ccfg, scfg := ktlstest.TLS13.Configs()
			c, s := ktlstest.Connect(t, ktlstest.KTLSWith(ccfg, &ktls.Options{RX: rx}), ktlstest.CryptoTLS(scfg))
			kc := c.(*ktls.Conn)
			for range 5 {
				if err := kc.UpdateKeys(true); err != nil {
					t.Fatal(err)
				}
				wiretest.Exchange(t, c, s, 1<<20)
			}
			ktlstest.CloseBoth(t, c, s)
		})
	}
}

// TestKeyUpdateRequestedByPeer: a peer's KeyUpdate with update_requested
// gets a KeyUpdate back, and data flows both ways under the new keys.
// The peer sends a storm of them too.
func TestKeyUpdateRequestedByPeer(t *testing.T) {
	kerneltest.RequireRekey(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	for round := range 3 {
		updates := 1
		if round == 2 {
			updates = 200 // a storm
		}
		for range updates {
			if err := p.UpdateKeys(true); err != nil {
				t.Fatal(err)
			}
		}
		msg := []byte("under the new key")
		if err := p.Send(record.TypeApplicationData, msg, 0); err != nil {
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
			typ, m, err := p.Recv()
			if err != nil || typ != record.TypeHandshake || !bytes.Equal(m, record.MarshalKeyUpdate(false)) {
				t.Fatalf("round %d: got record %d %x, %v; want the server's KeyUpdate", round, typ, m, err)
			}
			if err := p.FollowKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		}
		if data, err := p.RecvData(5); err != nil || string(data) != "reply" {
			t.Fatalf("round %d: reply %q, %v", round, data, err)
		}
	}
}

// TestKeyUpdateAtRecordLimit: the write key is updated before the AEAD
// limit; a lowered limit shows it happening, on a peer that follows.
func TestKeyUpdateAtRecordLimit(t *testing.T) {
	kerneltest.RequireRekey(t)
	p, s := connectAtRecordLimit(t, 64)
	const records = 400
	chunk := bytes.Repeat([]byte{'x'}, 16384)
	go func() {
		for range records {
			if _, err := s.Write(chunk); err != nil {
				return
			}
		}
	}()
	updates, _ := recvFollowingUpdates(t, p, records*len(chunk))
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
	kerneltest.RequireRekey(t)
	ccfg, scfg := ktlstest.TLS13.Configs()
	src, in := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.KTLS(scfg))
	p, out := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	const size = 8 << 20
	sent := make(chan [32]byte, 1)
	go func() {
		sum, _ := wiretest.Stream(src, size, 7)
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
		typ, data, err := p.Recv()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		switch {
		case typ == record.TypeApplicationData:
			h.Write(data)
			got += len(data)
			if !asked && got >= 1<<20 {
				if err := p.UpdateKeys(true); err != nil {
					t.Fatal(err)
				}
				asked = true
			}
		case typ == record.TypeHandshake && asked && answered < 0 && len(data) > 0 && data[0] == record.MsgKeyUpdate:
			answered = got
			if err := p.FollowKeyUpdate(); err != nil {
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
	kerneltest.RequireULP(t)
	if kernel.FeatureRekey.Check() == nil {
		t.Skipf("kernel %s can rekey: the policy for kernels without it does not apply", kerneltest.Release())
	}
	ccfg, scfg := ktlstest.TLS13.Configs()
	t.Run("peer-update", func(t *testing.T) {
		p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
		p.Send(record.TypeApplicationData, []byte("before"), 0)
		p.UpdateKeys(false)
		p.Send(record.TypeApplicationData, []byte("after"), 0)
		got, err := wiretest.ReadAll(s)
		if string(got) != "before" || !errors.Is(err, ktls.ErrKeyUpdateNotSupported) || !errors.Is(err, ktls.ErrNotSupported) {
			t.Fatalf("read %q, %v; want %q, then ErrKeyUpdateNotSupported", got, err, "before")
		}
	})
	t.Run("UpdateKeys", func(t *testing.T) {
		c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.CryptoTLS(scfg))
		if err := c.(*ktls.Conn).UpdateKeys(false); !errors.Is(err, ktls.ErrNotSupported) {
			t.Fatalf("UpdateKeys = %v, want ErrNotSupported", err)
		}
		wiretest.Exchange(t, c, s, 1<<16) // and the connection is unharmed
	})
	t.Run("record-limit", func(t *testing.T) {
		opts := &ktls.Options{}
		ktls.SetKeyUpdateLimit(opts, 64)
		c, s := ktlstest.Connect(t, ktlstest.KTLSWith(ccfg, opts), ktlstest.CryptoTLS(scfg))
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
	kerneltest.RequireRekey(t)
	const limit = 64
	p, s := connectAtRecordLimit(t, limit)
	deadline := time.Now().Add(30 * time.Second)
	s.SetDeadline(deadline)
	p.Conn.SetDeadline(deadline)
	const total = 400
	done := make(chan error, 1)
	go func() {
		_, err := s.(*ktls.Conn).ReadFrom(&oneByteReader{n: total})
		done <- err
	}()
	updates, longest := recvFollowingUpdates(t, p, total)
	if err := <-done; err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	if longest > limit {
		t.Errorf("%d records under one key, with a limit of %d (%d key updates in %d bytes)", longest, limit, updates, total)
	}
	t.Logf("%d key updates; at most %d records under one key", updates, longest)
}

// connectAtRecordLimit connects a raw peer to a ktls server that updates
// its write key before limit records, as it does before the AEAD's limit.
func connectAtRecordLimit(t *testing.T, limit uint64) (*ktlstest.RawPeer, net.Conn) {
	t.Helper()
	ccfg, scfg := ktlstest.TLS13.Configs()
	opts := &ktls.Options{}
	ktls.SetKeyUpdateLimit(opts, limit)
	return ktlstest.ConnectRawPeer(t, ktlstest.KTLSWith(scfg, opts), ccfg)
}

// recvFollowingUpdates reads records at the raw peer until n bytes of
// application data came, following the server's KeyUpdates, and returns
// how many there were and the most records that came under one key.
func recvFollowingUpdates(t *testing.T, p *ktlstest.RawPeer, n int) (updates, longest int) {
	t.Helper()
	data, run := 0, 0
	for data < n {
		typ, m, err := p.Recv()
		if err != nil {
			t.Fatalf("after %d bytes and %d updates: %v", data, updates, err)
		}
		switch typ {
		case record.TypeHandshake:
			updates++
			run = 0
			if err := p.FollowKeyUpdate(); err != nil {
				t.Fatal(err)
			}
		case record.TypeApplicationData:
			data += len(m)
			run++
			longest = max(longest, run)
		}
	}
	return updates, longest
}
