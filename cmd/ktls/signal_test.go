package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/ktlsgo/ktls/internal/lab/wiretest"
)

// TestSecondSignalExits: the first SIGTERM cancels the context, for a
// graceful stop; the second exits at once, saying so.
func TestSecondSignalExits(t *testing.T) {
	var out wiretest.SyncBuffer
	exited := make(chan struct{})
	ctx, stop := interruptContext(&out, func() { close(exited) })
	defer stop()

	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first SIGTERM did not cancel the context")
	}
	select {
	case <-exited:
		t.Fatal("the first SIGTERM exited")
	default:
	}

	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGTERM did not exit")
	}
	if want := "ktls: second terminated: exiting now, without waiting for connections to finish\n"; out.String() != want {
		t.Errorf("said %q, want %q", out.String(), want)
	}
}
