package ktls

import (
	"crypto/tls"
	"errors"

	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// Record sizing. crypto/tls starts a connection with records that fit one
// TCP segment, and sends 16 KiB records only once 128 KiB have gone out
// (maxPayloadSizeForWrite in its conn.go): a client can decrypt nothing
// until a whole record has arrived, and the first 16 KiB record takes more
// than TCP's initial window, so more than one round trip. The kernel fills
// records to 16 KiB from the first byte, unless TLS_TX_MAX_PAYLOAD_LEN
// (Linux 6.19) caps them. Where it can, ktls caps the records at the size
// of crypto/tls's first one when the kernel takes over, and lifts the cap
// once 128 KiB of application data have been sent through the kernel. On
// older kernels records are 16 KiB from the first byte, and
// Offload.RecordSizingReason says so.
//
// Two differences from crypto/tls remain. crypto/tls lets its records grow
// by one segment's worth each (one segment, two, three...) up to 16 KiB;
// the kernel has one cap, so every record of the first 128 KiB fits one
// segment. The first record, which the time to the first byte waits for,
// is the same size; later ones are smaller, never larger, at a cost of
// about 110 records where crypto/tls makes about 14, in the first 128 KiB
// only. And crypto/tls counts toward 128 KiB every byte it wrote, the
// handshake's and each record's header and tag included, so it moves to
// 16 KiB records a few KiB of data sooner.
const (
	// tcpMSSEstimate and recordSizeBoostThreshold are crypto/tls's: the
	// IPv6 minimum MTU (1280) less the IPv6 and TCP headers and options,
	// and the bytes after which records are 16 KiB.
	tcpMSSEstimate           = 1208
	recordSizeBoostThreshold = 128 << 10
)

// errRecordSizingOff is RecordSizingReason where the config turned
// crypto/tls's record sizing off; the kernel then does as crypto/tls
// would, and sends 16 KiB records from the first byte.
var errRecordSizingOff = withCode(CodeDisabled, errors.New("ktls: tls.Config.DynamicRecordSizingDisabled is set: records are 16 KiB from the first byte"))

// smallRecordPayload is the plaintext of crypto/tls's first record of
// application data under suite s: what fills tcpMSSEstimate with the
// record's header (5 bytes), its explicit nonce (8 bytes in TLS 1.2
// AES-GCM), its tag (16 bytes) and, in TLS 1.3, its content type (1 byte).
func smallRecordPayload(s *keyschedule.Suite) int {
	n := tcpMSSEstimate - 5 - 16
	switch {
	case s.Version == tls.VersionTLS13:
		n--
	case s.FixedIVLen == 4:
		n -= 8
	}
	return n
}

// recordSizing is the state of the record cap on a connection whose
// records the kernel builds. It is guarded by the txHalf's lock. The zero value is no
// cap: 16 KiB records.
type recordSizing struct {
	// small is the cap in force, or 0 when there is none.
	small int64
	// left is what may still be sent in small records. At 0 or below the
	// cap is due to be lifted; a kernel that refused to (EBUSY, while a
	// record sent with MSG_MORE is still open) is asked again after the
	// next write.
	left int64
}

// room returns how much of n bytes may be written before the cap is due
// to be lifted, so that a write that crosses the threshold stops there.
func (s *recordSizing) room(n int64) int64 {
	if s.small != 0 && s.left > 0 {
		return min(n, s.left)
	}
	return n
}
