package ktls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/ktlsgo/ktls"
	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/ktlstest"
	"github.com/ktlsgo/ktls/internal/record"
)

// recvSizes reads records until n bytes of application data came, and
// returns each record's length.
func recvSizes(t *testing.T, p *ktlstest.RawPeer, n int) []int {
	t.Helper()
	var sizes []int
	for got := 0; got < n; {
		typ, data, err := p.Recv()
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, n, err)
		}
		if typ != record.TypeApplicationData {
			t.Fatalf("after %d of %d bytes: a record of type %d", got, n, typ)
		}
		sizes = append(sizes, len(data))
		got += len(data)
	}
	return sizes
}

// split returns the record sizes a write of n bytes makes with records of
// at most size bytes.
func split(n, size int) []int {
	var out []int
	for ; n > size; n -= size {
		out = append(out, size)
	}
	return append(out, n)
}

// TestSmallRecordPayload: ktls's first records are as large as crypto/tls's
// first, for every suite: the size is computed from crypto/tls's own
// constants, and crypto/tls is the reference.
func TestSmallRecordPayload(t *testing.T) {
	for _, sc := range ktlstest.SuiteCases {
		t.Run(sc.Name, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			p, s := ktlstest.ConnectRawPeer(t, ktlstest.CryptoTLS(scfg), ccfg)
			go s.Write(make([]byte, 4096))
			sizes := recvSizes(t, p, 4096)
			if want := ktls.SmallRecordPayload(sc.Version, sc.Suite); sizes[0] != want {
				t.Errorf("crypto/tls's first record holds %d bytes, ktls caps the kernel's at %d", sizes[0], want)
			}
		})
	}
}

// TestRecordSizing: records on the wire start as small as crypto/tls's,
// through Write and through ReadFrom (sendfile), and grow to 16 KiB after
// 128 KiB, where the kernel has TLS_TX_MAX_PAYLOAD_LEN (Linux 6.19);
// DynamicRecordSizingDisabled makes them 16 KiB from the first byte, as in
// crypto/tls. On older kernels they are always 16 KiB, and Offload says
// why. Before ktls capped them, the kernel sent 16 KiB records from the
// first byte on every kernel.
func TestRecordSizing(t *testing.T) {
	kerneltest.RequireULP(t)
	sizing := kernel.FeatureTXMaxPayloadLen.Check() == nil
	if !sizing {
		// Fails in the lab on a kernel that should have it.
		if _, ok := kerneltest.InLab(); ok && kernel.CompareRelease(kerneltest.Release(), kernel.FeatureTXMaxPayloadLen.MinKernel) >= 0 {
			kerneltest.Require(t, kernel.FeatureTXMaxPayloadLen)
		}
	}
	const threshold = 128 << 10
	for _, sc := range []ktlstest.SuiteCase{ktlstest.SuiteCases[0], ktlstest.SuiteCases[2], ktlstest.SuiteCases[4]} {
		t.Run(sc.Name, func(t *testing.T) {
			sc.RequireTX(t)
			ccfg, scfg := sc.Configs()
			p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
			o := s.(*ktls.Conn).Offload()
			if !o.TX {
				t.Fatalf("TX not offloaded: %v", o)
			}
			small := ktls.SmallRecordPayload(sc.Version, sc.Suite)
			if !sizing {
				if o.RecordSizing || !errors.Is(o.RecordSizingReason, ktls.ErrNotSupported) {
					t.Errorf("Offload: RecordSizing %v, reason %v; want false, and a reason matching ErrNotSupported", o.RecordSizing, o.RecordSizingReason)
				}
				go s.Write(make([]byte, 64<<10))
				if got, want := recvSizes(t, p, 64<<10), split(64<<10, 16384); !equalInts(got, want) {
					t.Errorf("kernel %s without the option: records of %v, want %v", kerneltest.Release(), got, want)
				}
				t.Logf("kernel %s: %v", kerneltest.Release(), o.RecordSizingReason)
				return
			}
			if !o.RecordSizing || o.RecordSizingReason != nil {
				t.Errorf("Offload: RecordSizing %v, reason %v; want true", o.RecordSizing, o.RecordSizingReason)
			}

			// 100 KiB by Write: small records only.
			const first = 100 << 10
			go s.Write(make([]byte, first))
			if got, want := recvSizes(t, p, first), split(first, small); !equalInts(got, want) {
				t.Fatalf("Write of %d bytes: records of %v, want %v", first, got, want)
			}
			// 100 KiB by sendfile: small records up to 128 KiB in all,
			// then 16 KiB ones.
			f, _, err := tempFile(100 << 10)
			if err != nil {
				t.Fatal(err)
			}
			defer os.Remove(f.Name())
			defer f.Close()
			errc := make(chan error, 1)
			go func() { _, err := s.(*ktls.Conn).ReadFrom(f); errc <- err }()
			sizes := recvSizes(t, p, 100<<10)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			sent, i := first, 0
			for ; i < len(sizes) && sent < threshold; i++ {
				if sizes[i] > small {
					t.Fatalf("sendfile: a record of %d bytes at %d, before %d; want at most %d", sizes[i], sent, threshold, small)
				}
				sent += sizes[i]
			}
			if sent != threshold {
				t.Fatalf("sendfile: a record crosses the threshold at %d (records %v)", threshold, sizes)
			}
			if rest := sizes[i:]; len(rest) == 0 || rest[0] != 16384 || slicesMax(rest) > 16384 {
				t.Fatalf("sendfile: records after the threshold %v, want 16 KiB ones", rest)
			}
			// And by Write from then on: 16 KiB.
			go s.Write(make([]byte, 64<<10))
			if got, want := recvSizes(t, p, 64<<10), split(64<<10, 16384); !equalInts(got, want) {
				t.Errorf("Write after the threshold: records of %v, want %v", got, want)
			}
		})
	}

	// The config's DynamicRecordSizingDisabled: GetConfigForClient's
	// where it returns one, else the outer one's.
	sc := ktlstest.SuiteCases[0]
	for _, where := range []string{"Config", "GetConfigForClient"} {
		t.Run("DynamicRecordSizingDisabled/"+where, func(t *testing.T) {
			ccfg, scfg := sc.Configs()
			if where == "Config" {
				scfg.DynamicRecordSizingDisabled = true
			} else {
				inner := scfg.Clone()
				inner.DynamicRecordSizingDisabled = true
				scfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }
			}
			p, s := ktlstest.ConnectRawPeer(t, ktlstest.KTLS(scfg), ccfg)
			o := s.(*ktls.Conn).Offload()
			if !o.TX || o.RecordSizing || ktls.ReasonCode(o.RecordSizingReason) != ktls.CodeDisabled {
				t.Fatalf("Offload: TX %v, RecordSizing %v, reason %v; want TX, no sizing, and a reason with code %q", o.TX, o.RecordSizing, o.RecordSizingReason, ktls.CodeDisabled)
			}
			go s.Write(make([]byte, 64<<10))
			if got, want := recvSizes(t, p, 64<<10), split(64<<10, 16384); !equalInts(got, want) {
				t.Errorf("records of %v, want %v", got, want)
			}
		})
	}
}

func equalInts(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func slicesMax(a []int) int {
	m := 0
	for _, v := range a {
		m = max(m, v)
	}
	return m
}
