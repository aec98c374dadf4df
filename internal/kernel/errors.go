package kernel

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotSupported is what a feature probe's error matches (errors.Is) when
// the running kernel lacks the feature.
var ErrNotSupported = errors.New("not supported by this kernel")

// An UnsupportedError names a kernel feature that is missing, the first
// kernel release that has it, and why this one doesn't.
type UnsupportedError struct {
	Feature   string
	MinKernel string
	Release   string // the running kernel's, "" where unknown
	Reason    string // for example "TCP_ULP: ENOENT (no tls module)"
}

// Error names the minimum kernel only to a kernel older than it (or of
// unknown release): a 6.18 kernel built without CONFIG_TLS is not helped
// by "needs Linux 4.13".
func (e *UnsupportedError) Error() string {
	if e.Release != "" && CompareRelease(e.Release, e.MinKernel) >= 0 {
		s := fmt.Sprintf("%s is not available on this kernel (%s)", e.Feature, e.Release)
		if strings.Contains(e.Reason, e.Release) {
			s = e.Feature + " is not available"
		}
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		return s
	}
	s := fmt.Sprintf("%s is not supported by this kernel (", e.Feature)
	if e.Release != "" {
		s += e.Release + "; "
	}
	s += "it needs Linux " + e.MinKernel
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s + ")"
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrNotSupported }
