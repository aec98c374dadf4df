//go:build !linux

package ktls

import (
	"fmt"
	"io"
	"runtime"
	"syscall"

	"github.com/ktlsgo/ktls/internal/kernel"
)

// Kernel TLS is Linux's. Elsewhere the ULP probe fails first, so a Conn
// never reaches these; they exist so the package builds.

var errOS = fmt.Errorf("ktls: kernel TLS on %s: %w", runtime.GOOS, ErrNotSupported)

type kernelReadState struct{}

func (c *Conn) install(rc syscall.RawConn, dir kernel.Direction, info *kernel.CryptoInfo, attach bool) error {
	return errOS
}
func (c *Conn) readKernel(b []byte) (int, error)            { return 0, errOS }
func (c *Conn) writeKernel(b []byte) (int, error)           { return 0, errOS }
func (c *Conn) sendRecord(typ uint8, p []byte) (int, error) { return 0, errOS }
func (c *Conn) sendAlertLocked(level, alert uint8) error    { return errOS }
func (c *Conn) updateTXLocked(requestPeer bool) error       { return errOS }
func (c *Conn) sendAlertBestEffort(level, alert uint8)      {}
func (c *Conn) sendKeyUpdateFromTLS(msg []byte) error       { return errOS }

func (c *Conn) readFromKernel(r io.Reader) (int64, error) { return 0, errOS }
func (c *Conn) writeToKernel(w io.Writer) (int64, error)  { return 0, errOS }
