package kernel

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"testing/fstest"
)

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// TestULPReason: each kind of system gets the reason that applies to it,
// with the one action that helps, and never one that doesn't (modprobe
// on a kernel built without CONFIG_TLS).
func TestULPReason(t *testing.T) {
	const rel = "6.18.0-1-amd64"
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	dir := &fstest.MapFile{Mode: 0o755 | 1<<31}
	base := func() fstest.MapFS {
		return fstest.MapFS{
			"proc/sys/kernel/osrelease":           file(rel + "\n"),
			"proc/sys/net/ipv4/tcp_available_ulp": file("mptcp\n"),
		}
	}
	for _, tc := range []struct {
		name    string
		fs      func() fstest.MapFS
		want    []string // substrings
		notWant []string
	}{
		{"built without TLS, /proc/config.gz", func() fstest.MapFS {
			m := base()
			m["proc/config.gz"] = &fstest.MapFile{Data: gz("CONFIG_NET=y\n# CONFIG_TLS is not set\n")}
			m["lib/modules/"+rel] = dir
			return m
		}, []string{"this kernel (" + rel + ") was built without kernel TLS", "CONFIG_TLS is not set in /proc/config.gz", "CONFIG_TLS=m"}, []string{"modprobe"}},
		{"built without TLS, /boot config", func() fstest.MapFS {
			m := base()
			m["boot/config-"+rel] = file("CONFIG_NET=y\n# CONFIG_TLS is not set\n")
			return m
		}, []string{"built without kernel TLS", "/boot/config-" + rel}, []string{"modprobe"}},
		{"module installed, not loaded", func() fstest.MapFS {
			m := base()
			m["boot/config-"+rel] = file("CONFIG_TLS=m\n")
			m["lib/modules/"+rel+"/kernel/net/tls/tls.ko.xz"] = file("")
			return m
		}, []string{"installed (/lib/modules/" + rel + "/kernel/net/tls/tls.ko.xz) but not loaded", "modprobe tls", "/etc/modules-load.d"}, nil},
		{"module configured, not installed", func() fstest.MapFS {
			m := base()
			m["boot/config-"+rel] = file("CONFIG_TLS=m\n")
			m["lib/modules/"+rel+"/modules.builtin"] = file("kernel/net/ipv4/tcp_cubic.ko\n")
			return m
		}, []string{"CONFIG_TLS=m", "tls.ko is not installed", "linux-modules-extra-" + rel}, []string{"modprobe"}},
		{"container without /lib/modules", func() fstest.MapFS {
			return base()
		}, []string{"/lib/modules/" + rel + " is not here", "on the host, run 'modprobe tls'"}, nil},
		{"no config, no module", func() fstest.MapFS {
			m := base()
			m["lib/modules/"+rel+"/modules.builtin"] = file("")
			return m
		}, []string{"has no kernel TLS", "CONFIG_TLS=m"}, []string{"modprobe"}},
		{"loaded but no ULP", func() fstest.MapFS {
			m := base()
			m["sys/module/tls"] = dir
			return m
		}, []string{"TCP_ULP \"tls\" failed", "tcp_available_ulp: mptcp"}, []string{"modprobe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := GatherULPFacts(tc.fs()).Reason()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("reason lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("reason says %q, which doesn't apply:\n%s", w, got)
				}
			}
		})
	}
}

// TestUnsupportedErrorRelease: "needs Linux X" is said only to a kernel
// older than X.
func TestUnsupportedErrorRelease(t *testing.T) {
	old := &UnsupportedError{Feature: "TLS 1.3 rekey (KeyUpdate)", MinKernel: "6.14", Release: "6.12.118+deb13-amd64", Reason: "EBUSY"}
	if got, want := old.Error(), "TLS 1.3 rekey (KeyUpdate) is not supported by this kernel (6.12.118+deb13-amd64; it needs Linux 6.14: EBUSY)"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	recent := &UnsupportedError{Feature: "kernel TLS (the tls ULP)", MinKernel: "4.13", Release: "6.18.0-1-amd64", Reason: "this kernel was built without kernel TLS"}
	if got, want := recent.Error(), "kernel TLS (the tls ULP) is not available on this kernel (6.18.0-1-amd64): this kernel was built without kernel TLS"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	unknown := &UnsupportedError{Feature: "X", MinKernel: "5.1", Reason: "r"}
	if got, want := unknown.Error(), "X is not supported by this kernel (it needs Linux 5.1: r)"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
