package lab

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// extractVmlinux decompresses the ELF kernel inside a bzImage, so QEMU can
// start it at its PVH entry point. Under TCG that skips the real-mode setup
// code and the kernel's self-decompression, several seconds per boot.
func extractVmlinux(bzImage []byte) ([]byte, error) {
	// The x86 boot protocol (Documentation/arch/x86/boot.rst): the setup
	// code is setup_sects+1 sectors, and protocol 2.08+ gives the offset
	// and length of the compressed payload after it.
	if len(bzImage) < 0x250 || string(bzImage[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage")
	}
	if binary.LittleEndian.Uint16(bzImage[0x206:]) < 0x208 {
		return nil, errors.New("boot protocol before 2.08 has no payload offset")
	}
	setupSects := int(bzImage[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bzImage[0x248:]))
	n := int(binary.LittleEndian.Uint32(bzImage[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(bzImage) {
		return nil, errors.New("payload outside the image")
	}
	payload := bzImage[off : off+n]

	var r io.Reader
	var err error
	switch {
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		r, err = xz.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(payload))
		if err == nil {
			defer d.Close()
			r = d
		}
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		r, err = gzip.NewReader(bytes.NewReader(payload))
	default:
		return nil, fmt.Errorf("unknown payload compression % x", payload[:4])
	}
	if err != nil {
		return nil, err
	}
	vmlinux, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if !hasPVHNote(vmlinux) {
		return nil, errors.New("kernel has no PVH entry point")
	}
	return vmlinux, nil
}

// hasPVHNote reports whether an ELF kernel carries XEN_ELFNOTE_PHYS32_ENTRY,
// the note QEMU needs to boot it directly.
func hasPVHNote(vmlinux []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return false
	}
	defer f.Close()
	const xenElfnotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		for len(data) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(data[0:]))
			descsz := int(binary.LittleEndian.Uint32(data[4:]))
			typ := binary.LittleEndian.Uint32(data[8:])
			name := data[12:min(len(data), 12+namesz)]
			if typ == xenElfnotePhys32Entry && bytes.HasPrefix(name, []byte("Xen")) {
				return true
			}
			adv := 12 + align4(namesz) + align4(descsz)
			if adv > len(data) {
				break
			}
			data = data[adv:]
		}
	}
	return false
}

func align4(n int) int { return (n + 3) &^ 3 }

// writeVmlinux stores the PVH kernel beside the bzImage when it can be
// extracted. The lab boots whichever of the two exists, preferring PVH.
func writeVmlinux(bzImagePath, dst string) error {
	data, err := os.ReadFile(bzImagePath)
	if err != nil {
		return err
	}
	vmlinux, err := extractVmlinux(data)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, vmlinux, 0o644)
}
