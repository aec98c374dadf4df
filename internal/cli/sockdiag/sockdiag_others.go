//go:build !linux

package sockdiag

import (
	"fmt"
	"runtime"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// List is Linux-only: sock_diag and kernel TLS are Linux interfaces. Here
// it returns an error that matches kernel.ErrNotSupported.
func List() ([]Socket, error) {
	return nil, fmt.Errorf("sockdiag: socket diagnostics on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}
