package ktls_test

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

// TestRXNoPad: with TLS_RX_EXPECT_NO_PAD, records the peer pads anyway
// still arrive intact; the kernel decrypts them a second time and counts
// them in TlsRxNoPadViolation.
func TestRXNoPad(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureRXExpectNoPad)
	ccfg, scfg := ktlstest.TLS13.Configs()
	p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
	o := s.(*ktls.Conn).Offload()
	if !o.RX || !o.RXNoPad {
		t.Fatalf("Offload() = %+v, want RX with RXNoPad", o)
	}
	before := kerneltest.Stat(t, "TlsRxNoPadViolation")
	var want bytes.Buffer
	for i, pad := range []int{0, 1, 200, 0, 4000, 0} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
		want.Write(msg)
		if err := p.Send(record.TypeApplicationData, msg, pad); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("padded records arrived different")
	}
	if d := kerneltest.Stat(t, "TlsRxNoPadViolation") - before; d != 3 {
		t.Errorf("TlsRxNoPadViolation went up by %d, want 3 (one per padded record)", d)
	}
}

// TestZerocopySendfileOption: asked for, TLS_TX_ZEROCOPY_RO is set where
// the kernel has it, reported in Offload, and sendfile still delivers.
func TestZerocopySendfileOption(t *testing.T) {
	kerneltest.Require(t, kernel.FeatureULP, kernel.FeatureTXZerocopyRO)
	ccfg, scfg := ktlstest.TLS13.Configs()
	c, s := ktlstest.Connect(t, ktlstest.KTLS(ccfg),
		ktlstest.KTLSWith(scfg, &ktls.Options{ZerocopySendfile: true}))
	ks := s.(*ktls.Conn)
	if o := ks.Offload(); !o.ZerocopySendfile || o.ZerocopySendfileReason != nil {
		t.Fatalf("Offload() = %+v, want ZerocopySendfile", o)
	}
	rc, _ := ks.NetConn().(syscall.Conn).SyscallConn()
	rc.Control(func(fd uintptr) {
		if on, err := kernel.TXZerocopyRO(int(fd)); err != nil || !on {
			t.Errorf("getsockopt TLS_TX_ZEROCOPY_RO = %v, %v; want true", on, err)
		}
	})
	f, want, err := tempFile(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	errc := make(chan error, 1)
	go func() { _, err := drainCompare(c, 4<<20, want); errc <- err }()
	if _, err := io.Copy(s, f); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestOptionsDefaults: ZerocopySendfile is off unless asked for; RXNoPad
// is on for TLS 1.3 where the kernel has it, and off for TLS 1.2.
func TestOptionsDefaults(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, sc := range ktlstest.OnePerVersion {
		ccfg, scfg := sc.Configs()
		c, _ := ktlstest.Connect(t, ktlstest.KTLS(ccfg), ktlstest.CryptoTLS(scfg))
		o := c.(*ktls.Conn).Offload()
		if o.ZerocopySendfile || o.ZerocopySendfileReason != nil {
			t.Errorf("%s: ZerocopySendfile %v (%v) without asking", sc.Name, o.ZerocopySendfile, o.ZerocopySendfileReason)
		}
		wantNoPad := sc.Version == 0x0304 && kernel.FeatureRXExpectNoPad.Check() == nil
		if o.RXNoPad != wantNoPad {
			t.Errorf("%s: RXNoPad = %v (%v), want %v", sc.Name, o.RXNoPad, o.RXNoPadReason, wantNoPad)
		}
	}
}
