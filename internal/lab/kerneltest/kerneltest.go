// Package kerneltest gates tests on kernel features.
//
// A test that needs kernel TLS calls RequireULP (RequireRekey where it
// updates keys), or Require with the newer features it needs too. On a
// host without the feature (most CI hosts: CONFIG_TLS is off) the test is
// skipped, and says why. In the kernel lab, where KTLS_LAB names the
// kernel, it fails instead, unless the kernel is older than the feature's
// first release: a skipped test there would hide a broken probe or a
// broken lab.
package kerneltest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ktlsgo/ktls/internal/kernel"
	"github.com/ktlsgo/ktls/internal/lab/job"
)

// InLab reports whether the test runs in the kernel lab, and in which of
// its kernels ("6.1", "6.12", "7").
func InLab() (kernelName string, ok bool) {
	return os.LookupEnv(job.EnvLab)
}

// Release is the running kernel's release, as uname -r prints it, or ""
// where /proc doesn't say.
func Release() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// Require skips or fails t unless the running kernel has every feature.
func Require(t testing.TB, features ...*kernel.Feature) {
	t.Helper()
	for _, f := range features {
		err := f.Check()
		if err == nil {
			continue
		}
		rel := Release()
		name, inLab := InLab()
		switch {
		case !inLab:
			t.Skipf("kernel %s: %v (run in the lab: go run ./cmd/ktls-lab test)", rel, err)
		case errors.Is(err, kernel.ErrNotSupported) && kernel.CompareRelease(rel, f.MinKernel) < 0:
			t.Skipf("lab kernel %s (%s) predates %s: %v", name, rel, f.MinKernel, err)
		default:
			t.Fatalf("lab kernel %s (%s) should have %s: %v", name, rel, f.Name, err)
		}
	}
}

// RequireULP is Require(t, kernel.FeatureULP): the gate of every test
// that needs kernel TLS at all and nothing newer, which most of them are.
func RequireULP(t testing.TB) {
	t.Helper()
	Require(t, kernel.FeatureULP)
}

// RequireRekey is Require(t, kernel.FeatureULP, kernel.FeatureRekey): the
// gate of every test that updates keys under the kernel.
func RequireRekey(t testing.TB) {
	t.Helper()
	Require(t, kernel.FeatureULP, kernel.FeatureRekey)
}

// HaveULP reports whether this host has kernel TLS (kernel.FeatureULP),
// for a test that runs either way and expects what the host can do: on
// one without it, every connection stays on crypto/tls.
func HaveULP() bool { return kernel.FeatureULP.Check() == nil }

// Unavailable skips t, saying what is missing, where the tests may run
// without it (a developer's host, a CI host), and fails t in the lab,
// which provides everything the tests need: root, loopback for both IP
// versions, sock_diag, veth, and the peers .ci/run installs.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if name, ok := InLab(); ok {
		t.Fatalf("lab kernel %s should have it: %s", name, msg)
	}
	t.Skip(msg)
}

// Program returns the path of the named program, or skips or fails t as
// Unavailable does: the lab's guests run the host's programs.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed (.ci/run installs it): %v", name, err)
	}
	return p
}

// threadStatsFile is kernel.StatsFile for the calling thread's network
// namespace. /proc/net is the main thread's, which a test that moves
// threads between namespaces could leave elsewhere.
const threadStatsFile = "/proc/thread-self/net/tls_stat"

// Stats returns the counters of /proc/net/tls_stat, or fails t.
func Stats(t testing.TB) kernel.Stats {
	t.Helper()
	data, err := os.ReadFile(threadStatsFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kernel.ParseStats(data)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Stat returns a counter from /proc/net/tls_stat, or fails t.
func Stat(t testing.TB, name string) uint64 {
	t.Helper()
	v, _ := Stats(t).Get(name)
	return v
}

// BulkKernel is the lab kernel that moves the suite's big transfers (a
// GiB by sendfile, hundreds of MiB through curl). Under emulation each
// such transfer takes minutes; on the other kernels the same tests run
// the same paths with less data, which keeps the whole suite within CI's
// time. 6.1 gets them because the other two already run the tests that
// need newer kernels (KeyUpdate on 7.x).
const BulkKernel = "6.1"

// BulkSize returns full on the host and on BulkKernel, and reduced on the
// lab's other kernels.
func BulkSize(full, reduced int64) int64 {
	if name, ok := InLab(); ok && name != BulkKernel {
		return reduced
	}
	return full
}
