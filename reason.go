package ktls

import (
	"errors"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// Reason codes say in one stable word why a direction is not offloaded,
// for logs, metrics labels and programs; the reason's error says it in a
// sentence. ReasonCode maps a reason to its code.
const (
	CodeDisabled      = "disabled"       // Options turned it off
	CodeDeferred      = "deferred"       // RX waits for the server's session tickets (TLS 1.3 client)
	CodeRXNeedsTX     = "rx-needs-tx"    // RX offload needs TX offload
	CodeNoULP         = "no-ulp"         // the kernel has no tls ULP (CONFIG_TLS, the module)
	CodeCipher        = "cipher"         // the version and cipher suite can't be offloaded, by ktls or by this kernel
	CodeNotTCP        = "not-tcp"        // the connection has no TCP socket
	CodeRenegotiation = "renegotiation"  // a TLS 1.2 client with renegotiation enabled
	CodeResumedTLS12  = "resumed-tls12"  // a resumed TLS 1.2 session whose secret ktls can't see
	CodeHandoff       = "handoff"        // ktls could not prove the keys or sequence numbers, so it did not guess
	CodeKernelRefused = "kernel-refused" // the kernel refused the key
	CodeProbeFailed   = "probe-failed"   // a feature probe could not run (EMFILE, say): tried again next time
	CodeOther         = "other"
)

// ReasonCode returns the code of an Offload reason: "" for nil, else one
// of the Code constants.
func ReasonCode(err error) string {
	var ce *codedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, ErrDisabled):
		return CodeDisabled
	case errors.Is(err, ErrDeferred):
		return CodeDeferred
	case errors.Is(err, ErrRXNeedsTX):
		return CodeRXNeedsTX
	case errors.Is(err, ErrResumedTLS12):
		return CodeResumedTLS12
	}
	return CodeOther
}

// TXCode is ReasonCode(o.TXReason).
func (o Offload) TXCode() string { return ReasonCode(o.TXReason) }

// RXCode is ReasonCode(o.RXReason).
func (o Offload) RXCode() string { return ReasonCode(o.RXReason) }

// codedError gives a reason its code; the message and what it wraps are
// the reason's own.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code string, err error) error { return &codedError{code: code, err: err} }

// probeCode is code for a probe that answered "not supported", and
// CodeProbeFailed for one that could not run.
func probeCode(err error, code string) string {
	if errors.Is(err, kernel.ErrNotSupported) {
		return code
	}
	return CodeProbeFailed
}
