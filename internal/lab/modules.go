package lab

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ulikunitz/xz"

	"github.com/ktlsgo/ktls/internal/lab/modinfo"
)

// moduleDirs go into the initramfs whole, for the guest's modprobe to load
// on demand: module names move between releases (7.x folds chacha_generic
// and chacha-x86_64 into crypto/chacha.ko), so naming individual cipher
// modules would break, while the kernel's own requests ("crypto-gcm(aes)")
// stay the same.
var moduleDirs = []string{"kernel/crypto", "kernel/lib/crypto", "kernel/arch/x86/crypto"}

// preloadModules are loaded at boot, with their dependencies: kernel TLS,
// the 9p host root over virtio, veth for two-host tests, and a virtio RNG
// so getrandom doesn't wait for entropy. Everything else loads when the
// kernel asks for it.
var preloadModules = []string{"tls", "9p", "9pnet_virtio", "virtio_pci", "veth", "virtio_rng"}

// onDemandModules go into the initramfs for the guest's modprobe, like
// the cipher modules: the sock_diag handlers for TCP, which the kernel
// requests when a program asks for a socket dump (ktls stat does), and
// the netem qdisc, which the kernel requests when a test makes a labnet
// link slow and lossy (labnet.Host.Netem).
var onDemandModules = []string{"inet_diag", "tcp_diag", "sch_netem"}

// moduleSet names the selection above. A cached kernel selected with
// another set is fetched again.
const moduleSet = "3: crypto dirs, tls, 9p, virtio, veth, inet_diag, tcp_diag, sch_netem"

// requiredModules must be present in every kernel; the others are optional.
var requiredModules = []string{"tls", "9p", "9pnet_virtio"}

// skippedModules never load usefully: tcrypt runs a long self-test and
// then refuses to load by design.
var skippedModules = map[string]bool{"tcrypt": true}

// selectModules copies the modules the guest loads, with their
// dependencies, from the kernel's module tree into dst as NAME.ko, and
// returns how many it copied.
func selectModules(modRoot, dst string) (int, error) {
	byName := map[string]string{}
	err := walkModules(filepath.Join(modRoot, "kernel"), func(path string) error {
		byName[modinfo.NameFromPath(path)] = path
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("lab: indexing modules: %w", err)
	}

	var queue []string
	for _, dir := range moduleDirs {
		_ = walkModules(filepath.Join(modRoot, dir), func(path string) error {
			queue = append(queue, modinfo.NameFromPath(path))
			return nil
		})
	}
	for _, name := range append(preloadModules, onDemandModules...) {
		if _, ok := byName[name]; ok {
			queue = append(queue, name)
		}
	}
	for _, name := range requiredModules {
		if _, ok := byName[name]; !ok {
			return 0, fmt.Errorf("lab: kernel has no %s module", name)
		}
	}

	seen := map[string]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] || skippedModules[name] {
			continue
		}
		seen[name] = true
		path, ok := byName[name]
		if !ok {
			// A dependency that is built in, not a module.
			continue
		}
		data, err := readModule(path)
		if err != nil {
			return 0, err
		}
		info, err := modinfo.Read(bytes.NewReader(data))
		if err != nil {
			return 0, fmt.Errorf("lab: %s: %w", path, err)
		}
		queue = append(queue, info.Depends...)
		if err := os.WriteFile(filepath.Join(dst, name+".ko"), data, 0o644); err != nil {
			return 0, fmt.Errorf("lab: %w", err)
		}
	}
	names, _ := filepath.Glob(filepath.Join(dst, "*.ko"))
	return len(names), nil
}

// readModule returns a module's ELF bytes. 7.x ships modules as .ko.xz and
// the guest loads them decompressed, so finit_module needs no flags.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("lab: %s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".ko"):
	default:
		return nil, fmt.Errorf("lab: %s: unsupported module compression", path)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", path, err)
	}
	return data, nil
}

// moduleNames lists the modules in a directory prepared by selectModules.
func moduleNames(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.ko"))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".ko"))
	}
	sort.Strings(names)
	return names, nil
}
