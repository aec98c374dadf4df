package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, 100 on every Linux that Go runs on
// (sysconf(_SC_CLK_TCK) is a constant in the ABI).
const clockTick = 100

// processCPU returns a process's user and system CPU time so far, from
// /proc/PID/stat, its own threads and those already gone included.
func processCPU(pid int) (user, sys time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15 of stat(5); f[0] is field 3.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	tick := time.Second / clockTick
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}
