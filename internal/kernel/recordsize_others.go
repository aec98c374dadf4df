//go:build !linux

package kernel

func SetTXMaxPayloadLen(fd int, n uint16) error { return errOS }
func TXMaxPayloadLen(fd int) (uint16, error)    { return 0, errOS }

func probeTXMaxPayloadLen() error { return unsupportedOS(FeatureTXMaxPayloadLen)() }
