package kernel_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestSetTXMaxPayloadLenHandsU16: the kernel takes exactly a u16 for
// TLS_TX_MAX_PAYLOAD_LEN (option 5) and refuses any other length with
// EINVAL, so an int, as SetsockoptInt would pass, is never accepted.
func TestSetTXMaxPayloadLenHandsU16(t *testing.T) {
	var got []byte
	restore := kernel.SetSetsockopt(func(fd, level, opt int, b []byte) error {
		if fd != 42 || level != unix.SOL_TLS || opt != 5 {
			t.Errorf("setsockopt(%d, %d, %d), want setsockopt(42, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN = 5)", fd, level, opt)
		}
		got = bytes.Clone(b)
		return nil
	})
	defer restore()
	if err := kernel.SetTXMaxPayloadLen(42, 1186); err != nil {
		t.Fatal(err)
	}
	want := binary.NativeEndian.AppendUint16(nil, 1186)
	if !bytes.Equal(got, want) {
		t.Errorf("setsockopt was handed %x, want %x (a native-endian u16)", got, want)
	}
}

// TestTXMaxPayloadLen: with the option set, the kernel builds records of at
// most that much plaintext, as the peer sees them on the wire; a write
// ends a record, whatever its size; and the kernel keeps to its bounds.
func TestTXMaxPayloadLen(t *testing.T) {
	s := suite{kernel.VersionTLS13, kernel.CipherAESGCM128}
	kerneltest.Require(t, kernel.FeatureULP, kernel.CipherFeature(s.version, s.cipher, kernel.TX), kernel.FeatureTXMaxPayloadLen)
	client, server := wiretest.TCPPair(t, "tcp")
	wiretest.Control(t, client, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.TX, testInfo(s, 0)))
		if n, err := kernel.TXMaxPayloadLen(fd); err != nil || n != kernel.MaxTXMaxPayloadLen {
			t.Errorf("TLS_TX_MAX_PAYLOAD_LEN before any setting = %d, %v; want %d", n, err, kernel.MaxTXMaxPayloadLen)
		}
		for _, bad := range []uint16{kernel.MinTXMaxPayloadLen13 - 1, kernel.MaxTXMaxPayloadLen + 1} {
			if err := kernel.SetTXMaxPayloadLen(fd, bad); !errors.Is(err, unix.EINVAL) {
				t.Errorf("TLS_TX_MAX_PAYLOAD_LEN = %d: %v, want EINVAL", bad, err)
			}
		}
		must(t, kernel.SetTXMaxPayloadLen(fd, 1000))
		if n, err := kernel.TXMaxPayloadLen(fd); err != nil || n != 1000 {
			t.Errorf("TLS_TX_MAX_PAYLOAD_LEN = %d, %v after setting 1000", n, err)
		}
	})

	// 2500 bytes in one write, then 10 in another: records of 1000, 1000,
	// 500 and 10 bytes of data, each with the content type and a 16-byte
	// tag.
	if _, err := client.Write(make([]byte, 2500)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range []int{1000, 1000, 500, 10} {
		var hdr [5]byte
		if _, err := io.ReadFull(server, hdr[:]); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		n := int(binary.BigEndian.Uint16(hdr[3:]))
		if hdr[0] != 23 || n != want+1+16 {
			t.Errorf("record %d: type %d, %d bytes; want type 23 and %d bytes (%d of data)", i, hdr[0], n, want+17, want)
		}
		if _, err := io.CopyN(io.Discard, server, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTXMaxPayloadLenMissing: lab kernels older than the option refuse it
// with ENOPROTOOPT, and the probe says so: ktls then leaves records at the
// kernel's 16 KiB, and says why.
func TestTXMaxPayloadLenMissing(t *testing.T) {
	if rel := kerneltest.Release(); kernel.CompareRelease(rel, kernel.FeatureTXMaxPayloadLen.MinKernel) >= 0 {
		t.Skipf("kernel %s is not older than %s: TestTXMaxPayloadLen covers it", rel, kernel.FeatureTXMaxPayloadLen.MinKernel)
	}
	s := suite{kernel.VersionTLS13, kernel.CipherAESGCM128}
	kerneltest.Require(t, kernel.FeatureULP, kernel.CipherFeature(s.version, s.cipher, kernel.TX))
	if err := kernel.FeatureTXMaxPayloadLen.Check(); !errors.Is(err, kernel.ErrNotSupported) {
		t.Errorf("FeatureTXMaxPayloadLen.Check() = %v, want ErrNotSupported", err)
	}
	client, _ := wiretest.TCPPair(t, "tcp")
	wiretest.Control(t, client, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.TX, testInfo(s, 0)))
		if err := kernel.SetTXMaxPayloadLen(fd, 1000); !errors.Is(err, unix.ENOPROTOOPT) {
			t.Errorf("TLS_TX_MAX_PAYLOAD_LEN on kernel %s: %v, want ENOPROTOOPT", kerneltest.Release(), err)
		}
	})
}
