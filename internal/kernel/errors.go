package kernel

import (
	"errors"
	"fmt"
)

// ErrNotSupported is what a feature probe's error matches (errors.Is) when
// the running kernel lacks the feature.
var ErrNotSupported = errors.New("not supported by this kernel")

// An UnsupportedError names a kernel feature that is missing, the first
// kernel release that has it, and why this one doesn't.
type UnsupportedError struct {
	Feature   string
	MinKernel string
	Reason    string // for example "TCP_ULP: ENOENT (no tls module)"
}

func (e *UnsupportedError) Error() string {
	s := fmt.Sprintf("%s is not supported by this kernel (needs Linux %s", e.Feature, e.MinKernel)
	if e.Reason != "" {
		s += "; " + e.Reason
	}
	return s + ")"
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrNotSupported }
