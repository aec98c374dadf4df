package ktls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ktlsgo/ktls/internal/lab/kerneltest"
	"github.com/ktlsgo/ktls/internal/lab/testcert"
)

// The connections these tests make, ktls's and crypto/tls's ends over
// loopback TCP and a raw peer, come from internal/lab/ktlstest, shared
// with the end-to-end tests in internal/lab/e2e.

func TestMain(m *testing.M) {
	if spec := os.Getenv(envHelper); spec != "" {
		mode, n, _ := strings.Cut(spec, ":")
		size, _ := strconv.ParseInt(n, 10, 64)
		if err := zeroCopyHelper(mode, size); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// helperT lets the test helpers run outside a test, in the child process
// TestZeroCopyUsed starts.
type helperT struct {
	testing.TB
	cleanups []func()
	err      error
}

func (h *helperT) Helper()                   {}
func (h *helperT) Cleanup(f func())          { h.cleanups = append(h.cleanups, f) }
func (h *helperT) Fatal(args ...any)         { h.err = errors.New(fmt.Sprint(args...)); runtime.Goexit() }
func (h *helperT) Fatalf(f string, a ...any) { h.err = fmt.Errorf(f, a...); runtime.Goexit() }
func (h *helperT) Logf(string, ...any)       {}

// run calls f in a goroutine, so Fatal can end it, and returns the error
// Fatal recorded.
func (h *helperT) run(f func()) error {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
	return h.err
}

func (h *helperT) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
}

// inLab reports whether the test runs in the kernel lab.
func inLab() bool {
	_, ok := kerneltest.InLab()
	return ok
}

// promptly bounds what must not wait on the peer or on another goroutine;
// a failure then reports instead of hanging the run.
const promptly = 5 * time.Second

func serverConfig(k testcert.Kind) *tls.Config { return testcert.Get(k).ServerConfig() }
func clientConfig(k testcert.Kind) *tls.Config { return testcert.Get(k).ClientConfig() }
