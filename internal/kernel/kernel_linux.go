package kernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// AttachULP wraps setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls"). The socket
// must be an established TCP connection. On a kernel without the module
// loaded, this is also what makes the kernel load it.
func AttachULP(fd int) error {
	return os.NewSyscallError("setsockopt TCP_ULP", unix.SetsockoptString(fd, unix.IPPROTO_TCP, tcpULP, "tls"))
}

// SetCryptoInfo wraps setsockopt(fd, SOL_TLS, TLS_TX or TLS_RX, info). The
// struct is built in a buffer of its own, handed to the kernel as it is (no
// string conversion, whose copy on the heap would outlive the call and
// could never be zeroed), and zeroed before SetCryptoInfo returns; info is
// left to the caller. From Linux 6.14, calling it again on a TLS 1.3 socket
// with the same version and cipher installs the next key (KeyUpdate).
func SetCryptoInfo(fd int, dir Direction, info *CryptoInfo) error {
	var buf [MaxCryptoInfoLen]byte
	defer clear(buf[:])
	n, err := info.MarshalTo(buf[:])
	if err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt TLS_"+dir.String(), setsockopt(fd, solTLS, int(dir), buf[:n]))
}

// setsockopt is setsockopt(2) on a byte buffer, passed as it is. A variable,
// so tests can see what SetCryptoInfo hands the kernel.
var setsockopt = func(fd, level, opt int, b []byte) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// SetTXZerocopyRO wraps setsockopt(fd, SOL_TLS, TLS_TX_ZEROCOPY_RO, 1)
// (Linux 5.19). Only the device-offload path acts on it: sendfile then
// hands the file's pages to the NIC without a copy, which is only safe
// while the file doesn't change. Software kernel TLS accepts it and
// ignores it.
func SetTXZerocopyRO(fd int) error {
	return os.NewSyscallError("setsockopt TLS_TX_ZEROCOPY_RO", unix.SetsockoptInt(fd, solTLS, optTXZerocopyRO, 1))
}

// SetRXExpectNoPad wraps setsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD, 1):
// the kernel decrypts TLS 1.3 records in place, assuming the peer doesn't
// pad them, and retries with a copy when one is padded (Linux 6.0).
func SetRXExpectNoPad(fd int) error {
	return os.NewSyscallError("setsockopt TLS_RX_EXPECT_NO_PAD", unix.SetsockoptInt(fd, solTLS, optRXExpectNoPad, 1))
}

// TXZerocopyRO wraps getsockopt(fd, SOL_TLS, TLS_TX_ZEROCOPY_RO).
func TXZerocopyRO(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, solTLS, optTXZerocopyRO)
	return v != 0, os.NewSyscallError("getsockopt TLS_TX_ZEROCOPY_RO", err)
}

// RXExpectNoPad wraps getsockopt(fd, SOL_TLS, TLS_RX_EXPECT_NO_PAD).
func RXExpectNoPad(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, solTLS, optRXExpectNoPad)
	return v != 0, os.NewSyscallError("getsockopt TLS_RX_EXPECT_NO_PAD", err)
}

// OOBSize is the control buffer RecvRecord needs.
var OOBSize = unix.CmsgSpace(1)

// RecvRecord wraps recvmsg(2) on a socket with TLS_RX installed. It reads
// plaintext into p and returns the content type of the record(s) it came
// from: the kernel never mixes types in one call, and returns a
// non-application-data record on its own. oob must have at least OOBSize
// bytes. Without the control message a plain read fails with EIO when the
// next record is not application data.
func RecvRecord(fd int, p, oob []byte, flags int) (n int, recordType uint8, err error) {
	n, oobn, rflags, _, err := unix.Recvmsg(fd, p, oob, flags)
	if err != nil {
		return 0, 0, os.NewSyscallError("recvmsg", err)
	}
	if rflags&unix.MSG_CTRUNC != 0 {
		return 0, 0, os.NewSyscallError("recvmsg", unix.EMSGSIZE)
	}
	if oobn == 0 {
		// End of stream (n == 0), or data before any record.
		return n, 0, nil
	}
	typ, ok, err := parseRecordType(oob[:oobn])
	switch {
	case err != nil:
		return 0, 0, os.NewSyscallError("recvmsg", fmt.Errorf("%w: %w", unix.EINVAL, err))
	case !ok:
		return 0, 0, os.NewSyscallError("recvmsg", unix.EBADMSG)
	}
	return n, typ, nil
}

// SendRecord wraps sendmsg(2) with a TLS_SET_RECORD_TYPE control message,
// on a socket with TLS_TX installed: p goes out as a record of the given
// content type, for example an alert (21) or a handshake message (22).
func SendRecord(fd int, recordType uint8, p []byte, flags int) (int, error) {
	// A uint64 array keeps the header aligned as struct cmsghdr must be.
	var buf [4]uint64
	oob := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), unix.CmsgSpace(1))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&buf[0]))
	h.Level = solTLS
	h.Type = cmsgSetRecordType
	h.SetLen(unix.CmsgLen(1))
	oob[unix.CmsgLen(0)] = recordType
	n, err := unix.SendmsgN(fd, p, oob, nil, flags)
	return n, os.NewSyscallError("sendmsg", err)
}

// RecSeq returns the sequence number of the next record in one direction,
// from getsockopt(fd, SOL_TLS, TLS_TX or TLS_RX). The kernel wants the
// exact size of the cipher's struct, so a first call with the size of the
// header finds the cipher. The full answer holds the keys too; they are
// zeroed before this returns.
func RecSeq(fd int, dir Direction) (uint64, error) {
	var buf [64]byte
	defer clear(buf[:])
	n := uint32(4)
	if err := getsockopt(fd, solTLS, int(dir), buf[:], &n); err != nil {
		return 0, os.NewSyscallError("getsockopt TLS_"+dir.String(), err)
	}
	c := Cipher(binary.NativeEndian.Uint16(buf[2:]))
	sz, ok := cipherSizes[c]
	if !ok {
		return 0, fmt.Errorf("kernel: getsockopt TLS_%v: unknown cipher %v", dir, c)
	}
	n = uint32(4 + sz.iv + sz.key + sz.salt + sz.recSeq)
	if err := getsockopt(fd, solTLS, int(dir), buf[:], &n); err != nil {
		return 0, os.NewSyscallError("getsockopt TLS_"+dir.String(), err)
	}
	return binary.BigEndian.Uint64(buf[n-8 : n]), nil
}

func getsockopt(fd, level, opt int, buf []byte, n *uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(n)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}
