package ktls

import (
	"errors"
	"sync/atomic"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/keyschedule"
)

// offloadable is kernel.Offloadable, the one answer to "can this kernel
// offload this suite in this direction", with the reason code of a no:
// CodeNoULP or CodeCipher where the kernel lacks what it takes,
// CodeProbeFailed where a probe could not run (asked again next time).
// On yes it returns the suite, whose keys then go to the kernel
// (kernel.NewCryptoInfo).
func offloadable(version, cipherSuite uint16, dir kernel.Direction) (*keyschedule.Suite, error) {
	err := kernel.Offloadable(version, cipherSuite, dir)
	var oe *kernel.OffloadError
	switch {
	case err == nil:
		s, _ := keyschedule.Lookup(version, cipherSuite) // Offloadable found it
		return s, nil
	case !errors.As(err, &oe):
		return nil, withCode(CodeOther, err)
	case oe.Feature == nil:
		return nil, withCode(CodeCipher, notOffloadable(version, cipherSuite))
	case oe.Feature == kernel.FeatureULP:
		return nil, noULPReason(oe.Err)
	}
	return nil, withCode(probeCode(oe.Err, CodeCipher), oe.Err)
}

// lastNoULP is the reason noULPReason made last.
var lastNoULP atomic.Pointer[codedError]

// noULPReason is the reason of a connection whose kernel has no tls ULP.
// The kernel's answer is one error for the life of the process
// (kernel.Feature keeps it), so every connection it rules out shares one
// reason, rather than each keeping 32 bytes of its own (BenchmarkMemory).
func noULPReason(err error) error {
	ue, ok := err.(*kernel.UnsupportedError)
	if !ok {
		return withCode(probeCode(err, CodeNoULP), err)
	}
	if e := lastNoULP.Load(); e != nil && e.err == error(ue) {
		return e
	}
	e := &codedError{code: probeCode(err, CodeNoULP), err: err}
	lastNoULP.Store(e)
	return e
}
