package ktls

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/ktlsgo/ktls/internal/kernel"
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

// startRecordSizing caps the kernel's records, right after TLS_TX was
// installed, and returns Offload's RecordSizing and RecordSizingReason.
// It never fails the connection: without the cap, records are 16 KiB.
// off is the config's DynamicRecordSizingDisabled.
func (h *txHalf) startRecordSizing(off bool) (bool, error) {
	if off {
		return false, errRecordSizingOff
	}
	small := smallRecordPayload(h.suite)
	err := h.sock.setOption(kernel.FeatureTXMaxPayloadLen, func(fd int) error {
		return kernel.SetTXMaxPayloadLen(fd, uint16(small))
	})
	if err != nil {
		return false, fmt.Errorf("ktls: the kernel sends 16 KiB records from the first byte: %w", err)
	}
	h.sizing = recordSizing{small: int64(small), left: recordSizeBoostThreshold}
	return true, nil
}

// sentRecords counts n bytes of application data the kernel took on fd,
// and lifts the cap once recordSizeBoostThreshold have gone out. h is
// locked.
//
// While the cap is in force, the records are smaller than the one per 4
// KiB that afterWrite counts, so their number, n/small+1 at most, is added
// to the estimate too: afterWrite's count must stay an upper bound, or the
// key would be updated after the AEAD limit rather than before.
func (h *txHalf) sentRecords(fd int, n int64) {
	s := &h.sizing
	if s.small == 0 || n <= 0 {
		return
	}
	h.estimated += uint64(n/s.small + 1)
	if s.left -= n; s.left > 0 {
		return
	}
	// Any error leaves the cap in force and counted, and is tried again
	// after the next write: small records cost speed only. The kernel
	// took this option moments ago, so EBUSY is the one expected.
	if kernel.SetTXMaxPayloadLen(fd, kernel.MaxTXMaxPayloadLen) == nil {
		s.small = 0
	}
}

// sentRecordsConn is sentRecords for a path that has no fd at hand: net's
// sendfile and splice, and the relay's. ReadFrom stops its steps at the
// threshold (room); the relay into a Conn doesn't, so the splice that
// crosses it, one record of the source's at most (tls_sw_splice_read
// moves one at a time), still goes in small records. h is locked.
// Where the fd can't be had, the Conn is closed, and nothing more is
// written.
func (h *txHalf) sentRecordsConn(n int64) {
	if h.sizing.small == 0 || n <= 0 {
		return
	}
	h.sock.rawConn().Control(func(fd uintptr) { h.sentRecords(int(fd), n) })
}
