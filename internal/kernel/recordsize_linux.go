package kernel

import (
	"encoding/binary"
	"os"
)

// SetTXMaxPayloadLen wraps setsockopt(fd, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN,
// n): the kernel puts at most n bytes of plaintext in each record it
// builds from then on, the content type byte of TLS 1.3 not counted
// (Linux 6.19). TLS_TX must be installed. n must lie between
// MinTXMaxPayloadLen12 (MinTXMaxPayloadLen13 for TLS 1.3) and
// MaxTXMaxPayloadLen. The kernel refuses a change with EBUSY while a
// record is open, that is while data sent with MSG_MORE waits for more.
func SetTXMaxPayloadLen(fd int, n uint16) error {
	// The kernel takes exactly a u16, which x/sys/unix has no setter for.
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], n)
	return os.NewSyscallError("setsockopt TLS_TX_MAX_PAYLOAD_LEN", setsockopt(fd, solTLS, optTXMaxPayload, b[:]))
}

// TXMaxPayloadLen wraps getsockopt(fd, SOL_TLS, TLS_TX_MAX_PAYLOAD_LEN):
// the cap SetTXMaxPayloadLen set, or MaxTXMaxPayloadLen by default.
func TXMaxPayloadLen(fd int) (uint16, error) {
	var b [2]byte
	n := uint32(len(b))
	if err := getsockopt(fd, solTLS, optTXMaxPayload, b[:], &n); err != nil {
		return 0, os.NewSyscallError("getsockopt TLS_TX_MAX_PAYLOAD_LEN", err)
	}
	return binary.NativeEndian.Uint16(b[:]), nil
}

// probeTXMaxPayloadLen sets the default cap on a socket with a TX key, so
// that the probe changes nothing even if the socket were used. Kernels
// before 6.19 answer ENOPROTOOPT.
func probeTXMaxPayloadLen() error {
	f := FeatureTXMaxPayloadLen
	return withTLSSocket(f, func(fd int) error {
		if err := SetCryptoInfo(fd, TX, probeInfo(VersionTLS13, CipherAESGCM128)); err != nil {
			return prerequisiteError(f, err)
		}
		return installError(f, SetTXMaxPayloadLen(fd, MaxTXMaxPayloadLen))
	})
}
