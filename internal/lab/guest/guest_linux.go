// Package guest is the lab's init: PID 1 inside the QEMU guest.
//
// It prepares a minimal system (the kernel's pseudo filesystems, the
// modules the host selected, loopback, the host's root over 9p), runs the
// job's steps chrooted into the host root, writes the result to the shared
// job directory and powers the machine off. It never decides whether a
// test passed: it reports exit codes, and the host reads them.
package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ktlsgo/ktls/internal/lab/job"
	"github.com/ktlsgo/ktls/internal/lab/modinfo"
)

const (
	hostRoot = "/host"    // the host's / over 9p, where steps run
	hostRaw  = "/hostraw" // the same, without the guest's mounts on top
	jobDir   = "/job"     // the shared job directory
	modDir   = "/lib/modules"
)

// Main runs the guest. It never returns: it powers the machine off.
func Main() {
	start := time.Now()
	res := &job.Result{}
	jobMounted := false
	defer func() {
		if r := recover(); r != nil {
			res.Init = fmt.Sprintf("panic: %v", r)
			logf("init: %s", res.Init)
		}
		if jobMounted {
			if err := job.Write(jobDir, job.ResultFile, res); err != nil {
				logf("init: writing result: %v", err)
			}
		}
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}()

	fail := func(err error) {
		res.Init = err.Error()
		logf("init: %v", err)
	}

	if err := mountBase(); err != nil {
		fail(err)
		return
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	res.Release = unix.ByteSliceToString(uts.Release[:])

	res.Modules = loadModules(modDir)
	if err := loopbackUp(); err != nil {
		fail(err)
		return
	}
	if err := mount9p(job.JobTag, jobDir, 0); err != nil {
		fail(err)
		return
	}
	jobMounted = true
	var j job.Job
	if err := job.Read(jobDir, job.JobFile, &j); err != nil {
		fail(err)
		return
	}
	if err := mountHostRoot(j.Binds); err != nil {
		fail(err)
		return
	}
	for i, dir := range j.Shares {
		if err := mount9p(job.ShareTag(i), filepath.Join(hostRoot, dir), 0); err != nil {
			fail(fmt.Errorf("share %s: %w", dir, err))
			return
		}
	}
	for _, name := range []string{"tls", "9p"} {
		if !moduleLoaded(name) {
			fail(fmt.Errorf("module %s is not loaded (failed: %v)", name, res.Modules.Failed))
			return
		}
	}
	res.Boot = uptime()
	logf("ktls-lab: guest %s ready in %.1fs (uptime), init %.1fs, %d modules loaded (for the CPU: %s)",
		res.Release, res.Boot.Seconds(), time.Since(start).Seconds(), res.Modules.Loaded, strings.Join(res.Modules.CPU, " "))
	if err := job.Write(jobDir, job.ResultFile, res); err != nil {
		fail(err)
		return
	}

	env := append(slices.Clone(j.Env), job.EnvLab+"="+j.Kernel)
	for _, step := range j.Steps {
		logf("ktls-lab: step %s: start", step.Name)
		sr := runStep(step, env)
		res.Steps = append(res.Steps, sr)
		logf("ktls-lab: step %s: exit %d (%.1fs)", step.Name, sr.ExitCode, sr.Duration.Seconds())
		if err := job.Write(jobDir, job.ResultFile, res); err != nil {
			fail(err)
			return
		}
		if sr.ExitCode != 0 && j.StopOnFailure {
			break
		}
	}
	res.Done = true
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func uptime() time.Duration {
	var info unix.Sysinfo_t
	if unix.Sysinfo(&info) != nil {
		return 0
	}
	return time.Duration(info.Uptime) * time.Second
}

type mnt struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mnt) do() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

func mountBase() error {
	for _, m := range []mnt{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
		{"tmpfs", "/tmp", "tmpfs", 0, ""},
	} {
		if err := m.do(); err != nil {
			return err
		}
	}
	return nil
}

func mount9p(tag, target string, flags uintptr) error {
	// cache=loose: the host root doesn't change under a test, and without
	// caching every exec and page fault is a round trip to QEMU.
	opts := "trans=virtio,version=9p2000.L,msize=524288,cache=loose"
	return mnt{tag, target, "9p", flags, opts}.do()
}

// mountHostRoot mounts the host's root read-only and gives it what a
// running system needs: kernel filesystems, and writable /tmp, /run and
// /var/tmp in guest memory.
func mountHostRoot(binds []string) error {
	if err := mount9p(job.HostRootTag, hostRoot, unix.MS_RDONLY); err != nil {
		return err
	}
	// A non-recursive bind gives a view of the host root that the tmpfs
	// mounts below don't cover, to bind host paths back through them.
	if err := (mnt{hostRoot, hostRaw, "", unix.MS_BIND, ""}).do(); err != nil {
		return err
	}
	for _, m := range []mnt{
		{"proc", hostRoot + "/proc", "proc", 0, ""},
		{"sysfs", hostRoot + "/sys", "sysfs", 0, ""},
		{"devtmpfs", hostRoot + "/dev", "devtmpfs", 0, ""},
		{"devpts", hostRoot + "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666"},
		{"tmpfs", hostRoot + "/dev/shm", "tmpfs", 0, ""},
		{"tmpfs", hostRoot + "/tmp", "tmpfs", 0, "mode=1777"},
		{"tmpfs", hostRoot + "/run", "tmpfs", 0, "mode=755"},
		{"tmpfs", hostRoot + "/var/tmp", "tmpfs", 0, "mode=1777"},
	} {
		if err := m.do(); err != nil {
			return err
		}
	}
	for _, b := range binds {
		if !filepath.IsAbs(b) {
			return fmt.Errorf("bind %q: not an absolute path", b)
		}
		src := filepath.Join(hostRaw, b)
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("bind %s: %w", b, err)
		}
		dst := filepath.Join(hostRoot, b)
		if st.IsDir() {
			err = os.MkdirAll(dst, 0o755)
		} else {
			os.MkdirAll(filepath.Dir(dst), 0o755)
			err = os.WriteFile(dst, nil, 0o644)
		}
		if err != nil {
			return fmt.Errorf("bind %s: %w", b, err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", b, err)
		}
	}
	return nil
}

// loadModules loads the index's preload list, dependencies first, and
// makes the kernel call this program as its modprobe for everything else.
func loadModules(dir string) job.ModuleResult {
	var res job.ModuleResult
	x, err := readIndex(dir)
	if err != nil {
		res.Failed = append(res.Failed, err.Error())
		return res
	}
	for _, name := range x.LoadOrder(x.Preload) {
		if err := loadModule(dir, name); err != nil {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		res.Loaded++
	}
	// A real machine's udev loads, at boot, every module whose alias
	// matches the CPU's features: aesni-intel, ghash-clmulni-intel and the
	// like. Nothing asks for them later: the crypto API finds the built-in
	// aes-generic under "aes" and never requests the AES-NI module, so
	// without this the guest's kernel TLS would run AES-GCM on table-driven
	// C, as no machine with AES-NI does, and every kernel figure the lab
	// measured would be of the wrong code.
	if alias, err := os.ReadFile("/sys/devices/system/cpu/modalias"); err == nil {
		for _, name := range x.LoadOrder(x.Resolve(strings.TrimSpace(string(alias)))) {
			if err := loadModule(dir, name); err != nil {
				res.Failed = append(res.Failed, fmt.Sprintf("%s (for the CPU): %v", name, err))
				continue
			}
			res.Loaded++
			res.CPU = append(res.CPU, name)
		}
	}
	// The kernel runs the usermode helper in the initial root, where this
	// program is /init.
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte("/init\n"), 0o644); err != nil {
		res.Failed = append(res.Failed, "setting modprobe: "+err.Error())
	}
	return res
}

func readIndex(dir string) (*modinfo.Index, error) {
	data, err := os.ReadFile(filepath.Join(dir, modinfo.IndexFile))
	if err != nil {
		return nil, err
	}
	x := &modinfo.Index{}
	if err := json.Unmarshal(data, x); err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	return x, nil
}

// Modprobe is what the kernel runs to load a module on demand, as
// "modprobe -q -- NAME", where NAME is a module name or an alias such as
// "crypto-gcm(aes)". Like modprobe, it loads every module that matches,
// with dependencies, and exits non-zero if none does.
func Modprobe(args []string) int {
	var name string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			name = a
		}
	}
	x, err := readIndex(modDir)
	if err != nil || name == "" {
		return 1
	}
	mods := x.Resolve(name)
	if len(mods) == 0 {
		return 1
	}
	status := 0
	for _, m := range x.LoadOrder(mods) {
		if err := loadModule(modDir, m); err != nil {
			status = 1
		}
	}
	return status
}

func loadModule(dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name+".ko"))
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func moduleLoaded(name string) bool {
	_, err := os.Stat("/sys/module/" + name)
	return err == nil
}

// loopbackUp sets IFF_UP on lo with the SIOCSIFFLAGS ioctl.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return os.NewSyscallError("ioctl SIOCSIFFLAGS", err)
	}
	return nil
}

// runStep runs one program chrooted into the host root, with the console
// as its standard output and error.
func runStep(step job.Step, env []string) job.StepResult {
	start := time.Now()
	sr := job.StepResult{Name: step.Name, ExitCode: -1}
	if len(step.Argv) == 0 {
		sr.Error = "empty command"
		return sr
	}
	path, err := lookPath(step.Argv[0], env)
	if err != nil {
		sr.Error = err.Error()
		logf("ktls-lab: step %s: %v", step.Name, err)
		return sr
	}
	cmd := exec.Command(path)
	cmd.Path = path
	cmd.Args = step.Argv
	cmd.Env = env
	cmd.Dir = step.Dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: hostRoot, Setsid: true}
	err = cmd.Run()
	sr.Duration = time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil:
		sr.ExitCode = 0
	case errors.As(err, &exit):
		sr.ExitCode = exit.ExitCode()
		sr.Error = exit.String()
	default:
		sr.Error = err.Error()
		logf("ktls-lab: step %s: %v", step.Name, err)
	}
	// Anything the step left running in its session goes with it.
	if cmd.Process != nil {
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	return sr
}

// lookPath resolves a command name with the PATH of env, inside the host
// root, and returns it as a path inside the chroot.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathList := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathList = v
		}
	}
	for _, dir := range filepath.SplitList(pathList) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(filepath.Join(hostRoot, p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}
