//go:build !linux

package ktls

import "io"

// Kernel TLS is Linux's. Elsewhere the ULP probe fails first, so a Conn
// never reaches these; they exist so the package builds.

type kernelReadState struct{}

func (c *Conn) readKernel(b []byte) (int, error)      { return 0, errOS }
func (c *Conn) sendKeyUpdateFromTLS(msg []byte) error { return errOS }

func (h *txHalf) readFromKernel(r io.Reader) (int64, error) { return 0, errOS }
func (c *Conn) writeToKernel(w io.Writer) (int64, error)    { return 0, errOS }
