package kernel

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// AvailableULPsFile lists the upper layer protocols the kernel has loaded.
const AvailableULPsFile = "/proc/sys/net/ipv4/tcp_available_ulp"

// withTLSSocket runs fn on the client end of an established loopback TCP
// connection with the tls ULP attached. Probing on a real socket is the
// only reliable test: the module may load on demand, and distributions
// configure ciphers out.
func withTLSSocket(f *Feature, fn func(fd int) error) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		return err
	}
	defer s.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		if err := AttachULP(int(fd)); err != nil {
			ferr = ulpError(f, err)
			return
		}
		ferr = fn(int(fd))
	})
	if err != nil {
		return err
	}
	return ferr
}

// ulpError turns a failed TCP_ULP into an UnsupportedError where it means
// the tls module is missing.
func ulpError(f *Feature, err error) error {
	if errors.Is(err, unix.ENOENT) {
		// Say why from what the system shows, not a guess.
		return f.unsupported(GatherULPFacts(os.DirFS("/")).Reason())
	}
	return err
}

func probeULP() error {
	return withTLSSocket(FeatureULP, func(int) error { return nil })
}

// probeInfo is a crypto info whose keys are all zero. It goes only on a
// throwaway loopback socket that never sends a byte.
func probeInfo(version uint16, c Cipher) *CryptoInfo {
	sz := cipherSizes[c]
	return &CryptoInfo{
		Version: version,
		Cipher:  c,
		IV:      make([]byte, sz.iv),
		Key:     make([]byte, sz.key),
		Salt:    make([]byte, sz.salt),
	}
}

func probeCipher(f *Feature, version uint16, c Cipher, dir Direction) error {
	if _, ok := cipherSizes[c]; !ok {
		return f.unsupported("unknown cipher")
	}
	return withTLSSocket(f, func(fd int) error {
		return installError(f, SetCryptoInfo(fd, dir, probeInfo(version, c)))
	})
}

// installError classifies a failed TLS_TX or TLS_RX. ENOENT means the
// crypto module for the cipher could not be found, EINVAL or ENOPROTOOPT a
// kernel that doesn't know the version, cipher or option.
func installError(f *Feature, err error) error {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case unix.ENOENT:
		return f.unsupported(err.Error() + ": the kernel has no crypto module for this cipher")
	case unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return f.unsupported(err.Error())
	}
	return err
}

// prerequisiteError classifies a failure to install the key a probe needs
// before it can try its feature: where the kernel refused the key, the
// feature can't be used here either, which is an answer to cache; where
// the call could not be made, the probe is inconclusive.
func prerequisiteError(f *Feature, err error) error {
	if u := installError(f, err); errors.Is(u, ErrNotSupported) {
		return f.unsupported("the TLS 1.3 AES-128-GCM key it needs was refused: " + err.Error())
	}
	return err
}

// probeWithKey probes f on a socket with a TLS 1.3 AES-128-GCM key
// installed in dir, which the option or operation try needs first.
func probeWithKey(f *Feature, dir Direction, try func(fd int, info *CryptoInfo) error) error {
	return withTLSSocket(f, func(fd int) error {
		info := probeInfo(VersionTLS13, CipherAESGCM128)
		if err := SetCryptoInfo(fd, dir, info); err != nil {
			return prerequisiteError(f, err)
		}
		return try(fd, info)
	})
}

func probeTXZerocopyRO() error {
	f := FeatureTXZerocopyRO
	return probeWithKey(f, TX, func(fd int, _ *CryptoInfo) error {
		return installError(f, SetTXZerocopyRO(fd))
	})
}

func probeRXExpectNoPad() error {
	f := FeatureRXExpectNoPad
	return probeWithKey(f, RX, func(fd int, _ *CryptoInfo) error {
		return installError(f, SetRXExpectNoPad(fd))
	})
}

func probeRekey() error {
	f := FeatureRekey
	return probeWithKey(f, TX, func(fd int, info *CryptoInfo) error {
		err := SetCryptoInfo(fd, TX, info)
		if errors.Is(err, unix.EBUSY) {
			return f.unsupported("installing a second TLS_TX key fails with EBUSY")
		}
		return installError(f, err)
	})
}
