//go:build !linux

package ktls

import (
	"fmt"
	"runtime"
)

// Kernel TLS is Linux's. Elsewhere the ULP probe fails first, so no
// connection reaches these; they exist so the package builds.

var errOS = fmt.Errorf("ktls: kernel TLS on %s: %w", runtime.GOOS, ErrNotSupported)

func (s socket) sendRecord(typ uint8, p []byte) (int, error)    { return 0, errOS }
func (s socket) trySendRecord(typ uint8, p []byte) (int, error) { return 0, errOS }
func (s socket) write(b []byte) (int, error)                    { return 0, errOS }
func (s socket) shutdownWrite()                                 {}
