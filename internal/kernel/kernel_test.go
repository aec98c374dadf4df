package kernel_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestULP is the lab's first check: the kernel lists the tls ULP, and an
// established TCP socket accepts it.
func TestULP(t *testing.T) {
	kerneltest.RequireULP(t)

	data, err := os.ReadFile(kernel.AvailableULPsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+strings.TrimSpace(string(data))+" ", " tls ") {
		t.Fatalf("%s = %q, want it to list tls", kernel.AvailableULPsFile, data)
	}

	client, _ := wiretest.TCPPair(t, "tcp")
	wiretest.Control(t, client, func(fd int) {
		if err := kernel.AttachULP(fd); err != nil {
			t.Fatalf("TCP_ULP tls on an established socket: %v", err)
		}
		// A socket takes one ULP, once.
		if err := kernel.AttachULP(fd); !errors.Is(err, unix.EEXIST) {
			t.Errorf("second TCP_ULP = %v, want EEXIST", err)
		}
	})
	t.Logf("kernel %s: %s", kerneltest.Release(), strings.TrimSpace(string(data)))
}

// TestULPNeedsEstablished shows why ktls attaches the ULP only after the
// handshake's TCP connection exists: a listening socket refuses it.
func TestULPNeedsEstablished(t *testing.T) {
	kerneltest.RequireULP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		if err := kernel.AttachULP(int(fd)); err == nil {
			t.Error("TCP_ULP on a listening socket succeeded, want an error")
		}
	})
}

type suite struct {
	version uint16
	cipher  kernel.Cipher
}

var offloadable = []suite{
	{kernel.VersionTLS12, kernel.CipherAESGCM128},
	{kernel.VersionTLS12, kernel.CipherAESGCM256},
	{kernel.VersionTLS12, kernel.CipherChaCha20Poly1305},
	{kernel.VersionTLS12, kernel.CipherAESCCM128},
	{kernel.VersionTLS13, kernel.CipherAESGCM128},
	{kernel.VersionTLS13, kernel.CipherAESGCM256},
	{kernel.VersionTLS13, kernel.CipherChaCha20Poly1305},
	{kernel.VersionTLS13, kernel.CipherAESCCM128},
}

func versionName(v uint16) string {
	if v == kernel.VersionTLS13 {
		return "TLS1.3"
	}
	return "TLS1.2"
}

// TestCipherFeatures probes every version, cipher and direction. All of
// them exist in every kernel the lab boots.
func TestCipherFeatures(t *testing.T) {
	for _, s := range offloadable {
		for _, dir := range []kernel.Direction{kernel.TX, kernel.RX} {
			t.Run(versionName(s.version)+"/"+s.cipher.String()+"/"+dir.String(), func(t *testing.T) {
				kerneltest.Require(t, kernel.CipherFeature(s.version, s.cipher, dir))
			})
		}
	}
}

func testInfo(s suite, seq uint64) *kernel.CryptoInfo {
	info := &kernel.CryptoInfo{Version: s.version, Cipher: s.cipher, RecSeq: kernel.SeqBytes(seq)}
	keyLen, ivLen, saltLen := 16, 8, 4
	switch s.cipher {
	case kernel.CipherAESGCM256:
		keyLen = 32
	case kernel.CipherChaCha20Poly1305:
		keyLen, ivLen, saltLen = 32, 12, 0
	}
	info.Key = bytes.Repeat([]byte{0x42}, keyLen)
	info.IV = bytes.Repeat([]byte{0x17}, ivLen)
	info.Salt = bytes.Repeat([]byte{0x99}, saltLen)
	if s.version == kernel.VersionTLS12 && ivLen == 8 {
		// In TLS 1.2 the IV field is the next explicit nonce.
		info.IV = info.RecSeq[:]
	}
	return info
}

// TestKernelToKernel installs the same keys on both ends of a loopback
// connection: the kernel encrypts on one side and decrypts on the other,
// application data and control records alike. Control records only come
// out of recvmsg with their content type in a TLS_GET_RECORD_TYPE control
// message; a plain read fails with EIO.
func TestKernelToKernel(t *testing.T) {
	kerneltest.RequireULP(t)
	for _, s := range offloadable {
		t.Run(versionName(s.version)+"/"+s.cipher.String(), func(t *testing.T) {
			kerneltest.Require(t,
				kernel.CipherFeature(s.version, s.cipher, kernel.TX),
				kernel.CipherFeature(s.version, s.cipher, kernel.RX))
			client, server := wiretest.TCPPair(t, "tcp")
			wiretest.Control(t, client, func(fd int) {
				must(t, kernel.AttachULP(fd))
				must(t, kernel.SetCryptoInfo(fd, kernel.TX, testInfo(s, 7)))
			})
			wiretest.Control(t, server, func(fd int) {
				must(t, kernel.AttachULP(fd))
				must(t, kernel.SetCryptoInfo(fd, kernel.RX, testInfo(s, 7)))
			})

			payload := bytes.Repeat([]byte("kernel tls "), 3000) // spans three records
			if _, err := client.Write(payload); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 0, len(payload))
			buf := make([]byte, 1<<15)
			oob := make([]byte, kernel.OOBSize)
			for len(got) < len(payload) {
				n, typ := recv(t, server, buf, oob)
				if typ != 23 {
					t.Fatalf("record type %d before the end of the data, want 23", typ)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("decrypted data differs from what was sent")
			}
			// Three records each way so far. This is checked before the
			// alert goes out: once the next record is queued, the receiver
			// may decrypt it ahead of the read that returns it, and its
			// RecSeq already counts it.
			checkSeq(t, client, kernel.TX, 7+3)
			checkSeq(t, server, kernel.RX, 7+3)

			wiretest.Control(t, client, func(fd int) {
				// A warning-level close_notify alert, as a control record.
				if _, err := kernel.SendRecord(fd, 21, []byte{1, 0}, 0); err != nil {
					t.Fatal(err)
				}
			})

			// The alert is next: read(2) can't take it...
			wiretest.Control(t, server, func(fd int) {
				_, err := unix.Read(fd, buf)
				if !errors.Is(err, unix.EIO) {
					t.Errorf("read(2) before a control record = %v, want EIO", err)
				}
			})
			// ...recvmsg with room for the control message can.
			n, typ := recv(t, server, buf, oob)
			if typ != 21 || !bytes.Equal(buf[:n], []byte{1, 0}) {
				t.Errorf("control record = type %d %x, want type 21 0100", typ, buf[:n])
			}
			checkSeq(t, client, kernel.TX, 7+4)
			checkSeq(t, server, kernel.RX, 7+4)
		})
	}
}

// checkSeq compares the sequence number of the next record in direction dir
// with want.
func checkSeq(t *testing.T, c net.Conn, dir kernel.Direction, want uint64) {
	t.Helper()
	wiretest.Control(t, c, func(fd int) {
		if seq, err := kernel.RecSeq(fd, dir); err != nil || seq != want {
			t.Errorf("%v RecSeq = %d, %v; want %d", dir, seq, err, want)
		}
	})
}

// TestKernelRejectsTamperedRecord shows what a bad tag looks like from the
// receiving side: recvmsg fails with EBADMSG.
func TestKernelRejectsTamperedRecord(t *testing.T) {
	s := suite{kernel.VersionTLS13, kernel.CipherAESGCM128}
	kerneltest.Require(t, kernel.CipherFeature(s.version, s.cipher, kernel.RX))
	client, server := wiretest.TCPPair(t, "tcp")
	wiretest.Control(t, server, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.RX, testInfo(s, 0)))
	})
	// A record with the right shape and a garbage tag.
	rec := append([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{0xaa}, 40)...)
	if _, err := client.Write(rec); err != nil {
		t.Fatal(err)
	}
	wiretest.Control(t, server, func(fd int) {
		oob := make([]byte, kernel.OOBSize)
		for {
			_, _, err := kernel.RecvRecord(fd, make([]byte, 100), oob, 0)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if !errors.Is(err, unix.EBADMSG) {
				t.Errorf("recvmsg of a forged record = %v, want EBADMSG", err)
			}
			return
		}
	})
}

func TestStatsCount(t *testing.T) {
	s := suite{kernel.VersionTLS13, kernel.CipherAESGCM128}
	kerneltest.Require(t, kernel.CipherFeature(s.version, s.cipher, kernel.TX))
	before := kerneltest.Stats(t)
	client, _ := wiretest.TCPPair(t, "tcp")
	wiretest.Control(t, client, func(fd int) {
		must(t, kernel.AttachULP(fd))
		must(t, kernel.SetCryptoInfo(fd, kernel.TX, testInfo(s, 0)))
	})
	after := kerneltest.Stats(t)
	b, _ := before.Get("TlsTxSw")
	a, ok := after.Get("TlsTxSw")
	if !ok || a != b+1 {
		t.Errorf("TlsTxSw went from %d to %d, want one more", b, a)
	}
}

func TestParseStats(t *testing.T) {
	in := "TlsCurrTxSw                     \t1\nTlsCurrRxSw                     \t0\nTlsTxSw                         \t12\n"
	got, err := kernel.ParseStats([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := kernel.Stats{{"TlsCurrTxSw", 1}, {"TlsCurrRxSw", 0}, {"TlsTxSw", 12}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseStats (-want +got):\n%s", diff)
	}
	if _, err := kernel.ParseStats([]byte("TlsTxSw x\n")); err == nil {
		t.Error("ParseStats accepted a non-numeric value")
	}
}

// TestCryptoInfoLayout checks MarshalTo against struct
// tls12_crypto_info_aes_gcm_128 and _chacha20_poly1305 from
// include/uapi/linux/tls.h.
func TestCryptoInfoLayout(t *testing.T) {
	key16 := bytes.Repeat([]byte{0xee}, 16)
	key32 := bytes.Repeat([]byte{0xdd}, 32)
	for _, tc := range []struct {
		name string
		info kernel.CryptoInfo
		want []byte
	}{{
		name: "aes_gcm_128",
		info: kernel.CryptoInfo{
			Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM128,
			IV: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Key: key16, Salt: []byte{9, 10, 11, 12},
			RecSeq: kernel.SeqBytes(0x0102),
		},
		want: concat([]byte{0x04, 0x03, 51, 0}, []byte{1, 2, 3, 4, 5, 6, 7, 8}, key16,
			[]byte{9, 10, 11, 12}, []byte{0, 0, 0, 0, 0, 0, 1, 2}),
	}, {
		name: "chacha20_poly1305",
		info: kernel.CryptoInfo{
			Version: kernel.VersionTLS12, Cipher: kernel.CipherChaCha20Poly1305,
			IV: bytes.Repeat([]byte{7}, 12), Key: key32, RecSeq: kernel.SeqBytes(1),
		},
		want: concat([]byte{0x03, 0x03, 54, 0}, bytes.Repeat([]byte{7}, 12), key32,
			[]byte{0, 0, 0, 0, 0, 0, 0, 1}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xaa}, kernel.MaxCryptoInfoLen+1)
			n, err := tc.info.MarshalTo(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := buf[:n]; !bytes.Equal(got, tc.want) {
				t.Errorf("MarshalTo =\n%x\nwant\n%x", got, tc.want)
			}
			if !bytes.Equal(buf[n:], bytes.Repeat([]byte{0xaa}, len(buf)-n)) {
				t.Errorf("MarshalTo wrote past its %d bytes: %x", n, buf[n:])
			}
		})
	}
	bad := kernel.CryptoInfo{Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM256, Key: key16}
	if _, err := bad.MarshalTo(make([]byte, kernel.MaxCryptoInfoLen)); err == nil {
		t.Error("MarshalTo accepted a 16-byte key for AES-256-GCM")
	}
	short := kernel.CryptoInfo{Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM128, IV: make([]byte, 8), Key: key16, Salt: make([]byte, 4)}
	if _, err := short.MarshalTo(make([]byte, 39)); err == nil {
		t.Error("MarshalTo accepted a 39-byte buffer for a 40-byte struct")
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func recv(t *testing.T, c net.Conn, buf, oob []byte) (int, uint8) {
	t.Helper()
	var (
		n   int
		typ uint8
		err error
	)
	rc, _ := c.(*net.TCPConn).SyscallConn()
	rerr := rc.Read(func(fd uintptr) bool {
		n, typ, err = kernel.RecvRecord(int(fd), buf, oob, 0)
		return !errors.Is(err, unix.EAGAIN)
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 && typ == 0 {
		t.Fatal(io.ErrUnexpectedEOF)
	}
	return n, typ
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
