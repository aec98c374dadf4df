//go:build !linux

package ktls

import "io"

// sendfile and splice are Linux's, and so is kernel TLS: elsewhere no
// connection reaches these; they exist so the package builds.

func (h *txHalf) setZerocopySendfile() error                              { return errOS }
func (h *txHalf) readFromKernel(r io.Reader) (int64, error)               { return 0, errOS }
func (h *rxHalf) writeToKernel(w io.Writer, relay *txHalf) (int64, error) { return 0, errOS }
