package lab

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/ktlsgo/ktls/internal/lab/modinfo"
)

// An initramfs is a "newc" cpio archive (the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst). The writer
// is small enough to keep here, and it can make the two device nodes the
// kernel needs before /init runs: /dev/console for init's stdio, and
// /dev/null, which the Go runtime opens for any standard descriptor that
// is missing.
type cpioWriter struct {
	w     *bufio.Writer
	ino   int
	wrote int64
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1}
}

const (
	cpioDir  = 0o040000
	cpioReg  = 0o100000
	cpioChar = 0o020000
)

func (c *cpioWriter) entry(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) error {
	c.ino++
	nlink := 1
	if mode&cpioDir != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if _, err := c.w.WriteString(hdr); err != nil {
		return err
	}
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.wrote += int64(len(hdr) + len(name) + 1)
	c.pad()
	c.w.Write(data)
	c.wrote += int64(len(data))
	c.pad()
	return nil
}

// pad aligns the archive to 4 bytes, as newc requires after each name and
// each file body.
func (c *cpioWriter) pad() {
	for c.wrote%4 != 0 {
		c.w.WriteByte(0)
		c.wrote++
	}
}

func (c *cpioWriter) close() error {
	if err := c.entry("TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	return c.w.Flush()
}

// buildInitramfs writes an archive holding the guest init as /init and the
// kernel's selected modules under /lib/modules.
func buildInitramfs(dst, initBinary, modulesDir string) error {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	w := newCPIOWriter(f)
	for _, d := range []string{"dev", "proc", "sys", "host", "hostraw", "job", "lib", "lib/modules", "tmp"} {
		if err := w.entry(d, cpioDir|0o755, 0, 0, nil); err != nil {
			return fmt.Errorf("lab: writing initramfs: %w", err)
		}
	}
	w.entry("dev/console", cpioChar|0o600, 5, 1, nil)
	w.entry("dev/null", cpioChar|0o666, 1, 3, nil)

	initData, err := os.ReadFile(initBinary)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	w.entry("init", cpioReg|0o755, 0, 0, initData)

	mods, err := filepath.Glob(filepath.Join(modulesDir, "*.ko"))
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	sort.Strings(mods)
	index := modinfo.Index{Preload: preloadModules, Modules: map[string]*modinfo.Info{}}
	for _, m := range mods {
		data, err := os.ReadFile(m)
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		info, err := modinfo.Read(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("lab: %s: %w", m, err)
		}
		index.Modules[modinfo.NameFromPath(m)] = info
		if err := w.entry("lib/modules/"+filepath.Base(m), cpioReg|0o644, 0, 0, data); err != nil {
			return fmt.Errorf("lab: writing initramfs: %w", err)
		}
	}
	indexData, err := json.Marshal(&index)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	w.entry("lib/modules/"+modinfo.IndexFile, cpioReg|0o644, 0, 0, indexData)
	if err := w.close(); err != nil {
		return fmt.Errorf("lab: writing initramfs: %w", err)
	}
	return f.Close()
}
