package kerneltest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Strace returns a command that runs argv under strace (the program's
// path, from Program), with its children, tracing only the system calls
// named in trace ("sendfile,splice") into the file out, for StraceBytes
// to read. Counting what sendfile and splice moved is how a test proves
// that data went through them and not through user space: a silent
// fallback to read and write makes the sum come out short.
func Strace(strace, out, trace string, argv ...string) *exec.Cmd {
	args := append([]string{"-f", "-qq", "--seccomp-bpf", "-e", "trace=" + trace, "-e", "signal=none", "-o", out}, argv...)
	return exec.Command(strace, args...)
}

var straceResult = regexp.MustCompile(`= (\d+)$`)

// StraceBytes adds up the results of the named call in the output of a
// Strace command, including calls strace reports in two parts
// ("<... resumed>"), and counts the calls.
func StraceBytes(t testing.TB, file, call string) (total int64, calls int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, call+"(") && !strings.Contains(line, "<... "+call+" resumed>") {
			continue
		}
		if m := straceResult.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			total += v
			calls++
		}
	}
	return total, calls
}
