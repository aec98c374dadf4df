package kernel

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// Linux's struct cmsghdr (include/linux/socket.h): a size_t length, which
// covers the header and the data, then level and type. Headers and the
// data after them are aligned to a long.
const (
	cmsgAlignTo   = int(unsafe.Sizeof(uintptr(0)))
	cmsgHeaderLen = cmsgAlignTo + 4 + 4
)

func cmsgAlign(n int) int { return (n + cmsgAlignTo - 1) &^ (cmsgAlignTo - 1) }

var (
	errCmsgMalformed  = errors.New("kernel: malformed control message")
	errCmsgRecordType = errors.New("kernel: control message TLS_GET_RECORD_TYPE does not hold one byte")
	errCmsgTwice      = errors.New("kernel: two TLS_GET_RECORD_TYPE control messages")
)

// parseRecordType finds the content type in the control messages recvmsg
// returned, oob: the one-byte TLS_GET_RECORD_TYPE message the kernel's
// tls_sw_recvmsg puts (Documentation/networking/tls.rst). Messages of any
// other level or type are skipped, as CMSG_NXTHDR would; a header that
// overruns oob, a record type that isn't one byte, or two of them are
// errors, since the kernel never sends those. ok is false when there is
// no record type.
func parseRecordType(oob []byte) (typ uint8, ok bool, err error) {
	for len(oob) >= cmsgHeaderLen {
		var n uint64
		if cmsgAlignTo == 8 {
			n = binary.NativeEndian.Uint64(oob)
		} else {
			n = uint64(binary.NativeEndian.Uint32(oob))
		}
		if n < uint64(cmsgHeaderLen) || n > uint64(len(oob)) {
			return 0, false, errCmsgMalformed
		}
		level := int32(binary.NativeEndian.Uint32(oob[cmsgAlignTo:]))
		ctype := int32(binary.NativeEndian.Uint32(oob[cmsgAlignTo+4:]))
		data := oob[cmsgAlign(cmsgHeaderLen):n]
		if level == solTLS && ctype == cmsgGetRecordType {
			switch {
			case ok:
				return 0, false, errCmsgTwice
			case len(data) != 1:
				return 0, false, errCmsgRecordType
			}
			typ, ok = data[0], true
		}
		// The next header starts at the aligned end of this one; the
		// last message's padding may be cut off.
		oob = oob[min(cmsgAlign(int(n)), len(oob)):]
	}
	return typ, ok, nil
}
