package kernel_test

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// TestSetCryptoInfoZeroesItsCopy is issue 13's finding 8 (kernel keys): the
// only copy of the keys SetCryptoInfo makes is the buffer it hands to
// setsockopt, as bytes, and that buffer is zeroed when it returns, whether
// the kernel took the keys or not. (SetsockoptString copied the keys into a
// Go string on the heap, which nothing could zero.)
func TestSetCryptoInfoZeroesItsCopy(t *testing.T) {
	key := bytes.Repeat([]byte{0xdd}, 32)
	for _, fail := range []bool{false, true} {
		info := &kernel.CryptoInfo{
			Version: kernel.VersionTLS13, Cipher: kernel.CipherAESGCM256,
			IV: bytes.Repeat([]byte{7}, 8), Key: bytes.Clone(key), Salt: []byte{1, 2, 3, 4},
			RecSeq: kernel.SeqBytes(5),
		}
		want := make([]byte, kernel.MaxCryptoInfoLen)
		n, err := info.MarshalTo(want)
		if err != nil {
			t.Fatal(err)
		}
		want = want[:n]

		var handed, seen []byte
		restore := kernel.SetSetsockopt(func(fd, level, opt int, b []byte) error {
			if fd != 42 || level != unix.SOL_TLS || opt != int(kernel.RX) {
				t.Errorf("setsockopt(%d, %d, %d), want setsockopt(42, SOL_TLS, TLS_RX)", fd, level, opt)
			}
			handed, seen = b, bytes.Clone(b)
			if fail {
				return unix.EINVAL
			}
			return nil
		})
		err = kernel.SetCryptoInfo(42, kernel.RX, info)
		restore()
		if fail != errors.Is(err, unix.EINVAL) {
			t.Fatalf("SetCryptoInfo = %v, want EINVAL: %v", err, fail)
		}
		if !bytes.Equal(seen, want) {
			t.Fatalf("setsockopt was handed\n%x\nwant\n%x", seen, want)
		}
		if !bytes.Equal(handed, make([]byte, len(handed))) {
			t.Errorf("the buffer handed to setsockopt still holds %x after SetCryptoInfo returned", handed)
		}
		if !bytes.Equal(info.Key, key) {
			t.Error("SetCryptoInfo changed the caller's info")
		}
		keyBuf := info.Key
		info.Zero()
		if !bytes.Equal(keyBuf, make([]byte, 32)) || info.Key != nil || info.IV != nil || info.Salt != nil ||
			info.RecSeq != [8]byte{} || info.Version != 0 || info.Cipher != 0 {
			t.Errorf("after Zero: %+v, key %x", info, keyBuf)
		}
	}
}
