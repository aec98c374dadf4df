// Package modinfo reads the metadata that every Linux kernel module carries
// in its .modinfo ELF section.
//
// Debian's kernel packages ship no modules.dep, so the lab resolves module
// dependencies itself: each module lists the modules it needs in a
// "depends=" entry, and those have to be loaded first.
package modinfo

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Info is the parsed .modinfo section of one module.
type Info struct {
	Name    string   `json:"name"`    // "name=", the name the kernel knows the module by
	Depends []string `json:"depends"` // "depends=", modules that must be loaded first
	Aliases []string `json:"aliases"` // "alias=", for example "crypto-gcm(aes)"
}

// Read parses the .modinfo section of the ELF module in r.
func Read(r io.ReaderAt) (*Info, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("modinfo: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("modinfo: no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("modinfo: reading .modinfo: %w", err)
	}
	return Parse(data), nil
}

// Parse parses the contents of a .modinfo section: NUL-separated key=value
// strings.
func Parse(section []byte) *Info {
	info := &Info{}
	for _, field := range bytes.Split(section, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok {
			continue
		}
		switch key {
		case "name":
			info.Name = value
		case "depends":
			for _, dep := range strings.Split(value, ",") {
				if dep != "" {
					info.Depends = append(info.Depends, dep)
				}
			}
		case "alias":
			info.Aliases = append(info.Aliases, value)
		}
	}
	return info
}

// NameFromPath returns the module name the kernel derives from a module's
// file name: the base name without ".ko", ".ko.xz" or ".ko.zst", with dashes
// turned into underscores.
func NameFromPath(path string) string {
	base := path[strings.LastIndexByte(path, '/')+1:]
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if s, ok := strings.CutSuffix(base, ext); ok {
			base = s
			break
		}
	}
	return strings.ReplaceAll(base, "-", "_")
}

// IndexFile is the name of the module index in the guest's module
// directory.
const IndexFile = "index.json"

// An Index describes the modules the guest may load: what modprobe would
// find in modules.dep and modules.alias on a full system.
type Index struct {
	// Preload lists the modules loaded at boot.
	Preload []string `json:"preload"`
	// Modules maps module names to their .modinfo.
	Modules map[string]*Info `json:"modules"`
}

// Resolve returns the modules that provide name, which is a module name or
// an alias such as "crypto-gcm(aes)" or "tcp-ulp-tls". Like modprobe, it
// returns every module whose alias pattern matches.
func (x *Index) Resolve(name string) []string {
	name = strings.ReplaceAll(name, "-", "_")
	if _, ok := x.Modules[name]; ok {
		return []string{name}
	}
	var out []string
	for mod, info := range x.Modules {
		for _, a := range info.Aliases {
			if ok, _ := path.Match(strings.ReplaceAll(a, "-", "_"), name); ok {
				out = append(out, mod)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// LoadOrder returns the modules, with their dependencies, in an order
// where each module comes after those it depends on.
func (x *Index) LoadOrder(names []string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		info, ok := x.Modules[n]
		if !ok || seen[n] {
			return // built in, or done
		}
		seen[n] = true
		for _, d := range info.Depends {
			visit(d)
		}
		order = append(order, n)
	}
	for _, n := range names {
		visit(n)
	}
	return order
}
