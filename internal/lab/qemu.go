package lab

import (
	"fmt"

	"github.com/ktlsgo/ktls/internal/lab/job"
	"os"
	"os/exec"
	"strings"
)

// EnsureQEMU installs qemu-system-x86 with apt when it is missing, so a
// fresh machine can run the lab with no set-up step.
func EnsureQEMU(logf func(string, ...any)) (string, error) {
	if p, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("lab: qemu-system-x86_64 not found; install it with: apt-get install --no-install-recommends qemu-system-x86")
	}
	logf("lab: installing qemu-system-x86")
	for _, args := range [][]string{
		{"update", "-q"},
		{"install", "-q", "-y", "--no-install-recommends", "qemu-system-x86"},
	} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("lab: apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return exec.LookPath("qemu-system-x86_64")
}

// Machine is the emulated hardware a job runs on.
type Machine struct {
	MemoryMiB int
	CPUs      int
	Accel     Accel // AccelTCG or AccelKVM; "" is AccelTCG
}

// DefaultMachine fits the 2-core CI hosts: TCG runs one host thread per
// virtual CPU.
var DefaultMachine = Machine{MemoryMiB: 4096, CPUs: 2}

// qemuArgs builds the command line, for TCG or KVM (see Accel).
func qemuArgs(m Machine, vmlinuz, initrd, jobDir string, shares []string) []string {
	cmdline := strings.Join([]string{
		"console=ttyS0",
		"quiet", "loglevel=1", // only emergencies, such as a panic, reach the console
		"panic=-1",            // a panic reboots at once, and -no-reboot turns that into an exit
		"mitigations=off",     // emulated speculation mitigations only cost time
		"random.trust_cpu=on", // RDRAND seeds the CRNG, so getrandom never blocks
		"8250.nr_uarts=1",
	}, " ")
	args := append(accelArgs(m.Accel),
		"-m", fmt.Sprint(m.MemoryMiB),
		"-smp", fmt.Sprint(m.CPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-serial", "stdio",
		"-monitor", "none",
		"-kernel", vmlinuz,
		"-initrd", initrd,
		"-append", cmdline,
		"-device", "virtio-rng-pci",
		// multidevs=remap: without it inode numbers from different host
		// filesystems collide in the guest, and /host/proc shows sysfs.
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path="+jobDir+",mount_tag=labjob,security_model=none,multidevs=remap",
	)
	for i, dir := range shares {
		args = append(args, "-virtfs", "local,path="+dir+",mount_tag="+job.ShareTag(i)+",security_model=none,multidevs=remap")
	}
	// qboot starts a Linux kernel in a fraction of SeaBIOS's time under
	// TCG, and prints nothing to the console.
	if _, err := os.Stat(qboot); err == nil {
		args = append(args, "-bios", qboot)
	}
	return args
}

const qboot = "/usr/share/qemu/qboot.rom"
