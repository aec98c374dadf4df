//go:build linux

// Command init is PID 1 in the lab's guest, and the guest's modprobe. The
// lab builds it as a static binary and puts it in the initramfs; see
// package guest.
package main

import (
	"os"

	"github.com/ktlsgo/ktls/internal/lab/guest"
)

func main() {
	if os.Getpid() != 1 {
		os.Exit(guest.Modprobe(os.Args[1:]))
	}
	guest.Main()
}
