package kernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"path"
	"strings"
)

// ULPFacts is what a system shows about why its kernel has no tls ULP:
// the kernel's build configuration, the module on disk, the module
// loaded. A reason built from them says only what applies, and names the
// one action that helps; "try modprobe tls" on a kernel built without
// CONFIG_TLS would send a user after a module that doesn't exist.
type ULPFacts struct {
	Release string // uname -r; "" where unknown
	// Config is CONFIG_TLS in the kernel's build configuration: "y", "m",
	// "n" (not set), or "" where no configuration could be read.
	Config     string
	ConfigFile string // where Config came from
	// ModulesDir says whether /lib/modules/RELEASE exists: in a container
	// it often doesn't, and then nothing can be said of the module.
	ModulesDir bool
	ModuleFile string // tls.ko (maybe compressed) under it, if any
	Builtin    bool   // modules.builtin lists net/tls/tls.ko
	Loaded     bool   // /sys/module/tls exists
	ULPs       string // /proc/sys/net/ipv4/tcp_available_ulp, "" if unread
}

// GatherULPFacts reads the facts from a file system rooted at the
// system's / (os.DirFS("/") for the running system).
func GatherULPFacts(root fs.FS) ULPFacts {
	var f ULPFacts
	if b, err := fs.ReadFile(root, "proc/sys/kernel/osrelease"); err == nil {
		f.Release = strings.TrimSpace(string(b))
	}
	if b, err := fs.ReadFile(root, "proc/sys/net/ipv4/tcp_available_ulp"); err == nil {
		f.ULPs = strings.TrimSpace(string(b))
	}
	if _, err := fs.Stat(root, "sys/module/tls"); err == nil {
		f.Loaded = true
	}
	f.Config, f.ConfigFile = readConfigTLS(root, f.Release)
	if f.Release == "" {
		return f
	}
	for _, dir := range []string{"lib/modules/" + f.Release, "usr/lib/modules/" + f.Release} {
		if _, err := fs.Stat(root, dir); err != nil {
			continue
		}
		f.ModulesDir = true
		for _, ext := range []string{"", ".xz", ".zst", ".gz"} {
			p := path.Join(dir, "kernel/net/tls/tls.ko"+ext)
			if _, err := fs.Stat(root, p); err == nil {
				f.ModuleFile = "/" + p
				break
			}
		}
		if b, err := fs.ReadFile(root, path.Join(dir, "modules.builtin")); err == nil {
			f.Builtin = bytes.Contains(b, []byte("kernel/net/tls/tls.ko"))
		}
		break
	}
	return f
}

// readConfigTLS finds CONFIG_TLS in /proc/config.gz (CONFIG_IKCONFIG_PROC)
// or /boot/config-RELEASE, where distributions install it.
func readConfigTLS(root fs.FS, release string) (value, file string) {
	var r io.Reader
	if f, err := root.Open("proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			r, file = zr, "/proc/config.gz"
		}
	}
	if r == nil && release != "" {
		if f, err := root.Open("boot/config-" + release); err == nil {
			defer f.Close()
			r, file = f, "/boot/config-"+release
		}
	}
	if r == nil {
		return "", ""
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "# CONFIG_TLS is not set":
			return "n", file
		case strings.HasPrefix(line, "CONFIG_TLS="):
			return strings.TrimPrefix(line, "CONFIG_TLS="), file
		}
	}
	if sc.Err() != nil {
		return "", ""
	}
	// A configuration that doesn't mention it predates kernel TLS.
	return "n", file
}

// Reason says why the tls ULP is missing, from the facts alone, with the
// one action that can help.
func (f ULPFacts) Reason() string {
	kern := "this kernel"
	if f.Release != "" {
		kern += " (" + f.Release + ")"
	}
	switch {
	case f.Config == "n":
		return kern + " was built without kernel TLS (CONFIG_TLS is not set in " + f.ConfigFile +
			"); use a kernel built with CONFIG_TLS=m, as the Debian, Ubuntu, Fedora and RHEL kernels are"
	case f.Loaded || f.Builtin || f.Config == "y":
		// The code is in the kernel, yet TCP_ULP "tls" failed.
		return "the tls module is in the kernel, but TCP_ULP \"tls\" failed (tcp_available_ulp: " + orNone(f.ULPs) + ")"
	case f.ModuleFile != "":
		return "the tls module is installed (" + f.ModuleFile + ") but not loaded, and this process may not load it; " +
			"run 'modprobe tls' as root, and add 'tls' to /etc/modules-load.d/tls.conf to load it at boot"
	case f.Config == "m" && f.ModulesDir:
		return kern + " has kernel TLS as a module (CONFIG_TLS=m in " + f.ConfigFile + "), but tls.ko is not installed under /lib/modules/" +
			f.Release + "; install this kernel's full modules package (on Ubuntu, linux-modules-extra-" + f.Release + ")"
	case !f.ModulesDir:
		return "the tls module is not loaded, and /lib/modules/" + orNone(f.Release) + " is not here to say whether it exists " +
			"(a container?); on the host, run 'modprobe tls' as root"
	}
	return kern + " has no kernel TLS: no tls module under /lib/modules/" + f.Release +
		", and the tls ULP is not registered; use a kernel built with CONFIG_TLS=m, as distribution kernels are"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
