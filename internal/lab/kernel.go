package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A Kernel is a Debian kernel the lab can boot.
type Kernel struct {
	// Name is how users pick the kernel: "6.1", "6.12" or "7".
	Name string
	// Distribution says where the package comes from.
	Distribution string
	// Sources are the apt source lines the package is resolved from. They
	// go into a private sources list, never the host's.
	Sources []string
}

const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

func debianSource(mirror, suite string) string {
	return fmt.Sprintf("deb [signed-by=%s] http://deb.debian.org/%s %s main", debianKeyring, mirror, suite)
}

// Kernels lists the kernels the lab knows, oldest first. Each one resolves
// to the newest package of its series on the day it is fetched, because
// Debian's ABI numbers change with every security update.
var Kernels = []Kernel{
	{
		Name:         "6.1",
		Distribution: "Debian 12 (bookworm)",
		Sources: []string{
			debianSource("debian", "bookworm"),
			debianSource("debian", "bookworm-updates"),
			debianSource("debian-security", "bookworm-security"),
		},
	},
	{
		Name:         "6.12",
		Distribution: "Debian 13 (trixie)",
		Sources: []string{
			debianSource("debian", "trixie"),
			debianSource("debian", "trixie-updates"),
			debianSource("debian-security", "trixie-security"),
		},
	},
	{
		Name:         "7",
		Distribution: "Debian 13 backports (trixie-backports)",
		Sources:      []string{debianSource("debian", "trixie-backports")},
	},
}

// LookupKernel finds a kernel by name. "7.x" is accepted for "7".
func LookupKernel(name string) (Kernel, error) {
	name = strings.TrimSuffix(name, ".x")
	for _, k := range Kernels {
		if k.Name == name {
			return k, nil
		}
	}
	var names []string
	for _, k := range Kernels {
		names = append(names, k.Name)
	}
	return Kernel{}, fmt.Errorf("lab: unknown kernel %q (have %s)", name, strings.Join(names, ", "))
}

// ParseKernels turns "6.1,7" or "all" into kernels.
func ParseKernels(list string) ([]Kernel, error) {
	if list == "all" || list == "" {
		return Kernels, nil
	}
	var ks []Kernel
	for _, name := range strings.Split(list, ",") {
		k, err := LookupKernel(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// A FetchedKernel is a kernel image with the modules the lab loads, unpacked
// in the cache.
type FetchedKernel struct {
	Kernel  Kernel    `json:"-"`
	Package string    `json:"package"` // for example linux-image-6.1.0-56-amd64
	Version string    `json:"version"` // the Debian package version
	Release string    `json:"release"` // uname -r, for example 6.1.0-56-amd64
	Dir     string    `json:"dir"`     // holds vmlinuz and modules/
	Fetched time.Time `json:"fetched"`
	Modules string    `json:"modules"` // the moduleSet it was selected with
}

// Vmlinuz is the path of the kernel image as Debian ships it.
func (f *FetchedKernel) Vmlinuz() string { return filepath.Join(f.Dir, "vmlinuz") }

// BootImage is the image QEMU boots: the uncompressed ELF kernel, started
// at its PVH entry point, where one could be extracted, else the bzImage.
func (f *FetchedKernel) BootImage() string {
	if p := filepath.Join(f.Dir, "vmlinux"); fileExists(p) {
		return p
	}
	return f.Vmlinuz()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ModulesDir holds the selected modules, decompressed, as NAME.ko.
func (f *FetchedKernel) ModulesDir() string { return filepath.Join(f.Dir, "modules") }

// refreshAfter is how long a resolved kernel is used before the lab looks
// for a newer package of the same series.
const refreshAfter = 24 * time.Hour

// Fetch returns the kernel from the cache, downloading and unpacking it
// first when it is missing or stale. A stale kernel is still used when the
// mirror can't be reached.
func (c *Cache) Fetch(k Kernel, logf func(string, ...any)) (*FetchedKernel, error) {
	unlock, err := c.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()

	stamp := filepath.Join(c.Dir, "kernel-"+k.Name+".json")
	cached, cacheErr := readFetched(stamp, k)
	if cacheErr == nil && time.Since(cached.Fetched) < refreshAfter {
		return cached, nil
	}

	fetched, err := c.fetch(k, logf)
	if err != nil {
		if cacheErr == nil {
			logf("lab: using cached kernel %s (%s): refresh failed: %v", k.Name, cached.Release, err)
			return cached, nil
		}
		return nil, err
	}
	data, _ := json.MarshalIndent(fetched, "", "  ")
	if err := os.WriteFile(stamp, data, 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return fetched, nil
}

func readFetched(stamp string, k Kernel) (*FetchedKernel, error) {
	data, err := os.ReadFile(stamp)
	if err != nil {
		return nil, err
	}
	f := &FetchedKernel{Kernel: k}
	if err := json.Unmarshal(data, f); err != nil {
		return nil, err
	}
	if _, err := os.Stat(f.Vmlinuz()); err != nil {
		return nil, err
	}
	if f.Modules != moduleSet {
		return nil, fmt.Errorf("lab: kernel %s was cached with another module selection", f.Release)
	}
	return f, nil
}

func (c *Cache) fetch(k Kernel, logf func(string, ...any)) (*FetchedKernel, error) {
	apt, err := c.apt(k)
	if err != nil {
		return nil, err
	}
	logf("lab: kernel %s: updating private apt lists (%s)", k.Name, k.Distribution)
	if _, err := apt.run("apt-get", "update"); err != nil {
		return nil, err
	}

	// linux-image-amd64 depends on the current ABI's image package; from 7.x
	// on, that one is a meta package over linux-binary-* and linux-modules-*.
	image, err := apt.dependency("linux-image-amd64", regexp.MustCompile(`^linux-image-[0-9][^ ]*-amd64$`))
	if err != nil {
		return nil, err
	}
	version, err := apt.candidate(image)
	if err != nil {
		return nil, err
	}
	deps, err := apt.depends(image)
	if err != nil {
		return nil, err
	}
	pkgs := []string{image}
	for _, d := range deps {
		if strings.HasPrefix(d, "linux-binary-") || strings.HasPrefix(d, "linux-modules-") {
			pkgs = append(pkgs, d)
		}
	}

	dir := filepath.Join(c.Dir, "kernels", image+"_"+version)
	if f, err := readFetched(filepath.Join(dir, "fetched.json"), k); err == nil {
		f.Fetched = time.Now()
		return f, nil
	}

	work, err := os.MkdirTemp(c.Dir, "fetch-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(work)

	logf("lab: kernel %s: downloading %s %s", k.Name, strings.Join(pkgs, " "), version)
	apt.dir = work
	if _, err := apt.run("apt-get", append([]string{"download"}, pkgs...)...); err != nil {
		return nil, err
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	if len(debs) != len(pkgs) {
		return nil, fmt.Errorf("lab: downloaded %d packages, want %d", len(debs), len(pkgs))
	}
	root := filepath.Join(work, "root")
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("lab: unpacking %s: %v: %s", filepath.Base(deb), err, out)
		}
	}

	staging := filepath.Join(work, "kernel")
	release, err := installKernel(root, staging, logf)
	if err != nil {
		return nil, err
	}
	f := &FetchedKernel{Kernel: k, Package: image, Version: version, Release: release, Dir: dir, Fetched: time.Now(), Modules: moduleSet}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(staging, dir); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	data, _ := json.MarshalIndent(f, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "fetched.json"), data, 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return f, nil
}

// installKernel copies the kernel image and the modules the guest needs
// from an unpacked package tree into dst, and returns the kernel release.
func installKernel(root, dst string, logf func(string, ...any)) (string, error) {
	var modRoot string
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		entries, err := os.ReadDir(filepath.Join(root, base))
		if err == nil && len(entries) == 1 && entries[0].IsDir() {
			modRoot = filepath.Join(root, base, entries[0].Name())
			break
		}
	}
	if modRoot == "" {
		return "", errors.New("lab: no lib/modules/RELEASE in the kernel packages")
	}
	release := filepath.Base(modRoot)

	vmlinuz := ""
	for _, p := range []string{filepath.Join(root, "boot", "vmlinuz-"+release), filepath.Join(modRoot, "vmlinuz")} {
		if _, err := os.Stat(p); err == nil {
			vmlinuz = p
			break
		}
	}
	if vmlinuz == "" {
		return "", fmt.Errorf("lab: no vmlinuz for %s in the kernel packages", release)
	}
	if err := os.MkdirAll(filepath.Join(dst, "modules"), 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	if err := copyFile(vmlinuz, filepath.Join(dst, "vmlinuz")); err != nil {
		return "", err
	}

	n, err := selectModules(modRoot, filepath.Join(dst, "modules"))
	if err != nil {
		return "", err
	}
	logf("lab: kernel %s: %d modules selected", release, n)
	return release, nil
}

// aptEnv runs apt with private lists and cache, so the host's sources and
// state stay untouched.
type aptEnv struct {
	args []string
	dir  string
}

func (c *Cache) apt(k Kernel) (*aptEnv, error) {
	base := filepath.Join(c.Dir, "apt", k.Name)
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	sources := filepath.Join(base, "sources.list")
	if err := os.WriteFile(sources, []byte(strings.Join(k.Sources, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return &aptEnv{args: []string{
		"-q",
		"-o", "Dir::Etc::sourcelist=" + sources,
		"-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::State::Lists=" + filepath.Join(base, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(base, "cache"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Retries=3",
	}}, nil
}

func (a *aptEnv) run(tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, append(slices.Clone(a.args), args...)...)
	cmd.Dir = a.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("lab: %s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (a *aptEnv) depends(pkg string) ([]string, error) {
	out, err := a.run("apt-cache", "depends", "--no-recommends", "--no-suggests", pkg)
	if err != nil {
		return nil, err
	}
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if d, ok := strings.CutPrefix(line, "Depends: "); ok {
			deps = append(deps, strings.Trim(d, "<>"))
		}
	}
	return deps, nil
}

func (a *aptEnv) dependency(pkg string, re *regexp.Regexp) (string, error) {
	deps, err := a.depends(pkg)
	if err != nil {
		return "", err
	}
	for _, d := range deps {
		if re.MatchString(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("lab: %s has no dependency matching %s (has %v)", pkg, re, deps)
}

func (a *aptEnv) candidate(pkg string) (string, error) {
	out, err := a.run("apt-cache", "policy", pkg)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && v != "(none)" {
			return v, nil
		}
	}
	return "", fmt.Errorf("lab: no candidate version for %s", pkg)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// walkModules calls fn for every module file under root.
func walkModules(root string, fn func(path string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.Contains(d.Name(), ".ko") {
			return nil
		}
		return fn(path)
	})
}
