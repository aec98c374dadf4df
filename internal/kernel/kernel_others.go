//go:build !linux

package kernel

import (
	"fmt"
	"runtime"
)

var errOS = fmt.Errorf("kernel TLS on %s: %w", runtime.GOOS, ErrNotSupported)

// AvailableULPsFile lists the upper layer protocols the kernel has loaded.
const AvailableULPsFile = "/proc/sys/net/ipv4/tcp_available_ulp"

// OOBSize is the control buffer RecvRecord needs.
var OOBSize = 0

func AttachULP(fd int) error                                      { return errOS }
func SetCryptoInfo(fd int, dir Direction, info *CryptoInfo) error { return errOS }
func SetTXZerocopyRO(fd int) error                                { return errOS }
func SetRXExpectNoPad(fd int) error                               { return errOS }
func TXZerocopyRO(fd int) (bool, error)                           { return false, errOS }
func RXExpectNoPad(fd int) (bool, error)                          { return false, errOS }
func RecvRecord(fd int, p, oob []byte, flags int) (int, uint8, error) {
	return 0, 0, errOS
}
func SendRecord(fd int, recordType uint8, p []byte, flags int) (int, error) { return 0, errOS }
func RecSeq(fd int, dir Direction) (uint64, error)                          { return 0, errOS }

func unsupportedOS(f *Feature) func() error {
	return func() error { return f.unsupported(runtime.GOOS + " has no kernel TLS") }
}

func probeULP() error           { return unsupportedOS(FeatureULP)() }
func probeTXZerocopyRO() error  { return unsupportedOS(FeatureTXZerocopyRO)() }
func probeRXExpectNoPad() error { return unsupportedOS(FeatureRXExpectNoPad)() }
func probeRekey() error         { return unsupportedOS(FeatureRekey)() }
func probeCipher(f *Feature, version uint16, c Cipher, dir Direction) error {
	return unsupportedOS(f)()
}
